"""The ticket store: every state change is a conditional UPDATE of ``tickets`` plus an appended event, in one
transaction that is committed before the caller acknowledges anything.

Life of a ticket::

    received -> suggested -> dispatched (lead, co) -> returned (退单, repeatable) -> ... -> closed
                     \\-> in_arbitration (flagged, escalated, or returned twice) -> claimed -> decided -> closed

Errors are :class:`StoreError` subclasses carrying an English and a Chinese message; the API maps them to 404/409.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from model.suggestion import join_texts
from model.times import read_datetime

from .db import make_engine, migrate
from .models import (ROLES, ApiKeyRow, ClarificationRow, DecisionRow, EventRow, FeedbackRow, TicketRow, utcnow)

RETURNS_TO_ARBITRATION = 2
DISPATCHABLE = ("suggested", "returned", "in_arbitration")
ESCALATABLE = ("suggested", "returned", "in_arbitration")
CLOSABLE = ("dispatched", "decided")
SETTLED = ("dispatched", "decided", "closed")  # whose lead people settled (a returned ticket's lead is not)


class StoreError(Exception):
    """A request the store refuses. ``loc``: where in the request the refused value stood (``("path", "ticket_id")``,
    ``("body", "also")``…), for the API's field-level ``detail``; empty when no one field is at fault (a ticket's
    state, not the value asked with, is what a conflict may be about)."""
    status = 400
    code = "bad_request"

    def __init__(self, message: str, message_zh: str, loc: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh
        self.loc = tuple(loc)


class NotFound(StoreError):
    status = 404
    code = "not_found"


class Conflict(StoreError):
    status = 409
    code = "conflict"


# ------------------------------------------------------------------------------------------ helpers

def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def iso(dt: datetime | None) -> str | None:
    dt = aware(dt)
    return dt.isoformat().replace("+00:00", "Z") if dt else None


CLARIFICATION_REVIEWED = ("accepted", "rejected")
CLARIFICATION_ZH = {"pending": "待审核", "accepted": "已采纳", "rejected": "未采纳"}


def cited_rule(suggestion: dict | None) -> str | None:
    """The id of the joint-handling rule a stored suggestion cited (evidence ``rule:ID``), if any."""
    for e in (suggestion or {}).get("evidence") or []:
        item = e.get("item_id") or ""
        if e.get("type") == "rule" and item.startswith("rule:"):
            return item[5:]
    return None


def join_codes(codes) -> str:
    return "|".join(codes or [])


def split_codes(s: str | None) -> list[str]:
    return [c for c in (s or "").split("|") if c]


def phone_digits(raw: str) -> str:
    d = re.sub(r"\D", "", raw)
    if len(d) == 13 and d.startswith("86"):
        d = d[2:]
    return d


def mask_phone(digits: str) -> str:
    """138****5678: enough for a dispatcher to recognise a caller, not enough to call them."""
    if len(digits) >= 7:
        return f"{digits[:3]}****{digits[-4:]}"
    return "****" + digits[-2:]


def hash_phone(digits: str, salt: bytes) -> str:
    return hmac.new(salt, digits.encode(), hashlib.sha256).hexdigest()


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class KeyInfo:
    id: int
    name: str
    prefix: str
    role: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def actor(self) -> str:
        return f"{self.name}#{self.id}"


def _key_info(r: ApiKeyRow) -> KeyInfo:
    return KeyInfo(r.id, r.name, r.prefix, r.role, aware(r.created_at), aware(r.revoked_at))


# ------------------------------------------------------------------------------------------ store

class Store:
    def __init__(self, engine: Engine, phone_salt: bytes, *, run_migrations: bool = True,
                 repeated_return: int = RETURNS_TO_ARBITRATION):
        self.engine = engine
        self.phone_salt = phone_salt
        self.repeated_return = repeated_return  # the return (退单) that sends a ticket to arbitration
        if run_migrations:
            migrate(engine)
        self.Session = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, phone_salt: bytes, **kw) -> "Store":
        return cls(make_engine(url), phone_salt, **kw)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- internals
    def _get(self, s: Session, ticket_id: int, loc: tuple[str, ...] = ("path", "ticket_id"), *,
             lock: bool = False) -> TicketRow:
        """The ticket, or 404 naming ``loc``. ``lock``: SELECT … FOR UPDATE, for a change computed from what is read
        (the arbitration reasons a request appends to, the status it checks): on PostgreSQL two such requests at once
        would otherwise both read the old row and the second write would drop the first one's reason. (SQLite's
        transactions here begin IMMEDIATE, so they run one at a time anyway.)"""
        t = s.get(TicketRow, ticket_id, with_for_update=lock or None)
        if t is None:
            raise NotFound(f"ticket {ticket_id} not found", f"工单 {ticket_id} 不存在", loc)
        return t

    @staticmethod
    def _event(s: Session, ticket_id: int, kind: str, actor: str, at: datetime, **data: Any) -> None:
        s.add(EventRow(ticket_id=ticket_id, kind=kind, actor=actor, at=at, data=data or None))

    def _transition(self, s: Session, ticket_id: int, from_statuses: tuple[str, ...], values: dict,
                    *extra_where) -> TicketRow:
        """Atomic state change: UPDATE ... WHERE status IN (allowed) [AND extra]; 409 when someone else won."""
        t = self._get(s, ticket_id)
        res = s.execute(update(TicketRow).where(TicketRow.id == ticket_id, TicketRow.status.in_(from_statuses),
                                                *extra_where).values(**values)
                        .execution_options(synchronize_session=False))
        if res.rowcount != 1:
            s.refresh(t)
            if t.status in from_statuses and t.claimed_by:  # the status allows it: the claim (extra_where) does not
                raise Conflict(f"ticket {ticket_id} is claimed by {t.claimed_by}: only they (or an admin) can act on "
                               "it until they release it",
                               f"工单 {ticket_id} 已由 {t.claimed_by} 领取，须其放弃领取（或由管理员处理）后才能操作")
            held = t.claimed_by if t.status == "in_arbitration" else None  # a decided ticket's claim is history
            raise Conflict(
                f"ticket {ticket_id} is {t.status}" + (f", claimed by {held}" if held else "")
                + f"; this needs one of: {', '.join(from_statuses)}",
                f"工单 {ticket_id} 当前状态为「{STATUS_ZH.get(t.status, t.status)}」"
                + (f"，已由 {held} 领取" if held else "")
                + f"，此操作要求状态为：{'、'.join(STATUS_ZH[x] for x in from_statuses)}")
        s.refresh(t)
        return t

    # ---------------------------------------------------------------- intake
    def intake(self, ticket, suggestion=None, *, actor: str, received_at: datetime | None = None) -> dict:
        """Store a ticket (received) and its suggestion (suggested); flagged tickets enter the arbitration queue."""
        received_at = received_at or utcnow()
        now = utcnow()
        digits = phone_digits(ticket.caller) if ticket.caller else ""
        sug = suggestion.model_dump(mode="json") if suggestion is not None else None
        flagged = bool(suggestion is not None and suggestion.needs_arbitration)
        reasons = [r.model_dump() for r in suggestion.reasons] if flagged else None
        try:
            with self.Session.begin() as s:
                t = TicketRow(
                    external_id=ticket.id, title=ticket.title, content=ticket.content, address=ticket.address,
                    channel=ticket.channel, reported_at=ticket.created_at,
                    phone_hash=hash_phone(digits, self.phone_salt) if digits else None,
                    phone_masked=mask_phone(digits) if digits else None,
                    status="received", return_count=ticket.returns, needs_arbitration=flagged, created_at=received_at,
                    updated_at=now)
                s.add(t)
                s.flush()
                self._event(s, t.id, "received", actor, received_at, channel=ticket.channel)
                if suggestion is not None:
                    t.status = "suggested"
                    t.suggestion = sug
                    t.model_version = suggestion.model_version
                    self._event(s, t.id, "suggested", "system", now, lead=suggestion.lead.code,
                                co=[c.code for c in suggestion.co], confidence=suggestion.confidence,
                                model_version=suggestion.model_version)
                if flagged:
                    t.status = "in_arbitration"
                    t.arbitration_since = now
                    t.arbitration_reasons = reasons
                    self._event(s, t.id, "arbitration", "system", now, reasons=[r["code"] for r in reasons])
                tid = t.id
        except IntegrityError:
            raise Conflict(f"a ticket with id '{ticket.id}' already exists",
                           f"工单编号「{ticket.id}」已存在", ("body", "id")) from None
        return self.get(tid)

    # ---------------------------------------------------------------- reads
    def get(self, ticket_id: int, *, history: bool = True) -> dict:
        with self.Session() as s:
            t = self._get(s, ticket_id)
            out = ticket_view(t)
            if history:
                evs = s.scalars(select(EventRow).where(EventRow.ticket_id == ticket_id).order_by(EventRow.id)).all()
                out["history"] = [{"kind": e.kind, "actor": e.actor, "at": iso(e.at), "data": e.data or {}}
                                  for e in evs]
                decs = s.scalars(select(DecisionRow).where(DecisionRow.ticket_id == ticket_id)
                                 .order_by(DecisionRow.id)).all()
                out["decisions"] = [decision_view(d) for d in decs]
                out["repeats"] = self._repeats(s, t)
            return out

    def _repeats(self, s: Session, t: TicketRow, limit: int = 5) -> list[dict]:
        """Earlier tickets from the same caller (same salted phone hash)."""
        if not t.phone_hash:
            return []
        rows = s.scalars(select(TicketRow).where(TicketRow.phone_hash == t.phone_hash, TicketRow.id != t.id)
                         .order_by(TicketRow.id.desc()).limit(limit)).all()
        return [{"id": r.id, "status": r.status, "lead": r.lead, "created_at": iso(r.created_at),
                 "excerpt": r.content[:80]} for r in rows]

    @staticmethod
    def _waiting(unclaimed_only: bool, cluster: int | None = None, what=TicketRow.id):
        """SELECT ``what`` of the tickets waiting for arbitration (unclaimed only; of one duplicate cluster)."""
        q = select(what).where(TicketRow.status == "in_arbitration")
        if cluster is not None:
            q = q.where(TicketRow.cluster_id == cluster)
        return q.where(TicketRow.claimed_by.is_(None)) if unclaimed_only else q

    def _waiting_with(self, s: Session, reason: str, unclaimed_only: bool, cluster: int | None = None) -> list[int]:
        """The ids, oldest first, of the waiting tickets with a ``reason`` among their codes. Read in Python: the
        reasons are a JSON list, and the queue is a day or two of tickets, not the table."""
        q = self._waiting(unclaimed_only, cluster).add_columns(TicketRow.arbitration_reasons)
        return [tid for tid, reasons in s.execute(q.order_by(TicketRow.arbitration_since, TicketRow.id))
                if any(r.get("code") == reason for r in reasons or [])]

    def queue(self, *, limit: int = 100, offset: int = 0, unclaimed_only: bool = False,
              reason: str | None = None, cluster: int | None = None) -> list[dict]:
        """Tickets waiting for arbitration, oldest first (skipping the ``offset`` oldest), with reasons and the
        returns so far; ``reason``: only those with that reason code (多次退单 first, say); ``cluster``: only the
        reports of that duplicate cluster (one event: decided together, see :meth:`decide`)."""
        with self.Session() as s:
            q = self._waiting(unclaimed_only, cluster, TicketRow)
            if reason is not None:
                page = self._waiting_with(s, reason, unclaimed_only, cluster)[offset:offset + limit]
                at = {tid: i for i, tid in enumerate(page)}
                rows = sorted(s.scalars(q.where(TicketRow.id.in_(page))).all(), key=lambda r: at[r.id])
            else:
                rows = s.scalars(q.order_by(TicketRow.arbitration_since, TicketRow.id).offset(offset).limit(limit)).all()
            ids = [r.id for r in rows]
            returns: dict[int, list[dict]] = {i: [] for i in ids}
            if ids:
                for e in s.scalars(select(EventRow).where(EventRow.ticket_id.in_(ids), EventRow.kind == "returned")
                                   .order_by(EventRow.id)):
                    returns[e.ticket_id].append({"at": iso(e.at), "actor": e.actor, **(e.data or {})})
            out = []
            for r in rows:
                v = ticket_view(r)
                v["returns"] = returns[r.id]
                out.append(v)
            return out

    def queue_count(self, *, unclaimed_only: bool = False, reason: str | None = None, cluster: int | None = None) -> int:
        """How many tickets wait for arbitration (the whole queue, not one page of it); ``reason``: with that code;
        ``cluster``: of that duplicate cluster."""
        with self.Session() as s:
            if reason is not None:
                return len(self._waiting_with(s, reason, unclaimed_only, cluster))
            return int(s.scalar(select(func.count()).select_from(self._waiting(unclaimed_only, cluster).subquery())) or 0)

    def waiting_in_clusters(self, clusters: Iterable[int]) -> dict[int, list[int]]:
        """The waiting tickets (in arbitration) of each of these duplicate clusters, oldest first in the queue's
        order; clusters with none are left out (the hot issues' 待裁定)."""
        clusters = list(dict.fromkeys(clusters))
        out: dict[int, list[int]] = {}
        if not clusters:
            return out
        with self.Session() as s:
            q = (select(TicketRow.cluster_id, TicketRow.id)
                 .where(TicketRow.status == "in_arbitration", TicketRow.cluster_id.in_(clusters))
                 .order_by(TicketRow.arbitration_since, TicketRow.id))
            for cluster, tid in s.execute(q):
                out.setdefault(cluster, []).append(tid)
        return out

    def queue_reasons(self, *, unclaimed_only: bool = False) -> dict[str, int]:
        """How many waiting tickets carry each reason code (a ticket with two reasons counts under both), most
        frequent first."""
        counts: dict[str, int] = {}
        with self.Session() as s:
            for _, reasons in s.execute(self._waiting(unclaimed_only).add_columns(TicketRow.arbitration_reasons)):
                for code in dict.fromkeys(r.get("code") for r in reasons or []):
                    if code:
                        counts[code] = counts.get(code, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def count_by_status(self) -> dict[str, int]:
        with self.Session() as s:
            return dict(s.execute(select(TicketRow.status, func.count()).group_by(TicketRow.status)).all())

    # ---------------------------------------------------------------- dispatcher
    def dispatch(self, ticket_id: int, lead: str, co: list[str], *, actor: str, auto: bool = False) -> dict:
        """The dispatcher's final choice; recorded as feedback (accepted or overridden suggestion). A flagged ticket
        may be dispatched while unclaimed, except one departments returned twice (REPEATED_RETURN): the group decides.
        ``auto``: sent by the system at intake (智能流转, ``serving/auto_send.py``), marked so in the event."""
        now = utcnow()
        co = [c for c in dict.fromkeys(co) if c != lead]
        with self.Session.begin() as s:
            t = self._get(s, ticket_id, lock=True)
            if t.status == "in_arbitration" and any(r.get("code") == "REPEATED_RETURN" for r in t.arbitration_reasons or []):
                # a router's flag is advice a dispatcher may overrule; departments returning it twice is not
                raise Conflict(f"ticket {ticket_id} was returned {t.return_count} times: the arbitration group decides "
                               "its lead",
                               f"工单 {ticket_id} 已被部门退回 {t.return_count} 次，须由裁定小组确定牵头单位，不能直接派单")
            t = self._transition(s, ticket_id, DISPATCHABLE,
                                 dict(status="dispatched", lead=lead, co=join_codes(co), updated_at=now,
                                      arbitration_since=None),
                                 TicketRow.claimed_by.is_(None))
            sug = t.suggestion or {}
            s_lead = (sug.get("lead") or {}).get("code")
            s_co = [c["code"] for c in sug.get("co") or []]
            accepted = s_lead == lead and set(s_co) == set(co)
            s.add(FeedbackRow(ticket_id=ticket_id, dispatcher=actor, suggested_lead=s_lead,
                              suggested_co=join_codes(s_co), lead=lead, co=join_codes(co), accepted=accepted,
                              model_version=t.model_version, created_at=now))
            self._event(s, ticket_id, "dispatched", actor, now, lead=lead, co=co, accepted=accepted,
                        **({"auto": True} if auto else {}))
        return self.get(ticket_id)

    def return_ticket(self, ticket_id: int, reason: str, *, actor: str, department: str | None = None) -> dict:
        """退单: a department sends the ticket back. The ``repeated_return``-th return (the second by default;
        ``HOTLINE_REPEATED_RETURN``, as the router reads it at intake) sends it to arbitration."""
        now = utcnow()
        with self.Session.begin() as s:
            t = self._get(s, ticket_id, lock=True)
            count = t.return_count + 1
            to_arb = count >= self.repeated_return
            values = dict(status="in_arbitration" if to_arb else "returned", return_count=count, updated_at=now)
            if to_arb:
                values.update(arbitration_since=now, arbitration_reasons=(t.arbitration_reasons or []) + [
                    {"code": "REPEATED_RETURN", "message": f"已被退单 {count} 次，需裁定牵头单位。"}])
            self._transition(s, ticket_id, ("dispatched",), values, TicketRow.return_count == t.return_count)
            self._event(s, ticket_id, "returned", actor, now, reason=reason, department=department or t.lead,
                        count=count)
            if to_arb:
                self._event(s, ticket_id, "arbitration", "system", now, reasons=["REPEATED_RETURN"])
        return self.get(ticket_id)

    def escalate(self, ticket_id: int, reason: str, *, actor: str) -> dict:
        """The dispatcher sends the ticket to arbitration (on a flagged, unclaimed ticket: adds the reason)."""
        now = utcnow()
        with self.Session.begin() as s:
            t = self._get(s, ticket_id, lock=True)
            asked = {"code": "DISPATCHER_REQUEST", "message": reason}
            # the same request again (a double click, a retry) is already on the ticket: nothing to add
            if not (t.status == "in_arbitration" and t.claimed_by is None and asked in (t.arbitration_reasons or [])):
                # once on the ticket: the same request after a dispatch and a return is not a second reason
                reasons = (t.arbitration_reasons or []) + ([] if asked in (t.arbitration_reasons or []) else [asked])
                since = t.arbitration_since if t.status == "in_arbitration" and t.arbitration_since else now
                self._transition(s, ticket_id, ESCALATABLE, dict(status="in_arbitration", arbitration_since=since,
                                                                 arbitration_reasons=reasons, updated_at=now),
                                 TicketRow.claimed_by.is_(None))
                self._event(s, ticket_id, "arbitration", actor, now, reasons=["DISPATCHER_REQUEST"], reason=reason)
        return self.get(ticket_id)

    def close_ticket(self, ticket_id: int, *, actor: str, note: str | None = None) -> dict:
        now = utcnow()
        with self.Session.begin() as s:
            self._transition(s, ticket_id, CLOSABLE, dict(status="closed", updated_at=now))
            self._event(s, ticket_id, "closed", actor, now, **({"note": note} if note else {}))
        return self.get(ticket_id)

    # ---------------------------------------------------------------- arbitration
    def claim(self, ticket_id: int, *, actor: str) -> dict:
        """Atomic: UPDATE ... WHERE claimed_by IS NULL. Of two arbitrators claiming at once, exactly one wins."""
        now = utcnow()
        with self.Session.begin() as s:
            t = self._get(s, ticket_id, lock=True)
            if t.claimed_by == actor and t.status == "in_arbitration":
                return ticket_view(t)
            self._transition(s, ticket_id, ("in_arbitration",), dict(claimed_by=actor, claimed_at=now, updated_at=now),
                             TicketRow.claimed_by.is_(None))
            self._event(s, ticket_id, "claimed", actor, now)
        return self.get(ticket_id, history=False)

    def release(self, ticket_id: int, *, actor: str, admin: bool = False) -> dict:
        now = utcnow()
        with self.Session.begin() as s:
            t = self._get(s, ticket_id, lock=True)
            if t.claimed_by is None or t.status != "in_arbitration":
                raise Conflict(f"ticket {ticket_id} is not claimed by anyone: nothing to release",
                               f"工单 {ticket_id} 未被领取，无需放弃")
            if not admin and t.claimed_by != actor:
                raise Conflict(f"ticket {ticket_id} is not claimed by you", f"工单 {ticket_id} 不是由您领取的")
            self._transition(s, ticket_id, ("in_arbitration",), dict(claimed_by=None, claimed_at=None, updated_at=now),
                             TicketRow.claimed_by == t.claimed_by)
            self._event(s, ticket_id, "released", actor, now, was=t.claimed_by)
        return self.get(ticket_id, history=False)

    def decide(self, ticket_id: int, lead: str, co: list[str], rationale: str, *, actor: str,
               clarification: str | None = None, admin: bool = False, also: Iterable[int] = ()) -> dict:
        """The arbitrator who holds the ticket decides lead and co (an admin may decide any queued ticket).

        ``also``: other waiting reports of the same event (the ticket's duplicate cluster), decided with it in the same
        transaction, each with its own decision citing this one — unless one is not waiting, not of the cluster or held
        by another arbitrator: then nothing is decided (409)."""
        now = utcnow()
        co = [c for c in dict.fromkeys(co) if c != lead]
        given = list(also)
        also = [i for i in dict.fromkeys(given) if i != ticket_id]
        with self.Session.begin() as s:
            if also:  # every ticket this decision settles, locked in id order: two decisions naming each other's ticket
                # in `also` at once took their row locks in opposite orders and PostgreSQL aborted one (deadlock)
                s.execute(select(TicketRow.id).where(TicketRow.id.in_(sorted({ticket_id, *also})))
                          .order_by(TicketRow.id).with_for_update())
            t = self._get(s, ticket_id, lock=True)
            if not admin and t.status == "in_arbitration" and t.claimed_by != actor:
                who = t.claimed_by
                raise Conflict(
                    f"claim ticket {ticket_id} first" if who is None else f"ticket {ticket_id} is claimed by {who}",
                    f"请先领取工单 {ticket_id}" if who is None else f"工单 {ticket_id} 已由 {who} 领取")
            for other in also:
                at = ("body", "also", str(given.index(other)))  # where the request named it
                o = self._get(s, other, at)
                if t.cluster_id is None or o.cluster_id != t.cluster_id:
                    raise Conflict(f"ticket {other} is not a report of the same event as ticket {ticket_id} (another "
                                   "duplicate cluster): decide it on its own",
                                   f"工单 {other} 与工单 {ticket_id} 不属于同一事件（重复诉求归并不同），请单独裁定", at)
            where = () if admin else (TicketRow.claimed_by == actor,)
            self._transition(s, ticket_id, ("in_arbitration",),
                             dict(status="decided", lead=lead, co=join_codes(co), updated_at=now), *where)
            d = self._decision(s, ticket_id, lead, co, rationale, actor, now, clarification=bool(clarification))
            if clarification:
                s.add(ClarificationRow(ticket_id=ticket_id, decision_id=d, proposed_by=actor, text=clarification,
                                       created_at=now))
            for other in also:  # unclaimed, or held by this arbitrator (an admin: by anyone)
                held = () if admin else (or_(TicketRow.claimed_by.is_(None), TicketRow.claimed_by == actor),)
                try:
                    self._transition(s, other, ("in_arbitration",),
                                     dict(status="decided", lead=lead, co=join_codes(co), updated_at=now), *held)
                except Conflict as e:  # not waiting, or held by another: the request's also[i] is at fault
                    e.loc = ("body", "also", str(given.index(other)))
                    raise
                self._decision(s, other, lead, co, f"{rationale}（同一事件，随工单 #{ticket_id} 一并裁定）", actor, now,
                               with_ticket=ticket_id)
        return self.get(ticket_id)

    def _decision(self, s: Session, ticket_id: int, lead: str, co: list[str], rationale: str, actor: str,
                  now: datetime, **data: Any) -> int:
        d = DecisionRow(ticket_id=ticket_id, arbitrator=actor, lead=lead, co=join_codes(co), rationale=rationale,
                        created_at=now)
        s.add(d)
        s.flush()
        self._event(s, ticket_id, "decided", actor, now, lead=lead, co=co, decision_id=d.id, **data)
        return d.id

    def clarifications(self, status: str | None = "pending", limit: int = 200, ids: list[int] | None = None) -> list[dict]:
        """Proposed clarifications of the lists, oldest first, with their review (who, when, note) once reviewed."""
        with self.Session() as s:
            q = select(ClarificationRow).order_by(ClarificationRow.id)
            if status:
                q = q.where(ClarificationRow.status == status)
            if ids is not None:
                q = q.where(ClarificationRow.id.in_(ids))
            rows = list(s.scalars(q.limit(limit)))
            reviews: dict[int, EventRow] = {}
            done = [c.ticket_id for c in rows if c.status != "pending"]
            if done:
                for e in s.scalars(select(EventRow).where(EventRow.ticket_id.in_(done), EventRow.kind == "clarification_reviewed")
                                   .order_by(EventRow.id)):
                    reviews[int((e.data or {}).get("clarification_id", -1))] = e
            out = []
            for c in rows:
                e = reviews.get(c.id)
                out.append({"id": c.id, "ticket_id": c.ticket_id, "decision_id": c.decision_id, "proposed_by": c.proposed_by,
                            "text": c.text, "status": c.status, "created_at": iso(c.created_at),
                            "reviewed_by": e.actor if e else None, "reviewed_at": iso(e.at) if e else None,
                            "review_note": (e.data or {}).get("note") if e else None})
            return out

    def review_clarification(self, clarification_id: int, status: str, note: str | None, *, actor: str) -> dict:
        """Accept or reject a pending clarification (the list editors' call; the lists themselves are edited and
        re-validated with ``hotline lists``). Once only: a second review is a 409. Recorded as an event of the ticket."""
        if status not in CLARIFICATION_REVIEWED:
            raise ValueError(f"status must be one of {', '.join(CLARIFICATION_REVIEWED)}")
        now = utcnow()
        with self.Session.begin() as s:
            c = s.get(ClarificationRow, clarification_id)
            if c is None:
                raise NotFound(f"clarification {clarification_id} not found", f"澄清建议 {clarification_id} 不存在",
                               ("path", "clarification_id"))
            res = s.execute(update(ClarificationRow).where(ClarificationRow.id == clarification_id,
                                                           ClarificationRow.status == "pending").values(status=status)
                            .execution_options(synchronize_session=False))
            if res.rowcount != 1:
                s.refresh(c)
                raise Conflict(f"clarification {clarification_id} was already reviewed ({c.status})",
                               f"澄清建议 {clarification_id} 已审核（{CLARIFICATION_ZH.get(c.status, c.status)}）")
            self._event(s, c.ticket_id, "clarification_reviewed", actor, now, clarification_id=clarification_id,
                        status=status, **({"note": note} if note else {}))
        return self.clarifications(status=None, ids=[clarification_id])[0]

    def past_decisions(self, *, codes: list[str], exclude: int | None = None, limit: int = 5) -> list[dict]:
        """Recent decisions whose lead is one of ``codes`` (the workbench's 'similar past decisions')."""
        if not codes:
            return []
        with self.Session() as s:
            q = (select(DecisionRow, TicketRow).join(TicketRow, TicketRow.id == DecisionRow.ticket_id)
                 .where(DecisionRow.lead.in_(codes)))
            if exclude is not None:
                q = q.where(DecisionRow.ticket_id != exclude)
            rows = s.execute(q.order_by(DecisionRow.id.desc()).limit(limit)).all()
            return [{**decision_view(d), "excerpt": t.content[:120]} for d, t in rows]

    def latest_decisions(self, ticket_ids: list[int]) -> dict[int, dict]:
        """Each ticket's latest arbitration decision (with the ticket's excerpt), for the tickets that have one."""
        if not ticket_ids:
            return {}
        with self.Session() as s:
            out: dict[int, dict] = {}
            q = (select(DecisionRow, TicketRow).join(TicketRow, TicketRow.id == DecisionRow.ticket_id)
                 .where(DecisionRow.ticket_id.in_([int(i) for i in ticket_ids])).order_by(DecisionRow.id))
            for d, t in s.execute(q):
                out[t.id] = {**decision_view(d), "excerpt": t.content[:120]}
            return out

    # ---------------------------------------------------------------- training data
    def events_version(self) -> int:
        """The latest event id: every decision, dispatch and return appends one, so an unchanged value means that
        :meth:`settled_rows` has not changed either (a cheap check before reading them all)."""
        with self.Session() as s:
            return int(s.scalar(select(func.max(EventRow.id))) or 0)

    def touched_tickets(self, after: int) -> set[int]:
        """The tickets with an event whose id is above ``after``: the only ones whose :meth:`settled_rows` entry can
        have changed since ``events_version()`` was ``after``."""
        with self.Session() as s:
            return {int(x) for x in s.scalars(select(EventRow.ticket_id).where(EventRow.id > after).distinct())}

    def settled_rows(self, ids: Iterable[int] | None = None) -> list[dict]:
        """Tickets whose owner a person settled, by ticket id: the latest arbitration decision; otherwise the latest
        dispatch when it overrode the suggestion and was not returned afterwards. Training data and precedents
        (``rule``: the joint-handling rule the ticket's suggestion cited, if any). ``ids``: only these tickets."""
        wanted = None if ids is None else sorted(set(ids))
        with self.Session() as s:
            latest: dict[int, tuple] = {}
            fb_latest: dict[int, tuple] = {}
            for chunk in ([None] if wanted is None else [wanted[i:i + 500] for i in range(0, len(wanted), 500)]):
                dq = select(DecisionRow, TicketRow).join(TicketRow, TicketRow.id == DecisionRow.ticket_id).order_by(DecisionRow.id)
                fq = select(FeedbackRow, TicketRow).join(TicketRow, TicketRow.id == FeedbackRow.ticket_id).order_by(FeedbackRow.id)
                if chunk is not None:
                    dq, fq = dq.where(DecisionRow.ticket_id.in_(chunk)), fq.where(FeedbackRow.ticket_id.in_(chunk))
                for d, t in s.execute(dq):
                    latest[t.id] = (t, d.lead, d.co, "decision")
                for f, t in s.execute(fq):
                    fb_latest[t.id] = (t, f)
            for tid, (t, f) in fb_latest.items():
                if tid not in latest and not f.accepted and t.status in ("dispatched", "closed") and t.lead == f.lead:
                    latest[tid] = (t, f.lead, f.co, "override")
            out = []
            for tid in sorted(latest):
                t, lead, co, source = latest[tid]
                out.append({"ticket_id": t.id, "external_id": t.external_id, "title": t.title, "content": t.content,
                            "lead": lead, "co": co or "", "created_at": iso(t.created_at), "reported_at": t.reported_at,
                            "source": source, "rule": cited_rule(t.suggestion)})
            return out

    def outcome_rows(self, since: datetime, until: datetime | None = None) -> list[dict]:
        """What became of the suggestions made for tickets received in [since, until): per ticket the suggested lead,
        its top-3 candidates, the intake flags, the owner people settled (``final``: the lead of a dispatched,
        decided or closed ticket; None while it waits or was returned), whether the system sent it at intake
        (``auto_sent``, 智能流转), the co-handlers suggested and settled (``suggested_co``, ``final_co``), the returns, and when it entered arbitration
        (any reason) and was decided, and every reason it was sent there for (the router's at intake, a second
        return, a dispatcher, the duplicate index). Read by :mod:`serving.outcomes`."""
        with self.Session() as s:
            sug = TicketRow.suggestion  # the few fields it needs, read in SQL: not every suggestion's whole JSON
            q = select(TicketRow.id, TicketRow.model_version, TicketRow.created_at, TicketRow.status, TicketRow.lead,
                       sug[("lead", "code")].as_string(), *(sug[("candidates", i, "code")].as_string() for i in range(3)),
                       sug[("auto_dispatch",)].as_boolean(), TicketRow.needs_arbitration, TicketRow.return_count,
                       TicketRow.arbitration_reasons, sug[("co",)], TicketRow.co).where(TicketRow.created_at >= since, TicketRow.suggestion.is_not(None))
            if until is not None:
                q = q.where(TicketRow.created_at < until)
            tickets = s.execute(q.order_by(TicketRow.id)).all()  # the columns it needs: not every ticket's text
            arb: dict[int, datetime] = {}
            decided: dict[int, datetime] = {}
            escalated: set[int] = set()
            sent: set[int] = set()
            ids = [t[0] for t in tickets]
            for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                for tid, kind, data, at in s.execute(
                        select(EventRow.ticket_id, EventRow.kind, EventRow.data, EventRow.at)
                        .where(EventRow.ticket_id.in_(chunk), EventRow.kind.in_(("arbitration", "decided", "dispatched")))
                        .order_by(EventRow.id)):
                    if kind == "dispatched":
                        if (data or {}).get("auto"):  # sent at intake by the system (智能流转)
                            sent.add(tid)
                    elif kind == "arbitration":
                        arb.setdefault(tid, aware(at))
                        # a dispatcher's escalation, by the code :meth:`escalate` writes (not intake flags, returns
                        # or the duplicate index's REPEAT_COMPLAINT), whoever the actor
                        if "DISPATCHER_REQUEST" in ((data or {}).get("reasons") or []):
                            escalated.add(tid)
                    elif tid in arb:
                        decided.setdefault(tid, aware(at))
            out = []
            for tid, version, created, status, lead, suggested, c1, c2, c3, auto, flagged, returns, why, s_co, co in tickets:
                out.append({
                    "ticket_id": tid, "model_version": version, "created_at": aware(created), "status": status,
                    "suggested": suggested, "top3": [c for c in (c1, c2, c3) if c],
                    "auto_dispatch": bool(auto), "auto_sent": tid in sent, "flagged": bool(flagged),
                    "final": lead if status in SETTLED else None,
                    "suggested_co": [c["code"] for c in s_co or [] if isinstance(c, dict) and c.get("code")],
                    "final_co": split_codes(co) if status in SETTLED else None,
                    "returns": returns or 0, "escalated": tid in escalated,
                    "arbitration_at": arb.get(tid), "decided_at": decided.get(tid),
                    "reasons": list(dict.fromkeys(r.get("code") for r in why or [] if r.get("code")))})
            return out

    def training_rows(self) -> Iterator[dict]:
        """Labels for the next training run (:meth:`settled_rows` in the export's columns): ``text`` is title and
        content joined as the classifier reads a served ticket (``join_texts``), ``title`` and ``content`` apart (to
        evaluate as serving routes: ``--text-cols title,content``); ``created_at`` is the ticket's own time when it
        came with one (a back-filled or imported ticket), else when the service received it."""
        for r in self.settled_rows():
            own = read_datetime(r["reported_at"])
            yield {"id": r["external_id"] or str(r["ticket_id"]), "text": join_texts([r["title"] or "", r["content"]]),
                   "title": r["title"] or "", "content": r["content"], "lead": r["lead"], "co": r["co"],
                   "created_at": iso(own) if own else r["created_at"], "source": r["source"]}

    # ---------------------------------------------------------------- duplicates (issue 6 §3)
    def dedup_rows(self, *, pending_only: bool = False, ids: list[int] | None = None) -> list[dict]:
        """What the duplicate index needs of each stored ticket, in (created_at, id) order: the text, address,
        time, the salted phone hash (never the number) and the stored result (``cluster_id`` NULL = not seen).
        ``pending_only``: only those not seen; ``ids``: only these tickets; both: either."""
        with self.Session() as s:
            # the owner: the lead it was dispatched or decided to, else the lists' own lead (which a retrain does not
            # move; a suggestion stored before it had one: the suggested lead), read inside the database
            owner = func.coalesce(TicketRow.lead, TicketRow.suggestion["lists_lead"].as_string(),
                                  TicketRow.suggestion[("lead", "code")].as_string()).label("owner")
            q = select(TicketRow.id, TicketRow.title, TicketRow.content, TicketRow.address, TicketRow.created_at,
                       TicketRow.phone_hash, TicketRow.duplicate_of, TicketRow.cluster_id, TicketRow.dup_kind,
                       TicketRow.dup_score, owner).order_by(TicketRow.created_at, TicketRow.id)
            if pending_only or ids is not None:
                conds = [TicketRow.cluster_id.is_(None)] if pending_only else []
                if ids:
                    conds.append(TicketRow.id.in_(list(ids)))
                if not conds:
                    return []
                q = q.where(or_(*conds))
            return [{"id": r.id, "title": r.title, "content": r.content, "address": r.address,
                     "created_at": iso(r.created_at), "phone_hash": r.phone_hash, "duplicate_of": r.duplicate_of,
                     "cluster_id": r.cluster_id, "dup_kind": r.dup_kind, "dup_score": r.dup_score, "owner": r.owner}
                    for r in s.execute(q)]

    def ticket_ids(self, *, after_id: int = 0) -> list[int]:
        """Ids of the stored tickets above ``after_id``, ascending (the duplicate index's cheap catch-up check)."""
        with self.Session() as s:
            return list(s.scalars(select(TicketRow.id).where(TicketRow.id > after_id).order_by(TicketRow.id)))

    def move_to_cluster(self, ticket_ids: list[int], cluster: int) -> int:
        """Put these tickets into ``cluster`` (two clusters of the duplicate index were joined); their other verdict
        fields stay. Returns the number of rows changed."""
        if not ticket_ids:
            return 0
        with self.Session.begin() as s:
            res = s.execute(update(TicketRow).where(TicketRow.id.in_(list(ticket_ids)), TicketRow.cluster_id != cluster)
                            .values(cluster_id=cluster))
            return int(res.rowcount or 0)

    def record_duplicate(self, ticket_id: int, *, duplicate_of: int | None, cluster: int, kind: str | None,
                         score: float, reason: dict | None = None) -> None:
        """Store the duplicate index's verdict on a ticket. With ``reason`` (REPEAT_COMPLAINT) the reason is
        added to the stored suggestion and, while the ticket still waits for a dispatcher, it enters the
        arbitration queue (like a flagged ticket at intake), with an appended event."""
        now = utcnow()
        with self.Session.begin() as s:
            t = s.get(TicketRow, ticket_id, with_for_update=True)
            if t is None:
                raise NotFound(f"ticket {ticket_id} not found", f"工单 {ticket_id} 不存在")
            t.duplicate_of, t.cluster_id, t.dup_kind, t.dup_score = duplicate_of, cluster, kind, score
            # once is enough: another process may have judged the same ticket a moment earlier (and a ticket
            # already dispatched carries the reason only in its suggestion)
            have = [*(t.arbitration_reasons or []), *((t.suggestion or {}).get("reasons") or [])]
            if reason is None or any(r.get("code") == reason["code"] for r in have):
                return
            if t.suggestion is not None:
                sug = dict(t.suggestion)
                sug["reasons"] = [*(sug.get("reasons") or []), reason]
                sug["needs_arbitration"] = True
                t.suggestion = sug
            if t.status in ("suggested", "in_arbitration") and t.claimed_by is None:
                t.needs_arbitration = True
                t.arbitration_reasons = [*(t.arbitration_reasons or []), reason]
                if t.status != "in_arbitration" or t.arbitration_since is None:
                    t.arbitration_since = now
                t.status = "in_arbitration"
                t.updated_at = now
                self._event(s, ticket_id, "arbitration", "system", now, reasons=[reason["code"]],
                            duplicate_of=duplicate_of, cluster=cluster)

    def duplicates(self, ticket_id: int, limit: int = 50) -> dict:
        """The ticket's duplicate verdict, the earlier tickets of its cluster (oldest first, each with its lead and
        co once dispatched or decided), ``cluster_size``: how many stored tickets the cluster holds (0 until the index
        has seen the ticket), and ``settled``: the latest earlier report whose owner people settled (dispatched and
        not returned since, decided or closed) — a repeat of one problem goes to the unit already handling it."""
        with self.Session() as s:
            t = self._get(s, ticket_id)
            earlier, settled = [], None
            if t.cluster_id is not None:
                before = (TicketRow.cluster_id == t.cluster_id, TicketRow.id != t.id,
                          or_(TicketRow.created_at < t.created_at,
                              and_(TicketRow.created_at == t.created_at, TicketRow.id < t.id)))
                q = select(TicketRow).where(*before).order_by(TicketRow.created_at, TicketRow.id).limit(limit)
                earlier = [{"id": r.id, "external_id": r.external_id, "title": r.title, "excerpt": r.content[:120],
                            "address": r.address, "status": r.status, "status_zh": STATUS_ZH.get(r.status, r.status),
                            "lead": r.lead if r.status in SETTLED else None,  # a returned ticket's lead is not
                            "co": split_codes(r.co) if r.status in SETTLED else [],
                            "created_at": iso(r.created_at), "duplicate": duplicate_view(r)} for r in s.scalars(q)]
                last = s.scalars(select(TicketRow).where(*before, TicketRow.status.in_(SETTLED), TicketRow.lead.is_not(None))
                                 .order_by(TicketRow.created_at.desc(), TicketRow.id.desc()).limit(1)).first()
                if last is not None:
                    settled = {"ticket_id": last.id, "lead": last.lead, "co": split_codes(last.co), "status": last.status,
                               "status_zh": STATUS_ZH.get(last.status, last.status)}
            size = (s.scalar(select(func.count()).select_from(TicketRow).where(TicketRow.cluster_id == t.cluster_id))
                    if t.cluster_id is not None else 0)
            return {"id": t.id, "duplicate": duplicate_view(t), "earlier": earlier, "cluster_size": size,
                    "settled": settled}

    # ---------------------------------------------------------------- API keys
    def create_key(self, role: str, name: str) -> tuple[KeyInfo, str]:
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}", f"角色必须是：{'、'.join(ROLES)}")
        token = "hk_" + secrets.token_urlsafe(32)
        with self.Session.begin() as s:
            r = ApiKeyRow(name=name, prefix=token[:10], key_hash=hash_key(token), role=role, created_at=utcnow())
            s.add(r)
            s.flush()
            info = _key_info(r)
        return info, token

    def list_keys(self) -> list[KeyInfo]:
        with self.Session() as s:
            return [_key_info(r) for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]

    def revoke_key(self, ref: str) -> KeyInfo:
        """Revoke by id or by the key's prefix (as shown by ``keys list``)."""
        with self.Session.begin() as s:
            # an id is ASCII digits within the column's range (int("١٢") is 12; a 20-digit number overflows SQLite)
            is_id = ref.isascii() and ref.isdigit() and len(ref) <= 18
            q = select(ApiKeyRow).where(ApiKeyRow.id == int(ref)) if is_id else \
                select(ApiKeyRow).where(ApiKeyRow.prefix == ref)
            rows = s.scalars(q).all()
            if len(rows) != 1:
                raise NotFound(f"no key '{ref}' (give the id or prefix from `hotline keys list`)",
                               f"找不到密钥「{ref}」")
            r = rows[0]
            if r.revoked_at is None:
                r.revoked_at = utcnow()
            return _key_info(r)

    def authenticate(self, token: str) -> KeyInfo | None:
        with self.Session() as s:
            r = s.scalars(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(token))).first()
            if r is None or r.revoked_at is not None:
                return None
            return _key_info(r)

    def has_active_key(self, role: str) -> bool:
        with self.Session() as s:
            return s.scalar(select(func.count()).select_from(ApiKeyRow)
                            .where(ApiKeyRow.role == role, ApiKeyRow.revoked_at.is_(None))) > 0


