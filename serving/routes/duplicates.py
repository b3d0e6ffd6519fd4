"""Duplicate and repeat complaints (重复诉求) and hot issues (热点), from the duplicate index (serving/dedup.py)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from serving import dedup
from serving.auth import Staff
from serving.deps import RouterDep, StoreDep
from serving.routes.tickets import TicketId

router = APIRouter(prefix="/api/v1", tags=["duplicates"])


@router.get("/duplicates/{ticket_id}")
def duplicates(_: Staff, ticket_id: TicketId, r: RouterDep, store: StoreDep, request: Request):
    """The ticket's verdict (``duplicate``: duplicate_of, cluster, kind, score, and ``places``: the place names it
    shares with duplicate_of, which make a same_event link the same place), the earlier tickets of its cluster,
    oldest first, each with its own verdict, status and lead, ``cluster_size`` (tickets in the cluster) and
    ``settled``: the latest earlier report whose owner people settled (ticket_id, lead, co, status), the unit a repeat
    should go to. The index first catches up with tickets stored by any process on the same database."""
    store.get(ticket_id, history=False)  # 404 naming ticket_id when there is none
    svc = dedup.service(request.app)
    svc.sync()
    out = store.duplicates(ticket_id)
    for tid, d in [(ticket_id, out["duplicate"]), *((e["id"], e["duplicate"]) for e in out["earlier"])]:
        if d is not None:
            d["places"] = svc.shared_places(tid, d["duplicate_of"]) if d["duplicate_of"] is not None else []
    return out


@router.get("/hot-issues")
def hot(_: Staff, r: RouterDep, store: StoreDep, request: Request,
        days: Annotated[float | None, Query(gt=0, le=366, allow_inf_nan=False, description="窗口天数")] = None,
        min_count: Annotated[int | None, Query(ge=2, le=10_000, description="窗口内至少多少件")] = None,
        top: Annotated[int, Query(ge=1, le=100)] = 20) -> list[dict]:
    """热点: clusters with at least ``min_count`` tickets in the last ``days`` days (defaults: settings
    hot_window_days / hot_min_count), with a short title, count, callers, locality and trend vs the window before, and
    ``waiting``: its reports waiting for arbitration, oldest first (one decision can settle them: ``also``)."""
    s = request.app.state.settings
    issues = dedup.service(request.app).hot(days or s.hot_window_days, min_count or s.hot_min_count, top)
    waiting = store.waiting_in_clusters(h["cluster"] for h in issues)
    return [{**h, "waiting": waiting.get(h["cluster"], [])} for h in issues]
