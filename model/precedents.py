"""Precedents (判例): tickets whose owner a person settled — an arbitration decision, or a dispatcher's
override that was not returned — vote on the lead of similar new tickets, right away, before any retraining.

The arbitration group's decisions are how a centre's own conventions enter the lists; a precedent applies them to
the next similar ticket the moment they are taken. Each precedent is one e5 query vector (the same vectors the
router searches the lists with) in a faiss inner-product index. A new ticket's ``k`` nearest precedents at or
above ``min_similarity`` vote, each with weight ``exp((cos - 1) / temperature)``; the router mixes the vote into
its lead distribution as a weighted geometric mean (``weight`` = the precedents' share) and cites the nearest
precedents as evidence; when the lead stays the nearest precedent's, its co-handlers are suggested too. A matched
joint-handling rule still decides (policy) — unless the rule is marked disputed and the arbitration group settled a
near-identical ticket (cosine >= ``settles_dispute``): then that decision says who leads and co-handles, the
precedents dominate the lead distribution (``SETTLED_WEIGHT``), the ticket does not go back to the group for
DISPUTED_BOUNDARY, and it is never auto-dispatched (a dispatcher still looks). Each precedent also remembers the
joint-handling rule its suggestion cited: a rule that the arbitration group keeps overruling (``contest_rule``
decisions naming another lead, more than upheld it) is treated as disputed until the lists are clarified
(:meth:`PrecedentMemory.rule_record`, ``ZeroShotRouter.contest_rule``). Defaults chosen on half of
``routing_dev.csv`` (docs/routing-log.md, "What precedents buy").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import faiss
import numpy as np

from .mixing import geometric_mix

EPS = 1e-3  # a department no precedent names keeps this much of the vote (log-space floor)
PROBS_EPS = 1e-9  # the router's own probabilities: floored only against log(0), not flattened
SETTLED_WEIGHT = 0.9  # a settled dispute: the precedents' share of the lead distribution (the lists order the rest)


@dataclass
class PrecedentConfig:
    weight: float = 0.2          # the precedents' share of the geometric mean (0 = precedents off)
    k: int = 10                  # nearest precedents that vote
    min_similarity: float = 0.9  # e5 cosine below which a precedent is not "similar"
    temperature: float = 0.03    # sharpness of the similarity weights
    evidence: int = 2            # nearest precedents cited as evidence
    settles_dispute: float = 0.95  # an arbitration decision this similar settles a disputed rule's matter (> 1: never)
    contest_rule: int = 2        # decisions overruling a joint-handling rule (more than upheld it) that make it disputed (0: never)


@dataclass(frozen=True)
class Precedent:
    id: str                      # the ticket that was settled (the store's id, or a file's id)
    lead: str                    # department code (a street office/town counts as ``locality`` when voting)
    co: tuple[str, ...] = ()
    text: str = ""
    source: str = "decision"     # decision (arbitration) | override (dispatcher) | file
    rule: str | None = None      # the joint-handling rule the ticket's suggestion cited when it was settled


@dataclass
class RuleRecord:
    """What the arbitration group decided on tickets a joint-handling rule assigned (oldest settled ticket first)."""
    rule: str
    overruled: list[Precedent]   # decided with another lead than the rule's
    upheld: list[Precedent]      # decided with the rule's lead

    def contested(self, min_overrules: int) -> bool:
        return min_overrules > 0 and len(self.overruled) >= min_overrules and len(self.overruled) > len(self.upheld)

    def decided(self, group: Callable[[str], str] = lambda c: c) -> dict[str, int]:
        """The leads decided instead of the rule's (``group`` labels), most often first."""
        counts: dict[str, int] = {}
        for p in self.overruled:
            counts[group(p.lead)] = counts.get(group(p.lead), 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


@dataclass
class Neighbour:
    precedent: Precedent
    similarity: float


@dataclass
class PrecedentMemory:
    dim: int
    config: PrecedentConfig = field(default_factory=PrecedentConfig)

    def __post_init__(self):
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self._by_row: dict[int, Precedent] = {}
        self._row_of: dict[str, int] = {}
        self._by_rule: dict[str, set[int]] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._by_row)

    def __contains__(self, precedent_id: str) -> bool:
        return str(precedent_id) in self._row_of

    def get(self, precedent_id: str) -> Precedent | None:
        row = self._row_of.get(str(precedent_id))
        return None if row is None else self._by_row[row]

    def add(self, precedents: list[Precedent], vectors: np.ndarray) -> None:
        """Add precedents; one with the id of a stored one replaces it (a later decision on the same ticket wins)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(precedents), self.dim)
        if not precedents:
            return
        self.remove([p.id for p in precedents])
        rows = np.arange(self._next, self._next + len(precedents), dtype=np.int64)
        self._next += len(precedents)
        self.index.add_with_ids(vectors, rows)
        for p, r in zip(precedents, rows.tolist()):
            self._by_row[r] = p
            self._row_of[str(p.id)] = r
            if p.rule:
                self._by_rule.setdefault(p.rule, set()).add(r)

    def remove(self, ids: list[str]) -> int:
        rows = [self._row_of.pop(str(i)) for i in ids if str(i) in self._row_of]
        if rows:
            self.index.remove_ids(np.asarray(rows, dtype=np.int64))
            for r in rows:
                p = self._by_row.pop(r)
                if p.rule and p.rule in self._by_rule:
                    self._by_rule[p.rule].discard(r)
                    if not self._by_rule[p.rule]:
                        del self._by_rule[p.rule]
        return len(rows)

    def rules(self) -> list[str]:
        """The rules that settled tickets' suggestions cited."""
        return sorted(self._by_rule)

    def rule_record(self, rule_id: str, rule_lead: str, group: Callable[[str], str] = lambda c: c) -> RuleRecord:
        """The arbitration decisions (and labelled files' tickets) on tickets whose suggestion cited ``rule_id``: which
        named another lead than ``rule_lead`` (compared as ``group`` labels: any town is the locality). A dispatcher's
        override is not counted: contesting a rule is the arbitration group's call."""
        lead = group(rule_lead)
        over, up = [], []
        for r in sorted(self._by_rule.get(rule_id, ())):
            p = self._by_row[r]
            if p.source == "override":
                continue
            (up if group(p.lead) == lead else over).append(p)
        return RuleRecord(rule_id, over, up)

    def neighbours(self, query_vec: np.ndarray, exclude: str | None = None, *, k: int | None = None,
                   min_similarity: float | None = None) -> list[Neighbour]:
        """The ``k`` nearest precedents at or above ``min_similarity`` (default: the config's), nearest first
        (``exclude``: a ticket's own)."""
        cfg = self.config
        want = cfg.k if k is None else k
        floor = cfg.min_similarity if min_similarity is None else min_similarity
        if not len(self) or want <= 0:
            return []
        k = min(want + (1 if exclude is not None else 0), len(self))
        sims, rows = self.index.search(np.asarray(query_vec, dtype=np.float32).reshape(1, -1), k)
        out = []
        for s, r in zip(sims[0].tolist(), rows[0].tolist()):
            p = self._by_row.get(r)
            if p is None or s < floor or (exclude is not None and p.id == str(exclude)):
                continue
            out.append(Neighbour(p, float(s)))
        return out[:want]

    def vote(self, neighbours: list[Neighbour], group: Callable[[str], str] = lambda c: c) -> dict[str, float]:
        """The neighbours' lead distribution over ``group(lead)`` labels (sums to 1; empty without neighbours)."""
        t = max(self.config.temperature, 1e-4)
        votes: dict[str, float] = {}
        for n in neighbours:
            g = group(n.precedent.lead)
            votes[g] = votes.get(g, 0.0) + math.exp((n.similarity - 1.0) / t)
        total = sum(votes.values())
        return {g: v / total for g, v in votes.items()} if total > 0 else {}

    def mix(self, probs: dict[str, float], vote: dict[str, float], group: Callable[[str], str] = lambda c: c,
            weight: float | None = None) -> dict[str, float]:
        """``probs`` (department codes) mixed with ``vote`` (group labels): ``(1 - w)·log p + w·log vote``, renormalised.
        A group's vote is shared among its codes as ``probs`` shares the group (the towns under ``locality``)."""
        w = self.config.weight if weight is None else weight
        if not vote or w <= 0:
            return dict(probs)
        return geometric_mix(probs, vote, group, w, EPS, probs_eps=PROBS_EPS)
