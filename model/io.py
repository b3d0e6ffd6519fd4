"""Reading what a centre exports: tickets from JSONL, CSV or an Excel sheet (bad lines are reported with their line
or row number and skipped, never lost), CSV text as spreadsheets save it (UTF-8 or GBK), and the rows of a workbook
(.xlsx through openpyxl, Excel 97–2003 .xls through python-calamine), which training's reader shares."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from pydantic import ValidationError

from .suggestion import Ticket

# a cell may be longer than the csv module's default 131,072 characters (a long letter pasted whole): read it, and
# let the row be judged as the rows are, rather than reported as a quote that does not close
csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))

TEXT_ENCODINGS = ("utf-8-sig", "gb18030")  # Excel on a Chinese Windows saves CSV as GBK, a subset of GB18030


class UnreadableText(ValueError):
    """A file that is neither UTF-8 nor GB18030 text; the message names the file and what to do."""


class MissingColumns(ValueError):
    """A table none of whose first rows names every column needed; the message names what the first row lacks."""


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
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls")  # read as they are
SHEET_SUFFIXES = (*WORKBOOK_SUFFIXES, ".ods", ".numbers")  # the others are refused with what to save them as

Record = tuple[int, list | None, str]  # (row number in the file, values or None, what is wrong)


def cell_text(v) -> str:
    """A spreadsheet cell as text: empty for a blank or NaN cell, ``13800138000`` for a phone number Excel stored as
    the float 13800138000.0, ``2026-11-01 08:30:00`` for a date cell."""
    if v is None:
        return ""
    if isinstance(v, float) and v != v:  # NaN
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    return str(v).strip()


def sheet_records(path: Path, fits: Callable[[set[str]], bool] | None = None) -> tuple[Iterator[Record], str | None]:
    """The rows of a workbook (.xlsx/.xlsm, or Excel 97–2003 .xls, which older 12345 systems still export), each
    as ``(row number, cell values, "")``, and the name of the sheet read when it is not the first. The sheet read is
    the first whose first :data:`HEADER_SCAN` + 1 rows hold one that ``fits`` (its cells' texts -> whether it is
    the header wanted: a workbook may open with a cover or summary sheet); else the first. ValueError naming the
    file and what to do when it is not a readable workbook."""
    path = Path(path)
    if path.suffix.lower() == ".xls":
        return _xls_records(path, fits)
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, InvalidFileException, KeyError, OSError) as e:
        raise ValueError(f"{path.name}: not a readable .xlsx workbook ({e}) — open it in Excel and save it again as .xlsx") from None
    sheets = wb.worksheets
    at = _pick_sheet([list(ws.iter_rows(max_row=HEADER_SCAN + 1, values_only=True)) for ws in sheets], fits) \
        if fits and len(sheets) > 1 else 0

    def records():
        try:
            for n, vals in enumerate(sheets[at].iter_rows(values_only=True), start=1):
                yield n, list(vals), ""
        finally:
            wb.close()
    return records(), (sheets[at].title if at else None)


def _xls_records(path: Path, fits) -> tuple[Iterator[Record], str | None]:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
        names = wb.sheet_names
        at = _pick_sheet([wb.get_sheet_by_index(i).to_python(nrows=HEADER_SCAN + 1) for i in range(len(names))], fits) \
            if fits and len(names) > 1 else 0
        table = wb.get_sheet_by_index(at).to_python()
    except CalamineError as e:
        raise ValueError(f"{path.name}: not a readable .xls workbook ({e}) — save it as .xlsx or CSV") from None
    return ((n, vals, "") for n, vals in enumerate(table, start=1)), (names[at] if at else None)


def _pick_sheet(peeks: list[list], fits) -> int:
    for i, rows in enumerate(peeks):
        if any(row is not None and fits({cell_text(v) for v in row}) for row in rows):
            return i
    return 0


def ticket_records(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    """(line or row number, the ticket's fields as a dict or ``None``, what is wrong) for each non-empty line of a
    JSONL file, or each row of a CSV (``.csv``: UTF-8 or GBK) or of an Excel sheet (``.xlsx``/``.xls``: the first
    sheet with a content column), one column per field — id, title, content, address, caller, created_at, channel,
    lead… (:data:`TICKET_COLUMNS`: a 12345 export's Chinese headers too); empty cells are absent fields; the header
    may sit under a title row. ValueError for a table with no ``content`` column or a workbook that cannot be read,
    :class:`UnreadableText` for a CSV in neither encoding."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES or suffix in WORKBOOK_SUFFIXES:
        yield from _table_records(path)
        return
    if suffix in SHEET_SUFFIXES:  # else each of its binary lines would be reported as not UTF-8
        raise ValueError(f"{path}: a {suffix} spreadsheet — tickets are read from JSONL, CSV or Excel: save the sheet "
                         "as .xlsx or CSV (UTF-8 or GBK) and give that file")
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
    """The header and the rows under it, with their row numbers in the file, of a CSV saved as UTF-8 or GBK
    (:func:`table`)."""
    return table(list(enumerate(csv_rows(read_text(path), path), start=1)), required, columns)


def table(rows: list[tuple[int, list[str]]], required=("content",), columns: dict[str, tuple[str, ...]] | None = None
          ) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the rows under it of a file's ``(row number, cells)``. The header is the first row, or the first
    of the next :data:`HEADER_SCAN` rows that names every ``required`` column (the rows above it are a title).
    ``columns`` (field -> names, :data:`TICKET_COLUMNS`): the header gives each field's column that field's name.
    :class:`MissingColumns` naming what the first row lacks when no row names them all."""
    heads = [_named(r, columns) for _, r in rows[: HEADER_SCAN + 1]]
    at = header_index(heads, required)
    if at is None or not set(required) <= set(heads[at]):
        first = set(heads[0]) if heads else set()
        raise MissingColumns(f"missing column(s) {', '.join(c for c in required if c not in first)}")
    return heads[at], rows[at + 1:]


def _named(row: list[str], columns: dict[str, tuple[str, ...]] | None) -> list[str]:
    cells = [c.strip() for c in row]
    out = list(cells)
    for field, names in (columns or {}).items():
        i = next((cells.index(n) for n in names if n in cells), None)
        if i is not None:
            out[i] = field
    return out


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


def _table_records(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    try:
        if path.suffix.lower() in WORKBOOK_SUFFIXES:
            content = set(TICKET_COLUMNS["content"])
            records, _ = sheet_records(path, lambda cells: bool(content & cells))
            header, rows = table([(n, [cell_text(v) for v in vals]) for n, vals, _ in records], columns=TICKET_COLUMNS)
        else:
            header, rows = csv_table(path, columns=TICKET_COLUMNS)
    except MissingColumns:
        raise ValueError(f"{path}: no content column — a table of tickets needs content (or 诉求内容, 留言详情 …; and "
                         "id, title, address, caller, created_at as it has them)") from None
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
    """Valid tickets of a JSONL, CSV or Excel file (:func:`ticket_records`), and one message per bad line or row:
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
