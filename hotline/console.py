"""How every ``hotline`` command stops on a user's mistake: one line on stderr saying what to fix, exit != 0 — and
the loaders the commands share (the lists, the router, a tickets file), which stop that way instead of a traceback."""
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


def lists_or_fail(folder=None):
    """The responsibility lists at ``folder`` (default: HOTLINE_LISTS_DIR); lists that do not validate stop with their
    problems and one line (:func:`fail_lists`)."""
    from hotline.settings import get_settings
    from responsibility_lists.loader import ListsInvalid, load_lists

    folder = folder or get_settings().lists_dir
    try:
        return load_lists(folder)
    except ListsInvalid as e:
        fail_lists(e, folder)


FROM_SETTINGS = object()


def router_or_fail(model_version=FROM_SETTINGS, hint: str = ""):
    """The router of the settings; ``model_version`` overrides HOTLINE_MODEL_VERSION (``none``: the lists alone). Lists
    that do not validate, or an encoder or version that cannot be loaded, stop with one line (``hint`` appended)."""
    from hotline.settings import get_settings
    from model.pipeline import build_router
    from responsibility_lists.loader import ListsInvalid

    s = get_settings()
    try:
        return build_router(
            s.lists_dir, encoder_source=s.encoder, model_cache_dir=s.model_cache_dir, index_dir=s.index_dir,
            max_seq_length=s.max_seq_length,
            model_version=s.model_version if model_version is FROM_SETTINGS else model_version, dtype=s.encoder_dtype,
            num_threads=s.torch_threads, versions_root=s.model_versions_dir,
            config=s.router_config(), fusion_overrides=s.fusion_overrides(),
        )
    except ListsInvalid as e:
        fail_lists(e, s.lists_dir)
    except (FileNotFoundError, ValueError, OSError) as e:
        fail(f"{e}{hint}")


def load_tickets_or_fail(path, reader, what: str):
    """Read tickets (JSONL, CSV or Excel) with ``reader``; report each bad line on stderr as ``file:line: problem``; stop
    with one line when the file is missing, unreadable as a whole, or has no usable line."""
    if not path.is_file():
        fail(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'} — give {what}")
    try:
        tickets, problems = reader(path)
    except ValueError as e:  # a CSV without a content column, or in neither UTF-8 nor GBK
        fail(" ".join(str(e).split()))
    said = {p.split(": ", 1)[-1] for p in problems}  # "<line>: <problem>"
    if not tickets and len(problems) > 1 and len(said) == 1:  # a column the file lacks: once, not once a row
        fail(f"{path}: every line ({len(problems)}) has this problem: {said.pop()}")
    for p in problems:
        typer.echo(f"{path}:{p}", err=True)
    if not tickets:
        fail(f"{path}: no usable ticket lines ({len(problems)} bad line(s))")
    return tickets, problems
