"""Audit a labelled export before training on it: likely mislabelled rows, near-identical rows,
label and text-length distributions.

Mislabels: out-of-fold predicted probabilities of a logistic regression on the frozen encoder's
embeddings (cheap and independent of the model being trained), ranked by cleanlab's
``find_label_issues`` (confident learning). Historical dispatch labels are noisy — every 退单 is a
past mistake — so the list is a worklist for a person, not an automatic fix.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np

from .data import History


def oof_probabilities(X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 13) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    n_classes = int(y.max()) + 1
    probs = np.zeros((len(y), n_classes))
    counts = np.bincount(y, minlength=n_classes)
    k = max(2, min(folds, int(counts[counts > 0].min()) if (counts > 0).any() else 2))
    strat = np.where(counts[y] >= k, y, -1)
    for tr, te in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(X, strat):
        clf = LogisticRegression(max_iter=2000, C=10.0)
        clf.fit(X[tr], y[tr])
        p = np.full((len(te), n_classes), 1e-6)
        p[:, clf.classes_] = clf.predict_proba(X[te])
        probs[te] = p / p.sum(1, keepdims=True)
    return probs


def near_duplicates(X: np.ndarray, threshold: float = 0.97, k: int = 5) -> list[tuple[int, int, float]]:
    import faiss

    X = np.ascontiguousarray(X.astype(np.float32))
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    sims, ids = index.search(X, min(k + 1, len(X)))
    pairs = {}
    for i in range(len(X)):
        for s, j in zip(sims[i], ids[i]):
            if j > i and s >= threshold:
                pairs[(i, int(j))] = float(s)
    return sorted(((a, b, s) for (a, b), s in pairs.items()), key=lambda t: -t[2])


def audit(hists: list[History], files: list[str], encoder, folds: int = 5, dup_threshold: float = 0.97) -> dict:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    texts, labels, rows, src = [], [], [], []
    for h, f in zip(hists, files):
        texts += h.texts
        labels += h.labels
        rows += h.rows
        src += [f] * len(h)
    names = sorted(set(labels))
    index = {l: i for i, l in enumerate(names)}
    y = np.array([index[l] for l in labels])
    X = encoder.encode_queries(texts, batch_size=32)
    lengths = np.array([len(t) for t in texts])
    out = {"n": len(texts), "labels": dict(Counter(labels).most_common()),
           "length": {"min": int(lengths.min()), "p25": int(np.percentile(lengths, 25)), "median": int(np.median(lengths)),
                      "p75": int(np.percentile(lengths, 75)), "max": int(lengths.max())},
           "dup_threshold": dup_threshold, "issues": [], "near_duplicates": [], "oof_accuracy": float("nan"),
           "problems": [h.report.summary() for h in hists]}
    if len(names) >= 2 and len(texts) >= 10:
        probs = oof_probabilities(X, y, folds)
        out["oof_accuracy"] = float((probs.argmax(1) == y).mean())
        mask = find_label_issues(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence")
        quality = get_label_quality_scores(y, probs)
        out["issues"] = [{"file": src[i], "row": rows[i], "given": labels[i], "suggested": names[int(probs[i].argmax())],
                          "quality": round(float(quality[i]), 4), "text": texts[i][:200]} for i in mask]
    for a, b, s in near_duplicates(X, dup_threshold):
        out["near_duplicates"].append({"file_a": src[a], "row_a": rows[a], "file_b": src[b], "row_b": rows[b],
                                       "cosine": round(s, 4), "labels_differ": labels[a] != labels[b]})
    return out


def write_audit(rep: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "audit.json").write_text(json.dumps(rep, ensure_ascii=False, indent=2), encoding="utf-8")
    with open(out_dir / "label_issues.csv", "w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "row", "given", "suggested", "quality", "text"])
        w.writeheader()
        w.writerows(rep["issues"])