STATUS_ZH = {"received": "已受理", "suggested": "待派单", "dispatched": "已派单", "returned": "已退单",
             "in_arbitration": "待裁定", "decided": "已裁定", "closed": "已办结"}


def ticket_view(t: TicketRow) -> dict:
    sug = t.suggestion or {}
    return {
        "id": t.id, "external_id": t.external_id, "title": t.title, "content": t.content, "address": t.address,
        "channel": t.channel, "reported_at": t.reported_at, "caller": t.phone_masked, "status": t.status,
        "status_zh": STATUS_ZH.get(t.status, t.status), "suggestion": t.suggestion,
        "suggested_lead": (sug.get("lead") or {}).get("code"), "lead": t.lead, "co": split_codes(t.co),
        "needs_arbitration": t.needs_arbitration, "arbitration_reasons": t.arbitration_reasons or [],
        "arbitration_since": iso(t.arbitration_since), "return_count": t.return_count,
        "claimed_by": t.claimed_by, "claimed_at": iso(t.claimed_at), "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at), "duplicate": duplicate_view(t),
    }


def duplicate_view(t: TicketRow) -> dict | None:
    """The duplicate index's verdict (``None`` until the index has seen the ticket)."""
    if t.cluster_id is None:
        return None
    return {"duplicate_of": t.duplicate_of, "cluster": t.cluster_id, "kind": t.dup_kind,
            "score": t.dup_score if t.dup_score is not None else 0.0}


def decision_view(d: DecisionRow) -> dict:
    return {"id": d.id, "ticket_id": d.ticket_id, "arbitrator": d.arbitrator, "lead": d.lead, "co": split_codes(d.co),
            "rationale": d.rationale, "created_at": iso(d.created_at)}
