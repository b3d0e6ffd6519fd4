"""Duplicate and repeat complaints (重复诉求): link each ticket to an earlier one about the same problem.

Tickets are processed in ``created_at`` order. For each one, candidates come from three places:

- the e5 vector index (:class:`VectorIndex`, nearest neighbours by cosine), within the time window
  (default 30 days before it),
- a MinHash LSH over character 3-grams (near-identical text, whoever sent it), within the same window,
- earlier tickets from the same caller (a salted hash of the number, never the number), within the longer
  caller window (default 365 days): a caller who reports the same problem again months later is a repeat
  of an unresolved problem (重复诉求), and one caller's history is short enough to look at in full;
- when the tickets' owners are known (the lead department each was routed or dispatched to), earlier tickets
  within the owner window (default 180 days) as well: another caller's report of the same problem months
  later is linked only when both went to the same department (the same problem has the same owner), besides
  every condition below.

Each candidate is judged on cosine, estimated Jaccard, caller, place (place names in common: free-text
names of >= ``min_place_len`` characters or gazetteer names; else the same locality) and "problem overlap"
(bigram Dice of the two texts with their place names taken out, so a shared address alone does not make
two complaints the same). The verdict:

- ``repeat``: near-identical text (Jaccard >= ``near_jaccard``) from anyone, or the same caller and the
  same problem (cosine >= ``caller_cos``), or, within the window, the same caller and what would link another
  caller's report (below): the same caller is never asked for more evidence than a stranger;
- ``same_event``: different callers, a place in common and the same problem (cosine >= ``event_cos_place``,
  or >= ``event_cos_problem`` with problem overlap >= ``problem_dice``); with only the same locality, or no
  place known, a higher cosine (``event_cos_locality`` / ``event_cos_noplace``) plus the problem overlap;
- different localities with no place name in common veto the link;
- otherwise not a duplicate. The best-scoring candidate wins (a strong one first, below); ``cluster`` is that ticket's cluster (the
  id of the cluster's first ticket); ``score`` is the winning evidence in [0, 1].

A match with a named place in common and cosine >= ``merge_cos`` is *strong*: it is preferred as
``duplicate_of`` to a higher-cosine match without a place in common, and a ticket that is also a strong duplicate
of a ticket in *another* cluster joins the two clusters into one (the earlier cluster's id is kept, and every ticket of the
later one moves to it; :attr:`DuplicateDetector.relabelled` lists them): one event reported over weeks
otherwise splits into clusters that started apart and were never compared, and a hot issue is undercounted.

State (records, vectors, the window's MinHashes) is rebuilt from a list of tickets with
:meth:`DuplicateDetector.rebuild`, saved with :meth:`save` (a new state folder, switched to atomically)
and opened with :meth:`DuplicateDetector.load`.
"""
from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import os
import shutil
import threading
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from ..suggestion import Ticket
from .signals import (MINHASH_SCHEME, caller_key, dice, jaccard, mask_numbers, minhash, parse_time, place_keys,
                      ADDRESS_ESTATE_MARK, FORMULA_KEY, NUMBER_MARK, is_mark, number_keys, problem_signature,
                      problem_text, readable_places, short_title, written_by_call_taker)
from .vectors import VectorIndex

STATE_VERSION = 4  # 2: caller window (per-caller history kept longer than the main window); 3: owners; 4: door and
#                    building numbers among the places, MinHash and problem words without the call-taker's formula
DAY = 86400.0
Kind = Literal["repeat", "same_event"]


