"""Serving a newly promoted version, a re-tuned one and edited lists without a restart.

Every ``reload_seconds`` (``HOTLINE_RELOAD_SECONDS``, 30; 0 = never) a background thread of each serving process
looks at what it would serve if it started now: the version ``HOTLINE_MODEL_VERSION`` resolves to (the promoted one,
unless a version is pinned) with its ``fusion.json``, and the files of the lists folder. Looking is cheap (one small
JSON file and a ``stat`` of each list file). When something changed, a new router is built beside the serving one
(``model.pipeline.rebuild_router``: the same encoder, the list index rebuilt only when the lists' content changed),
its precedents are read, and it is swapped in whole: a suggestion being made meanwhile finishes on the old router,
the next one uses the new. If the new router cannot be built (invalid lists, a damaged version), the old one keeps
serving, the error is logged and shown by ``/healthz`` (``reload_error``), and it is not tried again until the files
change again.

A change is served only once it has settled: what is on disk is looked at again ``settle_seconds`` later (and a
``*.tmp`` file in the lists folder, as ``hotline lists import`` writes beside each file it replaces, means a write
is under way, unless it is a minute old: a crashed write's leftover), so an import that replaces several files is never served half-written; an unsettled change is
looked at again at the next check. When the lists change, the duplicate index locates new tickets with the new
gazetteer (stored tickets keep the places read when they were judged).

Not followed without a restart: the settings themselves (``HOTLINE_*``: the encoder, thresholds).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from model.fusion import FUSION_FILE
from model.versions import PROMOTED_FILE, serving_version, versions_dir
from serving import precedents

log = logging.getLogger("hotline.reload")
STALE_TMP_SECONDS = 60.0  # a *.tmp file in the lists folder older than this is a crashed write's leftover, not a write


def lists_fingerprint(lists_dir: Path) -> tuple:
    """(relative path, size, mtime) of every file under the lists folder: changes when any file is edited."""
    out = []
    root = Path(lists_dir)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


class Reloader:
    """Watches what the app should serve and swaps in a new router when it changes (see the module docstring)."""

    def __init__(self, app, settle_seconds: float = 0.5):
        self.app = app
        self.settle_seconds = settle_seconds  # a change must look the same this much later to be served
        self.settings = app.state.settings
        self.error: str | None = None  # why the last change could not be served (None: serving what is on disk)
        self.reloaded_at: str | None = None
        self._seen = self.watched()  # what the router being built (or passed in) at start-up serves
        self._failed: tuple | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def versions_root(self) -> Path:
        s = self.settings
        return Path(s.model_versions_dir) if s.model_versions_dir else versions_dir(s.model_cache_dir)

    def watched(self) -> tuple:
        """What would be served if the service started now, as a cheap fingerprint."""
        root = self.versions_root
        try:
            folder = serving_version(root, self.settings.model_version)
            version = (folder.name, _mtime(folder / FUSION_FILE)) if folder is not None else None
        except (FileNotFoundError, ValueError) as e:  # a pinned version removed, a damaged PROMOTED.json
            version = ("unresolved", str(e), _mtime(root / PROMOTED_FILE))
        return version, lists_fingerprint(self.settings.lists_dir)

    def check(self) -> bool:
        """Swap in a new router if what should be served changed; returns whether it did."""
        with self._lock:
            now = self.watched()
            if now == self._seen or now == self._failed or self.app.state.router is None:
                return False
            if not self._settled(now):
                log.info("the model or lists are being written; looking again at the next check")
                return False
            s, state = self.settings, self.app.state
            old = state.router
            try:
                from model.pipeline import rebuild_router

                new = rebuild_router(old, s.lists_dir, index_dir=s.index_dir, versions_root=self.versions_root,
                                     model_version=s.model_version, config=s.router_config(),
                                     fusion_overrides=s.fusion_overrides(), dtype=s.encoder_dtype,
                                     num_threads=s.torch_threads)
                svc = precedents.PrecedentService(s, state.store, new)
                svc.sync(True)
            except Exception as e:  # noqa: BLE001 - anything that stops the new router: keep serving the old one
                self._failed = now
                self.error = " ".join(f"{type(e).__name__}: {e}".split())[:500]
                log.warning("still serving %s: the changed model/lists could not be loaded: %s", old.model_version, self.error)
                self._count("failed")
                return False
            state.precedents = svc
            state.router = new
            dedup = getattr(state, "dedup", None)
            if dedup is not None and new.lists.version != old.lists.version:
                dedup.relocate(getattr(new, "locator", None))  # new tickets are located with the edited gazetteer
            self._seen, self._failed, self.error = now, None, None
            self.reloaded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            log.info("now serving %s (was %s)", new.model_version, old.model_version)
            self._count("ok")
            return True

    def _settled(self, now: tuple) -> bool:
        """Whether ``now`` is a finished state: no write under way in the lists folder, and the same a moment later."""
        now_s = time.time()
        for tmp in Path(self.settings.lists_dir).rglob("*.tmp"):  # a write under way (one left by a crash: ignored after a minute)
            if now_s - (_mtime(tmp) or 0) / 1e9 < STALE_TMP_SECONDS:
                return False
        if self.settle_seconds > 0:
            self._stop.wait(self.settle_seconds)
            return self.watched() == now
        return True

    def _count(self, outcome: str) -> None:
        metrics = getattr(self.app.state, "metrics", None)
        if metrics is not None:
            metrics.reloads.labels(outcome).inc()

    # ------------------------------------------------------------------------------------------------ the thread
    def start(self) -> None:
        every = self.settings.reload_seconds
        if every <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(every,), name="hotline-reload", daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive a bad moment (a file half-written)
                log.exception("checking for a promoted version or edited lists failed; trying again later")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
