"""Hot issues (热点): duplicate clusters that grew past a threshold within a recent window.

For each cluster with at least ``min_count`` tickets in the window ending at ``at`` (default: the newest
ticket), report a short title (the title of the cluster's most central ticket: highest mean cosine to the
others in the window), the count and how many callers made it (a supervisor reads five letters of one caller
otherwise than five callers), the locality (the street office or town half the tickets are located in, else the
place most of them name, else the locality one of them is in), and the trend: count in this window vs the window
before it — "new" only when the cluster's first ticket is in the window; one that was reported before and went quiet
for a window is "again" (再次出现).
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
    trend: str          # "new", "again", "up", "down", "steady"
    locality: str | None
    callers: int        # distinct callers among the tickets in the window (a ticket without a caller counts alone)
    first: str          # ISO times of the first and last ticket in the window
    last: str
    ticket_ids: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def _iso(ts: float) -> str:
    from datetime import datetime

    from .signals import CST

    return datetime.fromtimestamp(ts, CST).isoformat(timespec="seconds")


def _most_named(places: Counter, n: int, near: float = 0.8, share: float = 0.3) -> str | None:
    """The place most of a cluster's ``n`` tickets name, read whole: the most named key joined with the keys that
    overlap it and are named nearly as often (伊景园 and 景园滨河苑 → 伊景园滨河苑, :func:`readable_places`); among
    equals the longest, so the choice does not depend on the order tickets came in. None when no key is named by two
    tickets and ``share`` of them (one letter's 学校开始组 or 市规划局组 is no place of the cluster)."""
    if not places:
        return None
    first = max(places, key=lambda k: (places[k], len(k), k))
    if places[first] < max(2, share * n):
        return None
    close = [k for k, times in places.items() if times >= near * places[first]]
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
    earlier: set[int] = set()  # clusters with a ticket before the window (any time)
    for i, (ts, c) in enumerate(zip(r.ts, r.cluster)):
        if start < ts <= end:
            now.setdefault(c, []).append(i)
        elif ts <= start:
            earlier.add(c)
            if ts > prev_start:
                before[c] += 1
    out: list[HotIssue] = []
    for c, members in now.items():
        if len(members) < min_count:
            continue
        vecs = det.vectors.vector_of(members)
        central = members[int(np.argmax((vecs @ vecs.T).mean(axis=1)))]
        n = len(members)
        locs = Counter(r.locality[i] for i in members if r.locality[i])
        places = Counter(p for i in members for p in r.places[i] if not is_mark(p))  # names, not 12栋
        # a town half the tickets are in; else the place most name (丽发新城: 30 of 31 say it, one was placed in a town
        # by the 建设小区 inside 违规建设小区); else the town any is in
        town, in_town = locs.most_common(1)[0] if locs else (None, 0)
        locality = (town if 2 * in_town >= n else None) or _most_named(places, n) or town
        prev = before.get(c, 0)
        if prev == 0:
            trend = "again" if c in earlier else "new"
        else:
            trend = "up" if n > prev * 1.2 else ("down" if n < prev / 1.2 else "steady")
        callers = len({r.caller[i] or f"#{i}" for i in members})
        out.append(HotIssue(cluster=r.ids[c], title=r.title[central], count=n, previous=prev, trend=trend,
                            locality=locality, callers=callers, first=_iso(min(r.ts[i] for i in members)),
                            last=_iso(max(r.ts[i] for i in members)), ticket_ids=[r.ids[i] for i in members]))
    out.sort(key=lambda h: (-h.count, h.cluster))
    return out[:top]