@dataclass(frozen=True)
class DedupConfig:
    window_days: float = 30.0
    k: int = 16                       # vector neighbours looked at per ticket
    caller_cos: float = 0.95          # same caller: cosine for "the same problem again"
    caller_dice: float = 0.0          # ... and problem overlap (unless a place is in common)
    caller_window_days: float = 365.0  # same caller: earlier tickets looked at (at least window_days)
    owner_window_days: float = 180.0  # other callers beyond window_days: only with the same owner (lead department)
    near_jaccard: float = 0.5         # near-identical text (3-gram Jaccard), any caller
    event_cos_place: float = 0.94     # different callers + a shared place name: cosine and place_min_dice
    place_min_dice: float = 0.05      # ... some problem words in common (one estate's other problems share the place)
    event_cos_problem: float = 0.93   # ... or this cosine plus problem overlap >= problem_dice
    problem_dice: float = 0.2         # bigram Dice of the texts without their place names
    event_cos_locality: float = 0.96  # different callers, only the same locality (街道/镇): cosine and problem overlap
    event_cos_noplace: float = 0.96   # no shared place: cosine and problem overlap
    min_place_len: int = 4            # a shared free-text place name must be this long (gazetteer names: any)
    merge_cos: float = 0.95           # a duplicate of tickets in two clusters joins them (a place in common and this cosine); 1.01 = never
    num_perm: int = 64
    lsh_threshold: float = 0.4
    shingle: int = 3
    ivf_train_at: int = 20_000
    nprobe: int = 24

    @property
    def lookback_days(self) -> float:
        """How far back candidates are looked for (the caller window aside)."""
        return max(self.window_days, self.owner_window_days)

    @classmethod
    def from_dict(cls, d: dict) -> "DedupConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class DedupResult:
    id: str
    duplicate_of: str | None
    cluster: str
    kind: Kind | None
    score: float
    places: list[str] | None = None  # named places shared with duplicate_of (readable forms), when asked for

    def as_dict(self) -> dict:
        d = {"id": self.id, "duplicate_of": self.duplicate_of, "cluster": self.cluster, "kind": self.kind,
             "score": self.score}
        return d if self.places is None else {**d, "places": self.places}


@dataclass
class _Prepared:
    id: str
    ts: float
    caller: str | None
    locality: str | None
    places: frozenset[str]
    title: str
    mh: np.ndarray
    sig: np.ndarray
    owner: str | None = None


@dataclass
class _Records:
    ids: list[str] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    cummax: list[float] = field(default_factory=list)   # running max of ts: monotone, bisected for the window start
    caller: list[str | None] = field(default_factory=list)
    owner: list[str | None] = field(default_factory=list)  # lead department (routed or dispatched), if known
    locality: list[str | None] = field(default_factory=list)
    places: list[frozenset[str]] = field(default_factory=list)
    title: list[str] = field(default_factory=list)
    dup: list[int] = field(default_factory=list)        # index of duplicate_of, -1 = none
    cluster: list[int] = field(default_factory=list)    # index of the cluster's first ticket
    kind: list[str | None] = field(default_factory=list)
    score: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def _sig(hashvalues: np.ndarray) -> LeanMinHash:
    return LeanMinHash(seed=1, hashvalues=hashvalues, scheme=MINHASH_SCHEME)


def salt_check(salt: str) -> str:
    """A value that tells whether two salts are the same without revealing either."""
    return hmac.new(salt.encode("utf-8"), b"hotline-dedup-salt-check", hashlib.sha256).hexdigest()[:16]


class StateMismatch(ValueError):
    """Saved state made with another encoder, salt or format: rebuild it from the stored tickets."""


class StateDamaged(ValueError):
    """Saved state that cannot be read: ``CURRENT`` naming a missing folder, a file missing, cut short, not UTF-8 or
    not JSON, a record lacking a field or holding one of the wrong type, a vector index that does not open. The
    message names the folder and, in a few words, what is wrong; remove the folder or rebuild from the stored
    tickets. (A folder that cannot be read for its permissions raises ``PermissionError`` instead.)"""


