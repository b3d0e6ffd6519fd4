"""A history file's ticket vectors and owners, cached on disk: trying hot-issue windows or the detector's knobs on one
file (``hotline hot --at/--days``, ``hotline eval-dedup``) embeds and routes its thousands of tickets once, not per try.

Vectors are keyed by the encoder and the texts; owners (the lists' own lead per ticket, for the detector's owner
window) by the lists' version, the code that reads them, the router's knobs, the encoder and the tickets.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from ..router import route_stream
from ..suggestion import Ticket


def embed_cached(encoder, tickets: list[Ticket], cache_dir: Path | None, batch_size: int = 32,
                 on_miss: Callable[[int], object] | None = None) -> np.ndarray:
    """e5 query vectors of the tickets' texts, cached under ``cache_dir`` keyed by encoder and texts. ``on_miss(n)``
    before the ``n`` texts are embedded (not called when the cache has them): a CLI says what the minutes are for."""
    texts = [t.text for t in tickets]
    key = hashlib.sha256((encoder.fingerprint + "\x00" + "\x00".join(texts)).encode("utf-8")).hexdigest()[:24]
    path = Path(cache_dir) / f"dedup-eval-{key}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path)
    if on_miss is not None:
        on_miss(len(texts))
    vecs = encoder.encode_queries(texts, batch_size=batch_size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        tmp.replace(path)
    return vecs


def _router_files() -> list[tuple[str, Path]]:
    """The code that turns lists and a ticket into its owner, as (name, path): ``model/`` and
    ``responsibility_lists/``, without ``model/duplicates/`` (the router never imports it; a change to the detector
    must not route every message again) — except this file, whose :func:`routed_owners` maps the lead to the owner."""
    import model
    import responsibility_lists

    files = []
    for pkg in (model, responsibility_lists):
        root = Path(pkg.__file__).parent
        files += [(p.relative_to(root.parent).as_posix(), p) for p in sorted(root.rglob("*.py"))
                  if "duplicates" not in p.relative_to(root).parts[:-1]]
    here = Path(__file__)
    return files + [(here.relative_to(Path(model.__file__).parent.parent).as_posix(), here)]


def _router_code() -> str:
    """A digest of :func:`_router_files`: the same lists read by other code (2026-12-04: rule triggers gained a
    window) may name other owners, so an upgrade must not read the owners an older checkout cached."""
    digest = hashlib.sha256()
    for name, path in _router_files():
        digest.update(name.encode() + b"\x00" + path.read_bytes())
    return digest.hexdigest()[:16]


def routed_owners(router, tickets: list[Ticket], cache_dir: Path | None, dtype: str | None = None,
                  batch_size: int = 32, on_batch: Callable[[int], object] | None = None) -> list[str]:
    """Each ticket's owner as the router suggests it (the lists' own lead, :attr:`Suggestion.lists_lead`, which
    the service takes for a ticket not yet dispatched; a town as ``locality``), cached under ``cache_dir``
    keyed by what decides that lead: the lists' version, the code that reads them, the router's knobs, the encoder and
    the tickets — not the
    classifier or the fusion knobs, which come after it, so a fused router (``hotline eval routing --dup-pairs``)
    reads what the lists-only one (``hotline eval-dedup``) cached. Routing thousands of messages takes minutes; the
    detector's knobs are then tried in seconds. ``on_batch(n)`` after each routed batch of ``n`` (a progress bar's
    ``update``; not called when the cache has them)."""
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
    owners = [router.group(s.lists_lead or s.lead.code) for s in route_stream(router, tickets, batch_size, on_batch)]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(owners, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
    return owners
