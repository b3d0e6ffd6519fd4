"""Duplicate lookup latency at 10k / 100k / 1M stored tickets, with synthetic clustered vectors.

Vectors imitate e5's geometry: a shared direction (e5 cosines rarely fall below ~0.7), topic centres, and
tight groups of near-duplicates around some tickets. Tickets are stored through
:class:`model.duplicates.VectorIndex` exactly as the detector stores them (flat, then IVF retrained as it
grows); a lookup is one query: top-``k`` among the time window's ids. Measured single-threaded per query
(one ticket at a time, as it arrives), both for a window holding the whole store and for a 30-day window
of a one-year store. ``recall`` = share of the exact top-``k`` (brute force over the same window) found.
"""
from __future__ import annotations

import time

import numpy as np

from eval.bench import peak_rss_mb
from model.duplicates import VectorIndex


def synthetic_vectors(n: int, dim: int = 384, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.normal(size=dim).astype(np.float32)
    common /= np.linalg.norm(common)
    n_topics = max(16, n // 200)
    topics = rng.normal(size=(n_topics, dim)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        t = rng.integers(0, n_topics, m)
        v = 2.2 * common + topics[t] + rng.normal(size=(m, dim)).astype(np.float32) / np.sqrt(dim)
        out[s : s + m] = v
    # near-duplicate groups: 10% of tickets copy an earlier one plus small noise
    dup = rng.choice(np.arange(1, n), size=n // 10, replace=False)
    src = (dup * rng.random(len(dup))).astype(np.int64)
    out[dup] = out[src] + 0.25 * rng.normal(size=(len(dup), dim)).astype(np.float32) / np.sqrt(dim)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


MAX_SIZE = 10_000_000


def parse_sizes(value: str) -> tuple[int, ...]:
    """Store sizes written as ``--sizes`` / ``--dedup-sizes`` take them: whole numbers of stored tickets (1 or more)
    separated by commas; blank = none (``()``). ValueError saying what to write instead."""
    sizes = []
    for x in (value or "").split(","):
        x = x.strip()
        if not x:
            continue
        try:
            n = int(x)
        except ValueError:
            raise ValueError(f"{x!r} is not a whole number — give whole numbers separated by commas, e.g. 10000,100000") from None
        if n < 1:
            raise ValueError(f"{n} stored tickets: each size must be 1 or more, e.g. 10000,100000")
        if n > MAX_SIZE:  # 384 float32 a ticket: 10M is ~15 GB of vectors before the index; more cannot be allocated here
            raise ValueError(f"{n} stored tickets: at most {MAX_SIZE:,} (about 1.5 kB of vectors each), e.g. 1000000")
        sizes.append(n)
    return tuple(sizes)


def size_tag(n: int) -> str:
    """The key suffix of a store size: 1m, 100k, 3k… (exact: sizes that are not whole thousands keep their number)."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def _queries(vecs: np.ndarray, n: int, rng) -> np.ndarray:
    src = rng.integers(0, len(vecs), n)
    q = vecs[src] + 0.2 * rng.normal(size=(n, vecs.shape[1])).astype(np.float32) / np.sqrt(vecs.shape[1])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def _time(index: VectorIndex, queries: np.ndarray, k: int, lo: int) -> list[float]:
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q[None, :], k, lo)
        lat.append((time.perf_counter() - t0) * 1000)
    return lat


def _recall(index: VectorIndex, vecs: np.ndarray, queries: np.ndarray, k: int, lo: int) -> float:
    hit = tot = 0
    for q in queries:
        exact = np.argsort(-(vecs[lo:] @ q))[:k] + lo
        _, got = index.search(q[None, :], k, lo)
        hit += len(set(exact.tolist()) & set(got[0].tolist()))
        tot += len(exact)  # k, or the whole window when it holds fewer
    return hit / tot


def bench_dedup(sizes=(10_000, 100_000, 1_000_000), dim: int = 384, queries: int = 300, k: int = 16,
                nprobe: int = 24, window_fraction: float = 30 / 365, seed: int = 0, threads: int = 1,
                recall_queries: int = 50) -> dict:
    """Lookup p50/p99 (ms) per size; keys ``dedup_p50_ms_<size>``, ``dedup_p99_ms_<size>`` (whole store in
    the window), ``..._window_...`` (30 of 365 days), ``dedup_recall_<size>`` and ``dedup_index_<size>``.
    ``dedup_p99_ms_1m`` is the headline when 1M is among the sizes."""
    bad = [n for n in sizes if not isinstance(n, (int, np.integer)) or n < 1]
    if bad:
        raise ValueError(f"store sizes must be whole numbers of 1 or more, not {bad}")
    import faiss

    faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(seed + 1)
    res: dict = {"dedup_k": k, "dedup_nprobe": nprobe, "dedup_threads": threads}
    for n in sizes:
        tag = size_tag(n)
        vecs = synthetic_vectors(n, dim, seed)
        t0 = time.perf_counter()
        index = VectorIndex(dim, nprobe=nprobe)
        for s in range(0, n, 50_000):
            index.add(vecs[s : s + 50_000])
        res[f"dedup_build_s_{tag}"] = round(time.perf_counter() - t0, 1)
        res[f"dedup_index_{tag}"] = index.kind
        q = _queries(vecs, queries, rng)
        _time(index, q[:20], k, 0)  # warm-up
        lat = _time(index, q, k, 0)
        res[f"dedup_p50_ms_{tag}"] = round(float(np.percentile(lat, 50)), 2)
        res[f"dedup_p99_ms_{tag}"] = round(float(np.percentile(lat, 99)), 2)
        lo = int(n * (1 - window_fraction))
        lat = _time(index, q, k, lo)
        res[f"dedup_window_p50_ms_{tag}"] = round(float(np.percentile(lat, 50)), 2)
        res[f"dedup_window_p99_ms_{tag}"] = round(float(np.percentile(lat, 99)), 2)
        res[f"dedup_recall_{tag}"] = round(_recall(index, vecs, q[:recall_queries], k, 0), 3)
        del index, vecs
    res["dedup_peak_rss_mb"] = round(peak_rss_mb(), 1)
    return res


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    try:
        sizes = parse_sizes(",".join(sys.argv[1:])) or (10_000, 100_000, 1_000_000)
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(json.dumps(bench_dedup(sizes)))