def _damage(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    if isinstance(e, UnicodeDecodeError):
        return "a file in it is not UTF-8 text"
    if isinstance(e, json.JSONDecodeError):
        return f"a file in it is not valid JSON ({e.msg})"
    if isinstance(e, KeyError):
        return f"a record lacks the field {e}"
    if isinstance(e, RuntimeError) and "faiss" in str(e):
        return "its vector index (vectors.faiss) does not open"
    return " ".join(f"{type(e).__name__}: {e}".split())[:200]


#: How the name of an estate ends (小区, 花园, 苑…): free-text names ending so are compared by :func:`_estates`.
ESTATE_SUFFIXES = ("小区", "花园", "新村", "家园", "公寓", "苑", "府")  # not 园 (公园, 产业园), 城, 湾


def _estates(keys, mapped) -> list[str]:
    """The estates a ticket names, whole: its free-text place keys ending as an estate's name joined again
    (:func:`readable_places`), and the map's estates among its places."""
    free = [k for k in keys if not is_mark(k) and k.endswith(ESTATE_SUFFIXES)]
    return readable_places(free) + list(mapped)


class DuplicateDetector:
    def __init__(self, encoder, salt: str, config: DedupConfig | None = None, locator=None, *, dim: int | None = None):
        """``encoder``: an :class:`model.encoder.Encoder` (or ``None`` when every call passes vectors, then
        give ``dim``); ``salt``: secret for hashing callers; ``locator``: optional
        :class:`model.locality.Locator` for the locality of each ticket."""
        if not salt:
            raise ValueError("a non-empty salt is required to hash caller numbers")
        self.encoder = encoder
        self.config = config or DedupConfig()
        self.locator = locator
        self._salt = salt
        self.dim = int(dim or encoder.dim)
        self.fingerprint = encoder.fingerprint if encoder is not None else f"external-vectors:{self.dim}"
        self._use_map(locator)
        self._lock = threading.RLock()  # one writer at a time (the API may call from several threads)
        self._reset()

    def _reset(self) -> None:
        c = self.config
        self.records = _Records()
        self.by_id: dict[str, int] = {}
        self.vectors = VectorIndex(self.dim, train_at=c.ivf_train_at, nprobe=c.nprobe)
        self.lsh = MinHashLSH(threshold=c.lsh_threshold, num_perm=c.num_perm)
        self.window_mh: dict[int, np.ndarray] = {}
        self.window_sig: dict[int, np.ndarray] = {}
        self.window_callers: dict[str, list[int]] = defaultdict(list)
        self.relabelled: list[int] = []  # earlier tickets whose cluster changed (a merge) in the last process_many call
        self._expired_upto = 0  # records before this index are out of every future (main) window
        self._caller_expired_upto = 0  # ... and out of every future caller window
        self._latest = float("-inf")

    def __len__(self) -> int:
        return len(self.records)

    def relocate(self, locator) -> None:
        """Use another :class:`model.locality.Locator` (edited lists) for tickets processed from now on."""
        with self._lock:
            self.locator = locator
            self._use_map(locator)

    def _use_map(self, locator) -> None:
        """The place names of the district map (``_gazetteer``) and, for the places a ticket pins down (an estate,
        a road, a community or village, a landmark: not a town's own name), their kind."""
        types = getattr(locator, "place_types", None) or {}
        self._gazetteer = frozenset(types)
        self._pinned = {name: typ for name, typ in types.items() if typ in ("estate", "road", "community", "landmark")}

    # -------------------------------------------------------------------------------------- preparing

    def _prepare(self, t: Ticket, caller: str | None, owner: str | None = None) -> _Prepared:
        if not t.id:
            raise ValueError("ticket id is missing: results refer to tickets by id")
        ts = parse_time(t.created_at)
        text = t.text
        locality = None
        places = set(place_keys(text)) | number_keys(text)
        if t.address:
            at = place_keys(t.address)
            # the estates the address field names (a place, not prose): compared whole by _elsewhere
            places |= at | number_keys(t.address) | {ADDRESS_ESTATE_MARK + e for e in _estates(at, ())}
        if written_by_call_taker(t.content) or written_by_call_taker(text):
            places.add(FORMULA_KEY)
        if self.locator is not None:
            # address and text read together (not Locator.place, the router's address-first reading: on a probe's
            # centre tickets it made more pairs "different localities" and lost a fifth of the true links, none wrong)
            loc = self.locator.locate(f"{t.address or ''} {text}")
            if loc is not None:
                places |= {h.name for h in loc.hits}
                if not loc.ambiguous:
                    locality = loc.code
        title = mask_numbers(t.title or short_title(t.content))[:60]
        own = problem_text(text)  # without the call-taker's formula, which every ticket shares
        mh = minhash(own, self.config.num_perm, self.config.shingle).hashvalues.astype(np.uint32)
        return _Prepared(t.id, ts, caller, locality, frozenset(places), title, mh, problem_signature(own, places), owner or None)

    def embed(self, tickets: Sequence[Ticket], batch_size: int = 32) -> np.ndarray:
        if self.encoder is None:
            raise ValueError("no encoder: pass precomputed vectors")
        return self.encoder.encode_queries([t.text for t in tickets], batch_size=batch_size)

    # -------------------------------------------------------------------------------------- processing

    def process(self, ticket: Ticket, vector: np.ndarray | None = None, caller_hash: str | None = None,
                owner: str | None = None) -> DedupResult:
        """One incoming ticket (normally the newest). ``caller_hash``: an already-hashed caller (e.g. from
        the database), used instead of hashing ``ticket.caller``; ``owner``: its lead department, if known."""
        return self.process_many([ticket], None if vector is None else np.asarray(vector).reshape(1, -1),
                                 None if caller_hash is None else [caller_hash], owners=[owner])[0]

    def process_many(self, tickets: Sequence[Ticket], vectors: np.ndarray | None = None,
                     caller_hashes: Sequence[str | None] | None = None, batch_size: int = 32,
                     owners: Sequence[str | None] | None = None) -> list[DedupResult]:
        """Process tickets in ``created_at`` order (ties: input order); results come back in input order.
        A ticket id seen before returns its stored result (idempotent). Raises ``ValueError`` for a ticket
        without id or readable ``created_at`` before changing any state. ``owners``: each ticket's lead
        department (routed or dispatched; None = unknown), for the owner window."""
        with self._lock:
            return self._process_many(tickets, vectors, caller_hashes, batch_size, owners)

    def _process_many(self, tickets, vectors, caller_hashes, batch_size, owners=None) -> list[DedupResult]:
        self.relabelled = []
        callers = list(caller_hashes) if caller_hashes is not None else [caller_key(t.caller, self._salt) for t in tickets]
        owners = list(owners) if owners is not None else [None] * len(tickets)
        if len(owners) != len(tickets):
            raise ValueError(f"{len(owners)} owners for {len(tickets)} tickets")
        prepared = [self._prepare(t, c, o) for t, c, o in zip(tickets, callers, owners)]
        order = sorted(range(len(tickets)), key=lambda i: prepared[i].ts)
        todo = [i for i in order if prepared[i].id not in self.by_id]
        seen: set[str] = set()
        todo = [i for i in todo if not (prepared[i].id in seen or seen.add(prepared[i].id))]
        if vectors is None:
            vecs = self.embed([tickets[i] for i in todo], batch_size) if todo else np.zeros((0, self.dim), np.float32)
        else:
            vectors = np.asarray(vectors, dtype=np.float32)
            if vectors.shape != (len(tickets), self.dim):
                raise ValueError(f"vectors shape {vectors.shape} != ({len(tickets)}, {self.dim})")
            vecs = vectors[todo]
        for row, i in enumerate(todo):
            self._process_one(prepared[i], vecs[row])
        return [self.result(self.by_id[p.id]) for p in prepared]

    def _process_one(self, p: _Prepared, vec: np.ndarray) -> None:
        c = self.config
        vec = np.ascontiguousarray(vec, dtype=np.float32)
        vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
        self._latest = max(self._latest, p.ts)
        self._expire(self._latest - c.lookback_days * DAY)
        best, bridges = self._matches(p, vec)
        r = self.records
        idx = len(r)
        r.ids.append(p.id)
        r.ts.append(p.ts)
        r.cummax.append(max(p.ts, r.cummax[-1]) if r.cummax else p.ts)
        r.caller.append(p.caller)
        r.owner.append(p.owner)
        r.locality.append(p.locality)
        r.places.append(p.places)
        r.title.append(p.title)
        if best is None:
            r.dup.append(-1), r.cluster.append(idx), r.kind.append(None), r.score.append(0.0)
        else:
            j, kind, score = best
            r.dup.append(j), r.cluster.append(r.cluster[j]), r.kind.append(kind), r.score.append(round(score, 4))
        self.by_id[p.id] = idx
        self.vectors.add(vec[None, :])
        self._window_add(idx, p.mh, p.sig, p.caller)
        for j in bridges:
            self._merge(r.cluster[idx], r.cluster[j])

    def _merge(self, a: int, b: int) -> None:
        """Join clusters ``a`` and ``b`` (indices of their first tickets) under the earlier one."""
        if a == b:
            return
        keep, drop = min(a, b), max(a, b)
        cl = self.records.cluster
        moved = [m for m in range(drop, len(cl)) if cl[m] == drop]  # a cluster's tickets all come after its first
        for m in moved:
            cl[m] = keep
        self.relabelled.extend(m for m in moved if m != len(cl) - 1)  # the ticket being judged is not an earlier one

    # --------------------------------------------------------------------------------------- matching

    @property
    def caller_window_days(self) -> float:
        return max(self.config.window_days, self.config.caller_window_days)

    def _window_start(self, ts: float, days: float) -> int:
        return bisect.bisect_left(self.records.cummax, ts - days * DAY)

    def candidates(self, p: _Prepared, vec: np.ndarray) -> dict[int, float]:
        """Earlier tickets worth judging, with their cosine to this one: vector neighbours and near-identical
        texts in the window, the same caller's tickets in the caller window, and (when this ticket's owner is
        known) the same owner's neighbours and near-identical texts in the owner window before the window, looked
        for apart so that older tickets never crowd the window's own neighbours out."""
        c, r = self.config, self.records
        n = len(r)
        lo = max(self._window_start(p.ts, c.window_days), 0)
        win_ts = p.ts - c.window_days * DAY
        owner_ts = p.ts - c.owner_window_days * DAY if p.owner is not None else win_ts

        def same_owner(j: int) -> bool:
            return owner_ts <= r.ts[j] < win_ts and r.owner[j] == p.owner

        found: dict[int, float] = {}
        ranges = [(lo, n)]
        if owner_ts < win_ts:
            ranges.append((max(self._window_start(p.ts, c.owner_window_days), 0), lo))
        for a, b in ranges:
            if b > a:
                scores, ids = self.vectors.search(vec[None, :], c.k, a, b)
                for s, j in zip(scores[0], ids[0]):
                    if j >= 0:
                        found[int(j)] = float(s)
        found = {j: s for j, s in found.items() if (win_ts <= r.ts[j] <= p.ts) or same_owner(j)}
        extra = set()
        if self.window_mh:
            extra.update(j for j in map(int, self.lsh.query(_sig(p.mh))) if win_ts <= r.ts[j] <= p.ts or same_owner(j))
        if p.caller:
            caller_lo_ts = p.ts - self.caller_window_days * DAY
            extra.update(j for j in self.window_callers.get(p.caller, ()) if caller_lo_ts <= r.ts[j] <= p.ts)
        extra = [j for j in extra if j not in found]
        if extra:
            for j, v in zip(extra, self.vectors.vector_of(extra)):
                found[j] = float(v @ vec)
        return found

    def judge(self, p: _Prepared, j: int, cos: float) -> tuple[Kind, float] | None:
        """The verdict for this ticket against earlier ticket ``j``: (kind, score) or ``None``."""
        c, r = self.config, self.records
        gap = p.ts - r.ts[j]
        if gap > c.window_days * DAY:  # beyond the window: the same caller (caller window) or the same owner
            if p.caller is not None and p.caller == r.caller[j]:
                if gap > self.caller_window_days * DAY:
                    return None
            elif p.owner is None or p.owner != r.owner[j] or gap > c.owner_window_days * DAY:
                return None
        loc_a, loc_b = p.locality, r.locality[j]
        shared_place = self._shared_place(p.places, r.places[j])
        if loc_a and loc_b and loc_a != loc_b and not shared_place:
            return None  # different localities and no place name in common: not the same place
        if self._elsewhere(p.places, r.places[j]):
            return None  # two estates (roads…) of the map, none in common: a call-taker's formula, not one problem
        mh = self.window_mh.get(j)
        jac = jaccard(p.mh, mh) if mh is not None else 0.0
        if jac >= c.near_jaccard:
            return "repeat", max(jac, cos)
        sig = self.window_sig.get(j)
        overlap = dice(p.sig, sig) if sig is not None else 0.0
        same_caller = p.caller is not None and p.caller == r.caller[j]
        if same_caller:
            if cos >= c.caller_cos and (shared_place or overlap >= c.caller_dice):
                return "repeat", cos
            if gap > c.window_days * DAY:
                return None  # past the window a caller's own earlier report is judged by the test above alone
        # Another caller's report (or, within the window, the caller's own that missed the caller test: a caller who
        # names the same place at cosine 0.94 is not less of a repeat than a stranger who does is a same_event).
        kind: Kind = "repeat" if same_caller else "same_event"
        if shared_place:
            # two call-takers' tickets at one place: their formula lifts the cosine of any two problems there
            need = c.place_min_dice if FORMULA_KEY in p.places and FORMULA_KEY in r.places[j] else 0.0
            if (cos >= c.event_cos_place and overlap >= need) or (cos >= c.event_cos_problem and overlap >= c.problem_dice):
                return kind, cos
            return None
        if loc_a and loc_a == loc_b:
            need = c.event_cos_locality
        else:
            need = c.event_cos_noplace
        if cos >= need and overlap >= c.problem_dice:
            return kind, cos
        return None

    def _matches(self, p: _Prepared, vec: np.ndarray) -> tuple[tuple[int, Kind, float] | None, list[int]]:
        """The best match (index, kind, score) and the other matches strong enough to join their cluster to it.
        A strong match (a named place in common and cosine >= ``merge_cos``) is preferred to a match without one even
        at a higher cosine: e5 puts two cooking-fume complaints about different estates closer than two about one."""
        best, best_key, strong = None, None, []
        r = self.records
        for j, cos in self.candidates(p, vec).items():
            v = self.judge(p, j, cos)
            if v is None:
                continue
            is_strong = cos >= self.config.merge_cos and self._shared_place(p.places, r.places[j])
            key = (is_strong, v[1], j)  # a strong match before a higher cosine without a place in common
            if best is None or key > best_key:
                best, best_key = (j, v[0], v[1]), key
            if is_strong:
                strong.append(j)
        return best, [j for j in strong if best is not None and j != best[0]]

    def _elsewhere(self, a: frozenset[str], b: frozenset[str]) -> bool:
        """Whether the two tickets pin down different places: both name places of the map of one kind (estates,
        roads, communities or villages, landmarks) and no place of the map in common. Call-takers write tickets in
        one formula (市民来电反映：X小区楼下烧烤店油烟扰民，请相关部门处理), so two estates' complaints are near-identical
        text, and e5 puts them closer than two reports of one estate's problem in the caller's words. An estate and
        a road are different kinds (the estate may lie on the road): no verdict. Free-text names are not used here:
        they are pieces of a name, not a name (伊景园 and 景园滨河苑 are one estate)."""
        for kind in ("门", "楼"):  # different door or building numbers: different premises, whatever else is shared
            na = {k for k in a if k.startswith(NUMBER_MARK + kind)}
            nb = {k for k in b if k.startswith(NUMBER_MARK + kind)}
            if na and nb and not na & nb:
                return True
        if any(k in self._pinned for k in a & b):
            return False  # one place of the map in common (a mall both estates face): the same place may be meant
        kinds_a: dict[str, set[str]] = defaultdict(set)
        for k in a:
            if k in self._pinned:
                kinds_a[self._pinned[k]].add(k)
        kinds_b: dict[str, set[str]] = defaultdict(set)
        for k in b:
            if k in self._pinned:
                kinds_b[self._pinned[k]].add(k)
        if any(kind in kinds_b and not names & kinds_b[kind] for kind, names in kinds_a.items()):
            return True
        # estates the map does not hold (金桂苑小区 beside the map's 站前小区), as the address fields name them (prose
        # yields pieces: 私自变更小区), with the map's: none the same as, or part of, one the other ticket names
        fa = {k[1:] for k in a if k.startswith(ADDRESS_ESTATE_MARK)}
        fb = {k[1:] for k in b if k.startswith(ADDRESS_ESTATE_MARK)}
        if not (fa or fb):
            return False  # map estates alone were judged above
        ea, eb = fa | kinds_a.get("estate", set()), fb | kinds_b.get("estate", set())
        return bool(ea and eb) and not any(x in y or y in x for x in ea for y in eb)

    def _shared_place(self, a: frozenset[str], b: frozenset[str]) -> bool:
        """A place name in common: a free-text one of at least ``min_place_len`` characters, or one of the map."""
        return any((len(k) >= self.config.min_place_len and not is_mark(k)) or k in self._gazetteer for k in a & b)

    def shared_places(self, i: int, j: int) -> list[str]:
        """The place names that make tickets ``i`` and ``j`` (indices) the same place for :meth:`judge`, as a
        person reads them (:func:`readable_places`); empty when they share none (a caller's repeat, a near-identical
        text, a locality in common)."""
        a, b = self.records.places[i], self.records.places[j]
        a, b = ({k for k in x if not is_mark(k)} for x in (a, b))
        qualifying = [k for k in a & b if len(k) >= self.config.min_place_len or k in self._gazetteer]
        # every shared piece is joined first (伊景园 + 景园滨河苑 = 伊景园滨河苑), then the names that hold a piece that
        # makes the place shared are shown (景园滨河苑 was shown: 伊景园, three characters, was left out before joining)
        return [name for name in readable_places(a & b) if any(k in name for k in qualifying)] if qualifying else []

    # ------------------------------------------------------------------------------------------ window

    def _window_add(self, idx: int, mh: np.ndarray, sig: np.ndarray, caller: str | None) -> None:
        self.window_mh[idx] = mh
        self.window_sig[idx] = sig
        self.lsh.insert(str(idx), _sig(mh), check_duplication=False)
        if caller:
            self.window_callers[caller].append(idx)

    def _expire(self, before_ts: float) -> None:
        """Forget MinHashes and problem signatures of tickets older than every future window, and the caller
        links of tickets older than every future caller window (with ``caller_dice`` > 0 their signatures stay
        as long: about 0.7 KB a ticket, 180 MB for a year of 700 tickets a day)."""
        r = self.records
        stop = bisect.bisect_left(r.cummax, before_ts)
        for idx in range(self._expired_upto, stop):
            if self.window_mh.pop(idx, None) is not None:
                self.lsh.remove(str(idx))
            if not r.caller[idx] or self.config.caller_dice <= 0:  # kept for the caller window only if it is used there
                self.window_sig.pop(idx, None)
        self._expired_upto = max(self._expired_upto, stop)
        extra_days = max(self.caller_window_days - self.config.lookback_days, 0.0)
        stop = bisect.bisect_left(r.cummax, before_ts - extra_days * DAY)
        for idx in range(self._caller_expired_upto, stop):
            self.window_sig.pop(idx, None)
            caller = r.caller[idx]
            if caller and caller in self.window_callers:
                lst = self.window_callers[caller]
                if idx in lst:
                    lst.remove(idx)
                if not lst:
                    del self.window_callers[caller]
        self._caller_expired_upto = max(self._caller_expired_upto, stop)

    # ------------------------------------------------------------------------------------------ output

    def result(self, idx: int, with_places: bool = False) -> DedupResult:
        """The verdict on ticket ``idx``; ``with_places``: also the places it shares with duplicate_of (for output a
        person reads; the service asks for them per ticket shown, not for every verdict it writes)."""
        r = self.records
        dup = r.dup[idx]
        places = (self.shared_places(idx, dup) if dup >= 0 else []) if with_places else None
        return DedupResult(id=r.ids[idx], duplicate_of=r.ids[dup] if dup >= 0 else None,
                           cluster=r.ids[r.cluster[idx]], kind=r.kind[idx], score=r.score[idx], places=places)

    def results(self) -> list[DedupResult]:
        return [self.result(i) for i in range(len(self.records))]

    def rebuild(self, tickets: Iterable[Ticket], vectors: np.ndarray | None = None,
                caller_hashes: Sequence[str | None] | None = None, batch_size: int = 32,
                owners: Sequence[str | None] | None = None) -> list[DedupResult]:
        """Forget everything and process ``tickets`` (e.g. every stored ticket from the database)."""
        with self._lock:
            self._reset()
            return self.process_many(list(tickets), vectors, caller_hashes, batch_size, owners)

    # ------------------------------------------------------------------------------------- persistence

    def save(self, folder: Path) -> Path:
        """Write the state into a new ``state-*`` folder under ``folder`` and switch ``CURRENT`` to it
        atomically (a crash leaves the previous state readable). Returns the state folder."""
        with self._lock:
            return self._save(Path(folder))

    def _save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        r = self.records
        try:
            self.vectors.write(tmp / "vectors.faiss")
            with open(tmp / "records.jsonl", "w", encoding="utf-8") as f:
                for i in range(len(r)):
                    f.write(json.dumps({
                        "id": r.ids[i], "ts": r.ts[i], "caller": r.caller[i], "owner": r.owner[i], "locality": r.locality[i],
                        "places": sorted(r.places[i]), "title": r.title[i], "dup": r.dup[i], "cluster": r.cluster[i],
                        "kind": r.kind[i], "score": r.score[i]}, ensure_ascii=False) + "\n")
            win = sorted(self.window_mh)
            np.save(tmp / "window_ids.npy", np.asarray(win, dtype=np.int64))
            np.save(tmp / "window_minhash.npy", np.stack([self.window_mh[i] for i in win]) if win
                    else np.zeros((0, self.config.num_perm), np.uint32))
            sig_ids = sorted(self.window_sig)
            np.save(tmp / "window_sig_ids.npy", np.asarray(sig_ids, dtype=np.int64))
            sigs = [self.window_sig[i] for i in sig_ids]
            np.save(tmp / "window_sig_offsets.npy", np.cumsum([0] + [len(x) for x in sigs]).astype(np.int64))
            np.save(tmp / "window_sig.npy", np.concatenate(sigs) if sigs else np.zeros(0, np.uint32))
            meta = {"version": STATE_VERSION, "encoder": self.fingerprint, "dim": self.dim,
                    "salt_check": salt_check(self._salt), "config": asdict(self.config), "count": len(r),
                    "expired_upto": self._expired_upto, "caller_expired_upto": self._caller_expired_upto, "latest": self._latest if len(r) else None,
                    "vectors": self.vectors.state()}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            for p in tmp.iterdir():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
            name = f"state-{uuid.uuid4().hex[:12]}"
            os.replace(tmp, folder / name)
            cur = folder / f".CURRENT.{uuid.uuid4().hex}"
            cur.write_text(name, encoding="utf-8")
            with open(cur, "rb") as f:
                os.fsync(f.fileno())
            os.replace(cur, folder / "CURRENT")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in folder.iterdir():  # earlier states and leftovers of crashed saves
            if old.name != name and (old.name.startswith("state-") or old.name.startswith(".tmp-")):
                shutil.rmtree(old, ignore_errors=True)
        return folder / name

    @classmethod
    def load(cls, folder: Path, encoder, salt: str, locator=None, *, dim: int | None = None) -> "DuplicateDetector":
        """Open the state saved in ``folder``. ``FileNotFoundError`` when there is none;
        :class:`StateMismatch` when it was made with another encoder, salt or format; :class:`StateDamaged` when its
        files cannot be read as a state; ``PermissionError`` when they may not be read."""
        folder = Path(folder)
        cur = folder / "CURRENT"
        if not cur.is_file():
            raise FileNotFoundError(f"no duplicate-detection state in {folder}")
        try:
            return cls._read(folder, encoder, salt, locator, dim)
        except (StateMismatch, PermissionError):
            raise
        # what reading damaged files raises: a file missing or unreadable, not UTF-8 or not JSON (ValueError), a field
        # missing or of the wrong type, a faiss index that does not open (RuntimeError), a .npy file cut short
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError, EOFError) as e:
            raise StateDamaged(f"the duplicate-detection state in {folder} is damaged ({_damage(e)})") from e

    @classmethod
    def _read(cls, folder: Path, encoder, salt: str, locator, dim: int | None) -> "DuplicateDetector":
        state = folder / (folder / "CURRENT").read_text(encoding="utf-8").strip()
        meta = json.loads((state / "meta.json").read_text(encoding="utf-8"))
        if meta.get("version") != STATE_VERSION:
            raise StateMismatch(f"{state}: state format {meta.get('version')}, expected {STATE_VERSION} — rebuild it")
        det = cls(encoder, salt, DedupConfig.from_dict(meta["config"]), locator, dim=dim or meta["dim"])
        if meta["encoder"] != det.fingerprint:
            raise StateMismatch(f"{state}: built with encoder {meta['encoder']}, now {det.fingerprint} — rebuild it")
        if meta["salt_check"] != salt_check(salt):
            raise StateMismatch(f"{state}: built with another caller salt — rebuild it from the stored tickets")
        det.vectors = VectorIndex.read(state / "vectors.faiss", meta["vectors"])
        r = det.records
        with open(state / "records.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                r.ids.append(d["id"]), r.ts.append(d["ts"]), r.caller.append(d["caller"]), r.owner.append(d["owner"])
                r.cummax.append(max(d["ts"], r.cummax[-1]) if r.cummax else d["ts"])
                r.locality.append(d["locality"]), r.places.append(frozenset(d["places"])), r.title.append(d["title"])
                r.dup.append(d["dup"]), r.cluster.append(d["cluster"]), r.kind.append(d["kind"]), r.score.append(d["score"])
        if len(r) != meta["count"] or det.vectors.ntotal != len(r):
            raise StateMismatch(f"{state}: {len(r)} records and {det.vectors.ntotal} vectors, meta says {meta['count']} — rebuild it")
        det.by_id = {tid: i for i, tid in enumerate(r.ids)}
        det._expired_upto = meta["expired_upto"]
        det._latest = meta["latest"] if meta["latest"] is not None else float("-inf")
        ids = np.load(state / "window_ids.npy")
        mhs = np.load(state / "window_minhash.npy")
        for i, mh in zip(ids.tolist(), mhs):
            det.window_mh[int(i)] = mh.astype(np.uint32)
            det.lsh.insert(str(int(i)), _sig(det.window_mh[int(i)]), check_duplication=False)
        sig_ids = np.load(state / "window_sig_ids.npy")
        offs, sigs = np.load(state / "window_sig_offsets.npy"), np.load(state / "window_sig.npy")
        for n, i in enumerate(sig_ids.tolist()):
            det.window_sig[int(i)] = sigs[offs[n] : offs[n + 1]].astype(np.uint32)
        det._caller_expired_upto = meta["caller_expired_upto"]
        for i in range(det._caller_expired_upto, len(r)):
            if r.caller[i]:
                det.window_callers[r.caller[i]].append(i)
        return det

    # ---------------------------------------------------------------------------------------- helpers

    def cluster_members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for i, c in enumerate(self.records.cluster):
            out[c].append(i)
        return out
