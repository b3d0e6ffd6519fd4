"""Labelled history in: CSV / XLSX / JSONL / Parquet with a column mapping -> a ``datasets.Dataset``.

Every row the file holds is accounted for: used, or listed in the :class:`LoadReport` with its row
number (spreadsheet numbering: the header is row 1; JSONL: the line number) and why — empty text,
empty/unknown label, unreadable line, unknown co-handling code, unparseable time. Completely empty
rows (Excel sheets often report 65,000 of them) are counted, not listed. Nothing crashes on a bad row
and nothing is dropped silently.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

from model.io import HEADER_SCAN, Record, cell_text as _cell, csv_rows, header_index, read_text, sheet_records
from responsibility_lists.loader import name_key
from model.times import CST, read_datetime
from model.suggestion import join_texts  # noqa: F401  (one joining rule for training texts and served tickets)

CO_SPLIT = re.compile(r"[|、,，;；/\s]+")
_BRACKETED = re.compile(r"[（(][^（()）]*[)）]")


def split_co(value: str) -> list[str]:
    """The departments of a co-handling cell (``|``, ``、``, ``,``, ``;``, ``/`` or spaces between them); a separator
    inside brackets belongs to the name: 通信运营企业（移动、联通、电信、广电） is one department."""
    kept: list[str] = []
    protected = _BRACKETED.sub(lambda m: kept.append(m.group()) or f"\0{len(kept) - 1}\0", value or "")
    parts = [p for p in CO_SPLIT.split(protected) if p]
    return [re.sub(r"\0(\d+)\0", lambda m: kept[int(m.group(1))], p) for p in parts]
FORMATS = {".csv": "csv", ".tsv": "tsv", ".xlsx": "xlsx", ".xlsm": "xlsx", ".xls": "xls", ".jsonl": "jsonl", ".json": "jsonl",
           ".ndjson": "jsonl", ".parquet": "parquet"}
LOCALITY = "locality"


@dataclass
class ColumnMap:
    text_cols: list[str]
    label_col: str
    co_col: str | None = None
    time_col: str | None = None
    caller_col: str | None = None
    address_col: str | None = None
    id_col: str | None = None

    def needed(self) -> list[str]:
        cols = list(self.text_cols) + [self.label_col]
        return cols + [c for c in (self.co_col, self.time_col, self.caller_col, self.address_col, self.id_col) if c]


@dataclass(frozen=True)
class RowProblem:
    row: int
    kind: str  # unreadable | empty_text | empty_label | unknown_label | unknown_co | bad_time
    message: str
    dropped: bool = True

    def __str__(self) -> str:
        action = "skipped" if self.dropped else "kept"
        return f"row {self.row}: {self.kind}: {self.message} ({action})"


@dataclass
class LoadReport:
    path: str
    rows_read: int = 0  # non-empty rows (header excluded)
    empty_rows: int = 0
    used: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return len({p.row for p in self.problems if p.dropped})

    def summary(self) -> dict:
        kinds = Counter(p.kind for p in self.problems)
        return {"file": self.path, "rows": self.rows_read, "used": self.used, "skipped": self.dropped,
                "empty_rows_ignored": self.empty_rows, "problems": dict(sorted(kinds.items()))}

    def lines(self, limit: int | None = 50) -> list[str]:
        out = [str(p) for p in self.problems[:limit]]
        if limit is not None and len(self.problems) > limit:
            out.append(f"... and {len(self.problems) - limit} more problem(s)")
        return out


@dataclass
class History:
    """Rows that passed: parallel lists, plus the report of those that did not."""

    texts: list[str]
    labels: list[str]
    co: list[list[str]]
    times: list[datetime | None]
    rows: list[int]
    ids: list[str | None]
    callers: list[str | None]
    addresses: list[str | None]
    report: LoadReport
    parts: list[list[str]] | None = None  # each row's text columns apart, in --text-cols order (a file read by columns)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_names(self) -> list[str]:
        return sorted(set(self.labels) | {c for cs in self.co for c in cs})

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for t, l, c in zip(self.texts, self.labels, self.co):
            h.update(json.dumps([t, l, c], ensure_ascii=False).encode())
        return h.hexdigest()[:16]

    def subset(self, idx) -> "History":
        idx = list(idx)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return History(pick(self.texts), pick(self.labels), pick(self.co), pick(self.times), pick(self.rows),
                       pick(self.ids), pick(self.callers), pick(self.addresses), self.report,
                       pick(self.parts) if self.parts is not None else None)

    def plus(self, other: "History") -> "History":
        """This history followed by ``other`` (rows renumbered after this one's; the report counts both)."""
        n = max(self.rows, default=0)
        rep = LoadReport(f"{self.report.path} + {other.report.path}", rows_read=self.report.rows_read + other.report.rows_read,
                         used=len(self) + len(other))
        return History(self.texts + other.texts, self.labels + other.labels, self.co + other.co, self.times + other.times,
                       self.rows + [n + r for r in other.rows], self.ids + other.ids, self.callers + other.callers,
                       self.addresses + other.addresses, rep)

    def to_dataset(self):
        from datasets import Dataset

        return Dataset.from_dict({
            "text": self.texts, "label": self.labels, "co": self.co, "row": self.rows, "id": self.ids,
            "time": [t.isoformat() if t else None for t in self.times],
            "caller": self.callers, "address": self.addresses,
        })

    @classmethod
    def from_records(cls, records: list[dict], source: str = "records") -> "History":
        """From dicts with text, label and optional co (list) / time / id — e.g. the synthetic generator."""
        rep = LoadReport(source, rows_read=len(records), used=len(records))
        return cls([r["text"] for r in records], [r["label"] for r in records], [list(r.get("co") or []) for r in records],
                   [r.get("time") for r in records], list(range(1, len(records) + 1)), [r.get("id") for r in records],
                   [r.get("caller") for r in records], [r.get("address") for r in records], rep)


# ---------------------------------------------------------------------------------------- reading


def _csv_records(path: Path, delimiter: str) -> Iterator[Record]:
    # centres' exports are often GBK; a stray quote stops the file (it would swallow the rows after it)
    for row_no, vals in enumerate(csv_rows(read_text(path), path, delimiter), 1):
        yield row_no, vals, ""


def _table(path: Path, records: Iterator[Record], needed: list[str] | None, pad: bool):
    """(header, rows) of a sheet: the header is its first row, or, when that row lacks a ``needed`` column, the one of
    the next :data:`HEADER_SCAN` rows that has the most of them (the rows above it are a title, not data; a column
    still missing is then named against the real header). ``pad``: a spreadsheet's short rows are padded (a CSV row
    of another width is reported instead)."""
    head = list(itertools.islice(records, HEADER_SCAN + 1))
    found = [(i, [_cell(v) for v in vals]) for i, (_, vals, _) in enumerate(head) if vals is not None]
    if not found:
        raise ValueError(f"{path}: empty file (no header row)")
    at, header = found[header_index([h for _, h in found], needed)]

    def rows():
        for n, vals, err in itertools.chain(head[at + 1:], records):
            if vals is None:
                yield n, None, err
                continue
            vals = [_cell(v) for v in vals]
            if pad:
                vals = vals[: len(header)] + [""] * (len(header) - len(vals))
            elif len(vals) != len(header) and any(vals):
                yield n, None, f"{len(vals)} fields but the header has {len(header)}"
                continue
            yield n, vals, ""
    return header, rows()


def _read_jsonl(path: Path):
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    keys: list[str] = []
    parsed = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            parsed.append((n, None, "empty"))
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            parsed.append((n, None, f"unreadable JSON ({e})"))
            continue
        for k in obj:
            if k not in keys:
                keys.append(k)
        parsed.append((n, obj, ""))

    def rows():
        for n, obj, err in parsed:
            if err == "empty":
                yield n, [""] * len(keys), ""
            elif obj is None:
                yield n, None, err
            else:
                yield n, [_cell(obj.get(k)) if not isinstance(obj.get(k), list) else "|".join(map(str, obj[k])) for k in keys], ""
    return keys, rows()


def _read_parquet(path: Path):
    from datasets import Dataset

    ds = Dataset.from_parquet(str(path))
    header = list(ds.column_names)

    def rows():
        for n, rec in enumerate(ds, start=1):
            yield n, [_cell(rec[k]) if not isinstance(rec[k], list) else "|".join(map(str, rec[k])) for k in header], ""
    return header, rows()


def read_rows(path: Path, needed: list[str] | None = None):
    """(header, iterator of (row number, values or None, error), sheet). A CSV or spreadsheet whose first row lacks
    one of the ``needed`` columns may have its header a few rows down, under a title (:func:`_table`); a workbook's
    rows are those of its first sheet that names them (``sheet``: its name when that is not the first sheet, else
    ``None``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path.name}: unsupported format — give .csv, .tsv, .xlsx, .xls, .jsonl or .parquet")
    if fmt in ("csv", "tsv"):
        return (*_table(path, _csv_records(path, "," if fmt == "csv" else "\t"), needed, pad=False), None)
    if fmt in ("xlsx", "xls"):
        records, sheet = sheet_records(path, (lambda cells: set(needed) <= set(cells)) if needed else None)
        return (*_table(path, records, needed, pad=True), sheet)
    return (*{"jsonl": _read_jsonl, "parquet": _read_parquet}[fmt](path), None)


def parse_time(s: str) -> datetime | None:
    """A row's time as a naive China Standard Time datetime (the formats of ``model``'s ticket times), or ``None``."""
    dt = read_datetime(s)
    return None if dt is None else dt.astimezone(CST).replace(tzinfo=None)


def load_history(path: Path, columns: ColumnMap, *, allowed_labels: set[str] | None = None,
                 label_aliases: dict[str, str] | None = None, max_chars: int = 20000) -> History:
    """Read a labelled file. ``allowed_labels`` (e.g. roster codes): rows with other labels are reported
    and skipped, co-handling codes outside it are reported and removed. ``label_aliases`` maps other
    spellings (department names, locality codes) to a label. Raises ``ValueError`` only for whole-file
    problems (unsupported format, missing columns)."""
    path = Path(path)
    header, rows, sheet = read_rows(path, columns.needed())
    missing = [c for c in columns.needed() if c not in header]
    if missing:
        where = " in any sheet; the first sheet has" if FORMATS[path.suffix.lower()] in ("xlsx", "xls") else "; the file has"
        raise ValueError(f"{path.name}: column(s) {', '.join(missing)} not found{where}: {', '.join(h for h in header if h)}")
    pos = {h: i for i, h in enumerate(header)}
    aliases = label_aliases or {}
    norm = lambda s: map_label(aliases, s)  # noqa: E731
    rep = LoadReport(f"{path} (sheet {sheet})" if sheet else str(path))  # row numbers are that sheet's
    texts, labels, cos, times, rownos, ids, callers, addrs, parts = [], [], [], [], [], [], [], [], []
    for n, vals, err in rows:
        if vals is None:
            rep.rows_read += 1
            rep.problems.append(RowProblem(n, "unreadable", err))
            continue
        if not any(v.strip() for v in vals):
            rep.empty_rows += 1
            continue
        rep.rows_read += 1
        get = lambda c: vals[pos[c]].strip() if c else ""  # noqa: E731
        part = [get(c) for c in columns.text_cols]
        text = join_texts(part)[:max_chars]
        if not any(ch.isalnum() for ch in text):
            rep.problems.append(RowProblem(n, "empty_text", f"no text in {'+'.join(columns.text_cols)}"))
            continue
        raw_label = get(columns.label_col)
        label = norm(raw_label)
        if not label:
            rep.problems.append(RowProblem(n, "empty_label", f"{columns.label_col} is empty"))
            continue
        if allowed_labels is not None and label not in allowed_labels:
            rep.problems.append(RowProblem(n, "unknown_label", f"{columns.label_col}={raw_label!r} is not a known label"))
            continue
        co: list[str] = []
        if columns.co_col:
            for c in split_co(get(columns.co_col)):
                c2 = norm(c.strip())
                if not c2:
                    continue
                if allowed_labels is not None and c2 not in allowed_labels:
                    rep.problems.append(RowProblem(n, "unknown_co", f"co-handler {c!r} is not a known label; ignored", dropped=False))
                    continue
                if c2 != label and c2 not in co:
                    co.append(c2)
        t = None
        if columns.time_col:
            raw_t = get(columns.time_col)
            t = parse_time(raw_t) if raw_t else None
            if t is None:
                rep.problems.append(RowProblem(n, "bad_time", f"{columns.time_col}={raw_t!r} is not a date; the row is kept without time", dropped=False))
        texts.append(text)
        labels.append(label)
        cos.append(co)
        times.append(t)
        rownos.append(n)
        ids.append(get(columns.id_col) or None)
        callers.append(get(columns.caller_col) or None)
        addrs.append(get(columns.address_col) or None)
        parts.append(part)
    rep.used = len(texts)
    return History(texts, labels, cos, times, rownos, ids, callers, addrs, rep, parts)


# --------------------------------------------------------------------------------- label spaces


def map_label(aliases: dict[str, str], s: str) -> str:
    """``s`` through ``aliases`` (as written, else by :func:`name_key`); unchanged when no alias names it."""
    return (aliases.get(s) or aliases.get(name_key(s)) or s) if s else s


def roster_label_space(lists) -> tuple[list[str], dict[str, str]]:
    """Labels of a routing model: functional and enterprise roster codes plus ``locality`` (the street
    office/town is found from the address, 先属责、后属地). Aliases map locality codes, department names (全称)
    and the other names of the lists' ``names.yaml`` (区城管局, pre-reform 区国土资源局 …) to their label."""
    labels = [c for c, d in lists.departments.items() if d.kind != "locality"] + [LOCALITY]
    label_of = {c: LOCALITY if d.kind == "locality" else c for c, d in lists.departments.items()}
    aliases: dict[str, str] = {}
    for name, c in lists.other_names.items():
        aliases[name] = label_of[c]
    for c, d in lists.departments.items():
        aliases[c] = label_of[c]
        aliases[d.name] = label_of[c]
    return labels, aliases | {name_key(k): v for k, v in aliases.items()}


