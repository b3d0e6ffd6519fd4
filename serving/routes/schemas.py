"""Request and response bodies of the /api/v1 routes (field limits give 422s with field-level messages)."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from model.suggestion import REASON_LABELS, Suggestion, Ticket
from model.times import read_datetime

Code = Field(min_length=1, max_length=64, description="部门代码 (roster code), e.g. urban_management")
MAX_CO = 8


def _strip(v):
    return v.strip() if isinstance(v, str) else v


def no_nul(v):
    """NUL (U+0000) in text: PostgreSQL cannot store it (text or jsonb), so it is refused on every database alike —
    a field-level 422, never a 500 from the driver."""
    if (isinstance(v, str) and "\x00" in v) or (isinstance(v, list) and any(isinstance(x, str) and "\x00" in x for x in v)):
        raise PydanticCustomError("string_nul", "must not contain the NUL character (\\u0000)")
    return v


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    _no_nul = field_validator("*")(no_nul)


class TicketIn(Ticket):
    """The ticket as the API takes it: :class:`model.suggestion.Ticket` without NUL characters or unknown fields (a
    misspelt ``tittle`` would otherwise be dropped unseen), with a caller that is a phone number and a readable
    ``created_at``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    _no_nul = field_validator("*")(no_nul)

    @field_validator("caller")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        # only its digits are kept (hashed for repeat detection, masked for display): a caller without them would
        # be dropped unseen, and one caller's repeats never linked
        if v is not None and (not re.fullmatch(r"[0-9+\-() ]+", v) or sum(c.isdigit() for c in v) < 5):
            raise PydanticCustomError("phone_number", "must be a phone number (at least 5 digits; +, -, spaces and "
                                      "parentheses allowed)")
        return v

    @field_validator("created_at")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        if v is not None and read_datetime(v) is None:
            raise PydanticCustomError("datetime_unreadable", "not a date/time: use ISO 8601, e.g. "
                                      "2024-05-01T09:30:00+08:00 (or 2024-5-1 09:30, 2024/5/1, 2024年5月1日)")
        return v


class DispatchIn(_In):
    lead: str = Code
    co: list[str] = Field(default_factory=list, max_length=MAX_CO, description="协办单位代码")

    @field_validator("co")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        v = [_strip(c) for c in v]
        if any(not c or len(c) > 64 for c in v):
            raise ValueError("co-handler codes must be 1-64 characters (协办单位代码不能为空且不超过 64 个字符)")
        return v


class ReturnIn(_In):
    reason: str = Field(min_length=2, max_length=2000, description="退单理由")
    department: str | None = Field(None, min_length=1, max_length=64, description="退单单位代码（默认当前牵头单位）")


class EscalateIn(_In):
    reason: str = Field(min_length=2, max_length=2000, description="提交裁定的理由")


class CloseIn(_In):
    note: str | None = Field(None, max_length=2000)


class DecisionIn(DispatchIn):
    rationale: str = Field(min_length=2, max_length=5000, description="裁定理由")
    clarification: str | None = Field(None, max_length=5000, description="建议对权责清单/边界规则的澄清（留待审核）")
    also: list[Annotated[int, Field(ge=1, le=2**31 - 1, strict=True)]] = Field(
        default_factory=list, max_length=200,
        description="同一事件（同一重复诉求归并）的其他待裁定工单，随本工单一并裁定（GET /arbitration/queue?cluster=）")


class ClarificationReviewIn(_In):
    status: Literal["accepted", "rejected"] = Field(description="accepted（采纳，据此修改清单）或 rejected（不采纳）")
    note: str | None = Field(None, max_length=2000, description="审核意见")


class Event(BaseModel):
    kind: str
    actor: str
    at: str
    data: dict


class TicketOut(BaseModel):
    """A stored ticket. ``caller`` is the masked phone (138****5678); the number itself is never stored."""
    model_config = ConfigDict(extra="allow")

    id: int
    external_id: str | None
    status: str
    status_zh: str
    content: str
    title: str | None
    address: str | None
    caller: str | None
    suggestion: Suggestion | None
    lead: str | None
    co: list[str]
    needs_arbitration: bool
    arbitration_reasons: list[dict]
    return_count: int
    claimed_by: str | None
    created_at: str
    history: list[Event] | None = None
    repeats: list[dict] | None = None
    duplicate: "DuplicateOut | None" = None


class DuplicateOut(BaseModel):
    """The duplicate index's verdict: ``duplicate_of`` the earlier ticket (null: none), ``cluster`` the id of
    the cluster's first ticket, ``kind`` repeat (same caller / near-identical text) or same_event; ``places`` the
    place names it shares with duplicate_of (in the answer to POST /tickets and in GET /duplicates; null elsewhere)."""
    duplicate_of: int | None
    cluster: int
    kind: str | None
    score: float
    places: list[str] | None = None


class QueueItem(TicketOut):
    returns: list[dict]


# The reason codes a waiting ticket can carry (model/suggestion.py REASON_LABELS: the router's, the store's and the
# duplicate index's).
QueueReason = Literal[tuple(REASON_LABELS)]


class ReasonCount(BaseModel):
    code: str
    label: str = Field(description="the reason's short Chinese label, as the workbench shows it (置信度低, 多次退单…)")
    count: int = Field(description="waiting tickets with this reason (a ticket with two reasons counts under both)")


class RuleOutcome(BaseModel):
    """How the arbitration group decided the tickets one joint-handling rule assigned (boundaries.yaml)."""
    rule: str
    matter: str
    lead: str = Field(description="the rule's lead (部门代码)")
    lead_name: str
    disputed_in_lists: bool = Field(description="already marked disputed in the lists")
    overruled: int = Field(description="decisions naming another lead")
    upheld: int = Field(description="decisions naming the rule's lead")
    contested: bool = Field(description="overruled often enough that its tickets raise DISPUTED_BOUNDARY")
    decided: dict[str, int] = Field(description="the leads decided instead (code -> decisions; towns as 'locality')")
    tickets: list[int | str] = Field(description="the overruled tickets, latest last")


TicketOut.model_rebuild()

__all__ = ["DuplicateOut", "Ticket", "TicketIn", "Suggestion", "DispatchIn", "ReturnIn", "EscalateIn", "CloseIn", "DecisionIn", "TicketOut",
           "QueueItem", "Event", "RuleOutcome", "ClarificationReviewIn"]
