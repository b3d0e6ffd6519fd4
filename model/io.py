"""Reading tickets from JSONL: bad lines are reported with their line number and skipped, never lost."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from .suggestion import Ticket


def read_tickets_jsonl(path: Path, check: Callable[[Ticket, int], str | None] | None = None) -> tuple[list[Ticket], list[str]]:
    """Valid tickets, and one message per bad line: ``"<line>: <what is wrong>"``.

    ``check(ticket, line)`` may add a caller's own rule: it returns what is wrong, or None."""
    tickets: list[Ticket] = []
    problems: list[str] = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").strip()
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
