"""API load test from a second process on loopback (``hotline bench-api``).

Starts the real server (``hotline serve`` → uvicorn) as a subprocess on a free port with a temporary data dir
and SQLite database — or, with ``database_url``, on PostgreSQL in a scratch schema dropped at the end —
creates a dispatcher key through the CLI (``hotline keys create``), then runs ``clients`` concurrent closed-loop
clients (httpx, async) for ``seconds`` seconds, each sending ``POST /api/v1/route`` or ``POST /api/v1/tickets``
(share ``tickets_share``) with varied synthetic Chinese tickets (training/synthetic.py: caller, call-taker and
online-message voices, addresses from the gazetteer, callers' phone numbers, some repeat complaints).

Counts: requests/s, latency p50/p90/p99/max (overall and per endpoint), status counts; an error is any non-2xx
answer or a request that got no answer (reported as ``exc:<Type>``). After the run the server is stopped
cleanly (SIGINT → uvicorn's graceful shutdown; killed only if it hangs — that counts as an error too) and the
store is checked: every ticket answered 201 must be in the database. The server is stopped on Ctrl-C and SIGTERM
too, and the temporary data dir (or the PostgreSQL scratch schema) removed.
"""
from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROUTE, TICKETS = "/api/v1/route", "/api/v1/tickets"


def synthetic_tickets(lists_dir: Path | None = None, n: int = 400, seed: int = 8) -> list[dict]:
    """Request bodies: synthetic tickets (content, title, address, caller) — never the real data."""
    from responsibility_lists.loader import DEFAULT_DIR, load_lists
    from training.synthetic import generate

    out = []
    for rec in generate(load_lists(lists_dir or DEFAULT_DIR), n=n, seed=seed):
        body = {"content": rec["content"], "address": rec["address"], "caller": rec["caller"], "channel": "12345热线"}
        if rec.get("title"):
            body["title"] = rec["title"]
        out.append(body)
    return out


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hotline.cli", *args]


@contextmanager
def scratch_pg_schema(url: str):
    """A fresh schema in the given PostgreSQL database for the run (dropped afterwards): the URL to use."""
    from sqlalchemy.engine import make_url

    from serving.store.db import make_engine, normalise_url

    schema = f"loadtest_{uuid.uuid4().hex[:10]}"
    eng = make_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    u = make_url(normalise_url(url))
    u = u.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield u.render_as_string(hide_password=False)
    finally:
        with eng.begin() as c:
            c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        eng.dispose()


@dataclass
class Server:
    """``hotline serve`` in its own process group (so a terminal's Ctrl-C reaches only us; we stop it)."""
    host: str
    port: int
    env: dict
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(_cli("serve", "--host", self.host, "--port", str(self.port)), env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()

    def wait_ready(self, timeout: float) -> dict:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode} before it was ready:\n{self.log_tail()}")
            try:
                r = httpx.get(self.url + "/healthz", timeout=5)
                if r.status_code == 200 and r.json().get("status") == "ok":
                    return r.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the server was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGINT (uvicorn: finish in-flight requests, run the shutdown lifespan), then SIGKILL after ``grace``."""
        p = self.proc
        if p is None or p.poll() is not None:
            return None if p is None else p.returncode
        try:
            os.killpg(p.pid, signal.SIGINT)
            return p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            return p.wait()
        except ProcessLookupError:
            return p.wait()

    def log_tail(self, n: int = 40) -> str:
        """The last lines of the server's output, with API keys (the first-start admin key) blanked."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return "(no server log)"
        return "\n".join(re.sub(r"hk_[A-Za-z0-9_\-]+", "hk_***", line) for line in lines)


