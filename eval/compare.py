"""Two routers (model versions, or ``none`` for the zero-shot router) on the same labelled tickets.

For each: top-1 / top-3 / ECE / arbitration rate; per department (gold label) the F1 of each and the
delta; the tickets one gets right and the other wrong (counts and a few ids, never the message text),
with an exact McNemar test on those discordant tickets (is the difference more than chance?).
Written as ``compare.md`` + ``compare.json``.
"""
from __future__ import annotations

import json
from math import comb
from pathlib import Path

from model.suggestion import Suggestion

from .metrics import correct, lead_labels, system_metrics
from .render import Heading, Para, Table, to_markdown
from .routing import score_suggestions

EXAMPLES = 8


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` tickets only A gets right and ``c`` only B gets right."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return round(min(1.0, 2 * tail), 4)


def compare_suggestions(a: list[Suggestion], b: list[Suggestion], labels: list[str], ids: list[str] | None = None,
                        names: tuple[str, str] = ("A", "B"), examples: int = EXAMPLES) -> dict:
    """Side-by-side figures of two suggestion lists for the same tickets (same order as ``labels``)."""
    if not (len(a) == len(b) == len(labels)):
        raise ValueError(f"suggestion lists of {len(a)} and {len(b)} for {len(labels)} labels: route the same tickets with both")
    ids = list(ids) if ids is not None else [s.id or f"#{i + 1}" for i, s in enumerate(a)]
    ma, mb = system_metrics(a, labels), system_metrics(b, labels)
    pa, pb = score_suggestions(a, labels).per_label, score_suggestions(b, labels).per_label
    per_label = []
    for lab in sorted(set(labels)):
        fa, fb = pa.get(lab, {}).get("f1", 0.0), pb.get(lab, {}).get("f1", 0.0)
        per_label.append({"label": lab, "support": pa.get(lab, {}).get("support", 0), "f1_a": fa, "f1_b": fb,
                          "delta": round(fb - fa, 3)})
    per_label.sort(key=lambda r: (-abs(r["delta"]) * r["support"], -abs(r["delta"]), r["label"]))  # weight of the change
    ok_a, ok_b = correct(a, labels), correct(b, labels)
    la, lb = lead_labels(a), lead_labels(b)
    only_a = [i for i in range(len(labels)) if ok_a[i] and not ok_b[i]]
    only_b = [i for i in range(len(labels)) if ok_b[i] and not ok_a[i]]
    both_wrong = [i for i in range(len(labels)) if not ok_a[i] and not ok_b[i]]

    def show(idx: list[int]) -> list[dict]:
        return [{"id": ids[i], "gold": labels[i], "a": la[i], "b": lb[i]} for i in idx[:examples]]

    return {
        "n": len(labels), "a": names[0], "b": names[1],
        "systems": {"a": ma, "b": mb},
        "delta": {k: round(mb[k] - ma[k], 4) for k in ("top1", "top3", "ece", "arbitration_rate")},
        "per_label": per_label,
        "only_a_right": {"count": len(only_a), "examples": show(only_a)},
        "only_b_right": {"count": len(only_b), "examples": show(only_b)},
        "both_right": int((ok_a & ok_b).sum()),
        "both_wrong": {"count": len(both_wrong), "same_prediction": sum(la[i] == lb[i] for i in both_wrong)},
        "same_lead": sum(x == y for x, y in zip(la, lb)),
        "mcnemar_p": mcnemar_exact(len(only_a), len(only_b)),
    }


def verdict(res: dict) -> str:
    """One sentence: which system is ahead on top-1 and whether that is more than chance (McNemar p < 0.05)."""
    a, b = res["a"], res["b"]
    t1a, t1b = res["systems"]["a"]["top1"], res["systems"]["b"]["top1"]
    p = res["mcnemar_p"]
    k = res["only_a_right"]["count"] + res["only_b_right"]["count"]
    if t1a == t1b:
        return f"`{a}` and `{b}` have the same lead top-1 ({t1a:.3f})."
    better, worse = (b, a) if t1b > t1a else (a, b)
    figures = f"lead top-1 ({max(t1a, t1b):.3f} vs {min(t1a, t1b):.3f})"
    if p < 0.05:
        return f"`{better}` beats `{worse}` on {figures}; McNemar p = {p:.3g} on the {k} tickets where exactly one is right."
    return (f"`{better}` is ahead of `{worse}` on {figures}, but within chance (McNemar p = {p:.3g} on the {k} tickets "
            "where exactly one is right): neither clearly beats the other.")


def compare_blocks(res: dict, data_name: str, department_names: dict[str, str] | None = None) -> list:
    a, b = res["a"], res["b"]
    sa, sb = res["systems"]["a"], res["systems"]["b"]
    names = department_names or {}
    rows = []
    for key, label in (("top1", "lead top-1"), ("top3", "lead top-3"), ("ece", "ECE (lower is better)"),
                       ("arbitration_rate", "arbitration rate"), ("auto_dispatch_coverage", "auto-dispatch coverage"),
                       ("auto_dispatch_precision", "auto-dispatch precision")):
        va, vb = sa.get(key), sb.get(key)
        rows.append([label, va, vb, round(vb - va, 4) if va is not None and vb is not None else None])
    blocks = [
        Heading(f"Compare `{a}` vs `{b}` — {data_name}", 1),
        Para(f"{res['n']} labelled tickets; Δ = `{b}` − `{a}`."),
        Table(["metric", f"`{a}`", f"`{b}`", "Δ"], rows, align="lrrr"),
        Para(verdict(res)),
        Heading("Tickets where they disagree"),
        Table(["", "tickets"], [
            [f"only `{a}` right", res["only_a_right"]["count"]], [f"only `{b}` right", res["only_b_right"]["count"]],
            ["both right", res["both_right"]], ["both wrong", res["both_wrong"]["count"]],
            ["same lead suggested", res["same_lead"]]], align="lr"),
    ]
    for key, who in (("only_a_right", a), ("only_b_right", b)):
        ex = res[key]["examples"]
        if ex:
            blocks += [Para(f"First {len(ex)} ticket ids only `{who}` gets right (ids only; look them up in the data file):"),
                       Table(["id", "gold", f"`{a}`", f"`{b}`"], [[e["id"], e["gold"], e["a"], e["b"]] for e in ex], align="llll")]
    blocks += [Heading("Per department (gold label): F1"),
               Table(["label", "department", "support", f"F1 `{a}`", f"F1 `{b}`", "Δ"],
                     [[r["label"], names.get(r["label"], ""), r["support"], r["f1_a"], r["f1_b"], r["delta"]]
                      for r in res["per_label"]], align="llrrrr")]
    return blocks


def write_compare(out: Path, res: dict, data_name: str, department_names: dict[str, str] | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps({"data": data_name, **res}, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "compare.md").write_text(to_markdown(compare_blocks(res, data_name, department_names)), encoding="utf-8")
    return out / "compare.md"


def summary_line(res: dict, out: Path | None = None) -> dict:
    """The one JSON line the CLI prints at the end."""
    sa, sb = res["systems"]["a"], res["systems"]["b"]
    line = {"a": res["a"], "b": res["b"], "n": res["n"], "top1_a": sa["top1"], "top1_b": sb["top1"],
            "top3_a": sa["top3"], "top3_b": sb["top3"], "ece_a": sa["ece"], "ece_b": sb["ece"],
            "arbitration_rate_a": sa["arbitration_rate"], "arbitration_rate_b": sb["arbitration_rate"],
            "delta_top1": res["delta"]["top1"], "only_a_right": res["only_a_right"]["count"],
            "only_b_right": res["only_b_right"]["count"], "mcnemar_p": res["mcnemar_p"]}
    if out is not None:
        line["out"] = str(out)
    return line
