"""Lead-department accuracy of a router on a labelled file (id, title, content, lead[, co]).

Labels are roster codes, or ``locality`` for any street office / town: a suggestion of kind
``locality`` counts as ``locality``. Reports top-1 / top-3 over the candidates and the misses.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from model.io import csv_table
from model.suggestion import Suggestion, Ticket


def as_label(code: str, kind: str) -> str:
    return "locality" if kind == "locality" else code


@dataclass
class RoutingReport:
    n: int
    top1: float
    top3: float
    per_label: dict[str, dict[str, float]]
    confusions: list[tuple[str, str, int]]
    misses: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"n": self.n, "top1": round(self.top1, 4), "top3": round(self.top3, 4), "per_label": self.per_label,
                "confusions": self.confusions[:20]}


REQUIRED_COLUMNS = ("content", "lead")


def ticket_rows(path: Path, required=REQUIRED_COLUMNS):
    """The field names and the rows that have text in every ``required`` column (by default content and lead: the
    rows every labelled reader here keeps) of a CSV saved as UTF-8 or GBK, whose header may sit under a title row
    (:func:`model.io.csv_table`). ValueError naming what is missing."""
    fields, rows = csv_table(path, required)
    dicts = (dict(zip(fields, vals)) for _, vals in rows)
    return fields, [r for r in dicts if all((r.get(c) or "").strip() for c in required)]


def label_aliases(lists) -> dict[str, str]:
    """Gold leads as a centre's own exports write them -> the routing labels suggestions are scored in, as
    ``hotline train --labels roster`` reads them: a roster code, a department's full name (区教育局), and a street
    office's or town's code or name (-> ``locality``: the router names the town from the address, and a
    suggestion of kind locality counts as ``locality``)."""
    from training.data import LOCALITY, roster_label_space

    return {**roster_label_space(lists)[1], LOCALITY: LOCALITY}


def read_labelled_csv(path: Path, aliases: dict[str, str] | None = None) -> tuple[list[Ticket], list[str], list[list[str]] | None]:
    """Tickets, gold leads and gold co-handlers of a labelled CSV (id, title, content, lead[, co]), read once. Leads and
    co-handlers go through ``aliases`` (:func:`label_aliases`) when given; other labels stay as written. Co-handlers
    are codes or names joined as ``hotline train`` reads them (``|``, ``、``, ``,``…); ``None`` when the file has no
    ``co`` column. Rows without content or lead are skipped; a file without a ``content`` or ``lead`` column is
    refused (ValueError naming the missing columns)."""
    from training.data import map_label, split_co

    fields, rows = ticket_rows(path)
    tickets = [Ticket(id=r.get("id"), title=r.get("title") or None, content=r["content"][:20000]) for r in rows]
    label = (lambda l: map_label(aliases, l)) if aliases else (lambda l: l)
    leads = [label(r["lead"].strip()) for r in rows]
    co = ([[label(c.strip()) for c in split_co(r.get("co") or "") if c.strip()] for r in rows]
          if "co" in fields else None)
    return tickets, leads, co


def read_labelled_export(path: Path, aliases: dict[str, str], columns) -> tuple[list[Ticket], list[str], list[list[str]] | None, object]:
    """A centre's own export (CSV/TSV/XLSX/JSONL/Parquet) read with ``hotline train``'s column mapping
    (``training.data.ColumnMap``: text columns joined in order, the lead column, optional co-handling, address and id
    columns) and label aliases: tickets, gold leads, gold co-handlers (``None`` without a co column) and the load report
    (rows skipped and why). Raises ValueError for whole-file problems (format, missing columns)."""
    from training.data import load_history

    h = load_history(path, columns, label_aliases=aliases)
    tickets = [Ticket(id=h.ids[i] or str(h.rows[i]), content=h.texts[i], address=h.addresses[i]) for i in range(len(h))]
    return tickets, list(h.labels), ([list(c) for c in h.co] if columns.co_col else None), h.report


def score_suggestions(suggestions: list[Suggestion], labels: list[str], tickets: list[Ticket] | None = None) -> RoutingReport:
    hit1 = hit3 = 0
    per = defaultdict(Counter)
    conf = Counter()
    misses = []
    for i, (s, gold) in enumerate(zip(suggestions, labels)):
        pred = as_label(s.lead.code, s.lead.kind)
        top = [pred]  # the suggested lead is the first choice (a joint-handling rule may pick a lower candidate)
        for c in s.candidates:
            lab = as_label(c.code, c.kind)
            if lab not in top:
                top.append(lab)
        ok1 = pred == gold
        hit1 += ok1
        hit3 += gold in top[:3]
        per[gold]["support"] += 1
        per[gold]["tp"] += ok1
        per[pred]["predicted"] += 1
        if not ok1:
            conf[(gold, pred)] += 1
            misses.append({"id": s.id, "gold": gold, "pred": pred, "top": top[:3], "confidence": s.confidence,
                           "evidence": [e.item_id for e in s.evidence[:3]],
                           "text": (tickets[i].text[:120] if tickets else None)})
    n = len(labels)
    per_label = {}
    for lab, c in sorted(per.items()):
        p = c["tp"] / c["predicted"] if c["predicted"] else 0.0
        r = c["tp"] / c["support"] if c["support"] else 0.0
        per_label[lab] = {"support": c["support"], "precision": round(p, 3), "recall": round(r, 3),
                          "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0}
    return RoutingReport(n=n, top1=hit1 / n if n else 0.0, top3=hit3 / n if n else 0.0, per_label=per_label,
                         confusions=[(a, b, k) for (a, b), k in conf.most_common()], misses=misses)


def route_all(router, tickets: list[Ticket], batch_size: int = 32) -> list[Suggestion]:
    suggestions = []
    for i in range(0, len(tickets), batch_size):
        suggestions.extend(router.route_many(tickets[i : i + batch_size], batch_size=batch_size))
    return suggestions


def write_misses(out_dir: Path, misses: list[dict]) -> Path:
    """``misses.jsonl``: one line per miss, with the start of its text (quotes the data: keep it out of git)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "misses.jsonl", "w", encoding="utf-8") as f:
        for m in misses:
            f.write(json.dumps(m, ensure_ascii=False) + "\n")
    return out_dir / "misses.jsonl"


