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
