"""Latency and throughput of the router on this machine.

Tickets are built from the lists' own example phrasings padded to realistic length (median ~200
characters), so the benchmark runs anywhere; ``texts`` may be given to use real tickets instead
(:func:`read_bench_tickets`: title and content, as a centre's tickets have them).
"""
from __future__ import annotations

import random
import resource
import time
from pathlib import Path

import numpy as np


def sample_texts(router, n: int = 200, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    phr = [p for r in router.lists.items for p in r.item.phrasings]
    out = []
    for _ in range(n):
        parts = rng.sample(phr, 4)
        out.append(("市民来电反映：" + "，".join(parts) + "。希望相关部门尽快处理。")[:400])
    return out


def read_bench_tickets(path: Path) -> list:
    """Real tickets to time, as ``hotline route --input`` reads them: JSONL, or a CSV with a ``content`` column (and
    ``title``, ``id``… if there; other columns such as a labelled file's ``lead`` are ignored). ValueError saying what
    to fix for a file with no usable ticket or a bad line."""
    from model.io import read_tickets

    path = Path(path)
    tickets, problems = read_tickets(path)  # ValueError for a table without content or an unreadable file
    if problems:
        raise ValueError(f"{path}: line {problems[0]} ({len(problems)} bad line(s))")
    if not tickets:
        raise ValueError(f"{path}: no ticket with content")
    return tickets


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """Resident memory now (Linux /proc; the peak where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def bench_router(router, texts: list | None = None, single: int = 100, batch: int = 256, batch_size: int = 32) -> dict:
    """``texts``: strings or tickets (:func:`read_bench_tickets`); default: :func:`sample_texts`. Every ticket is
    embedded as if never seen: the encoder's query cache is emptied before each ticket and each batch (within one
    suggestion it still hands the router's encoder pass to a classifier that shares the encoder, as in serving)."""
    return _bench_router(router, texts, single, batch, batch_size, getattr(router.index.encoder, "clear_query_cache", lambda: None))


def _bench_router(router, texts, single: int, batch: int, batch_size: int, forget) -> dict:
    from model.suggestion import Ticket

    rest = rss_mb()  # the loaded router, before any ticket
    texts = texts or sample_texts(router, max(single, batch))
    tickets = [t if isinstance(t, Ticket) else Ticket(id=str(i), content=t) for i, t in enumerate(texts)]
    for t in tickets[:5]:  # warm-up
        router.route(t)
    lat = []
    for t in tickets[:single]:
        forget()
        t0 = time.perf_counter()
        router.route(t)
        lat.append((time.perf_counter() - t0) * 1000)
    b = tickets[:batch]
    t0 = time.perf_counter()
    for i in range(0, len(b), batch_size):
        forget()
        router.route_many(b[i : i + batch_size], batch_size=batch_size)
    dt = time.perf_counter() - t0
    return {
        "route_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "route_p99_ms": round(float(np.percentile(lat, 99)), 1),
        "batch_tickets_per_s": round(len(b) / dt, 1),
        "mean_chars": round(float(np.mean([len(t.text) for t in tickets])), 1),
        "median_chars": round(float(np.median([len(t.text) for t in tickets])), 1),
        "tickets": len(tickets),
        # a frozen-encoder version reads the retrieval encoder's pass (one forward pass per ticket, not two)
        "classifier_shares_encoder": getattr(getattr(router, "classifier", None), "encoder", None) is not None,
        "rest_rss_mb": round(rest, 1),
        "route_peak_rss_mb": round(peak_rss_mb(), 1),  # routing only (before any duplicate benchmark)
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
