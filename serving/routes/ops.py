"""Liveness, Prometheus metrics, and how the suggestions fared in service."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from serving.auth import ROLE_ZH, Admin, Arbitrator, Staff
from serving.deps import RouterDep, StoreDep
from serving.errors import ApiError
from serving.outcomes import outcomes
from serving.store.models import utcnow

router = APIRouter(tags=["ops"])


@router.get("/api/v1/healthz")
@router.get("/healthz")
def healthz(request: Request, store: StoreDep) -> dict:
    """Public: is the service up, which model and lists, is the database reachable."""
    try:
        with store.engine.connect() as c:
            c.execute(text("SELECT 1"))
    except Exception as e:  # noqa: BLE001
        raise ApiError(503, "database_unavailable", f"database unreachable: {type(e).__name__}", "数据库不可用") from None
    r = request.app.state.router
    if r is None:
        return {"status": "starting", "database": store.dialect}
    out = {"status": "ok", "database": store.dialect, "model_version": r.model_version,
           "lists_version": r.lists.version, "encoder": r.index.encoder.name,
           "auto_send": request.app.state.settings.auto_send}  # 智能流转 on: sure tickets go out at intake
    reloader = getattr(request.app.state, "reloader", None)
    if reloader is not None and reloader.reloaded_at:
        out["reloaded_at"] = reloader.reloaded_at
    if reloader is not None and reloader.error:  # a promoted version or edited lists that could not be served
        out["reload_error"] = reloader.error
    return out


@router.get("/api/v1/me")
def me(p: Staff) -> dict:
    """Who this API key is: the actor its actions are recorded under and its role (the workbench shows the decision
    form only on tickets this actor holds)."""
    return {"actor": p.actor, "role": p.role, "role_zh": ROLE_ZH.get(p.role, p.role)}


@router.get("/api/v1/metrics")
@router.get("/metrics")
def metrics(_: Admin, request: Request) -> Response:
    """Prometheus text format (admin key: configure the scraper with ``authorization: credentials: <key>``)."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/stats/routing")
def routing_outcomes(_: Arbitrator, store: StoreDep, r: RouterDep,
                     days: Annotated[int, Query(ge=1, le=3660)] = 30) -> dict:
    """How the suggestions for the tickets received in the last ``days`` fared: against the owners dispatchers and
    the arbitration group settled, lead top-1/top-3, accuracy of flagged and unflagged tickets, auto-dispatch
    precision, returns; the arbitration group's load. ``all`` and ``by_model_version`` (see serving/outcomes.py)."""
    until = utcnow()
    since = until - timedelta(days=days)
    return outcomes(store.outcome_rows(since, until), since, until, group=r.group)
