"""Suggest without storing, and the responsibility lists."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from model.suggestion import Suggestion
from serving.auth import Dispatcher, Staff
from serving.deps import RouterDep, SettingsDep
from serving.errors import InputError
from serving.routes.schemas import TicketIn

router = APIRouter(prefix="/api/v1")


class DepartmentOut(BaseModel):
    code: str
    name: str
    kind: str
    items: int
    other_names: list[str] = Field(default_factory=list, description="short and former names (names.yaml: 区城管局 …)")


class SearchHit(BaseModel):
    department: str
    department_name: str
    item_id: str
    item: str
    duties: str
    score: float
    matched_text: str


class BatchIn(BaseModel):
    tickets: list[TicketIn] = Field(min_length=1, max_length=1000, description="at most HOTLINE_API_MAX_BATCH (100)")


@router.get("/departments", tags=["lists"])
def departments(_: Staff, r: RouterDep) -> list[DepartmentOut]:
    other: dict[str, list[str]] = {}
    for name, code in r.lists.other_names.items():
        other.setdefault(code, []).append(name)
    return [DepartmentOut(code=c, name=d.name, kind=d.kind, items=len(r.lists.items_of(c)), other_names=other.get(c, []))
            for c, d in r.lists.departments.items()]


@router.post("/route", tags=["routing"])
def route(_: Dispatcher, ticket: TicketIn, r: RouterDep, request: Request) -> Suggestion:
    """Suggest lead and co-handlers for one ticket without storing it."""
    sug = r.route(ticket)
    request.app.state.metrics.suggestions.labels(str(sug.needs_arbitration).lower()).inc()
    return sug


@router.post("/route/batch", tags=["routing"])
def route_batch(_: Dispatcher, body: BatchIn, r: RouterDep, settings: SettingsDep) -> list[Suggestion]:
    if len(body.tickets) > settings.api_max_batch:
        raise InputError("tickets", f"at most {settings.api_max_batch} tickets per batch, got {len(body.tickets)}",
                         f"每批最多 {settings.api_max_batch} 条工单，收到 {len(body.tickets)} 条")
    return r.route_many(body.tickets)


@router.get("/responsibilities/search", tags=["lists"])
def search(_: Staff, r: RouterDep, q: Annotated[str, Query(min_length=1, max_length=2000)],
           k: Annotated[int, Query(ge=1, le=50)] = 10) -> list[SearchHit]:
    if not any(ch.isalnum() for ch in q):
        raise InputError("q", "the query has no words: give what to look for in the lists",
                         "查询内容不能为空：请输入要在权责清单中查找的事项")
    names = r.lists.names
    return [SearchHit(department=h.ref.department, department_name=names[h.ref.department], item_id=h.ref.item.id,
                      item=h.ref.item.title, duties=h.ref.item.duties, score=round(h.score, 4),
                      matched_text=h.matched_text) for h in r.index.search(q, k=k)]
