"""Pseudo-labels: a centre's untriaged tickets, labelled by the router where it is sure, as training data.

The default model learns the lists' own phrasings from synthetic history; a centre's citizens write otherwise (long
letters, local turns of phrase, the matter stated midway). Before the centre has decisions of its own to export, the
router's sure suggestions on its untriaged tickets teach the classifier that wording (self-training): the lists label
what they are sure of, and the classifier, trained on those tickets beside the synthetic history, carries the wording
over to the tickets the lists are unsure of. ``hotline data pseudo-label`` writes the file (a reviewer can open it: one
row per ticket, with the confidence and the reason it was kept), ``hotline train --default --add FILE`` trains on both.

Only sure, unflagged suggestions are kept: confidence at least ``min_confidence``, no arbitration reason, not a body
outside the roster; one ticket per repeated problem (the same title or opening), and at most ``max_per_label`` per
lead, the surest first, so that one hot issue's hundred letters do not teach one department's wording a hundred times.
A suggestion's street office or town is the classifier's one label ``locality`` (the router shares that label's mass
among the towns).
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from model.duplicates.signals import (
    normalise,  # the duplicate detector's: punctuation and spaces make no difference
)
from model.suggestion import Suggestion, Ticket

COLUMNS = ["id", "title", "content", "created_at", "lead", "co", "confidence", "source"]


@dataclass(frozen=True)
class PseudoLabelArguments:
    """What makes a suggestion sure enough to learn from (the defaults: README, "Self-training on untriaged tickets")."""

    min_confidence: float = 0.5
    max_per_label: int = 300

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within 0–1, not {self.min_confidence}")
        if self.max_per_label < 1:
            raise ValueError(f"max_per_label must be at least 1, not {self.max_per_label}")


@dataclass
class PseudoLabelReport:
    tickets: int
    kept: int
    unsure: int  # under min_confidence or flagged for arbitration
    outside: int  # a body outside the roster
    repeats: int  # the same problem as a ticket kept
    over_cap: int  # its lead had max_per_label already
    per_label: dict[str, int]

    def line(self) -> str:
        return (f"kept {self.kept} of {self.tickets} tickets ({self.unsure} unsure or flagged, {self.outside} outside the "
                f"roster, {self.repeats} repeats, {self.over_cap} over a department's cap)")


def _label(code: str, kind: str) -> str:
    return "locality" if kind == "locality" else code


def _problem_key(t: Ticket) -> str:
    """A repeated problem's key: its title's first 12 characters, else its text's first 24 (letters and digits)."""
    title = normalise(t.title or "")
    return "t:" + title[:12] if len(title) >= 6 else "c:" + normalise(t.content)[:24]


def _text_key(t: Ticket) -> str:
    return normalise(t.content)[:60]


def leave_out(tickets: list[Ticket], held_out: list[Ticket]) -> tuple[list[Ticket], int]:
    """``tickets`` without those of ``held_out`` (an evaluation set: the same text's opening or the same title), so that
    a model trained on the pseudo-labels is still judged on tickets it never saw; and how many were left out."""
    texts = {_text_key(t) for t in held_out}
    titles = {normalise(t.title) for t in held_out if t.title and len(normalise(t.title)) >= 6}
    kept = [t for t in tickets if _text_key(t) not in texts and normalise(t.title or "") not in titles]
    return kept, len(tickets) - len(kept)


def pseudo_label(tickets: list[Ticket], suggestions: list[Suggestion],
                 args: PseudoLabelArguments = PseudoLabelArguments()) -> tuple[list[dict], PseudoLabelReport]:
    """Rows (``COLUMNS``) of the tickets whose suggestion is sure, surest first; ``suggestions[i]`` is ``tickets[i]``'s."""
    if len(tickets) != len(suggestions):
        raise ValueError(f"{len(tickets)} tickets but {len(suggestions)} suggestions")
    unsure = outside = repeats = over_cap = 0
    per_label: Counter[str] = Counter()
    seen: set[str] = set()
    rows: list[dict] = []
    order = sorted(range(len(tickets)), key=lambda i: -suggestions[i].confidence)
    for i in order:
        t, s = tickets[i], suggestions[i]
        if any(r.code == "OUTSIDE_ROSTER" for r in s.reasons):
            outside += 1
            continue
        if s.confidence < args.min_confidence or s.needs_arbitration:
            unsure += 1
            continue
        key = _problem_key(t)
        if key in seen:
            repeats += 1
            continue
        lead = _label(s.lead.code, s.lead.kind)
        if per_label[lead] >= args.max_per_label:
            over_cap += 1
            continue
        seen.add(key)
        per_label[lead] += 1
        co = list(dict.fromkeys(c for c in (_label(d.code, d.kind) for d in s.co) if c != lead))
        rows.append({"id": t.id or f"row{i + 1}", "title": t.title or "", "content": t.content,
                     "created_at": t.created_at or "", "lead": lead, "co": "|".join(co),
                     "confidence": f"{s.confidence:.4f}", "source": s.model_version or ""})
    report = PseudoLabelReport(len(tickets), len(rows), unsure, outside, repeats, over_cap, dict(per_label.most_common()))
    return rows, report


def write_csv(rows: list[dict], path: Path) -> Path:
    """The routing file format ``hotline train`` reads (id, title, content, created_at, lead, co) plus confidence, source."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path
