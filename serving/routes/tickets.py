"""Tickets: intake with a suggestion, history, the dispatcher's choice, 退单, escalation, closing."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from serving import auto_send
from serving.auth import Dispatcher, Staff
from serving.deps import RouterDep, StoreDep
from serving.errors import InputError
from serving.precedents import invalidate as invalidate_precedents
from serving.routes.schemas import CloseIn, DispatchIn, EscalateIn, ReturnIn, TicketIn, TicketOut

router = APIRouter(prefix="/api/v1", tags=["tickets"])
TicketId = Annotated[int, Path(ge=1, le=2**31 - 1, description="工单 id (from POST /tickets)")]


def check_codes(r, lead: str | None, co: list[str] = (), field: str = "lead") -> None:
    """Lead and co-handlers must be departments of the roster (street offices/towns included)."""
    known = r.lists.departments
    for name, code in [(field, lead), *((f"co.{i}", c) for i, c in enumerate(co))]:
        if code == "locality":  # a suggestion's 属地街道（镇）（地址未定位）: which one is the dispatcher's to say
            towns = r.lists.codes_of_kind("locality")
            raise InputError(name, f"'locality' is not a department: name the street office or town ({', '.join(towns)})",
                             f"「locality」指属地街道（镇），地址未定位：请指明是哪个街道（镇）（{', '.join(towns)}）")
        if code is not None and code not in known:
            raise InputError(name, f"unknown department code '{code}' (see GET /api/v1/departments)",
                             f"未知的部门代码「{code}」（见 GET /api/v1/departments）")


@router.post("/tickets", status_code=201)
def create_ticket(user: Dispatcher, ticket: TicketIn, r: RouterDep, store: StoreDep, request: Request) -> TicketOut:
    """Store a ticket with its suggestion. Flagged tickets (needs_arbitration) enter the arbitration queue; with
    HOTLINE_AUTO_SEND a ticket marked auto_dispatch is dispatched at once by ``system`` (智能流转, status dispatched);
    ``repeats`` lists earlier tickets from the same caller; ``duplicate`` is the duplicate index's verdict
    (duplicate_of, cluster, kind, score; null until the index has seen the ticket)."""
    from serving.store.models import utcnow

    received = utcnow()
    sug = r.route(ticket)
    request.app.state.metrics.suggestions.labels(str(sug.needs_arbitration).lower()).inc()
    out = store.intake(ticket, sug, actor=user.actor, received_at=received)
    hook = getattr(request.app.state, "on_ticket", None)
    if hook is not None:
        out = hook(out) or out  # the duplicate index: adds `duplicate` (and REPEAT_COMPLAINT) to the stored ticket
    if request.app.state.settings.auto_send:  # 智能流转: a sure ticket goes out now (serving/auto_send.py)
        out = auto_send.send(store, out)
        if out["status"] == "dispatched":
            request.app.state.metrics.dispatches.labels("true").inc()
    return TicketOut(**out)


@router.get("/tickets/{ticket_id}")
def get_ticket(_: Staff, ticket_id: TicketId, store: StoreDep) -> TicketOut:
    """The ticket with its full history (append-only events with actor and time) and decisions."""
    return TicketOut(**store.get(ticket_id))


@router.post("/tickets/{ticket_id}/dispatch")
def dispatch(user: Dispatcher, ticket_id: TicketId, body: DispatchIn, r: RouterDep, store: StoreDep,
             request: Request) -> TicketOut:
    """The dispatcher's final lead and co; recorded as feedback (suggestion accepted or overridden)."""
    check_codes(r, body.lead, body.co)
    out = store.dispatch(ticket_id, body.lead, body.co, actor=user.actor)
    accepted = next(e for e in reversed(out["history"]) if e["kind"] == "dispatched")["data"]["accepted"]
    request.app.state.metrics.dispatches.labels(str(accepted).lower()).inc()
    invalidate_precedents(request.app)
    return TicketOut(**out)


@router.post("/tickets/{ticket_id}/return")
def return_ticket(user: Dispatcher, ticket_id: TicketId, body: ReturnIn, r: RouterDep, store: StoreDep,
                  request: Request) -> TicketOut:
    """退单: a department sends the ticket back with a reason; the second return sends it to arbitration."""
    check_codes(r, body.department, field="department")
    out = store.return_ticket(ticket_id, body.reason, actor=user.actor, department=body.department)
    request.app.state.metrics.returns.inc()
    invalidate_precedents(request.app)
    return TicketOut(**out)


@router.post("/tickets/{ticket_id}/escalate")
def escalate(user: Dispatcher, ticket_id: TicketId, body: EscalateIn, store: StoreDep) -> TicketOut:
    """The dispatcher sends the ticket to the arbitration queue."""
    return TicketOut(**store.escalate(ticket_id, body.reason, actor=user.actor))


@router.post("/tickets/{ticket_id}/close")
def close_ticket(user: Dispatcher, ticket_id: TicketId, body: CloseIn, store: StoreDep) -> TicketOut:
    return TicketOut(**store.close_ticket(ticket_id, actor=user.actor, note=body.note))
