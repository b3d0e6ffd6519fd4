"""Hot issues (热点): duplicate clusters that grew past a threshold within a recent window.

For each cluster with at least ``min_count`` tickets in the window ending at ``at`` (default: the newest
ticket), report a short title (the title of the cluster's most central ticket: highest mean cosine to the
others in the window), the count, the locality (most frequent locality code, else most frequent place
name), and the trend: count in this window vs the window before it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from .detector import DAY, DuplicateDetector
from .signals import is_mark, readable_places


@dataclass
class HotIssue:
    cluster: str
    title: str
    count: int
    previous: int
    trend: str          # "new", "up", "down", "steady"
    locality: str | None
    first: str          # ISO times of the first and last ticket in the window
    last: str
    ticket_ids: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def _iso(ts: float) -> str:
    from datetime import datetime

    from .signals import CST

    return datetime.fromtimestamp(ts, CST).isoformat(timespec="seconds")


def _most_named(places: Counter, near: float = 0.8) -> str | None:
    """The place most of a cluster's tickets name, read whole: the most named key joined with the keys that overlap
    it and are named nearly as often (伊景园 and 景园滨河苑 → 伊景园滨河苑, :func:`readable_places`); among equals the
    longest, so the choice does not depend on the order tickets came in."""
    if not places:
        return None
    first = max(places, key=lambda k: (places[k], len(k), k))
    close = [k for k, n in places.items() if n >= near * places[first]]
    return next(p for p in readable_places(close) if first in p)


def hot_issues(det: DuplicateDetector, window_days: float = 7.0, min_count: int = 5, at: float | None = None,
               top: int = 20) -> list[HotIssue]:
    r = det.records
    if not len(r):
        return []
    end = max(r.ts) if at is None else at
    start, prev_start = end - window_days * DAY, end - 2 * window_days * DAY
    now: dict[int, list[int]] = {}
    before: Counter[int] = Counter()
    for i, (ts, c) in enumerate(zip(r.ts, r.cluster)):
        if start < ts <= end:
            now.setdefault(c, []).append(i)
        elif prev_start < ts <= start:
            before[c] += 1
    out: list[HotIssue] = []
    for c, members in now.items():
        if len(members) < min_count:
            continue
        vecs = det.vectors.vector_of(members)
        central = members[int(np.argmax((vecs @ vecs.T).mean(axis=1)))]
        locs = Counter(r.locality[i] for i in members if r.locality[i])
        places = Counter(p for i in members for p in r.places[i] if not is_mark(p))  # names, not 12栋
        locality = locs.most_common(1)[0][0] if locs else _most_named(places)
        prev = before.get(c, 0)
        n = len(members)
        trend = "new" if prev == 0 else ("up" if n > prev * 1.2 else ("down" if n < prev / 1.2 else "steady"))
        out.append(HotIssue(cluster=r.ids[c], title=r.title[central], count=n, previous=prev, trend=trend,
                            locality=locality, first=_iso(min(r.ts[i] for i in members)),
                            last=_iso(max(r.ts[i] for i in members)), ticket_ids=[r.ids[i] for i in members]))
    out.sort(key=lambda h: (-h.count, h.cluster))
    return out[:top]
