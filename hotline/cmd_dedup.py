"""``hotline dedup`` / ``hotline hot`` / ``hotline eval-dedup`` / ``hotline bench-dedup``: duplicate and
repeat complaints (重复诉求) and hot issues (热点). Registered on the main app by ``register(app)``."""
from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hotline.console import check_output, check_year, lists_or_fail, load_tickets_or_fail, router_or_fail
from hotline.console import fail as _fail
from hotline.settings import get_settings


#: a file of at least this many tickets gets a line on stderr before its embedding (a minute or more of silence otherwise)
ANNOUNCE_AT = 500


def caller_salt(settings) -> str:
    """The one caller salt shared with the ticket store: HOTLINE_PHONE_SALT, else the random one kept (0600)
    in ``data_dir/phone_salt`` (created here if the store has not yet), so caller keys equal stored hashes."""
    if settings.phone_salt:
        return settings.phone_salt
    path = Path(settings.data_dir) / "phone_salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # created meanwhile by another process
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return path.read_text().strip()


def dedup_config(settings, window_days: float | None = None):
    """The served configuration (settings), with the main window replaced when ``window_days`` is given."""
    from dataclasses import replace

    from serving.dedup import dedup_config as served

    cfg = served(settings)
    return replace(cfg, window_days=window_days) if window_days else cfg


def _encoder(settings):
    from model.encoder import load_encoder

    try:
        return load_encoder(settings.encoder, cache_dir=settings.model_cache_dir, max_seq_length=settings.dedup_max_seq_length,
                            dtype=settings.encoder_dtype, num_threads=settings.torch_threads)
    except (FileNotFoundError, OSError, ValueError) as e:
        _fail(f"cannot load the encoder '{settings.encoder}': {e}")


def _locator(settings):
    from model.locality import Locator

    return Locator(lists_or_fail(settings.lists_dir).gazetteer)


def read_dedup_jsonl(path: Path):
    """Tickets that dedup can use, and one ``"<line>: <problem>"`` per unusable line (bad JSON, invalid
    ticket, no id, unreadable created_at, id repeated)."""
    from model.duplicates import parse_time
    from model.io import read_tickets

    seen: dict[str, int] = {}

    def check(t, n: int) -> str | None:
        if not t.id:
            return "field 'id' is missing: results refer to tickets by id"
        try:
            parse_time(t.created_at)
        except ValueError as e:
            return f"field 'created_at': {e}"
        if t.id in seen:
            return f"id '{t.id}' already on line {seen[t.id]}"
        seen[t.id] = n
        return None

    tickets, problems = read_tickets(path, check)
    return tickets, problems


def ticket_owners(settings, tickets, given: dict[str, str] | None = None, route: bool = True,
                  cache_dir: Path | None = None) -> list[str | None]:
    """Each ticket's owner for the duplicate detector's owner window: the lead given for it (a roster code,
    department name or another name of the lists' names.yaml; a street office or town counts as ``locality``), else the lead the lists alone name
    (``route``: the suggestion's ``lists_lead``, as the service takes it for a ticket not yet dispatched; only a
    lists edit moves it, not a retrain, so the lists-only router is built; cached under ``cache_dir`` when given),
    else None."""
    from model.duplicates.file_cache import routed_owners
    from training.data import label_aliases, map_label

    given = given or {}
    router = None
    if route and any(not given.get(t.id) for t in tickets):
        router = router_or_fail("none", hint=" — the router gives each ticket its owner (or pass --owners input)")
    lists = router.lists if router is not None else lists_or_fail(settings.lists_dir)
    aliases = label_aliases(lists)
    owners: dict[str, str | None] = {t.id: map_label(aliases, given[t.id].strip())
                                     for t in tickets if given.get(t.id)}
    todo = [t for t in tickets if t.id not in owners]
    if router is not None and todo:
        from tqdm import tqdm

        # minutes for thousands of tickets on a first run (a cached run shows nothing: the bar waits 2 s)
        with tqdm(total=len(todo), unit="ticket", desc="owners: routing each ticket (once; cached)", file=sys.stderr,
                  delay=2) as bar:
            routed = routed_owners(router, todo, cache_dir, dtype=settings.encoder_dtype, on_batch=bar.update)
        owners.update(zip((t.id for t in todo), routed))
    return [owners.get(t.id) for t in tickets]


def given_leads(path: Path) -> dict[str, str]:
    """``id -> lead`` for the lines or rows that carry a ``lead`` (e.g. the department that handled an exported
    ticket)."""
    from model.io import ticket_records

    return {str(d["id"]): d["lead"] for _, d, _ in ticket_records(path)
            if d is not None and d.get("id") is not None and isinstance(d.get("lead"), str) and d["lead"].strip()}


