"""Reading what a centre exports: tickets from JSONL (bad lines are reported with their line number and skipped,
never lost), and CSV text as spreadsheets save it (UTF-8 or GBK)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from .suggestion import Ticket


TEXT_ENCODINGS = ("utf-8-sig", "gb18030")  # Excel on a Chinese Windows saves CSV as GBK, a subset of GB18030


class UnreadableText(ValueError):
    """A file that is neither UTF-8 nor GB18030 text; the message names the file and what to do."""


def read_text(path: Path) -> str:
    """A CSV or other text file as a centre's tools save it: UTF-8 (with or without a BOM), else GB18030/GBK.
    :class:`UnreadableText` when it is neither."""
    raw = Path(path).read_bytes()
    for enc in TEXT_ENCODINGS:
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise UnreadableText(f"{path}: neither UTF-8 nor GBK/GB18030 text — save the file as UTF-8")


def read_tickets_jsonl(path: Path, check: Callable[[Ticket, int], str | None] | None = None) -> tuple[list[Ticket], list[str]]:
    """Valid tickets, and one message per bad line: ``"<line>: <what is wrong>"``.

    ``check(ticket, line)`` may add a caller's own rule: it returns what is wrong, or None."""
    tickets: list[Ticket] = []
    problems: list[str] = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:  # utf-8-sig: Notepad and Excel begin a UTF-8 file with a BOM, which is not JSON
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8").strip()
            except UnicodeDecodeError:
                problems.append(f"{n}: not UTF-8 text — save the file as UTF-8")
                continue
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"{n}: not valid JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"{n}: expected a JSON object with at least 'content'")
                continue
            try:
                ticket = Ticket.model_validate(obj)
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(str(x) for x in err["loc"]) or "line"
                problems.append(f"{n}: field '{field}': {err['msg']}")
                continue
            wrong = check(ticket, n) if check else None
            if wrong:
                problems.append(f"{n}: {wrong}")
            else:
                tickets.append(ticket)
    return tickets, problems
