"""Calibration on held-out logits: temperature scaling (with ECE before/after), a split-conformal
threshold for the lead head, and a threshold for the co-handling head."""
from __future__ import annotations

import math

import numpy as np

from model.classifier import sigmoid_np, softmax_np


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence (equal-width bins)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.sum() * abs(conf[m].mean() - correct[m].mean())
    return float(total / len(labels))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = softmax_np(np.asarray(logits, dtype=np.float64), temperature)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None))))


MIN_CALIBRATION_ROWS = 20  # fewer held-out rows than this fit noise: one right row drove T to 0.07 (near-certain leads)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the held-out negative log-likelihood (bounded 1-D search on log T); 1 (no scaling)
    with fewer than :data:`MIN_CALIBRATION_ROWS` held-out rows."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels)
    if len(labels) < MIN_CALIBRATION_ROWS:
        return 1.0
    res = minimize_scalar(lambda lt: nll(logits, labels, math.exp(lt)), bounds=(math.log(0.05), math.log(20.0)),
                          method="bounded", options={"xatol": 1e-4})
    t = float(math.exp(res.x))
    return t if nll(logits, labels, t) <= nll(logits, labels, 1.0) else 1.0


def conformal_threshold(probs: np.ndarray, labels: np.ndarray, alpha: float = 0.1) -> float:
    """Split conformal (score = 1 - p_true): labels with probability >= the returned threshold form a set
    that contains the true label with probability >= 1 - alpha (exchangeable data)."""
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0:
        return 0.5
    scores = 1.0 - np.asarray(probs)[np.arange(n), labels]
    level = min(1.0, math.ceil((n + 1) * (1 - alpha)) / n)
    qhat = float(np.quantile(scores, level, method="higher"))
    return max(0.0, 1.0 - qhat)


def co_threshold(co_logits: np.ndarray, co_targets: np.ndarray) -> float:
    """The sigmoid threshold with the best micro-F1 of co-handlers on held-out rows (0.5 without positives)."""
    co_targets = np.asarray(co_targets)
    if co_targets.sum() == 0:
        return 0.5
    p = sigmoid_np(np.asarray(co_logits))
    best, best_t = -1.0, 0.5
    for t in np.arange(0.1, 0.91, 0.05):
        pred = p >= t
        tp = (pred & (co_targets > 0)).sum()
        f1 = 2 * tp / max(pred.sum() + (co_targets > 0).sum(), 1)
        if f1 > best:
            best, best_t = f1, float(t)
    return round(best_t, 2)


def calibrate(logits: np.ndarray, labels: np.ndarray, co_logits: np.ndarray | None = None,
              co_targets: np.ndarray | None = None, alpha: float = 0.1) -> dict:
    """Everything ``calibration.json`` holds, with ECE before and after."""
    labels = np.asarray(labels)
    t = fit_temperature(logits, labels)
    before = softmax_np(logits, 1.0)
    after = softmax_np(logits, t)
    q = conformal_threshold(after, labels, alpha)
    sets = (after >= q).sum(axis=1) if len(labels) else np.zeros(0)
    out = {"temperature": round(t, 4), "ece_before": round(ece(before, labels), 4), "ece_after": round(ece(after, labels), 4),
           "nll_before": round(nll(logits, labels, 1.0), 4) if len(labels) else None,
           "nll_after": round(nll(logits, labels, t), 4) if len(labels) else None,
           "alpha": alpha, "conformal_threshold": round(q, 4), "n_calibration": int(len(labels)),
           "mean_set_size": round(float(np.mean(np.maximum(sets, 1))), 3) if len(labels) else None,
           "multi_member_rate": round(float(np.mean(sets > 1)), 3) if len(labels) else None}
    out["co_threshold"] = co_threshold(co_logits, co_targets) if co_logits is not None and co_targets is not None else 0.5
    return out
