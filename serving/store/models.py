"""The tables. The database is the source of truth: everything else (duplicate index, metrics) is rebuilt from it.

``ticket_events`` is append-only (database triggers refuse UPDATE and DELETE, see the migration); ``tickets``
holds the current state, which is always the fold of its events.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


STATUSES = ("received", "suggested", "dispatched", "returned", "in_arbitration", "decided", "closed")
ROLES = ("dispatcher", "arbitrator", "admin")


class TicketRow(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    title: Mapped[str | None] = mapped_column(String(500))
    content: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(500))
    channel: Mapped[str | None] = mapped_column(String(64))
    reported_at: Mapped[str | None] = mapped_column(String(64))
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), index=True)
    suggestion: Mapped[dict | None] = mapped_column(JSON)
    model_version: Mapped[str | None] = mapped_column(String(128))
    lead: Mapped[str | None] = mapped_column(String(64))
    co: Mapped[str | None] = mapped_column(String(400))  # codes joined by |
    needs_arbitration: Mapped[bool] = mapped_column(Boolean, default=False)
    arbitration_reasons: Mapped[list | None] = mapped_column(JSON)
    arbitration_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    return_count: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # duplicate detection (migration 0002): NULL until the duplicate index has seen the ticket
    duplicate_of: Mapped[int | None] = mapped_column(Integer)
    cluster_id: Mapped[int | None] = mapped_column(Integer, index=True)
    dup_kind: Mapped[str | None] = mapped_column(String(16))
    dup_score: Mapped[float | None] = mapped_column(Float)


class EventRow(Base):
    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    data: Mapped[dict | None] = mapped_column(JSON)


class FeedbackRow(Base):
    """A dispatcher's final choice against the suggestion: accepted or overridden."""
    __tablename__ = "dispatch_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    dispatcher: Mapped[str] = mapped_column(String(128))
    suggested_lead: Mapped[str | None] = mapped_column(String(64))
    suggested_co: Mapped[str | None] = mapped_column(String(400))
    lead: Mapped[str] = mapped_column(String(64))
    co: Mapped[str] = mapped_column(String(400), default="")
    accepted: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    arbitrator: Mapped[str] = mapped_column(String(128))
    lead: Mapped[str] = mapped_column(String(64))
    co: Mapped[str] = mapped_column(String(400), default="")
    rationale: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClarificationRow(Base):
    """A proposed clarification of the responsibility lists / boundary rules, kept for review."""
    __tablename__ = "clarifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    proposed_by: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell keys apart in `keys list`
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
