"""Precedent lookup latency at 10k / 100k settled tickets (model/precedents.py: exhaustive inner-product search),
with the synthetic e5-like vectors of :mod:`eval.bench_dedup`; one query at a time, as a suggestion makes it."""
from __future__ import annotations

import time

import numpy as np

from eval.bench_dedup import synthetic_vectors
from model.precedents import Precedent, PrecedentMemory


def bench_precedents(sizes=(10_000, 100_000), queries: int = 200, dim: int = 384, seed: int = 0) -> dict:
    out: dict = {}
    for n in sizes:
        vecs = synthetic_vectors(n + queries, dim=dim, seed=seed)
        mem = PrecedentMemory(dim)
        mem.add([Precedent(str(i), "health") for i in range(n)], vecs[:n])
        lat = []
        for q in vecs[n:]:
            t0 = time.perf_counter()
            mem.neighbours(q)
            lat.append((time.perf_counter() - t0) * 1000)
        tag = f"{n // 1000}k"
        out[f"precedents_p50_ms_{tag}"] = round(float(np.percentile(lat, 50)), 3)
        out[f"precedents_p99_ms_{tag}"] = round(float(np.percentile(lat, 99)), 3)
    return out


def bench_precedent_sync(n: int = 20_000, database_url: str | None = None, repeats: int = 3) -> dict:
    """What a serving process reads from the store after a new settled ticket, with ``n`` settled ones stored
    (dispatchers' overrides, through the store's own calls): everything (``Store.settled_rows()``, what a sync did
    before) against only the tickets with events since the last read (``touched_tickets`` + ``settled_rows(ids)``,
    what it does now). A temporary SQLite file unless ``database_url`` is given (use a scratch database)."""
    import tempfile
    from pathlib import Path

    from model.suggestion import DepartmentScore, Suggestion, Ticket
    from serving.store import Store

    sug = Suggestion(id=None, lead=DepartmentScore(code="health", name="区卫生健康委员会", kind="functional", score=0.5), co=[],
                     candidates=[], confidence=0.5, auto_dispatch=False, needs_arbitration=False, reasons=[], evidence=[],
                     model_version="bench", locality=None)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", "bench-salt")
        try:
            def settle(text: str) -> None:
                t = store.intake(Ticket(content=text), sug, actor="bench")
                store.dispatch(t["id"], "urban_management", [], actor="bench")  # an override: a precedent

            t0 = time.perf_counter()
            for i in range(n):
                settle(f"第{i}号工单：小区门口路灯坏了，晚上很黑，请尽快维修。")
            built = time.perf_counter() - t0
            full, inc, touched = [], [], 0
            for r in range(repeats):
                version = store.events_version()
                settle(f"新工单{r}：楼道灯不亮")
                t0 = time.perf_counter()
                rows = store.settled_rows()
                full.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                ids = store.touched_tickets(after=max(version - 200, 0))  # the service's overlap (serving/precedents.py)
                store.settled_rows(ids=ids)
                inc.append((time.perf_counter() - t0) * 1000)
                touched = len(ids)
        finally:
            store.dispose()
    return {"precedent_sync_settled": len(rows), "precedent_sync_build_s": round(built, 1),
            "precedent_sync_full_ms": round(float(np.median(full)), 1), "precedent_sync_incremental_ms": round(float(np.median(inc)), 1),
            "precedent_sync_tickets_reread": touched}
