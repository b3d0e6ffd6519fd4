"""The router's precedents (判例) in the service: every ticket a person settled (an arbitration decision, or a
dispatcher's override that was not returned) votes on similar new tickets (model/precedents.py).

The settled tickets are read from the database (``Store.settled_rows``): all of them at start-up; then, at most
every ``precedent_sync_seconds`` before a suggestion (so decisions taken by another process arrive too) and right
after this process records a decision, a dispatch or a return, only the tickets with events since the last read
(``Store.touched_tickets``), so a year of settled tickets is not re-read after each new one. A changed set is built into a new memory and swapped in
whole, so a suggestion being made meanwhile sees the old one or the new one, never half of each. Each settled
ticket is embedded once: vectors are kept under ``data_dir/precedents`` by ticket and text (a cache; removing it
only costs the time to embed again).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path

import numpy as np

from model.precedents import Precedent, PrecedentMemory
from responsibility_lists.schema import LOCALITY
from model.suggestion import Ticket

log = logging.getLogger("hotline.precedents")


# Event ids re-checked below the last one read: a transaction that took its id earlier but committed after that
# read (PostgreSQL sequences) is still seen. Re-reading a few tickets' settled state is idempotent and cheap.
OVERLAP = 200


def _state(row: dict | None) -> tuple | None:
    return None if row is None else (_key(row), row["lead"], row["co"], row["source"], row.get("rule"))


def _key(row: dict) -> str:
    h = hashlib.blake2b(f"{row['title'] or ''}\x00{row['content']}".encode("utf-8"), digest_size=8).hexdigest()
    return f"{row['ticket_id']}:{h}"


class PrecedentService:
    def __init__(self, settings, store, router):
        self.settings = settings
        self.store = store
        self.router = router
        self.config = settings.precedent_config()
        enc = router.index.encoder
        tag = hashlib.blake2b(f"{enc.fingerprint}|{router.config.title_weight}".encode(), digest_size=6).hexdigest()
        self.cache_path = Path(settings.data_dir) / "precedents" / f"vectors-{tag}.npz"
        self._vectors: dict[str, np.ndarray] | None = None
        self._rows: dict[int, dict] | None = None  # the settled tickets the current memory was built from, by id
        self._version: int | None = None  # the store's events_version when it was read
        self._due = 0.0
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------- vectors
    def _load_cache(self) -> dict[str, np.ndarray]:
        try:
            dim = self.router.index.encoder.dim
            with np.load(self.cache_path, allow_pickle=False) as z:
                return {k: v for k, v in zip(z["keys"].tolist(), z["vectors"]) if v.shape == (dim,)}
        except (OSError, ValueError, KeyError):
            return {}

    def _save_cache(self) -> None:
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self._vectors)
            tmp = self.cache_path.with_name(self.cache_path.name + ".tmp.npz")
            vecs = np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, self.router.index.encoder.dim), np.float32)
            np.savez(tmp, keys=np.asarray(keys, dtype=str), vectors=vecs)
            tmp.replace(self.cache_path)
        except OSError as e:  # a cache: never fail a request for it
            log.warning("could not save precedent vectors to %s: %s", self.cache_path, e)

    # -------------------------------------------------------------------------------------- sync
    def invalidate(self) -> None:
        """Re-read at the next suggestion (this process just recorded a decision, dispatch or return)."""
        self._due = 0.0

    def sync(self, force: bool = False) -> None:
        if self.config.weight <= 0 and self.config.contest_rule <= 0:
            return
        now = time.monotonic()
        if not force and now < self._due:
            return
        with self._lock:
            if not force and time.monotonic() < self._due:
                return
            version = self.store.events_version()  # cheap: nothing settled changed unless this moved
            if force or self._rows is None:  # start-up: every settled ticket
                rows = self.usable(self.store.settled_rows())
                self._rows = {r["ticket_id"]: r for r in rows}
                self._rebuild(rows)
            elif version != self._version:  # only the tickets with new events (and a few before: see OVERLAP)
                touched = self.store.touched_tickets(after=max(self._version - OVERLAP, 0))
                fresh = {r["ticket_id"]: r for r in self.usable(self.store.settled_rows(ids=touched))}
                changed = False
                for tid in touched:
                    new, old = fresh.get(tid), self._rows.get(tid)
                    if _state(new) != _state(old):
                        changed = True
                        if new is None:
                            del self._rows[tid]
                        else:
                            self._rows[tid] = new
                if changed:
                    self._rebuild([self._rows[t] for t in sorted(self._rows)])
            self._version = version
            self._due = time.monotonic() + self.settings.precedent_sync_seconds

    def usable(self, rows: list[dict]) -> list[dict]:
        """Settled tickets whose lead the current lists know (a department removed from the roster since the decision
        cannot lead a suggestion); unknown co-handlers are dropped."""
        known = set(self.router.lists.departments) | {LOCALITY}
        out = []
        for r in rows:
            if r["lead"] not in known:
                log.warning("precedent ticket %s: lead %r is not in the lists any more; not used", r["ticket_id"], r["lead"])
                continue
            out.append({**r, "co": "|".join(c for c in (r["co"] or "").split("|") if c in known)})
        return out

    def _rebuild(self, rows: list[dict]) -> None:
        if self._vectors is None:
            self._vectors = self._load_cache()
        keys = [_key(r) for r in rows]
        missing = [(k, r) for k, r in zip(keys, rows) if k not in self._vectors]
        if missing:
            tickets = [Ticket(id=str(r["ticket_id"]), title=r["title"], content=r["content"]) for _, r in missing]
            for (k, _), v in zip(missing, self.router.query_vectors(tickets)):
                self._vectors[k] = np.asarray(v, dtype=np.float32)
        kept = set(keys)
        stale = [k for k in self._vectors if k not in kept]
        for k in stale:
            del self._vectors[k]
        if missing or stale:
            self._save_cache()
        mem = PrecedentMemory(self.router.index.encoder.dim, self.config)
        if rows:
            mem.add([Precedent(id=str(r["ticket_id"]), lead=r["lead"], co=tuple(c for c in r["co"].split("|") if c),
                               text=f"{r['title']}。{r['content']}" if r["title"] else r["content"], source=r["source"],
                               rule=r.get("rule"))
                     for r in rows], np.stack([self._vectors[k] for k in keys]))
        self.router.precedents = mem  # swapped whole
        log.info("precedents: %d settled tickets (%d embedded now)", len(mem), len(missing))


def install(app) -> None:
    state = app.state
    if getattr(state, "precedents", None) is None and state.router is not None:
        state.precedents = PrecedentService(state.settings, state.store, state.router)


def invalidate(app) -> None:
    """A decision, dispatch or return was just recorded: re-read the precedents before the next suggestion."""
    svc = getattr(app.state, "precedents", None)
    if svc is not None:
        svc.invalidate()


def service(app) -> PrecedentService | None:
    install(app)
    return getattr(app.state, "precedents", None)


def similar_decisions(router, store, ticket: dict, limit: int = 5, min_similarity: float = 0.85) -> list[dict]:
    """The workbench's 'similar past decisions': decisions on the settled tickets nearest to this one (each with its
    ``similarity``), then recent decisions whose lead is among the ticket's candidates (``similarity`` null)."""
    out: list[dict] = []
    mem = getattr(router, "precedents", None)
    if mem is not None and len(mem):
        vec = router.query_vectors([Ticket(id=str(ticket["id"]), title=ticket.get("title"), content=ticket["content"])])[0]
        near = [n for n in mem.neighbours(vec, exclude=str(ticket["id"]), k=limit * 2, min_similarity=min_similarity)
                if n.precedent.source == "decision"]
        found = store.latest_decisions([int(n.precedent.id) for n in near])
        for n in near:
            d = found.get(int(n.precedent.id))
            if d is not None:
                out.append({**d, "similarity": round(n.similarity, 4)})
    if len(out) < limit:
        codes = [c["code"] for c in (ticket["suggestion"] or {}).get("candidates", [])]
        seen = {d["ticket_id"] for d in out}
        for d in store.past_decisions(codes=codes, exclude=ticket["id"], limit=limit + len(seen)):
            if d["ticket_id"] not in seen and len(out) < limit:
                out.append({**d, "similarity": None})
    return out[:limit]


