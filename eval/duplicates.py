"""Duplicate detection on real messages: precision/recall of "same cluster" on judged pairs.

The messages (留言编号, 留言用户, 留言主题, 留言时间, 留言详情) go through the detector in time order, 留言用户 as
the caller; a judged pair (a, b, same) counts as predicted "same" when both messages end in one cluster.
The baseline is a plain e5 cosine threshold on the pairs, at its best-F1 setting (tuned on the very
pairs it is scored on, so optimistic).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from model.duplicates import DedupConfig, DuplicateDetector
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


def embed_cached(encoder, tickets: list[Ticket], cache_dir: Path | None, batch_size: int = 32) -> np.ndarray:
    """e5 query vectors of the tickets' texts, cached under ``cache_dir`` keyed by encoder and texts."""
    texts = [t.text for t in tickets]
    key = hashlib.sha256((encoder.fingerprint + "\x00" + "\x00".join(texts)).encode("utf-8")).hexdigest()[:24]
    path = Path(cache_dir) / f"dedup-eval-{key}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path)
    vecs = encoder.encode_queries(texts, batch_size=batch_size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        tmp.replace(path)
    return vecs


def _router_files() -> list[tuple[str, Path]]:
    """The code that turns lists and a ticket into the lists' lead, as (name, path): ``model/`` and
    ``responsibility_lists/``, without ``model/duplicates/`` (the router never imports it; a change to the detector
    must not route every message again)."""
    import model
    import responsibility_lists

    files = []
    for pkg in (model, responsibility_lists):
        root = Path(pkg.__file__).parent
        files += [(p.relative_to(root.parent).as_posix(), p) for p in sorted(root.rglob("*.py"))
                  if "duplicates" not in p.relative_to(root).parts[:-1]]
    return files


def _router_code() -> str:
    """A digest of :func:`_router_files`: the same lists read by other code (2026-12-04: rule triggers gained a
    window) may name other owners, so an upgrade must not read the owners an older checkout cached."""
    digest = hashlib.sha256()
    for name, path in _router_files():
        digest.update(name.encode() + b"\x00" + path.read_bytes())
    return digest.hexdigest()[:16]


def routed_owners(router, tickets: list[Ticket], cache_dir: Path | None, dtype: str | None = None,
                  batch_size: int = 32) -> list[str]:
    """Each ticket's owner as the router suggests it (the lists' own lead, :attr:`Suggestion.lists_lead`, which
    the service takes for a ticket not yet dispatched; a town as ``locality``), cached under ``cache_dir``
    keyed by what decides that lead: the lists' version, the code that reads them, the router's knobs, the encoder and
    the tickets — not the
    classifier or the fusion knobs, which come after it, so a fused router (``hotline eval routing --dup-pairs``)
    reads what the lists-only one (``hotline eval-dedup``) cached. Routing thousands of messages takes minutes; the
    detector's knobs are then tried in seconds."""
    from eval.routing import route_all

    what = {"owner": "lists_lead", "lists": router.lists.version, "code": _router_code(), "config": asdict(router.config),
            "encoder": router.index.encoder.fingerprint, "dtype": dtype}
    head = json.dumps(what, sort_keys=True, default=str, ensure_ascii=False)
    body = "\x00".join(t.model_dump_json(include={"id", "title", "content", "address", "returns"}) for t in tickets)
    key = hashlib.sha256((head + "\x00" + body).encode("utf-8")).hexdigest()[:24]
    path = Path(cache_dir) / f"owners-{key}.json" if cache_dir else None
    if path is not None and path.is_file():
        try:
            owners = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owners = None  # a damaged cache is a miss: routed again and rewritten
        if isinstance(owners, list) and len(owners) == len(tickets):
            return owners
    owners = [router.group(s.lists_lead or s.lead.code) for s in route_all(router, tickets, batch_size)]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(owners, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
    return owners


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
                   locator=None, owners: list[str | None] | None = None) -> DedupReport:
    t0 = time.perf_counter()
    tickets = tickets if tickets is not None else read_messages(messages)
    pairs = read_pairs(pairs_csv)
    check_pairs(pairs, tickets, messages)
    index = {t.id: i for i, t in enumerate(tickets)}
    if vectors is None:
        vectors = embed_cached(encoder, tickets, cache_dir)
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
