"""Headline figures of one system's suggestions on labelled tickets: top-1/top-3, calibration (ECE,
reliability bins), the coverage/accuracy curve of a confidence threshold, arbitration and auto-dispatch.

Shared by the routing report (``eval/report.py``) and the comparison of two versions (``eval/compare.py``).
"""
from __future__ import annotations

import numpy as np

from model.suggestion import Suggestion

from .routing import as_label, score_suggestions


def reliability(conf: np.ndarray, ok: np.ndarray, bins: int = 10) -> tuple[list[dict], float]:
    """Equal-width confidence bins (mean confidence vs accuracy, count) and the expected calibration error."""
    edges = np.linspace(0, 1, bins + 1)
    rows, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
        if m.any():
            rows.append({"lo": round(float(lo), 2), "hi": round(float(hi), 2), "n": int(m.sum()),
                         "confidence": round(float(conf[m].mean()), 4), "accuracy": round(float(ok[m].mean()), 4)})
            ece += m.mean() * abs(conf[m].mean() - ok[m].mean())
    return rows, round(float(ece), 4)


def coverage_curve(conf: np.ndarray, ok: np.ndarray) -> list[dict]:
    """Accuracy among the k most confident tickets, for every k (what a confidence threshold buys)."""
    order = np.argsort(-conf, kind="stable")
    out = []
    for k in range(1, len(order) + 1):
        sel = order[:k]
        out.append({"coverage": round(k / len(order), 4), "accuracy": round(float(ok[sel].mean()), 4),
                    "threshold": round(float(conf[order[k - 1]]), 4)})
    return out


def lead_labels(suggestions: list[Suggestion]) -> list[str]:
    return [as_label(s.lead.code, s.lead.kind) for s in suggestions]


def correct(suggestions: list[Suggestion], labels: list[str]) -> np.ndarray:
    return np.array([p == g for p, g in zip(lead_labels(suggestions), labels)], dtype=bool)


def _rate(mask: np.ndarray, of: np.ndarray) -> float | None:
    return round(float(of[mask].mean()), 4) if mask.any() else None


def co_handling_metrics(suggestions: list[Suggestion], labels: list[str], co_gold: list[list[str]]) -> dict:
    """Micro precision/recall/F1 of the suggested co-handlers (as labels: towns count as ``locality``) against
    the gold ones, the gold lead left out of both."""
    tp = fp = fn = 0
    for s, lead, gold in zip(suggestions, labels, co_gold):
        pred = {as_label(c.code, c.kind) for c in s.co} - {lead}
        g = set(gold) - {lead}
        tp, fp, fn = tp + len(pred & g), fp + len(pred - g), fn + len(g - pred)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"co_precision": round(p, 4), "co_recall": round(r, 4), "co_f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "co_gold_pairs": tp + fn}


def reason_metrics(suggestions: list[Suggestion], ok: np.ndarray) -> list[dict]:
    """Per reason code, most frequent first: how many tickets carry it (``count``, ``rate``), the lead accuracy among
    them (a flag worth the arbitration group's time marks tickets the router gets wrong), and ``alone``: how many
    carry no other arbitration reason (the tickets the group would not see without it)."""
    from model.router import ARBITRATION_CODES

    codes = [[r.code for r in s.reasons] for s in suggestions]
    n = len(suggestions)
    out = []
    for code in sorted({c for cs in codes for c in cs}):
        has = np.array([code in cs for cs in codes], dtype=bool)
        alone = sum(1 for cs in codes if code in cs and not ({c for c in cs if c in ARBITRATION_CODES} - {code}))
        out.append({"code": code, "count": int(has.sum()), "rate": round(float(has.mean()), 4) if n else 0.0,
                    "accuracy": _rate(has, ok), "arbitration": code in ARBITRATION_CODES,
                    "alone": alone if code in ARBITRATION_CODES else None})
    return sorted(out, key=lambda r: (-r["count"], r["code"]))


def system_metrics(suggestions: list[Suggestion], labels: list[str], co_gold: list[list[str]] | None = None) -> dict:
    """top1, top3, ece, arbitration_rate (+ lead accuracy flagged / not flagged), auto-dispatch coverage and
    precision, the reasons (:func:`reason_metrics`) and the reliability bins of one system."""
    if len(suggestions) != len(labels):
        raise ValueError(f"{len(suggestions)} suggestions for {len(labels)} labels")
    rep = score_suggestions(suggestions, labels)
    conf = np.array([s.confidence for s in suggestions], dtype=float)
    ok = correct(suggestions, labels)
    arb = np.array([s.needs_arbitration for s in suggestions], dtype=bool)
    auto = np.array([s.auto_dispatch for s in suggestions], dtype=bool)
    rel, ece = reliability(conf, ok)
    return {
        "top1": round(rep.top1, 4), "top3": round(rep.top3, 4), "ece": ece,
        "arbitration_rate": round(float(arb.mean()), 4) if len(arb) else 0.0,
        "accuracy_flagged": _rate(arb, ok), "accuracy_not_flagged": _rate(~arb, ok),
        "auto_dispatch_coverage": round(float(auto.mean()), 4) if len(auto) else 0.0,
        "auto_dispatch_precision": _rate(auto, ok),
        "reasons": reason_metrics(suggestions, ok),
        "reliability": rel,
        **(co_handling_metrics(suggestions, labels, co_gold) if co_gold is not None else {}),
    }
