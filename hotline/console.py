"""How every ``hotline`` command stops on a user's mistake: one line on stderr saying what to fix, exit != 0."""
from __future__ import annotations

import typer


def fail(message: str, code: int = 1) -> None:
    """One line on stderr saying what to fix, then a non-zero exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def fail_lists(error, folder) -> None:
    """The lists at ``folder`` do not validate (``responsibility_lists.loader.ListsInvalid``): each problem (file:line and
    what to fix) on stderr, then the one ``error:`` line and exit 1 — not a traceback from whichever command loaded them."""
    for p in error.problems:
        typer.echo(str(p), err=True)
    fail(f"{len(error.problems)} problem(s) in the responsibility lists at {folder} — fix them and run "
         "`hotline lists validate`")


def check_year(when, option: str, given: str) -> None:
    """A window's end (``--at``, ``--until``) within 1970–2200: the window before it must stay in the calendar (year 1
    minus 30 days overflowed, after the work was done)."""
    if not 1970 <= when.year <= 2200:
        fail(f"{option} {given!r}: give a date between 1970 and 2200")


def check_output(path, option: str, *, inputs=(), folder: bool = False):
    """Stop before any work when ``path`` (given as ``option``) cannot be written: a directory where a file is meant
    (``folder``: a file where a folder is), a folder above it that is a file, or one of the ``inputs`` (it would be
    overwritten while read). Missing folders are fine: the writer makes them once there is something to write (a
    command that stops leaves nothing behind). Returns ``path``; None passes."""
    from pathlib import Path

    if path is None:
        return None
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        fail(f"{option} {p}: is a file; give a folder to write into")
    if not folder and p.is_dir():
        fail(f"{option} {p}: is a folder; give a file name inside it")
    above = p if folder else p.parent
    blocked = next((a for a in (above, *above.parents) if a.exists() and not a.is_dir()), None)
    if blocked is not None:
        fail(f"{option} {p}: {blocked} is a file, not a folder")
    for i in inputs:
        if i is not None and p.exists() and Path(i).exists() and p.resolve() == Path(i).resolve():
            fail(f"{option} {p}: is the input file too; write the output to another file")
    return path