def label_aliases(lists) -> dict[str, str]:
    """Leads as a centre's own exports write them -> the routing labels suggestions are scored in, as
    ``hotline train --labels roster`` reads them: a roster code, a department's full name (区教育局), and a street
    office's or town's code or name (-> ``locality``: the router names the town from the address, and a
    suggestion of kind locality counts as ``locality``)."""
    return {**roster_label_space(lists)[1], LOCALITY: LOCALITY}


# ------------------------------------------------------------------------------------------ split


def split_indices(data: History, val_fraction: float = 0.15, seed: int = 13, by_time: bool = False) -> tuple[list[int], list[int], str]:
    """(train, validation, how). ``by_time``: validate on the latest month of rows that have a time
    (train on the past); falls back to a stratified random split when that month is too small/large."""
    n = len(data)
    why_not = ""
    if by_time:
        timed = [i for i, t in enumerate(data.times) if t is not None]
        why_not = " (no row has a time)"
        if timed:
            latest = max(data.times[i] for i in timed)
            cut = latest - timedelta(days=30)
            val = [i for i in timed if data.times[i] > cut]
            if 0.05 * n <= len(val) <= 0.5 * n:
                vs = set(val)
                return [i for i in range(n) if i not in vs], val, f"time: validation = rows after {cut:%Y-%m-%d}"
            why_not = (f" (the latest 30 days hold {len(val)} of {n} rows; a time split needs 5–50%: give a file that "
                       "spans more than that month)")
    import numpy as np

    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, l in enumerate(data.labels):
        by_label.setdefault(l, []).append(i)
    train, val = [], []
    for l, idx in sorted(by_label.items()):
        idx = list(rng.permutation(idx))
        k = int(round(len(idx) * val_fraction)) if len(idx) >= 3 else 0
        val += [int(i) for i in idx[:k]]
        train += [int(i) for i in idx[k:]]
    return sorted(train), sorted(val), f"stratified random {val_fraction:.0%}{why_not}"
