"""The duplicate index inside the service (issue 6 §3 / issue 7): every stored ticket goes through
:class:`model.duplicates.DuplicateDetector`; its verdict is written back onto the ticket row.

The database is the source of truth. On first use (at start-up, or lazily at the first request) the index
is opened from the saved state (``dedup_state_dir``, default ``data_dir/dedup``) when that state covers a
prefix of the stored tickets in (created_at, id) order, and otherwise rebuilt from every stored ticket in
that order. After that, :meth:`DedupService.sync` (run before every lookup: ``POST /tickets``,
``GET /duplicates``, ``GET /hot-issues``) processes whatever the database holds that the index has not seen:
the ticket just stored, tickets without a verdict, and tickets written by other processes (another
``hotline serve`` on the same database, an import). The check is cheap: the ids above the highest id seen
(less ``SYNC_LOOKBACK``, since PostgreSQL may commit ids out of order) against the index, then only the
missing rows. A ticket that another process has already judged keeps that verdict: the index adopts it
instead of overwriting it, so every process's index agrees with the database.

Detector ids are the store's ticket ids as strings; times are the stored ``created_at``; callers are the
store's salted ``phone_hash`` (never the number). A ticket gets REPEAT_COMPLAINT the first time its verdict
is written, when it is a duplicate and its cluster has ``dedup_repeat_min_count`` tickets in the window (the
same caller's own reports counted over the caller window). When a new ticket joins two clusters (the detector's
``merge_cos``), the stored ``cluster_id`` of the earlier tickets that move is updated as well. Another process makes the same join when its index
catches up with the joining ticket: it judges every ticket itself before adopting a stored verdict, and the join
follows from that judgement.
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from pathlib import Path

from model.duplicates import DuplicateDetector, StateDamaged, StateMismatch, hot_issues
from model.duplicates.detector import DAY, DedupConfig
from model.suggestion import Ticket

log = logging.getLogger(__name__)
REPEAT_CODE = "REPEAT_COMPLAINT"
SYNC_LOOKBACK = 1000  # ids below the highest one seen that sync() re-checks (out-of-order commits)


def dedup_config(settings) -> DedupConfig:
    return DedupConfig(
        window_days=settings.dedup_window_days, caller_window_days=settings.dedup_caller_window_days,
        owner_window_days=settings.dedup_owner_window_days,
        caller_cos=settings.dedup_caller_cos, place_min_dice=settings.dedup_place_min_dice,
        near_jaccard=settings.dedup_near_jaccard, event_cos_place=settings.dedup_event_cos_place,
        event_cos_problem=settings.dedup_event_cos_problem, problem_dice=settings.dedup_problem_dice,
        event_cos_locality=settings.dedup_event_cos_locality, event_cos_noplace=settings.dedup_event_cos_noplace,
        merge_cos=settings.dedup_merge_cos,
    )


def as_ticket(row: dict) -> Ticket:
    """A stored row as the detector's ticket (no re-validation: it was validated when it came in). Its time is when
    the service received it (the rows come in that order, and the index is rebuilt in it), not the ``created_at``
    the ticket came with: a back-fill through the API is judged as if reported on arrival (``hotline dedup`` reads a
    history file by its own times)."""
    return Ticket.model_construct(id=str(row["id"]), content=row["content"], title=row["title"],
                                  address=row["address"], created_at=row["created_at"], caller=None, channel=None)


def repeat_reason(n: int) -> dict:
    return {"code": REPEAT_CODE, "message": f"同一问题已被反复反映{n}次，建议重点督办"}


class DedupService:
    def __init__(self, settings, store, encoder, locator=None, group=None):
        self.settings = settings
        self.store = store
        self.encoder = encoder
        self.locator = locator
        self.group = group  # department code -> routing label (a town -> locality), for the tickets' owners
        self.config = dedup_config(settings)
        self.state_dir = Path(settings.dedup_state_dir or Path(settings.data_dir) / "dedup")
        self.salt = store.phone_salt.decode() if isinstance(store.phone_salt, bytes) else str(store.phone_salt)
        self.det: DuplicateDetector | None = None
        self.loaded_from_state = False
        self.max_id = 0  # the highest ticket id the index holds
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------ opening
    def _try_load(self, rows: list[dict]) -> DuplicateDetector | None:
        try:
            det = DuplicateDetector.load(self.state_dir, self.encoder, self.salt, self.locator)
        except FileNotFoundError:
            return None
        except (StateMismatch, StateDamaged, OSError) as e:  # OSError: a folder it may not read
            log.warning("duplicate index state not usable (%s): rebuilding from the database", e)
            return None
        db_ids = [str(r["id"]) for r in rows]
        if det.config != self.config or db_ids[: len(det.records.ids)] != det.records.ids:
            log.warning("duplicate index state does not match the database: rebuilding from it")
            return None
        return det

    def open(self) -> DuplicateDetector:
        """Load the saved state if it matches the database, else rebuild; then catch up (idempotent)."""
        with self._lock:
            if self.det is None:
                rows = self.store.dedup_rows()
                det = self._try_load(rows)
                self.loaded_from_state = det is not None
                if det is None:
                    det = DuplicateDetector(self.encoder, self.salt, self.config, self.locator)
                self.det = det
                self.max_id = max((int(x) for x in det.by_id), default=0)
                self._process(rows)
                if not self.loaded_from_state:
                    self.save()
            return self.det

    # --------------------------------------------------------------------------------- processing
    def sync(self) -> None:
        """Run every stored ticket the index has not seen through it and write the verdicts back."""
        with self._lock:
            if self.det is None:
                self.open()
                return
            known = self.det.by_id
            missing = [i for i in self.store.ticket_ids(after_id=max(self.max_id - SYNC_LOOKBACK, 0))
                       if str(i) not in known]
            self._process(self.store.dedup_rows(pending_only=True, ids=missing), rewrite=False)

    def _process(self, rows: list[dict], *, rewrite: bool = True) -> None:
        """Add the rows the index lacks and write back the verdicts the database lacks. ``rewrite`` (at opening):
        also correct stored verdicts that differ from the index (e.g. after a change of settings); otherwise a
        verdict already stored (by another process) is adopted by the index, not overwritten."""
        det = self.det
        todo = [r for r in rows if str(r["id"]) not in det.by_id]
        judged = set() if rewrite else {r["id"] for r in todo if r["cluster_id"] is not None}
        moved: set[int] = set()  # earlier tickets whose cluster was joined to another by these
        if todo and not judged:
            det.process_many([as_ticket(r) for r in todo], caller_hashes=[r["phone_hash"] for r in todo],
                             owners=[self.owner(r) for r in todo])
            moved.update(det.relabelled)
        elif todo:  # one at a time (one batch of vectors), so later tickets see the adopted clusters
            tickets = [as_ticket(r) for r in todo]
            for r, t, vec in zip(todo, tickets, det.embed(tickets)):
                det.process(t, vec, caller_hash=r["phone_hash"], owner=self.owner(r))
                moved.update(det.relabelled)
                if r["id"] in judged:
                    self._adopt(r)
        if rows:
            self.max_id = max(self.max_id, max(int(r["id"]) for r in rows))
        handled: set[int] = set()  # rows whose whole verdict is compared (and written when it differs) below
        for r in rows:  # write back what is missing or stale (e.g. after a change of settings)
            if not rewrite and r["cluster_id"] is not None:
                continue
            handled.add(det.by_id[str(r["id"])])
            res = det.result(det.by_id[str(r["id"])])
            dup = int(res.duplicate_of) if res.duplicate_of is not None else None
            stored = (r["duplicate_of"], r["cluster_id"], r["dup_kind"],
                      None if r["dup_score"] is None else round(float(r["dup_score"]), 4))
            if stored == (dup, int(res.cluster), res.kind, round(float(res.score), 4)):
                continue
            reason = None
            if r["cluster_id"] is None and dup is not None:  # first verdict: 重点督办 when reported again and again
                n = self.cluster_count(res.id)
                if n >= self.settings.dedup_repeat_min_count:
                    reason = repeat_reason(n)
            self.store.record_duplicate(r["id"], duplicate_of=dup, cluster=int(res.cluster), kind=res.kind,
                                        score=float(res.score), reason=reason)
        self._write_moved(moved - handled)

    def _write_moved(self, moved: set[int]) -> None:
        """Store the new cluster of tickets already stored whose cluster was joined to an earlier one."""
        rec, by_cluster = self.det.records, {}
        for i in moved:
            by_cluster.setdefault(int(rec.ids[rec.cluster[i]]), []).append(int(rec.ids[i]))
        for cluster, ids in by_cluster.items():
            self.store.move_to_cluster(ids, cluster)

    def owner(self, row: dict) -> str | None:
        """The ticket's lead department (dispatched or decided, else the lists' own suggested lead), a town as
        ``locality``."""
        code = row.get("owner")
        if not code:
            return None
        return self.group(code) if self.group is not None else code

    def _adopt(self, row: dict) -> bool:
        """Give the index the verdict stored for this ticket by another process (when the tickets it names are
        in this index, the cluster's first ticket as a cluster of its own); else keep the index's own verdict."""
        det = self.det
        rec = det.records
        i = det.by_id[str(row["id"])]
        dup = -1 if row["duplicate_of"] is None else det.by_id.get(str(row["duplicate_of"]))
        root = det.by_id.get(str(row["cluster_id"]))
        if dup is None or root is None or (root != i and rec.cluster[root] != root):
            return False
        score = 0.0 if row["dup_score"] is None else round(float(row["dup_score"]), 4)
        rec.dup[i], rec.cluster[i], rec.kind[i], rec.score[i] = dup, root, row["dup_kind"], score
        return True

    def cluster_count(self, ticket_id: str) -> int:
        """Tickets of this ticket's cluster within the window ending at it (itself included), plus the same
        caller's earlier tickets of the cluster within the caller window: one caller reporting a problem for the
        third time in months is as much 重点督办 as three callers in a month."""
        det = self.det
        r = det.records
        i = det.by_id[ticket_id]
        c, ts = r.cluster[i], r.ts[i]
        lo_ts = ts - self.config.window_days * DAY
        lo = bisect.bisect_left(r.cummax, lo_ts)
        members = {j for j in range(lo, len(r)) if r.cluster[j] == c and lo_ts <= r.ts[j] <= ts}
        caller = r.caller[i]
        if caller:
            caller_lo = ts - det.caller_window_days * DAY
            members.update(j for j in det.window_callers.get(caller, ()) if r.cluster[j] == c and caller_lo <= r.ts[j] <= ts)
        return len(members)

    def shared_places(self, ticket_id: int, other_id: int) -> list[str]:
        """The place names two stored tickets share as the index judged them (what makes a same_event link the same
        place); empty when the index does not hold both or they share none."""
        with self._lock:
            det = self.det
            i = det.by_id.get(str(ticket_id)) if det is not None else None
            j = det.by_id.get(str(other_id)) if det is not None else None
            return det.shared_places(i, j) if i is not None and j is not None else []

    def relocate(self, locator) -> None:
        """Locate tickets judged from now on with ``locator`` (the gazetteer of edited lists); tickets already in
        the index keep the places they were judged with."""
        with self._lock:
            self.locator = locator
            if self.det is not None:
                self.det.relocate(locator)

    # ------------------------------------------------------------------------------------ reading
    def hot(self, days: float, min_count: int, top: int = 20) -> list[dict]:
        with self._lock:
            self.sync()
            out = []
            for h in hot_issues(self.det, window_days=days, min_count=min_count, at=time.time(), top=top):
                d = h.as_dict()
                d["cluster"] = int(d["cluster"])
                d["ticket_ids"] = [int(x) for x in d["ticket_ids"]]
                out.append(d)
            return out

    def save(self) -> Path | None:
        with self._lock:
            if self.det is None:
                return None
            try:
                return self.det.save(self.state_dir)
            except OSError as e:  # the state is only a cache of the database: never fail a request for it
                log.warning("could not save the duplicate index state to %s: %s", self.state_dir, e)
                return None


def install(app) -> None:
    """Attach the service once the router (and so the encoder) exists; set the ``on_ticket`` hook."""
    state = app.state
    if getattr(state, "dedup", None) is not None:
        return
    router = state.router
    # the owner's grouping through whichever router serves now (a reload swaps it; its bound method would keep the old one)
    svc = DedupService(state.settings, state.store, router.index.encoder, getattr(router, "locator", None),
                       lambda code: state.router.group(code))
    state.dedup = svc

    def on_ticket(out: dict) -> dict:
        try:
            svc.sync()
        except Exception:  # noqa: BLE001 - the ticket is stored; the index catches up at the next sync/start-up
            log.exception("duplicate check failed for ticket %s; it is stored and will be checked later", out["id"])
            return out
        out = state.store.get(out["id"])
        dup = out.get("duplicate")
        if dup and dup.get("duplicate_of") is not None:  # the widget shows them at once (共同地点)
            dup["places"] = svc.shared_places(out["id"], dup["duplicate_of"])
        return out

    state.on_ticket = on_ticket


def service(app) -> DedupService:
    if getattr(app.state, "dedup", None) is None:
        install(app)
    return app.state.dedup