def evaluate_router(router, path: Path, out_dir: Path | None = None, batch_size: int = 32, return_all: bool = False):
    tickets, labels, _ = read_labelled_csv(path, label_aliases(router.lists))
    suggestions = route_all(router, tickets, batch_size)
    report = score_suggestions(suggestions, labels, tickets)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(report.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
        write_misses(out_dir, report.misses)
    if return_all:
        return report, tickets, labels, suggestions
    return report


def precedents_from_file(router, path: Path, config=None, batch_size: int = 32) -> int:
    """Give ``router`` the tickets of a labelled CSV (id, title, content, lead[, co]) as precedents: settled tickets
    that vote on similar ones (model/precedents.py), each with the joint-handling rule the lists would have cited
    for it (as a decided ticket's suggestion does in serving). Returns how many."""
    from model.precedents import Precedent, PrecedentMemory

    aliases = label_aliases(router.lists)
    tickets, labels, co = read_labelled_csv(path, aliases)
    co = co or [[] for _ in tickets]
    vecs = router.query_vectors(tickets, batch_size=batch_size)
    rules = [getattr(router.analyse(t, v).rule, "rule", None) for t, v in zip(tickets, vecs)]
    mem = PrecedentMemory(vecs.shape[1], config) if config is not None else PrecedentMemory(vecs.shape[1])
    mem.add([Precedent(id=str(t.id), lead=lab, co=tuple(c), text=t.text, source="file", rule=r.id if r else None)
             for t, lab, c, r in zip(tickets, labels, co, rules)], vecs)
    router.precedents = mem
    return len(mem)
