"""An evaluation report a reviewer can open: ``report.md`` + ``report.html`` (self-contained) + PNG plots +
``metrics.json``.

The router is scored beside a baseline run in the same command on the same file: a character 1–3-gram
TF-IDF + LinearSVC trained and tested by k-fold cross-validation on that file (it sees real labels, the
router does not). When the evaluated router uses a trained model version, the zero-shot router (no
trained model) is scored in the same command too, and the report says plainly when the evaluated model
does not beat either. Plots: reliability diagram (is ``confidence`` honest?), coverage vs accuracy (what a
confidence threshold buys, e.g. for auto-dispatch) and the confusion matrix of the most confused
departments. With judged duplicate pairs, the duplicate detector's precision/recall is reported too, at
the default time window and at wider ones.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from model.suggestion import Suggestion, Ticket

from .compare import compare_suggestions, verdict
from .confusion import confusion_matrix, find_cjk_font, plot_confusion
from .metrics import correct, coverage_curve, lead_labels, reliability, system_metrics  # noqa: F401 (re-exported)
from .render import Heading, Images, Para, Table, to_html, to_markdown
from .routing import RoutingReport, score_suggestions

PLOTS = ("reliability.png", "coverage_accuracy.png", "confusion.png")


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


# ------------------------------------------------------------------------------------------- duplicates


def find_messages_beside(pairs_csv: Path) -> Path | None:
    """The message CSV (留言编号, 留言用户, 留言主题, 留言时间, 留言详情) in the pairs file's folder that holds every
    message a judged pair names, or None."""
    import csv
    import io

    from model.io import read_text

    from .duplicates import MESSAGE_COLUMNS, read_pairs

    pairs_csv = Path(pairs_csv)
    wanted = {x for a, b, _ in read_pairs(pairs_csv) for x in (a, b)}
    for path in sorted(pairs_csv.parent.glob("*.csv")):
        if path.resolve() == pairs_csv.resolve():
            continue
        try:
            reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
            if not set(MESSAGE_COLUMNS) <= set(reader.fieldnames or []):
                continue
            ids = {(row.get("留言编号") or "").strip() for row in reader}
        except (OSError, ValueError, csv.Error):
            continue
        if wanted <= ids:
            return path
    return None


def messages_span_days(tickets: list[Ticket]) -> float:
    from model.duplicates import parse_time

    ts = []
    for t in tickets:
        try:
            ts.append(parse_time(t.created_at))
        except ValueError:  # the detector reports unreadable times itself
            continue
    return (max(ts) - min(ts)) / 86400.0 if ts else 0.0


def dedup_windows(messages: Path, pairs: Path, encoder, base_config, windows: list[tuple[str, float | None]],
                  cache_dir: Path | None = None, locator=None, owners: list[str | None] | None = None) -> dict:
    """Duplicate precision/recall on judged pairs (``eval/duplicates.py``, as ``hotline eval-dedup``) for each
    ``(setting, window_days)``; ``window_days=None`` = no limit (a window longer than the messages' span).
    The messages are read and embedded once; ``owners``: each message's lead department (the owner window)."""
    from dataclasses import replace

    from model.duplicates.file_cache import embed_cached

    from .duplicates import evaluate_dedup, read_messages

    tickets = read_messages(messages)
    vectors = embed_cached(encoder, tickets, cache_dir)
    span = messages_span_days(tickets)
    rows, rep = [], None
    for setting, days in windows:
        days = float(math.ceil(span) + 1) if days is None else float(days)
        rep = evaluate_dedup(messages, pairs, encoder, config=replace(base_config, window_days=days), vectors=vectors,
                             tickets=tickets, locator=locator, owners=owners)
        rows.append({"setting": setting, "window_days": days, **rep.dedup, "kinds": rep.kinds, "clusters": rep.clusters,
                     "seconds": rep.seconds})
    return {"pairs": Path(pairs).name, "messages": Path(messages).name, "n_messages": len(tickets),
            "span_days": round(span, 1), "n_pairs": rep.n_pairs if rep else 0, "positives": rep.positives if rep else 0,
            "windows": rows, "baseline_cosine": rep.baseline_cosine if rep else {}}


# ---------------------------------------------------------------------------------------------- plots


def _plots(out: Path, systems: dict[str, tuple[list[dict], list[dict]]]) -> None:
    """Reliability and coverage/accuracy, one line per system (name -> (reliability bins, coverage curve))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    for name, (rel, _) in systems.items():
        ax.plot([r["confidence"] for r in rel], [r["accuracy"] for r in rel], "o-", label=name)
        for r in rel:
            ax.annotate(str(r["n"]), (r["confidence"], r["accuracy"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set(xlabel="confidence", ylabel="accuracy of lead", title="Reliability", xlim=(0, 1), ylim=(0, 1))
    if len(systems) > 1:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, (_, curve) in systems.items():
        ax.plot([c["coverage"] for c in curve], [c["accuracy"] for c in curve], label=name)
    ax.axhline(0.95, ls=":", color="red", lw=1)
    ax.set(xlabel="coverage (tickets above the confidence threshold)", ylabel="accuracy", title="Coverage vs accuracy",
           xlim=(0, 1), ylim=(0, 1.02))
    if len(systems) > 1:
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "coverage_accuracy.png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- report


def beats_line(name: str, a: dict, other: str, b: dict, paired: dict | None = None) -> tuple[str, bool]:
    """One plain sentence: does ``a`` beat ``b`` on lead top-1, and the boolean. Ties do not beat. With
    ``paired`` (from :func:`eval.compare.compare_suggestions`, ``b`` as its A side and ``a`` as its B side) a
    higher top-1 beats only when McNemar's test says it is more than chance (p < 0.05)."""
    higher = a["top1"] > b["top1"]
    figures = f"lead top-1 {a['top1']:.3f} vs {b['top1']:.3f}; top-3 {a['top3']:.3f} vs {b['top3']:.3f}"
    if paired is not None and higher:
        won, lost, p = paired["only_b_right"]["count"], paired["only_a_right"]["count"], paired["mcnemar_p"]
        if p >= 0.05:
            return (f"{name} does NOT clearly beat {other}: {figures}; it is right on {won} tickets where the other is wrong "
                    f"and wrong on {lost} where the other is right, within chance (McNemar p = {p:.3g})."), False
        return f"{name} beats {other} ({figures}; McNemar p = {p:.3g} on the tickets where exactly one is right).", True
    return f"{name} {'beats' if higher else 'does NOT beat'} {other} ({figures}).", higher


def write_report(out: Path, data_name: str, model_version: str, tickets: list[Ticket], labels: list[str],
                 suggestions: list[Suggestion], baseline: dict | None, *, names: dict[str, str] | None = None,
                 zero_shot: list[Suggestion] | None = None, zero_shot_version: str = "zero-shot",
                 dedup: dict | None = None, confusion_top: int = 12, version_arg: str | None = None,
                 co_gold: list[list[str]] | None = None, components: dict | None = None) -> dict:
    """Write report.md, report.html, metrics.json and the PNGs into ``out``; return the metrics.

    ``zero_shot``: the zero-shot router's suggestions for the same tickets, when ``suggestions`` come from a
    trained model version (shown side by side). ``dedup``: from :func:`dedup_windows`. ``names``: roster
    code -> department name (tables; the confusion plot when a CJK font is installed). ``version_arg``: the
    version as given on the command line (for the ``hotline eval compare`` hint). ``components``: from
    :func:`eval.components.component_metrics` (what the classifier and the lists each know)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = names or {}
    rep: RoutingReport = score_suggestions(suggestions, labels, tickets)
    m = system_metrics(suggestions, labels, co_gold)
    conf = np.array([s.confidence for s in suggestions], dtype=float)
    ok = correct(suggestions, labels)
    systems = {model_version: (m["reliability"], coverage_curve(conf, ok))}
    mz = None
    if zero_shot is not None:
        mz = system_metrics(zero_shot, labels, co_gold)
        zc = np.array([s.confidence for s in zero_shot], dtype=float)
        systems[zero_shot_version] = (mz["reliability"], coverage_curve(zc, correct(zero_shot, labels)))
    _plots(out, systems)
    cm = confusion_matrix(labels, lead_labels(suggestions), top=confusion_top)
    font = find_cjk_font()
    ticks = plot_confusion(cm, out / "confusion.png", names, font)

    verdicts = []
    if baseline:
        text, good = beats_line(f"The evaluated router `{model_version}`", m, "the baseline", baseline)
        verdicts.append({"against": "baseline", "beats": good, "text": text})
    comparison = None
    if mz is not None:
        ids = [t.id or f"#{i + 1}" for i, t in enumerate(tickets)]
        comparison = compare_suggestions(zero_shot, suggestions, labels, ids, names=(zero_shot_version, model_version))
        text, good = beats_line(f"The evaluated model `{model_version}`", m, f"the zero-shot router `{zero_shot_version}`", mz,
                                paired=comparison)
        verdicts.append({"against": "zero_shot", "beats": good, "text": text})

    router = {k: v for k, v in m.items() if k != "reliability"}
    metrics = {
        "data": data_name, "model_version": model_version, "version_arg": version_arg or model_version, "n": rep.n,
        "router": router, "zero_shot": ({"model_version": zero_shot_version, **{k: v for k, v in mz.items() if k != "reliability"}}
                                        if mz is not None else None),
        "baseline": baseline, "verdicts": verdicts, "per_label": rep.per_label,
        "confusions": [list(c) for c in rep.confusions[:15]],
        "confusion_matrix": {**cm, "tick_labels": ticks, "font": font},
        "reliability": m["reliability"],
        "comparison_to_zero_shot": ({k: v for k, v in comparison.items() if k != "systems"} if comparison else None),
        "components": components,
        "dedup": dedup, "files": ["report.md", "report.html", "metrics.json", *PLOTS, "misses.jsonl"],
    }
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")

    blocks = _blocks(metrics, m, mz, baseline, comparison, names, data_name)
    (out / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(to_html(blocks, out, f"Routing evaluation — {data_name}"), encoding="utf-8")
    return metrics


def _blocks(metrics: dict, m: dict, mz: dict | None, baseline: dict | None, comparison: dict | None,
            names: dict[str, str], data_name: str) -> list:
    version = metrics["model_version"]
    n = metrics["n"]
    head = ["system", "lead top-1", "lead top-3", "ECE", "arbitration rate", "auto-dispatch coverage", "auto-dispatch precision",
            "co-handling F1"]
    rows = [[f"**router `{version}`** (evaluated)", m["top1"], m["top3"], m["ece"], m["arbitration_rate"],
             m["auto_dispatch_coverage"], m["auto_dispatch_precision"], m.get("co_f1")]]
    if mz is not None:
        zs = metrics["zero_shot"]["model_version"]
        rows.append([f"zero-shot router `{zs}`", mz["top1"], mz["top3"], mz["ece"], mz["arbitration_rate"],
                     mz["auto_dispatch_coverage"], mz["auto_dispatch_precision"], mz.get("co_f1")])
    if baseline:
        rows.append([f"baseline: {baseline['name']}", baseline["top1"], baseline["top3"], None, None, None, None, None])
    blocks: list = [
        Heading(f"Routing evaluation — {data_name}", 1),
        Para(f"Router `{version}` on {n} labelled tickets (lead department; a suggestion of kind `locality` counts as "
             "`locality`). Top-3 counts the gold lead among the first three candidates."),
        Table(head, rows, align="lrrrrrrr"),
    ]
    if m.get("co_f1") is not None:
        blocks.append(Para(f"Co-handling (协办), the evaluated router: precision {_fmt(m.get('co_precision'))}, recall "
                           f"{_fmt(m.get('co_recall'))}, F1 {_fmt(m.get('co_f1'))}"
                           + (f"; zero-shot {_fmt(mz.get('co_precision'))} / {_fmt(mz.get('co_recall'))} / "
                              f"{_fmt(mz.get('co_f1'))}" if mz is not None and mz.get("co_f1") is not None else "") + "."))
    for v in metrics["verdicts"]:
        blocks.append(Para(("✔ " if v["beats"] else "✘ ") + v["text"], cls="verdict" if v["beats"] else "verdict bad"))
    if not baseline and mz is None:
        blocks.append(Para("No baseline was run (`--no-baseline` or fewer than 10 tickets)."))
    if comparison is not None:
        zs, ev = comparison["a"], comparison["b"]
        blocks += [Heading(f"`{ev}` vs zero-shot, ticket by ticket"),
                   Para(f"Only `{ev}` right: {comparison['only_b_right']['count']} tickets; only `{zs}` right: "
                        f"{comparison['only_a_right']['count']}; both wrong: {comparison['both_wrong']['count']}. "
                        + verdict(comparison) + f" All departments: `hotline eval compare none {metrics['version_arg']} --data …`."),
                   Table(["label", "support", f"F1 `{zs}`", f"F1 `{ev}`", "Δ"],
                         [[r["label"], r["support"], r["f1_a"], r["f1_b"], r["delta"]] for r in comparison["per_label"][:8]],
                         align="lrrrr")]
    c = metrics["components"]
    if c:
        d = c["disagree"]
        blocks += [Heading("What each part knows"),
                   Para("The served router weighs the classifier's opinion and the lists' (the zero-shot router). Each alone, "
                        "where they agree, and how often one or the other names the gold lead: about the most any weighting "
                        "of the two (`hotline eval tune-fusion`) can reach."),
                   Table(["classifier alone top-1", "classifier alone top-3", "lists alone top-1", "served top-1",
                          "same lead named", "served top-1 there", "one or the other right", "both right"],
                         [[c["classifier_top1"], c["classifier_top3"], c["lists_top1"], c["served_top1"], c["agree"],
                           c["served_top1_where_agree"], c["either_top1"], c["both_top1"]]], align="rrrrrrrr"),
                   Para(f"Where they name different leads ({d['tickets']} tickets) the classifier is right on "
                        f"{d['classifier_right']}, the lists on {d['lists_right']}, the served router on {d['served_right']}.")]
    r = metrics["router"]
    blocks += [
        Heading("Confidence, arbitration, auto-dispatch"),
        Para(f"ECE {r['ece']:.3f}. Arbitration rate {r['arbitration_rate']:.1%}: lead accuracy {_fmt(r['accuracy_flagged'])} "
             f"among flagged tickets vs {_fmt(r['accuracy_not_flagged'])} among the rest. Auto-dispatch covers "
             f"{r['auto_dispatch_coverage']:.1%} of tickets at precision {_fmt(r['auto_dispatch_precision'])} "
             "(the red line marks 0.95)."),
        Images([("reliability", "reliability.png"), ("coverage vs accuracy", "coverage_accuracy.png")]),
    ]
    if r.get("reasons"):
        blocks += [
            Heading("Why tickets were flagged"),
            Para("Each reason the router gave: how many tickets carry it, the lead accuracy among them (a flag worth the "
                 "arbitration group's time marks tickets the router gets wrong: compare the accuracy among unflagged "
                 "tickets above), and how many carry no other arbitration reason. Reasons without a count there "
                 "inform the dispatcher and send nothing to arbitration."),
            Table(["reason", "tickets", "share", "lead accuracy", "only arbitration reason"],
                  [[x["code"], x["count"], f"{x['rate']:.1%}", _fmt(x["accuracy"]), "" if x["alone"] is None else x["alone"]]
                   for x in r["reasons"]], align="lrrrr"),
        ]
    blocks += [Heading("Most confused departments")]
    cm = metrics["confusion_matrix"]
    blocks += [
        Para(f"Rows: gold lead; columns: suggested lead; the {len(cm['labels'])} labels involved in the most errors "
             f"({cm['errors_shown']} of {cm['errors_total']} errors fall inside the matrix)."
             + ("" if cm["font"] else " No CJK font is installed, so the plot shows roster codes (install fonts-wqy-microhei for names).")),
        Images([("confusion matrix", "confusion.png")]),
        Table(["gold", "suggested", "count", "gold department", "suggested department"],
              [[a, b, k, names.get(a, ""), names.get(b, "")] for a, b, k in metrics["confusions"]], align="llrll"),
        Heading("Per label"),
        Table(["label", "department", "support", "precision", "recall", "F1"],
              [[lab, names.get(lab, ""), v["support"], v["precision"], v["recall"], v["f1"]]
               for lab, v in sorted(metrics["per_label"].items(), key=lambda kv: (-kv[1]["support"], kv[0]))],
              align="llrrrr"),
    ]
    d = metrics["dedup"]
    if d:
        rows = [[w["setting"], f"{w['window_days']:g}", w["precision"], w["recall"], w["f1"], w["tp"], w["fp"], w["fn"]]
                for w in d["windows"]]
        b = d.get("baseline_cosine") or {}
        if b:
            rows.append([f"anchor: plain e5 cosine ≥ {b.get('threshold')} (tuned on these pairs)", None, b.get("precision"),
                         b.get("recall"), b.get("f1"), b.get("tp"), b.get("fp"), b.get("fn")])
        blocks += [Heading("Duplicate detection (重复诉求)"),
                   Para(f"Judged pairs `{d['pairs']}`: {d['n_pairs']} pairs, {d['positives']} same problem; messages "
                        f"`{d['messages']}` ({d['n_messages']}, spanning {d['span_days']} days) run through the detector in "
                        "time order; a pair is predicted *same* when both end in one cluster (as `hotline eval-dedup`)."),
                   Table(["setting", "window (days)", "precision", "recall", "F1", "tp", "fp", "fn"], rows, align="lrrrrrrr")]
    blocks += [Heading("Files"),
               Para("`metrics.json` (every figure above), `misses.jsonl` (the misses with their text, for review: it quotes "
                    "the data, keep it out of git), `reliability.png`, `coverage_accuracy.png`, `confusion.png`, "
                    "`report.html` (this report as one self-contained page).")]
    return blocks


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"