def load_state_or_fail(state: Path, encoder, salt: str, locator):
    """The detector saved in ``state``, or one line saying what to do when the folder holds a state made otherwise
    (:class:`StateMismatch`) or a damaged one (``CURRENT`` naming a missing folder, a bad ``meta.json``, records cut
    short…). Nothing in the folder is changed."""
    from model.duplicates import DuplicateDetector, StateDamaged, StateMismatch

    try:
        return DuplicateDetector.load(state, encoder, salt, locator)
    except StateMismatch as e:
        _fail(" ".join(str(e).split()))
    except PermissionError as e:
        _fail(f"cannot read the duplicate-detection state in {state} ({e.filename or state}: {e.strerror or e}): check "
              "the folder's permissions")
    except StateDamaged as e:
        _fail(f"{' '.join(str(e).split())}: remove the folder to start afresh, or point --state elsewhere")


def _detector(settings, state: Optional[Path], window_days: float | None = None):
    from model.duplicates import DuplicateDetector

    enc, loc, salt = _encoder(settings), _locator(settings), caller_salt(settings)
    if state is not None and (state / "CURRENT").exists():  # a CURRENT that is not a file is damage too
        return load_state_or_fail(state, enc, salt, loc)
    return DuplicateDetector(enc, salt, dedup_config(settings, window_days), loc)


def _run(input: Path, state: Optional[Path], window_days: float | None = None, owners: str = "route",
         cache_vectors: bool = False, until: float | None = None):
    """The detector after the file's tickets, in created_at order; ``until`` (a timestamp): only those reported by
    then — a past window's clusters as they stood at its end, not joined through tickets that came later."""
    from model.times import read_datetime

    tickets, problems = load_tickets_or_fail(input, read_dedup_jsonl,
                                           "a JSONL, CSV or Excel file with id, content, created_at (+ caller, address, title, lead)")
    settings = get_settings()
    det = _detector(settings, state, window_days)
    # routed owners are cached by the lists and the tickets: trying hot windows (--at, --days) on one file routes it once
    own = None if owners == "none" else ticket_owners(settings, tickets, given_leads(input), route=owners == "route",
                                                      cache_dir=Path(settings.model_cache_dir) / "owners")
    vectors = None
    if cache_vectors and state is None:  # `hot` tried on one file with other windows embeds it once (as eval-dedup)
        from model.duplicates.file_cache import embed_cached

        cache = Path(settings.model_cache_dir) / "dedup-vectors"
        vectors = embed_cached(det.encoder, tickets, cache, on_miss=lambda n: typer.echo(
            f"embedding {n} tickets for duplicate detection (once: cached under {cache})…", err=True))
    if until is not None:  # after the cache (keyed by the whole file): a ticket without a readable time stays, to be refused
        keep = [i for i, t in enumerate(tickets)
                if (when := read_datetime(t.created_at)) is None or when.timestamp() <= until]
        tickets = [tickets[i] for i in keep]
        own = None if own is None else [own[i] for i in keep]
        vectors = None if vectors is None else vectors[keep]
    if vectors is None and len(tickets) >= ANNOUNCE_AT:
        typer.echo(f"embedding and linking {len(tickets)} tickets…", err=True)
    results = det.process_many(tickets, vectors=vectors, owners=own)
    if state is not None:
        try:
            det.save(state)  # atomic: a failed save leaves the state saved before as it was
        except OSError as e:
            _fail(f"could not save the duplicate-detection state into {state}: {e.strerror or e} — the state saved "
                  "before is kept; free some space or check the folder's permissions, then run again")
    return det, results, problems


def _check_owners(owners: str, allowed=("route", "input", "none")) -> None:
    if owners not in allowed:
        _fail(f"--owners must be one of {', '.join(allowed)}, not {owners!r}")


