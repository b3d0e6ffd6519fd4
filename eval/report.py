"""An evaluation report a reviewer can open: ``report.md`` + PNG plots + ``metrics.json``.

The router is scored beside a baseline run in the same command on the same file: a character 1–3-gram
TF-IDF + LinearSVC trained and tested by k-fold cross-validation on that file (it sees real labels, the
router does not). Plots: reliability diagram (is ``confidence`` honest?) and coverage vs accuracy (what
a confidence threshold buys, e.g. for auto-dispatch).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.suggestion import Suggestion, Ticket

from .routing import RoutingReport, as_label, score_suggestions


def tfidf_svc_baseline(texts: list[str], labels: list[str], folds: int = 5, seed: int = 0) -> dict:
    """Top-1/top-3 of char 1–3-gram TF-IDF + LinearSVC by k-fold CV on the same data."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import KFold
    from sklearn.svm import LinearSVC

    y = np.asarray(labels)
    hit1 = hit3 = 0
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(texts):
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1)
        xtr = vec.fit_transform([texts[i] for i in train])
        if len(set(y[train])) < 2:
            continue
        clf = LinearSVC(C=1.0).fit(xtr, y[train])
        scores = clf.decision_function(vec.transform([texts[i] for i in test]))
        if scores.ndim == 1:  # two classes
            scores = np.stack([-scores, scores], axis=1)
        top = np.argsort(-scores, axis=1)[:, :3]
        for row, i in zip(top, test):
            ranked = [clf.classes_[j] for j in row]
            hit1 += ranked[0] == y[i]
            hit3 += y[i] in ranked
    n = len(texts)
    return {"name": f"char TF-IDF + LinearSVC ({folds}-fold CV on this file)", "top1": round(hit1 / n, 4), "top3": round(hit3 / n, 4)}


def reliability(conf: np.ndarray, ok: np.ndarray, bins: int = 10) -> tuple[list[dict], float]:
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
    order = np.argsort(-conf)
    out = []
    for k in range(1, len(order) + 1):
        sel = order[:k]
        out.append({"coverage": round(k / len(order), 4), "accuracy": round(float(ok[sel].mean()), 4),
                    "threshold": round(float(conf[order[k - 1]]), 4)})
    return out


def _plots(out: Path, rel: list[dict], curve: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.plot([r["confidence"] for r in rel], [r["accuracy"] for r in rel], "o-")
    for r in rel:
        ax.annotate(str(r["n"]), (r["confidence"], r["accuracy"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set(xlabel="confidence", ylabel="accuracy of lead", title="Reliability", xlim=(0, 1), ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([c["coverage"] for c in curve], [c["accuracy"] for c in curve])
    ax.axhline(0.95, ls=":", color="red", lw=1)
    ax.set(xlabel="coverage (tickets above the confidence threshold)", ylabel="accuracy", title="Coverage vs accuracy",
           xlim=(0, 1), ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(out / "coverage_accuracy.png", dpi=110)
    plt.close(fig)


def write_report(out: Path, data_name: str, model_version: str, tickets: list[Ticket], labels: list[str],
                 suggestions: list[Suggestion], baseline: dict | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rep: RoutingReport = score_suggestions(suggestions, labels, tickets)
    conf = np.array([s.confidence for s in suggestions])
    ok = np.array([as_label(s.lead.code, s.lead.kind) == g for s, g in zip(suggestions, labels)])
    arb = np.array([s.needs_arbitration for s in suggestions])
    auto = np.array([s.auto_dispatch for s in suggestions])
    rel, ece = reliability(conf, ok)
    curve = coverage_curve(conf, ok)
    _plots(out, rel, curve)
    metrics = {
        "data": data_name, "model_version": model_version, "n": rep.n,
        "router": {"top1": round(rep.top1, 4), "top3": round(rep.top3, 4), "ece": ece,
                   "arbitration_rate": round(float(arb.mean()), 4),
                   "accuracy_flagged": round(float(ok[arb].mean()), 4) if arb.any() else None,
                   "accuracy_not_flagged": round(float(ok[~arb].mean()), 4) if (~arb).any() else None,
                   "auto_dispatch_coverage": round(float(auto.mean()), 4),
                   "auto_dispatch_precision": round(float(ok[auto].mean()), 4) if auto.any() else None},
        "baseline": baseline, "per_label": rep.per_label, "confusions": rep.confusions[:15], "reliability": rel,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    r = metrics["router"]
    lines = [f"# Routing evaluation — {data_name}", "", f"Router `{model_version}`, {rep.n} labelled tickets.", "",
             "| system | lead top-1 | lead top-3 |", "|---|---|---|",
             f"| router | {r['top1']:.3f} | {r['top3']:.3f} |"]
    if baseline:
        lines.append(f"| {baseline['name']} | {baseline['top1']:.3f} | {baseline['top3']:.3f} |")
        verdict = "beats" if r["top1"] > baseline["top1"] else "does NOT beat"
        lines += ["", f"The router {verdict} the baseline on top-1."]
    lines += ["", f"ECE {ece:.3f}; arbitration rate {r['arbitration_rate']:.1%} (lead accuracy {r['accuracy_flagged']} flagged vs "
              f"{r['accuracy_not_flagged']} not flagged); auto-dispatch coverage {r['auto_dispatch_coverage']:.1%}, precision "
              f"{r['auto_dispatch_precision']}.", "", "![reliability](reliability.png) ![coverage](coverage_accuracy.png)", "",
              "## Per label", "", "| label | support | precision | recall | F1 |", "|---|---|---|---|---|"]
    for lab, v in sorted(rep.per_label.items(), key=lambda kv: -kv[1]["support"]):
        lines.append(f"| {lab} | {v['support']} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} |")
    lines += ["", "## Most confused (gold → predicted)", "", "| gold | predicted | count |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {k} |" for a, b, k in rep.confusions[:15]]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return metrics
