"""``hotline keys …`` and ``hotline export decisions``: the serving side's commands (issue 7).

Wired by ``cmd_serving.register(app)`` in hotline/cli.py.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from hotline.console import check_output, check_year, fail as _fail, lists_or_fail
from hotline.settings import get_settings

ROLES = ("dispatcher", "arbitrator", "admin")
EXPORT_COLUMNS = ["id", "text", "lead", "co", "created_at", "source", "title", "content"]


def _store():
    from sqlalchemy.exc import SQLAlchemyError

    from serving.bootstrap import open_store

    s = get_settings()
    try:
        return open_store(s)
    except OSError as e:  # HOTLINE_DATA_DIR is a file, or not writable
        why = "it is a file, not a folder" if Path(s.data_dir).is_file() else (e.strerror or str(e))
        _fail(f"cannot use the data folder {s.data_dir}: {why} — check HOTLINE_DATA_DIR")
    except SQLAlchemyError as e:
        _fail(f"cannot open the database {s.resolved_database_url.split('@')[-1]}: {str(e).splitlines()[0]} "
              "— check HOTLINE_DATABASE_URL")


def keys_create(
    role: Annotated[str, typer.Option("--role", help="dispatcher | arbitrator | admin")],
    name: Annotated[Optional[str], typer.Option("--name", help="who holds it (shown as the actor in history)")] = None,
) -> None:
    """Create an API key; the key is printed once, alone on the last line. Only its hash is stored."""
    if role not in ROLES:
        _fail(f"--role must be one of {', '.join(ROLES)}, not '{role}'")
    if name is not None and not (1 <= len(name.strip()) <= 100):
        _fail("--name must be 1-100 characters")
    store = _store()
    try:
        info, token = store.create_key(role, (name or role).strip())
    finally:
        store.dispose()
    typer.echo(f"created {role} key #{info.id} '{info.name}' (prefix {info.prefix}); it is shown only now:")
    typer.echo(token)


def keys_list() -> None:
    """Keys with id, prefix, role, name, created and revoked times (never the keys themselves)."""
    store = _store()
    try:
        keys = store.list_keys()
    finally:
        store.dispose()
    typer.echo(f"{'id':>4}  {'prefix':10}  {'role':10}  {'created':20}  {'revoked':20}  name")
    for k in keys:
        typer.echo(f"{k.id:>4}  {k.prefix:10}  {k.role:10}  {k.created_at:%Y-%m-%d %H:%M:%S}   "
                   f"{(f'{k.revoked_at:%Y-%m-%d %H:%M:%S}' if k.revoked_at else '-'):20}  {k.name}")


def keys_revoke(key: Annotated[str, typer.Argument(help="key id or prefix (from `hotline keys list`)")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from serving.store import NotFound

    store = _store()
    try:
        info = store.revoke_key(key)
    except NotFound as e:
        _fail(e.message)
    finally:
        store.dispose()
    typer.echo(f"revoked key #{info.id} ({info.prefix}, {info.role}, '{info.name}')")


def write_training_rows(rows, out: Path) -> int:
    """CSV (utf-8 with BOM-less header) or JSONL by the file's suffix; columns EXPORT_COLUMNS."""
    n = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        if out.suffix.lower() == ".jsonl":
            for r in rows:
                f.write(json.dumps({c: r[c] for c in EXPORT_COLUMNS}, ensure_ascii=False) + "\n")
                n += 1
        else:
            w = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({c: r[c] for c in EXPORT_COLUMNS})
                n += 1
    tmp.replace(out)
    return n


def export_decisions(
    out: Annotated[Path, typer.Option("--out", help="FILE.csv or FILE.jsonl")],
) -> None:
    """Arbitration decisions and dispatcher overrides as training data (columns text, lead, co, created_at):
    `hotline train --data FILE --text-cols text --label-col lead --co-col co --time-col created_at --labels roster`."""
    if out.suffix.lower() not in (".csv", ".jsonl"):
        _fail(f"{out}: give a .csv or .jsonl file name")
    check_output(out, "--out")
    store = _store()
    try:
        n = write_training_rows(store.training_rows(), out)
    except OSError as e:  # a place no file can be made (a read-only disk, /proc): the store is untouched
        out.with_name(out.name + ".tmp").unlink(missing_ok=True)
        _fail(f"--out {out}: cannot write it ({e.strerror or e}) — give a file in a folder you can write to")
    finally:
        store.dispose()
    typer.echo(f"wrote {n} labelled ticket(s) (decisions and dispatcher overrides) to {out}")


def stats(
    days: Annotated[int, typer.Option(min=1, max=3660, help="tickets received in this many days up to --until")] = 30,
    until: Annotated[Optional[str], typer.Option(help="end of the period, YYYY-MM-DD (UTC midnight; default now)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object instead of the table")] = False,
) -> None:
    """How the suggestions fared in service: against the owners dispatchers and the arbitration group settled,
    lead top-1/top-3, flagged and unflagged accuracy, auto-dispatch precision, returns, and the arbitration group's
    load, for all tickets and per model version (the same figures as GET /api/v1/stats/routing)."""
    from datetime import datetime, timedelta, timezone

    from serving.outcomes import outcomes, table
    from serving.store.models import utcnow

    if until is None:
        end = utcnow()
    else:
        try:
            end = datetime.strptime(until.strip(), "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            _fail(f"--until {until!r}: give a date as YYYY-MM-DD, e.g. 2026-12-01")
        check_year(end, "--until", until)
    since = end - timedelta(days=days)
    group = lists_or_fail().group
    store = _store()
    try:
        report = outcomes(store.outcome_rows(since, end), since, end, group=group)
    finally:
        store.dispose()
    if json_out:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    typer.echo(f"tickets received {since:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC")
    for line in table(report):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
    keys_app.command("create")(keys_create)
    keys_app.command("list")(keys_list)
    keys_app.command("revoke")(keys_revoke)
    export_app = typer.Typer(help="Export stored data.", no_args_is_help=True)
    export_app.command("decisions")(export_decisions)
    app.add_typer(keys_app, name="keys")
    app.add_typer(export_app, name="export")
    app.command("stats")(stats)


def print_first_start(host: Optional[str] = None, port: Optional[int] = None) -> None:
    """For `hotline serve`, before uvicorn.run: print the URL and, when no active admin key exists (first start),
    create one and print it once, alone on the last line."""
    from serving.bootstrap import ensure_admin_key

    s = get_settings()
    token = ensure_admin_key(s)
    typer.echo(f"hotline-dispatch: http://{host or s.host}:{port or s.port}/  (workbench /workbench, API docs /docs)")
    if token:
        typer.echo("first start: created an admin key — it is shown only now; create dispatcher/arbitrator keys "
                   "with `hotline keys create --role dispatcher`:")
        typer.echo(token)
