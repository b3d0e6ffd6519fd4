"""Lead-department accuracy of a router on a labelled file (id, title, content, lead[, co]).

Labels are roster codes, or ``locality`` for any street office / town: a suggestion of kind
``locality`` counts as ``locality``. Reports top-1 / top-3 over the candidates and the misses.
"""
from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from model.io import TICKET_COLUMNS, csv_table, field_error
from model.router import iter_batches, route_stream
from model.suggestion import MAX_CONTENT_CHARS, Suggestion, Ticket, join_texts
from training.data import label_aliases

TITLE_NAMES = {n.casefold() for n in TICKET_COLUMNS["title"]}


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


def _labelled_rows(path: Path, required=REQUIRED_COLUMNS):
    """The field names; ``(row number, row)`` for each row with text in every ``required`` column (the row number
    as a spreadsheet shows it, the header being row 1 unless a title sits above it); and, per required column, the
    row numbers left out because that column is empty there (blank lines are not rows)."""
    fields, rows = csv_table(path, required)
    kept, left_out = [], {c: [] for c in required}
    for n, vals in rows:
        if not any((v or "").strip() for v in vals):
            continue
        r = dict(zip(fields, vals))
        empty = next((c for c in required if not (r.get(c) or "").strip()), None)
        if empty is None:
            kept.append((n, r))
        else:
            left_out[empty].append(n)
    return fields, kept, left_out


def ticket_rows(path: Path, required=REQUIRED_COLUMNS):
    """The field names and the rows that have text in every ``required`` column (by default content and lead: the
    rows every labelled reader here keeps) of a CSV saved as UTF-8 or GBK, whose header may sit under a title row
    (:func:`model.io.csv_table`). ValueError naming what is missing."""
    fields, kept, _ = _labelled_rows(path, required)
    return fields, [r for _, r in kept]


def _rows_named(rows: list[int], limit: int = 5) -> str:
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows[:limit])) + (" …" if len(rows) > limit else "")


def read_labelled_csv(path: Path, aliases: dict[str, str] | None = None,
                      warn: bool = True) -> tuple[list[Ticket], list[str], list[list[str]] | None]:
    """Tickets, gold leads and gold co-handlers of a labelled CSV (id, title, content, lead[, co]), read once. Leads and
    co-handlers go through ``aliases`` (:func:`label_aliases`) when given; other labels stay as written. Co-handlers
    are codes or names joined as ``hotline train`` reads them (``|``, ``、``, ``,``…); ``None`` when the file has no
    ``co`` column. Rows without content or lead are skipped, and so are rows the ticket model refuses (a title over
    500 characters, an id over 128…: as ``hotline route`` skips them); with ``warn`` one line on stderr says how many
    rows were skipped, why and which (as the export reader's load report does). A file without a ``content`` or
    ``lead`` column is refused (ValueError naming the missing columns), and so is one whose every row with content
    and lead is refused (ValueError naming the first such row and why)."""
    from pydantic import ValidationError

    from training.data import map_label, split_co

    fields, kept, left_out = _labelled_rows(path)
    rows, tickets, refused = [], [], []
    for n, r in kept:
        try:
            t = Ticket(id=r.get("id"), title=r.get("title") or None, content=r["content"][:MAX_CONTENT_CHARS])
        except ValidationError as e:
            refused.append((n, field_error(e)))
            continue
        rows.append(r)
        tickets.append(t)
    if refused and not tickets:
        n, why = refused[0]
        raise ValueError(f"row {n}: {why} — the ticket model refuses it ({len(refused)} such row(s), no usable row)")
    skipped = [(f"{len(v)} without {'a lead' if c == 'lead' else c}", v) for c, v in left_out.items() if v]
    if refused:
        skipped.append((f"{len(refused)} refused ({refused[0][1]})", [n for n, _ in refused]))
    if warn and tickets and skipped:
        total = len(kept) + sum(len(v) for v in left_out.values())
        print(f"{Path(path).name}: {total} rows, {len(tickets)} used, {total - len(tickets)} skipped ("
              + "; ".join(f"{what}: {_rows_named(at)}" for what, at in skipped) + ")", file=sys.stderr)
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
    # a first text column that is a title (诉求标题, 留言主题 …: model/io.py TICKET_COLUMNS) is the ticket's title, as
    # serving takes it (the router weighs a title apart and reads rules in it first); joined into the content, the
    # export measured another router than the one that serves (zero-shot top-1 4 points lower on a centre's month)
    titled = len(columns.text_cols) > 1 and columns.text_cols[0].strip().casefold() in TITLE_NAMES and h.parts is not None
    tickets = [Ticket(id=h.ids[i] or str(h.rows[i]), address=h.addresses[i],
                      **({"title": h.parts[i][0][:500] or None, "content": join_texts(h.parts[i][1:])[:MAX_CONTENT_CHARS] or h.texts[i]}
                         if titled else {"content": h.texts[i]}))
               for i in range(len(h))]
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
    return list(route_stream(router, tickets, batch_size))


def route_all_with_views(router, tickets: list[Ticket], batch_size: int = 32) -> tuple[list[Suggestion], list]:
    """A trained version's suggestions and its classifier's own opinions (``ModelView``), a batch at a time, from
    the one pass that routes them."""
    suggestions, views = [], []
    for batch in iter_batches(tickets, batch_size):
        s, v = router.route_many_with_views(batch, batch_size=batch_size)
        suggestions += s
        views += v
    return suggestions, views


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
    tickets, labels, co = read_labelled_csv(path, aliases, warn=False)  # the CLI has read (and reported on) it already
    co = co or [[] for _ in tickets]
    vecs = router.query_vectors(tickets, batch_size=batch_size)
    rules = [getattr(router.analyse(t, v).rule, "rule", None) for t, v in zip(tickets, vecs)]
    mem = PrecedentMemory(vecs.shape[1], config) if config is not None else PrecedentMemory(vecs.shape[1])
    mem.add([Precedent(id=str(t.id), lead=lab, co=tuple(c), text=t.text, source="file", rule=r.id if r else None)
             for t, lab, c, r in zip(tickets, labels, co, rules)], vecs)
    router.precedents = mem
    return len(mem)
