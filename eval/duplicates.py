"""Duplicate detection on real messages: precision/recall of "same cluster" on judged pairs.

The messages (留言编号, 留言用户, 留言主题, 留言时间, 留言详情) go through the detector in time order, 留言用户 as
the caller; a judged pair (a, b, same) counts as predicted "same" when both messages end in one cluster.
The baseline is a plain e5 cosine threshold on the pairs, at its best-F1 setting (tuned on the very
pairs it is scored on, so optimistic).
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from model.duplicates import DedupConfig, DuplicateDetector
from model.duplicates.file_cache import embed_cached
from model.io import field_error, read_text
from model.suggestion import Ticket

MESSAGE_COLUMNS = ("留言编号", "留言用户", "留言主题", "留言时间", "留言详情")


def read_messages(path: Path) -> list[Ticket]:
    """Tickets from a message CSV (id, caller, title, created_at, content); rows without text are skipped.
    ValueError naming the file and row of a message the ticket model refuses (an id over 128 characters…) or whose
    time cannot be read (before any message is encoded or routed)."""
    from pydantic import ValidationError

    from model.duplicates import parse_time

    out = []
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = [c for c in MESSAGE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    for n, row in enumerate(reader, start=2):  # row 1 is the header, as a spreadsheet numbers them
        cell = {c: (row.get(c) or "").strip() for c in MESSAGE_COLUMNS}
        content = cell["留言详情"] or cell["留言主题"]
        if not content or not any(ch.isalnum() for ch in content):
            continue
        try:
            out.append(Ticket(id=cell["留言编号"], caller=cell["留言用户"] or None, title=cell["留言主题"][:500] or None,
                              content=content[:20_000], created_at=cell["留言时间"]))
        except ValidationError as e:
            raise ValueError(f"{path} row {n}: {field_error(e)}") from None
        try:
            parse_time(cell["留言时间"])
        except ValueError as e:
            raise ValueError(f"{path} row {n} (留言编号 {cell['留言编号']}): 留言时间: {e}") from None
    return out


SAME_VALUES = {"1": 1, "0": 0}  # a judged pair's ``same``: 1 = the same problem, 0 = not


def read_pairs(path: Path) -> list[tuple[str, str, int]]:
    """Judged pairs (a, b, same) of a CSV with columns a, b (message ids) and same (1 or 0). ValueError naming the file
    and line of a pair without both ids or with another ``same``, or when the file has no pair under its header."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if not {"a", "b", "same"} <= set(reader.fieldnames or []):
        raise ValueError(f"{path}: needs columns a, b, same")
    out = []
    for r in reader:
        n = reader.line_num  # pairs are one line each: the line a text editor shows
        a, b, same = ((r.get(c) or "").strip() for c in ("a", "b", "same"))
        if not a or not b:
            raise ValueError(f"{path} line {n}: a pair needs both message ids, in columns a and b")
        if same not in SAME_VALUES:
            raise ValueError(f"{path} line {n}: same is {same!r} — write 1 (the same problem) or 0 (not the same)")
        out.append((a, b, SAME_VALUES[same]))
    if not out:
        raise ValueError(f"{path}: no judged pair under the header — add rows a, b, same (1 the same problem, 0 not)")
    return out


def check_pairs(pairs: list[tuple[str, str, int]], tickets: list[Ticket], messages: Path) -> None:
    """ValueError when a judged pair names a message not among ``tickets`` (read from ``messages``)."""
    index = {t.id for t in tickets}
    missing = [p for p in pairs if p[0] not in index or p[1] not in index]
    if missing:
        raise ValueError(f"{len(missing)} judged pair(s) refer to messages not in {messages} (first: {missing[0][:2]})")


def prf(pred: list[bool], gold: list[int]) -> dict:
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum((not p) and g for p, g in zip(pred, gold))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3), "tp": tp, "fp": fp, "fn": fn}


@dataclass
class DedupReport:
    n_messages: int
    n_pairs: int
    positives: int
    dedup: dict
    baseline_cosine: dict
    kinds: dict
    clusters: int
    largest_cluster: int
    config: dict
    seconds: float
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def cosine_baseline(vecs: np.ndarray, index: dict[str, int], pairs) -> dict:
    """Best-F1 plain cosine threshold on the pairs (tuned on them: an optimistic anchor)."""
    cos = [float(vecs[index[a]] @ vecs[index[b]]) for a, b, _ in pairs]
    gold = [g for _, _, g in pairs]
    best = None
    for th in sorted(set(round(c, 3) for c in cos)):
        m = prf([c >= th for c in cos], gold)
        if best is None or m["f1"] > best["f1"]:
            best = {**m, "threshold": th}
    return best or {}


def evaluate_dedup(messages: Path, pairs_csv: Path, encoder, salt: str = "eval", config: DedupConfig | None = None,
                   cache_dir: Path | None = None, vectors: np.ndarray | None = None, tickets: list[Ticket] | None = None,
                   locator=None, owners: list[str | None] | None = None,
                   on_embed: Callable[[int], object] | None = None) -> DedupReport:
    """Precision and recall of the detector's clusters on the judged pairs of ``pairs_csv``, beside a plain cosine.
    ``on_embed(n)`` before the ``n`` messages are embedded (not when ``cache_dir`` has their vectors)."""
    t0 = time.perf_counter()
    tickets = tickets if tickets is not None else read_messages(messages)
    pairs = read_pairs(pairs_csv)
    check_pairs(pairs, tickets, messages)
    index = {t.id: i for i, t in enumerate(tickets)}
    if vectors is None:
        vectors = embed_cached(encoder, tickets, cache_dir, on_miss=on_embed)
    det = DuplicateDetector(encoder, salt, config, locator, dim=vectors.shape[1])
    results = det.rebuild(tickets, vectors=vectors, owners=owners)
    cluster = {r.id: r.cluster for r in results}
    pred = [cluster[a] == cluster[b] for a, b, _ in pairs]
    gold = [g for _, _, g in pairs]
    kinds: dict = {}
    for r in results:
        kinds[str(r.kind)] = kinds.get(str(r.kind), 0) + 1
    sizes = det.cluster_members()
    errors = [{"a": a, "b": b, "same": g, "predicted": p, "cosine": round(float(vectors[index[a]] @ vectors[index[b]]), 3)}
              for (a, b, g), p in zip(pairs, pred) if bool(p) != bool(g)]
    return DedupReport(
        n_messages=len(tickets), n_pairs=len(pairs), positives=sum(gold), dedup=prf(pred, gold),
        baseline_cosine=cosine_baseline(vectors, index, pairs), kinds=kinds,
        clusters=sum(1 for m in sizes.values() if len(m) > 1), largest_cluster=max(len(m) for m in sizes.values()),
        config=asdict(det.config), seconds=round(time.perf_counter() - t0, 1), errors=errors,
    )