def rule_outcomes(router) -> list[dict]:
    """Each joint-handling rule that settled tickets' suggestions cited, with the arbitration group's decisions on
    them: overruled / upheld, the leads decided instead, and whether the rule is now treated as disputed
    (``PrecedentConfig.contest_rule``). Most overruled first: what the list editors should clarify."""
    mem = getattr(router, "precedents", None)
    if mem is None:
        return []
    rules = {r.id: r for r in router.lists.rules}
    out = []
    for rid in mem.rules():
        rule = rules.get(rid)
        if rule is None:  # removed from the lists since
            continue
        rec = mem.rule_record(rid, rule.lead, router.group)
        if not rec.overruled and not rec.upheld:
            continue
        out.append({"rule": rid, "matter": rule.matter, "lead": rule.lead, "lead_name": router.lists.name_of(rule.lead),
                    "disputed_in_lists": rule.disputed, "overruled": len(rec.overruled), "upheld": len(rec.upheld),
                    "contested": not rule.disputed and rec.contested(mem.config.contest_rule),
                    "decided": rec.decided(router.group),
                    "tickets": [int(p.id) if p.id.isdigit() else p.id for p in rec.overruled]})
    return sorted(out, key=lambda d: (-d["overruled"], d["upheld"], d["rule"]))
