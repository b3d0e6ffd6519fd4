"""Reading what a centre exports: tickets from JSONL or CSV (bad lines are reported with their line number and
skipped, never lost), and CSV text as spreadsheets save it (UTF-8 or GBK)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Callable, Iterator

from pydantic import ValidationError

from .suggestion import Ticket


TEXT_ENCODINGS = ("utf-8-sig", "gb18030")  # Excel on a Chinese Windows saves CSV as GBK, a subset of GB18030


class UnreadableText(ValueError):
    """A file that is neither UTF-8 nor GB18030 text; the message names the file and what to do."""


class MalformedCsv(ValueError):
    """A CSV whose quoting is broken (a stray quote); the message names the row and line and what to do."""


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


CSV_SUFFIXES = (".csv",)
SHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


def ticket_records(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    """(line or row number, the ticket's fields as a dict or ``None``, what is wrong) for each non-empty line of a
    JSONL file, or each row of a CSV (``.csv``: UTF-8 or GBK, one column per field — id, title, content, address,
    caller, created_at, channel, lead…; empty cells are absent fields; the header may sit under a title row).
    ValueError for a CSV with no ``content`` column, :class:`UnreadableText` for one in neither encoding."""
    path = Path(path)
    if path.suffix.lower() in CSV_SUFFIXES:
        yield from _csv_records(path)
        return
    if path.suffix.lower() in SHEET_SUFFIXES:  # else each of its binary lines would be reported as not UTF-8
        raise ValueError(f"{path}: a spreadsheet — tickets are read from JSONL or CSV: save the sheet as CSV (UTF-8 "
                         "or GBK) and give that file")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:  # utf-8-sig: Notepad and Excel begin a UTF-8 file with a BOM, which is not JSON
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8").strip()
            except UnicodeDecodeError:
                yield n, None, "not UTF-8 text — save the file as UTF-8"
                continue
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, None, f"not valid JSON ({e.msg} at column {e.colno})"
                continue
            if not isinstance(obj, dict):
                yield n, None, "expected a JSON object with at least 'content'"
                continue
            yield n, obj, ""


HEADER_SCAN = 10  # rows a CSV may carry above its header (a title such as 12345工单明细表, an export's date range)

# The column names of centres' own exports for a ticket's fields; the first of a field's names that a header has is
# read as the field (the English name first), so a 12345 system's or a petition platform's export is read as it is.
TICKET_COLUMNS = {
    "id": ("id", "工单编号", "工单号", "受理编号", "留言编号", "编号"),
    "title": ("title", "工单标题", "诉求标题", "标题", "留言主题", "主题"),
    "content": ("content", "诉求内容", "工单内容", "留言详情", "留言内容", "问题描述", "内容", "详情"),
    "address": ("address", "事发地址", "诉求地址", "地址"),
    "caller": ("caller", "来电号码", "联系电话", "联系方式", "手机号码", "电话", "留言用户"),
    "created_at": ("created_at", "受理时间", "来电时间", "留言时间", "创建时间", "时间"),
    "channel": ("channel", "来源渠道", "渠道", "来源"),
    "lead": ("lead", "牵头单位", "主办单位", "承办单位"),
}


def csv_table(path: Path, required=("content",), columns: dict[str, tuple[str, ...]] | None = None
              ) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the rows under it, with their row numbers in the file, of a CSV saved as UTF-8 or GBK. The
    header is the first row, or the first of the next :data:`HEADER_SCAN` rows that names every ``required`` column
    (the rows above it are a title). ``columns`` (field -> names, :data:`TICKET_COLUMNS`): the header gives each
    field's column that field's name. ValueError naming what the first row lacks when no row names them all."""
    rows = list(csv_rows(read_text(path), path))

    def named(row: list[str]) -> list[str]:
        cells = [c.strip() for c in row]
        out = list(cells)
        for field, names in (columns or {}).items():
            i = next((cells.index(n) for n in names if n in cells), None)
            if i is not None:
                out[i] = field
        return out

    heads = [named(r) for r in rows[: HEADER_SCAN + 1]]
    at = header_index(heads, required)
    if at is None or not set(required) <= set(heads[at]):
        first = set(heads[0]) if heads else set()
        raise ValueError(f"missing column(s) {', '.join(c for c in required if c not in first)}")
    return heads[at], list(enumerate(rows[at + 1:], start=at + 2))


def csv_rows(text: str, path, delimiter: str = ",") -> Iterator[list[str]]:
    """The rows of CSV text, read strictly: a quote (``"``) that opens a field which does not close where a field
    ends would otherwise swallow the rows after it into one cell, unseen. ValueError naming the row and line where
    that field opens."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    row, line = 0, 1
    while True:
        try:
            vals = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise MalformedCsv(f"{path}: row {row + 1} (line {line}): a quote (\") opens a field there that does not "
                             f"close where the field ends ({e}); the rows after it would be read as part of it — "
                             "remove the quote or double it (\"\")") from None
        row, line = row + 1, reader.line_num + 1
        yield vals


def header_index(heads: list[list[str]], needed) -> int | None:
    """Which of a file's first rows (``heads``, at most :data:`HEADER_SCAN` + 1) is its header: the first that names
    every ``needed`` column, else the one that names most of them, the first of equals (the rows above it are a title
    or a date range, not data); None without rows. The caller names what the chosen row still lacks."""
    if not heads:
        return None
    need = set(needed or ())
    return next((i for i, h in enumerate(heads) if need <= set(h)),
                max(range(len(heads)), key=lambda i: (len(need & set(heads[i])), -i)))


def _csv_records(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    try:
        header, rows = csv_table(path, columns=TICKET_COLUMNS)
    except (UnreadableText, MalformedCsv):
        raise
    except ValueError:
        raise ValueError(f"{path}: no content column — a CSV of tickets needs content (or 诉求内容, 留言详情 …; and id, "
                         "title, address, caller, created_at as it has them)") from None
    for n, vals in rows:
        if not any(v.strip() for v in vals):
            continue
        if len(vals) > len(header) and any(v.strip() for v in vals[len(header):]):
            yield n, None, f"{len(vals)} fields but the header has {len(header)}"
            continue
        yield n, {k: v for k, v in zip(header, vals) if k and v.strip()}, ""


def field_error(e: ValidationError) -> str:
    """The first thing a ticket's fields get wrong, as the readers report it: ``field 'title': String should have…``."""
    err = e.errors()[0]
    return f"field '{'.'.join(str(x) for x in err['loc']) or 'line'}': {err['msg']}"


def read_tickets(path: Path, check: Callable[[Ticket, int], str | None] | None = None) -> tuple[list[Ticket], list[str]]:
    """Valid tickets of a JSONL or CSV file (:func:`ticket_records`), and one message per bad line or row:
    ``"<line>: <what is wrong>"``.

    ``check(ticket, line)`` may add a caller's own rule: it returns what is wrong, or None."""
    tickets: list[Ticket] = []
    problems: list[str] = []
    for n, obj, wrong in ticket_records(path):
        if obj is None:
            problems.append(f"{n}: {wrong}")
            continue
        try:
            ticket = Ticket.model_validate(obj)
        except ValidationError as e:
            problems.append(f"{n}: {field_error(e)}")
            continue
        wrong = check(ticket, n) if check else None
        if wrong:
            problems.append(f"{n}: {wrong}")
        else:
            tickets.append(ticket)
    return tickets, problems