@dataclass
class Results:
    samples: list[tuple[str, object, float]] = field(default_factory=list)  # (endpoint, status|exc, seconds)
    created: int = 0

    def summary(self, elapsed: float) -> dict:
        lat = np.array([s[2] for s in self.samples]) * 1000 if self.samples else np.zeros(1)
        by_status: dict[str, int] = {}
        for _, st, _ in self.samples:
            by_status[str(st)] = by_status.get(str(st), 0) + 1
        errors = {k: v for k, v in by_status.items() if not (k.isdigit() and 200 <= int(k) < 300)}
        per = {}
        for ep in (ROUTE, TICKETS):
            x = np.array([s[2] for s in self.samples if s[0] == ep]) * 1000
            if len(x):
                per[ep] = {"requests": int(len(x)), "p50_ms": _r(np.percentile(x, 50)), "p99_ms": _r(np.percentile(x, 99))}
        return {
            "requests": len(self.samples), "seconds": round(elapsed, 1),
            "requests_per_s": round(len(self.samples) / elapsed, 2) if elapsed > 0 else 0.0,
            "p50_ms": _r(np.percentile(lat, 50)), "p90_ms": _r(np.percentile(lat, 90)),
            "p99_ms": _r(np.percentile(lat, 99)), "max_ms": _r(lat.max()),
            "status": dict(sorted(by_status.items())), "errors": sum(errors.values()), "errors_by_status": errors,
            "endpoints": per,
        }


def _r(x) -> float:
    return round(float(x), 1)