def register(app: typer.Typer) -> None:
    @app.command("dedup")
    def dedup(
        input: Annotated[Path, typer.Option("--input", help="tickets as JSONL, or a CSV or Excel sheet (.xlsx/.xls) with one column per field: id, content, created_at (+ caller, address, title, lead)")],
        output: Annotated[Optional[Path], typer.Option("--output", help="JSONL results (default: stdout)")] = None,
        state: Annotated[Optional[Path], typer.Option("--state", help="Load the duplicate index from this folder, add the tickets, save it back")] = None,
        persist: Annotated[bool, typer.Option("--persist", help="Same with the configured folder (HOTLINE_DEDUP_STATE_DIR, default data_dir/dedup)")] = False,
        window_days: Annotated[Optional[float], typer.Option("--window-days", min=0.01, max=366, help="default HOTLINE_DEDUP_WINDOW_DAYS")] = None,
        owners: Annotated[str, typer.Option("--owners", help="each ticket's lead department, for linking other callers' reports "
                                            "beyond the window (HOTLINE_DEDUP_OWNER_WINDOW_DAYS): route = the input's `lead`, else the "
                                            "lead the responsibility lists name; input = the input's `lead` only; none = not used")] = "route",
    ) -> None:
        """Link each ticket to an earlier one about the same problem (in created_at order): one line per
        ticket with id, duplicate_of, cluster, kind (repeat / same_event / null), score, places (the place names
        shared with duplicate_of)."""
        _check_owners(owners)
        state_option = "--state"
        if persist and state is None:
            s = get_settings()
            state = s.dedup_state_dir or Path(s.data_dir) / "dedup"
            state_option = "--persist (HOTLINE_DEDUP_STATE_DIR)"
        check_output(output, "--output", inputs=(input,))  # before any work: the state is saved before the output is written
        check_output(state, state_option, folder=True)
        det, results, problems = _run(input, state, window_days, owners)
        try:
            if output:
                output.parent.mkdir(parents=True, exist_ok=True)
            out = open(output, "w", encoding="utf-8") if output else sys.stdout
        except OSError as e:
            _fail(f"--output {output}: cannot write it ({e.strerror or e})")
        try:
            for r in sorted(results, key=lambda r: det.by_id[r.id]):
                out.write(json.dumps(det.result(det.by_id[r.id], with_places=True).as_dict(), ensure_ascii=False) + "\n")
        finally:
            if output:
                out.close()
        linked = sum(r.duplicate_of is not None for r in results)
        typer.echo(f"{len(results)} tickets, {linked} linked to an earlier one; skipped {len(problems)} bad line(s)", err=True)
        given = {r.id for r in results}
        moved = sorted({det.records.ids[i] for i in det.relabelled} - given, key=det.by_id.get)
        if moved:  # tickets of an earlier run (--state) whose cluster these joined to another: their lines there are stale
            rec = det.records
            joined = ", ".join(f"{t} → {rec.ids[rec.cluster[det.by_id[t]]]}" for t in moved[:10])
            typer.echo(f"{len(moved)} earlier ticket(s) moved to the cluster they were joined to: {joined}"
                       f"{' …' if len(moved) > 10 else ''}", err=True)

    @app.command("hot")
    def hot(
        input: Annotated[Path, typer.Option("--input", help="tickets as JSONL, or a CSV or Excel sheet (.xlsx/.xls) with one column per field: id, content, created_at (+ caller, address, title, lead)")],
        json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
        days: Annotated[Optional[float], typer.Option("--days", min=0.01, max=366, help="default HOTLINE_HOT_WINDOW_DAYS")] = None,
        min_count: Annotated[Optional[int], typer.Option("--min-count", min=2, help="default HOTLINE_HOT_MIN_COUNT")] = None,
        at: Annotated[Optional[str], typer.Option("--at", help="the window's end, e.g. 2019-08-01 or 2019-08-01 18:00 "
                                                  "(default: the newest ticket's time)")] = None,
        state: Annotated[Optional[Path], typer.Option("--state", help="Duplicate index folder (load, add, save)")] = None,
        owners: Annotated[str, typer.Option("--owners", help="as for `hotline dedup`: route (the default), input or none "
                                            "(none skips routing every ticket for its owner)")] = "route",
        top: Annotated[int, typer.Option("--top", min=1, max=1000, help="at most this many, largest first")] = 20,
    ) -> None:
        """Hot issues (热点): clusters with many tickets in the last days: title, count, callers, locality, trend."""
        from datetime import datetime, timedelta

        from model.duplicates import hot_issues
        from model.times import CST, read_datetime

        _check_owners(owners)
        check_output(state, "--state", folder=True)
        end = None
        if at is not None:
            when = read_datetime(at)
            if when is None:
                _fail(f"--at {at!r}: not a date — write e.g. 2019-08-01 or 2019-08-01 18:00")
            check_year(when, "--at", at)
            end = when.timestamp() + (86400 if len(at.strip()) <= 10 else 0)  # a bare date: the end of that day
        settings = get_settings()
        days, min_count = days or settings.hot_window_days, min_count or settings.hot_min_count
        det, _, _ = _run(input, state, owners=owners, cache_vectors=True, until=end)
        issues = hot_issues(det, window_days=days, min_count=min_count, at=end, top=top + 1)
        more = len(issues) > top
        issues = issues[:top]
        if json_out:
            typer.echo(json.dumps([h.as_dict() for h in issues], ensure_ascii=False))
            return
        stop = datetime.fromtimestamp(end if end is not None else max(det.records.ts, default=0.0), CST)
        # a window ending at midnight (--at a bare date) ends with that day: 2019-09-01 24:00, not 2019-09-02 00:00
        until = (f"{stop - timedelta(days=1):%Y-%m-%d} 24:00" if (stop.hour, stop.minute, stop.second) == (0, 0, 0)
                 else f"{stop:%Y-%m-%d %H:%M}")
        window = f"{(stop - timedelta(days=days)):%Y-%m-%d %H:%M} – {until}"
        if not issues:
            typer.echo(f"no cluster of {min_count}+ tickets in {window} ({days:g} days to "
                       f"{'--at' if end is not None else 'the newest ticket'}) — widen it with --days, lower --min-count, "
                       "or move it with --at")
            return
        typer.echo(f"热点 {window} ({days:g} days, {min_count}+ tickets):")
        arrows = {"new": "新", "again": "再", "up": "↑", "down": "↓", "steady": "→"}
        names = det.locator.locality_names if det.locator is not None else {}  # 柳溪镇, not its code
        for h in issues:
            place = names.get(h.locality, h.locality) if h.locality else "-"
            typer.echo(f"{h.count:4} 件 {h.callers:3} 人 ({arrows[h.trend]} prev {h.previous})  {place}  {h.title}  "
                       f"[cluster {h.cluster}, {h.first[:10]} – {h.last[:10]}]")
        if more:
            typer.echo(f"… more hot issues than these {top}: raise --top to see them")

    @app.command("eval-dedup")
    def eval_dedup(
        pairs: Annotated[Path, typer.Option(help="CSV a, b, same (留言编号 pairs judged same problem or not)")],
        messages: Annotated[Path, typer.Option(help="CSV 留言编号, 留言用户, 留言主题, 留言时间, 留言详情")],
        out: Annotated[Optional[Path], typer.Option(help="Write the report (with the misjudged pairs) as JSON here")] = None,
        window_days: Annotated[Optional[float], typer.Option("--window-days", min=0.01, max=3660)] = None,
        owners: Annotated[str, typer.Option("--owners", help="route = each message's owner is the lead the lists name "
                                            "(as `hotline dedup` does); none = no owners (the owner window unused)")] = "route",
    ) -> None:
        """Precision/recall of dedup clusters on judged pairs, beside a plain e5-cosine threshold."""
        from eval.duplicates import check_pairs, evaluate_dedup, read_messages, read_pairs

        _check_owners(owners, allowed=("route", "none"))
        for p in (pairs, messages):
            if not p.is_file():
                _fail(f"{p}: no such file")
        check_output(out, "--out", inputs=(pairs, messages))  # before any work
        settings = get_settings()
        try:
            judged = read_pairs(pairs)  # both files are checked before routing every message
            tickets = read_messages(messages)
            check_pairs(judged, tickets, messages)
            cache = Path(settings.model_cache_dir) / "dedup-eval"
            own = ticket_owners(settings, tickets, cache_dir=cache) if owners == "route" else None
            rep = evaluate_dedup(messages, pairs, _encoder(settings), config=dedup_config(settings, window_days),
                                 cache_dir=cache, locator=_locator(settings),
                                 tickets=tickets, owners=own, on_embed=lambda n: typer.echo(
                                     f"embedding {n} messages for duplicate detection (once: cached under {cache})…", err=True))
        except (KeyError, ValueError) as e:
            _fail(" ".join(str(e).split()))
        d, b = rep.dedup, rep.baseline_cosine
        typer.echo(f"dedup on {rep.n_pairs} pairs ({rep.positives} same), {rep.n_messages} messages, window {rep.config['window_days']} d: "
                   f"precision {d['precision']:.3f} recall {d['recall']:.3f} F1 {d['f1']:.3f}")
        typer.echo(f"e5 cosine baseline (best threshold {b.get('threshold')} tuned on these pairs): "
                   f"precision {b.get('precision', 0):.3f} recall {b.get('recall', 0):.3f} F1 {b.get('f1', 0):.3f}")
        typer.echo(f"kinds {rep.kinds}; {rep.clusters} clusters of 2+, largest {rep.largest_cluster}; {rep.seconds}s")
        if out:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(rep.as_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
            except OSError as e:
                _fail(f"--out {out}: cannot write the report ({e.strerror or e}); the figures are above")

    @app.command("bench-dedup")
    def bench_dedup_cmd(
        json_out: Annotated[bool, typer.Option("--json")] = False,
        sizes: Annotated[str, typer.Option(help="stored tickets, comma-separated")] = "10000,100000,1000000",
    ) -> None:
        """Duplicate lookup p50/p99 at 10k / 100k / 1M stored tickets (synthetic vectors)."""
        from eval.bench_dedup import bench_dedup, parse_sizes

        try:
            ns = parse_sizes(sizes)
        except ValueError as e:
            _fail(f"--sizes {sizes!r}: {e}")
        if not ns:
            _fail("--sizes: give at least one store size, e.g. 10000,100000")
        res = bench_dedup(ns)
        if json_out:
            typer.echo(json.dumps(res))
        else:
            for k, v in res.items():
                typer.echo(f"{k:26} {v}")
