"""The arbitration queue: oldest first; claim (atomic), decide, release; proposed clarifications."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from model.suggestion import REASON_LABELS
from serving.auth import Admin, Arbitrator
from serving.deps import RouterDep, StoreDep
from serving.precedents import invalidate as invalidate_precedents
from serving.precedents import rule_outcomes, similar_decisions
from serving.routes.schemas import (ClarificationReviewIn, DecisionIn, QueueItem, QueueReason, ReasonCount, RuleOutcome,
                                    TicketOut)
from serving.routes.tickets import TicketId, check_codes

router = APIRouter(prefix="/api/v1/arbitration", tags=["arbitration"])


@router.get("/queue")
def queue(_: Arbitrator, store: StoreDep, response: Response, limit: Annotated[int, Query(ge=1, le=500)] = 100,
          offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0, unclaimed: bool = False,
          reason: QueueReason | None = None, cluster: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> list[QueueItem]:
    """Tickets waiting for a decision, oldest first (at most ``limit``, after the ``offset`` oldest: the next page),
    with the reasons and the returns (退单) so far; ``reason``: only those with that reason code (REPEATED_RETURN,
    REPEAT_COMPLAINT… first); ``cluster``: only the reports of that duplicate cluster (one event, which a decision
    can settle together: ``also``). The header ``X-Total-Count`` says how many wait in all (so filtered): a day's
    queue can be longer than one page."""
    response.headers["X-Total-Count"] = str(store.queue_count(unclaimed_only=unclaimed, reason=reason, cluster=cluster))
    return [QueueItem(**t) for t in store.queue(limit=limit, offset=offset, unclaimed_only=unclaimed, reason=reason,
                                                cluster=cluster)]


@router.get("/queue/reasons")
def queue_reasons(_: Arbitrator, store: StoreDep, unclaimed: bool = False) -> list[ReasonCount]:
    """How many waiting tickets carry each reason, most frequent first: the workbench's filter."""
    counts = store.queue_reasons(unclaimed_only=unclaimed)
    return [ReasonCount(code=c, label=REASON_LABELS.get(c, c), count=n) for c, n in counts.items()]


@router.post("/{ticket_id}/claim")
def claim(user: Arbitrator, ticket_id: TicketId, store: StoreDep) -> TicketOut:
    """Take the ticket. Two arbitrators can never both hold it: the loser gets 409."""
    return TicketOut(**store.claim(ticket_id, actor=user.actor))


@router.post("/{ticket_id}/release")
def release(user: Arbitrator, ticket_id: TicketId, store: StoreDep) -> TicketOut:
    return TicketOut(**store.release(ticket_id, actor=user.actor, admin=user.is_admin))


@router.post("/{ticket_id}/decision")
def decide(user: Arbitrator, ticket_id: TicketId, body: DecisionIn, r: RouterDep, store: StoreDep,
           request: Request) -> TicketOut:
    """Lead, co and rationale; an optional clarification of the lists/boundary rules is kept for review; ``also``:
    the other waiting reports of the same event, decided with it (all or none: 409 names the one that cannot be)."""
    check_codes(r, body.lead, body.co)
    out = store.decide(ticket_id, body.lead, body.co, body.rationale, actor=user.actor,
                       clarification=body.clarification, admin=user.is_admin, also=body.also)
    request.app.state.metrics.decisions.inc(1 + len(set(body.also) - {ticket_id}))
    invalidate_precedents(request.app)
    return TicketOut(**out)


@router.get("/{ticket_id}/similar")
def similar(_: Arbitrator, ticket_id: TicketId, store: StoreDep, r: RouterDep) -> list[dict]:
    """Past decisions on the most similar tickets (the precedents, with their e5 similarity), then recent decisions
    whose lead is among this ticket's candidates; five at most."""
    t = store.get(ticket_id, history=False)
    return similar_decisions(r, store, t)


@router.get("/rules")
def rules(_: Arbitrator, r: RouterDep) -> list[RuleOutcome]:
    """Joint-handling rules against the group's decisions on the tickets they assigned, most overruled first. A rule
    overruled ``HOTLINE_PRECEDENT_CONTEST_RULE`` times (more than upheld) is ``contested``: its tickets raise
    DISPUTED_BOUNDARY until the lists are clarified (``hotline lists``)."""
    return [RuleOutcome(**x) for x in rule_outcomes(r)]


ClarificationStatus = Literal["pending", "accepted", "rejected", ""]


@router.get("/clarifications")
def clarifications(_: Arbitrator, store: StoreDep,
                   status: Annotated[ClarificationStatus, Query(description="pending（待审）, accepted, rejected; empty = all")] = "pending",
                   limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict]:
    """Proposed clarifications of the responsibility lists, kept for review."""
    return store.clarifications(status=status, limit=limit)


@router.post("/clarifications/{clarification_id}/review")
def review_clarification(user: Admin, clarification_id: Annotated[int, Path(ge=1, le=2**31 - 1)], body: ClarificationReviewIn,
                         store: StoreDep) -> dict:
    """The list editors (admin) accept or reject a proposed clarification, once, with an optional note; the lists
    themselves are edited and validated with `hotline lists`."""
    return store.review_clarification(clarification_id, body.status, body.note, actor=user.actor)
