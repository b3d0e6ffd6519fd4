"""智能流转: tickets sure enough go out at intake, without a dispatcher's check (``HOTLINE_AUTO_SEND``, off by default).

A ticket is sent to its suggested lead and co-handlers by ``system`` when its suggestion is marked ``auto_dispatch``
(confident, no reason raised; model/router.py, model/fusion.py) and it is still waiting for a dispatcher after the
duplicate index has seen it (a repeat complaint the index sent to arbitration is not sent). A report of a problem
reported before goes out only when the unit already handling it (the latest earlier report whose owner people
settled) is the suggested lead: otherwise a dispatcher reads the earlier reports first. A department that returns
the ticket (退单) puts it back in the dispatchers' hands as any return does, and counts against the auto-dispatch
precision that ``hotline stats`` reports per model version.
"""
from __future__ import annotations

import logging

from serving.store import Store, StoreError

log = logging.getLogger("hotline.auto_send")

ACTOR = "system"


def send(store: Store, ticket: dict) -> dict:
    """The ticket as stored, dispatched when it is sure enough (else unchanged)."""
    sug = ticket.get("suggestion") or {}
    if ticket.get("status") != "suggested" or not sug.get("auto_dispatch"):
        return ticket
    lead = sug["lead"]["code"]
    if (ticket.get("duplicate") or {}).get("duplicate_of") is not None:
        settled = store.duplicates(ticket["id"], limit=0).get("settled")  # the earlier reports themselves are not needed
        if not settled or settled.get("lead") != lead:
            return ticket
    try:
        return store.dispatch(ticket["id"], lead, [c["code"] for c in sug.get("co") or []], actor=ACTOR, auto=True)
    except StoreError:  # taken meanwhile (another process, a dispatcher): the stored ticket stands, unsent
        log.warning("ticket %s was not sent at intake: its state changed", ticket["id"])
        return store.get(ticket["id"])