async def _drive(base: str, key: str, bodies: list[dict], clients: int, seconds: float, tickets_share: float,
                 seed: int, res: Results, timeout: float = 120.0) -> float:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=timeout) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker(w: int) -> None:
            rng = random.Random(seed * 1000 + w)
            i = 0
            while time.perf_counter() < deadline:
                body = dict(rng.choice(bodies))
                # every request a text never seen before: the encoder's query cache must not flatter the figures
                body["content"] = f"{body['content']}（第{w}-{i}次）"
                if body.get("title"):
                    body["title"] = f"{body['title']}（{w}-{i}）"
                ep = TICKETS if rng.random() < tickets_share else ROUTE
                if ep == TICKETS:
                    body["id"] = f"LT-{w:03d}-{i:06d}-{seed}"  # the centre's ticket number: unique
                i += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post(ep, json=body)
                    status: object = r.status_code
                except httpx.HTTPError as e:
                    status = f"exc:{type(e).__name__}"
                res.samples.append((ep, status, time.perf_counter() - t0))
                if ep == TICKETS and status == 201:
                    res.created += 1

        await asyncio.gather(*(worker(w) for w in range(clients)))
        return time.perf_counter() - start


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (e.g. make or CI stopping us) takes the same clean-up path as Ctrl-C."""
    def handler(_sig, _frm):
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_loadtest(clients: int = 20, seconds: float = 60.0, database_url: str | None = None, tickets_share: float = 0.5,
                 host: str = "127.0.0.1", ready_timeout: float = 600.0, seed: int = 8, keep: bool = False,
                 model_cache_dir: Path | None = None, say=print) -> dict:
    """Run the whole thing; returns the summary (``errors`` = non-2xx answers + requests without an answer, + any
    difference between the tickets answered 201 and those found in the database afterwards)."""
    from hotline.settings import get_settings

    settings = get_settings()
    tmp = Path(tempfile.mkdtemp(prefix="hotline-loadtest-"))
    server: Server | None = None
    with _sigterm_as_interrupt():
        try:
            with (scratch_pg_schema(database_url) if database_url else _nullctx(f"sqlite:///{tmp / 'loadtest.sqlite3'}")) as url:
                env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
                env.update({
                    "HOTLINE_DATA_DIR": str(tmp), "HOTLINE_DATABASE_URL": url,
                    # the converted encoder and the list index are reused, not rebuilt
                    "HOTLINE_MODEL_CACHE_DIR": str(Path(model_cache_dir or settings.model_cache_dir).resolve()),
                    "HOTLINE_LISTS_DIR": str(Path(settings.lists_dir).resolve()),
                    "HOTLINE_ENCODER": settings.encoder, "HOTLINE_ENCODER_DTYPE": settings.encoder_dtype,
                    "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
                })
                # the model the settings name (default: the promoted version, else the zero-shot router)
                if settings.model_version is not None:
                    env["HOTLINE_MODEL_VERSION"] = settings.model_version
                if settings.model_versions_dir is not None:
                    env["HOTLINE_MODEL_VERSIONS_DIR"] = str(Path(settings.model_versions_dir).resolve())
                if settings.torch_threads:
                    env["HOTLINE_TORCH_THREADS"] = str(settings.torch_threads)
                bodies = synthetic_tickets(settings.lists_dir, seed=seed)
                say(f"{len(bodies)} synthetic tickets (mean {np.mean([len(b['content']) for b in bodies]):.0f} chars); "
                    f"store {'PostgreSQL (scratch schema)' if database_url else 'SQLite'} in {tmp}")
                # the key through the CLI (this also creates and migrates the database)
                k = subprocess.run(_cli("keys", "create", "--role", "dispatcher", "--name", "loadtest"), env=env,
                                   capture_output=True, text=True, timeout=300, cwd=os.getcwd())
                if k.returncode != 0:
                    raise RuntimeError(f"`hotline keys create` failed ({k.returncode}): {k.stderr.strip()[-2000:]}")
                key = k.stdout.strip().splitlines()[-1].strip()
                server = Server(host, free_port(host), env, tmp / "server.log")
                server.start()
                say(f"server pid {server.proc.pid} on {server.url}; waiting for the router to load ...")
                t0 = time.perf_counter()
                health = server.wait_ready(ready_timeout)
                say(f"ready in {time.perf_counter() - t0:.1f} s ({health.get('database')}, {health.get('model_version')}, "
                    f"{health.get('encoder')}); "
                    f"{clients} clients for {seconds:g} s, {tickets_share:.0%} POST /tickets")
                warm_created = _warm_up(server.url, key, bodies)
                res = Results()
                elapsed = asyncio.run(_drive(server.url, key, bodies, clients, seconds, tickets_share, seed, res))
                out = res.summary(elapsed)
                out.update(clients=clients, database="postgresql" if database_url else "sqlite",
                           model_version=health.get("model_version"),
                           tickets_created=res.created, cpus=os.cpu_count(), load_avg_1m=round(os.getloadavg()[0], 2))
                out["server_exit"] = server.stop()
                out["tickets_stored"] = _stored_tickets(url) - warm_created
                if out["server_exit"] != 0:  # killed after the grace period, or a failing shutdown
                    out["errors"] += 1
                    out["errors_by_status"]["server_exit"] = out["server_exit"]
                if out["tickets_stored"] != res.created:
                    out["errors"] += abs(out["tickets_stored"] - res.created)
                    out["errors_by_status"]["lost_or_extra_tickets"] = out["tickets_stored"] - res.created
                if out["errors"]:
                    out["server_log_tail"] = server.log_tail(30)
                return out
        finally:
            if server is not None:
                server.stop()
            if keep:
                say(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)


def _warm_up(base: str, key: str, bodies: list[dict]) -> int:
    """One request of each kind before the clock starts (first-call costs); any non-2xx here stops the run."""
    import httpx

    h = {"Authorization": f"Bearer {key}"}
    for ep, body in ((ROUTE, bodies[0]), (TICKETS, {**bodies[1], "id": "LT-warm-up"})):
        r = httpx.post(base + ep, json=body, headers=h, timeout=300)
        if not 200 <= r.status_code < 300:
            raise RuntimeError(f"warm-up POST {ep} answered {r.status_code}: {r.text[:500]}")
    return 1


@contextmanager
def _nullctx(value):
    yield value


def _stored_tickets(url: str) -> int:
    from serving.store import Store

    st = Store.from_url(url, phone_salt=b"count-only")
    try:
        return sum(st.count_by_status().values())
    finally:
        st.dispose()
