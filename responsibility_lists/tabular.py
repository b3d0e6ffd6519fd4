"""Import and export the lists as the spreadsheets hotline centres keep (权责清单 in Excel or CSV).

Columns (Chinese headers, as centres write them; English aliases accepted on import):
部门 | 事项编号 | 事项名称 | 职责 | 依据 | 示例诉求 | 关键词 | 不含事项

- 部门: roster code or the department's full name (``locality`` / 属地街道（镇） for the common items).
- 依据, 示例诉求: one per line (or separated by ；/;).  关键词: separated by 、，,;；/ or spaces.
- 不含事项: one per line, ``事项 -> 部门`` (部门 as code or name), e.g. ``机动车违停 -> traffic_police``.
- 事项编号 may be left empty: a row whose 事项名称 is an existing item's of that department is that item; the others
  are numbered after every number the department has held in the lists or the sheet (an id is never reused for
  another matter: suggestions already stored cite it).
- 关键词 and 不含事项 may be absent from the header: existing items then keep theirs (a sheet that leaves a column
  out must not wipe it); new items take the words of their 事项名称 and no exclusion.

A workbook may hold the lists on several sheets (one per department, say): every sheet whose header names the
required columns is read. Import replaces the items of every department named in the sheet and leaves the others
alone; a department whose items come back unchanged is not rewritten (its file keeps its notes). Every bad row is
reported (sheet, row number as the spreadsheet shows it, column, what to fix) and nothing is written unless the
whole result validates.
"""
from __future__ import annotations

import csv
import io
import re
import shutil
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from pydantic import ValidationError
from python_calamine import CalamineError

from .loader import DEPARTMENTS, LOCALITY_COMMON, ListsInvalid, ResponsibilityLists, load_lists, name_key
from .schema import KEYWORD_MAX, LOCALITY, Exclusion, Item

# a cell may be longer than the csv module's default 131,072 characters (a long letter pasted whole): read it, and
# let the row be judged as the rows are, rather than reported as a quote that does not close
csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))

COLUMNS = ["部门", "事项编号", "事项名称", "职责", "依据", "示例诉求", "关键词", "不含事项"]
ALIASES = {
    "department": "部门", "部门名称": "部门", "责任单位": "部门",
    "id": "事项编号", "item_id": "事项编号", "编号": "事项编号",
    "title": "事项名称", "事项": "事项名称",
    "duties": "职责", "职责描述": "职责", "职责内容": "职责",
    "basis": "依据", "法律依据": "依据", "设定依据": "依据",
    "phrasings": "示例诉求", "典型诉求": "示例诉求",
    "keywords": "关键词",
    "exclusions": "不含事项", "除外事项": "不含事项",
}
REQUIRED = ["部门", "事项名称", "职责", "依据", "示例诉求"]


@dataclass(frozen=True)
class RowProblem:
    row: int
    column: str
    message: str
    sheet: str = ""  # the workbook's sheet, when the lists are on several

    def __str__(self) -> str:
        return f"{'「' + self.sheet + '」' if self.sheet else ''}第{self.row}行 [{self.column}]: {self.message}"


def _quote(value, limit: int = 40) -> str:
    """A cell's value as a problem quotes it: whole when short, else its start and length (a pasted page is not
    printed back whole, once per problem)."""
    value = str(value)
    return f"'{value}'" if len(value) <= limit else f"'{value[:limit]}…'（共 {len(value)} 字）"


def _says(err: dict) -> str:
    """A schema problem of one cell in the editors' words: which line of the cell (a list's entries are its lines)
    and what to change; the schema's own (English) message for the rarer kinds."""
    which = f"第 {err['loc'][1] + 1} 条" if len(err["loc"]) > 1 and isinstance(err["loc"][1], int) else "内容"
    ctx = err.get("ctx") or {}
    if err["type"] == "string_too_long":
        return f"{which}过长（最多 {ctx.get('max_length')} 字）"
    if err["type"] == "string_too_short":
        return f"{which}过短（至少 {ctx.get('min_length')} 字）"
    if err["type"] == "too_short":
        return "不能为空"
    return err["msg"]


class ImportRejected(Exception):
    def __init__(self, problems: list):
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


def _split_lines(value: str) -> list[str]:
    return [p.strip() for p in re.split(r"[\n；;]+", value) if p.strip()]


def _split_words(value: str) -> list[str]:
    return [p.strip() for p in re.split(r"[、，,;；/\s]+", value) if p.strip()]


HEADER_SCAN = 10  # rows a sheet may carry above its header (a title such as 清河区权责清单, a date)


def _csv_text(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on a Chinese Windows saves CSV as GBK
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError(f"{path.name}: neither UTF-8 nor GBK/GB18030 text — save it as UTF-8 CSV or .xlsx")


def _column(c) -> str:
    c = str(c).strip()
    return ALIASES.get(c.lower(), ALIASES.get(c, c))


def read_table(path: Path) -> pd.DataFrame:
    """The sheet's rows under its header, indexed by their row number in the file. The header is the first row, or
    the first of the next :data:`HEADER_SCAN` rows that names every required column (a title above it is not data)."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls"):
        try:  # .xls (Excel 97–2003) through python-calamine; sheet by sheet, for a workbook that opens with a cover
            with pd.ExcelFile(path, engine="calamine" if suffix == ".xls" else "openpyxl") as book:
                first, found = None, []  # every sheet whose header names the required columns, else the first
                for i, name in enumerate(book.sheet_names):
                    sheet = pd.read_excel(book, sheet_name=name, dtype=str, keep_default_na=False, header=None)
                    if i == 0:
                        first = (name, sheet)
                    if _header_at(sheet.set_axis(range(1, len(sheet) + 1))) is not None:
                        found.append((name, sheet))
        except (ValueError, OSError, zipfile.BadZipFile, CalamineError) as e:
            raise ValueError(f"{path.name}: not a readable Excel workbook ({' '.join(str(e).split())[:160]}) — "
                             "open it in Excel and save it again as .xlsx") from None
        sheets = found or ([first] if first is not None else [])
        frames = [_under_header(sheet, name if len(sheets) > 1 else "") for name, sheet in sheets]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames) if len(frames) > 1 else (frames[0] if frames else pd.DataFrame())
    elif suffix == ".csv":  # the csv module, not pandas: a title line above the header has fewer fields
        reader = csv.reader(io.StringIO(_csv_text(path), newline=""), strict=True)
        rows = []
        try:  # strict: a stray quote would otherwise swallow the rows after it into one cell, unseen
            for r in reader:
                rows.append(r)
        except csv.Error as e:
            raise ValueError(f"{path.name}: row {len(rows) + 1}: a quote (\") opens a field there that does not close "
                             f"where the field ends ({e}) — remove the quote or double it (\"\")") from None
        width = max((len(r) for r in rows), default=0)
        if width == 1 and any(sep in rows[0][0] for sep in ("\t", ";", "；")):
            raise ValueError(f"{path.name}: its columns are separated by tabs or semicolons, not commas — save it "
                             "from Excel as \"CSV UTF-8 (逗号分隔)\" or as .xlsx")
        raw = pd.DataFrame([r + [""] * (width - len(r)) for r in rows], dtype=str)
    else:
        raise ValueError(f"{path.name}: unsupported file type '{suffix}' — use .xlsx, .xls or .csv")
    return _under_header(raw)


def _header_at(raw: pd.DataFrame) -> int | None:
    """The row (of the first :data:`HEADER_SCAN` + 1) that names every required column."""
    return next((i for i in raw.index[: HEADER_SCAN + 1] if set(REQUIRED) <= {_column(v) for v in raw.loc[i]}), None)


def _under_header(raw: pd.DataFrame, sheet: str = "") -> pd.DataFrame:
    """The rows under the header, indexed by their row number in the file (``sheet``: named in a ``_sheet``
    column, when a workbook holds the lists on several)."""
    if raw.empty:
        return raw
    raw = raw.set_axis(range(1, len(raw) + 1))  # the file's row numbers
    at = _header_at(raw) or 1
    df = raw.loc[at + 1:].copy()
    df.columns = [_column(v) for v in raw.loc[at]]
    # Spreadsheets often report thousands of trailing empty rows: drop rows with no content at all.
    df = df[[any(str(v).strip() for v in row) for row in df.itertuples(index=False)]] if len(df) else df
    if sheet:
        df["_sheet"] = sheet
    return df


def _resolve_department(value: str, lists: ResponsibilityLists) -> str | None:
    """A department as an editor types it: its code or a name (the roster's, names.yaml's: 区城管局 …), compared as
    names are (:func:`name_key`: ASCII or full-width brackets, spaces, Latin case)."""
    value = value.strip()
    if value in lists.departments or value == LOCALITY:
        return value
    names = lists.other_names | {d.name: c for c, d in lists.departments.items()} | {"属地街道（镇）": LOCALITY}
    by_key = {name_key(n): c for n, c in names.items()} | {name_key(c): c for c in [*lists.departments, LOCALITY]}
    return by_key.get(name_key(value)) if value else None


#: 事项 -> 部门, with the arrows editors type: ->, →, =>, and their full-width forms from a Chinese input method
_EXCLUSION = re.compile(r"^(.+?)\s*(?:[-－—–=＝]+\s*[>＞]|→|⇒|＞|>)\s*(.+)$")


def _number(item_id: str) -> int:
    return int(item_id.rsplit("-", 1)[1])


def _fallback_keywords(title: str) -> list[str]:
    """Keywords for an item without any: the words of its title that fit a keyword, else the title's start."""
    words = [w for w in _split_words(title) if len(w) <= KEYWORD_MAX]
    return words or ([title[:KEYWORD_MAX]] if title else [])


def rows_to_items(df: pd.DataFrame, lists: ResponsibilityLists,
                  notes: list[str] | None = None) -> tuple[dict[str, list[Item]], list[RowProblem]]:
    """The sheet's rows as each department's items, or the problems of its bad rows. ``notes``: what the import
    did that the editor should know (a column the sheet lacks, whose values the existing items keep)."""
    problems: list[RowProblem] = []
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        return {}, [RowProblem(1, c, f"缺少必需的列 — 表头需包含: {', '.join(REQUIRED)}") for c in missing]
    has = {c: c in df.columns for c in ("事项编号", "关键词", "不含事项")}
    notes = notes if notes is not None else []
    if not has["关键词"]:
        notes.append("the sheet has no 关键词 column: existing items keep their keywords, new ones take their title's words")
    if not has["不含事项"]:
        notes.append("the sheet has no 不含事项 column: existing items keep their exclusions")
    existing = {dep: {it.id: it for it in lists.items_of(dep)} for dep in [*lists.departments, LOCALITY]}
    out: dict[str, list[Item]] = defaultdict(list)
    pending_ids: dict[str, list[int]] = defaultdict(list)
    seen: dict[tuple[str, int], int] = {}  # (department, number) -> the row that has it
    for _, row in df.iterrows():
        rownum = int(row.name)  # the spreadsheet's own row number (read_table's index)
        sheet = str(row.get("_sheet", "") or "")
        get = lambda c: str(row.get(c, "") or "").strip()  # noqa: E731
        problem = lambda col, msg: problems.append(RowProblem(rownum, col, msg, sheet))  # noqa: E731
        dep = _resolve_department(get("部门"), lists)
        if dep is None:
            problem("部门", f"{_quote(get('部门'))} 不是名册中的部门 — 填写部门代码、名册中的全称或 names.yaml 中的名称")
            continue
        item_id = get("事项编号") or None
        if item_id is None:  # a row without an id whose title is an existing item's is that item
            item_id = next((i for i, it in existing[dep].items() if it.title == get("事项名称")
                            and (dep, _number(i)) not in seen), None)
        old = existing[dep].get(item_id) if item_id else None
        exclusions = []
        bad = False
        for part in _split_lines(get("不含事项")):
            m = _EXCLUSION.match(part)
            if not m:
                problem("不含事项", f"{_quote(part)} 应写作 '事项 -> 部门代码或名称'")
                bad = True
                continue
            owner = _resolve_department(m.group(2), lists)
            if owner is None:
                problem("不含事项", f"{_quote(m.group(2))} 不是名册中的部门（{_quote(part)}）— 填写部门代码、名册中的全称或 names.yaml 中的名称")
                bad = True
            elif owner == dep:
                problem("不含事项", f"{_quote(part)}：不含事项由本部门负责，不是不含 — 写明负责它的另一个部门")
                bad = True
            else:
                exclusions.append(Exclusion(matter=m.group(1).strip().rstrip("-－—–=＝ ").strip(), owner=owner))
        if not has["不含事项"] and old is not None:
            exclusions = list(old.exclusions)
        if has["关键词"] and get("关键词"):
            keywords = _split_words(get("关键词"))
        elif not has["关键词"] and old is not None:
            keywords = list(old.keywords)
        else:
            keywords = _fallback_keywords(get("事项名称"))
        data = {
            "id": item_id or f"{dep}-00",
            "title": get("事项名称"),
            "duties": get("职责"),
            "basis": _split_lines(get("依据")),
            "phrasings": _split_lines(get("示例诉求")),
            "keywords": keywords,
            "exclusions": exclusions,
        }
        try:
            item = Item.model_validate(data)
        except ValidationError as e:
            for err in e.errors():
                col = {"id": "事项编号", "title": "事项名称", "duties": "职责", "basis": "依据", "phrasings": "示例诉求", "keywords": "关键词"}.get(str(err["loc"][0]), str(err["loc"][0]))
                problem(col, _says(err))
            continue
        if bad:
            continue
        if item_id and item.department_prefix != dep:
            problem("事项编号", f"{_quote(item_id)} 应以 '{dep}-' 开头")
            continue
        if item_id:
            key = (dep, _number(item_id))
            if key in seen:
                problem("事项编号", f"{_quote(item_id)} 与第{seen[key]}行的事项编号相同 — 每个事项一个编号，新事项的编号可留空")
                continue
            seen[key] = rownum
        else:
            pending_ids[dep].append(len(out[dep]))
        out[dep].append(item)
    # Number the items that came without an id after every number the department has held, in the lists or the
    # sheet: a deleted item's id is never given to another matter (stored suggestions and decisions cite it).
    for dep, positions in pending_ids.items():
        n = max([_number(i) for i in existing[dep]] + [k[1] for k in seen if k[0] == dep], default=0)
        for p in positions:
            n += 1
            out[dep][p] = out[dep][p].model_copy(update={"id": f"{dep}-{n:02d}"})
    return dict(out), problems


def _dump_department(code: str, items: list[Item], name: str, previous: str = "") -> str:
    """The department's YAML file; the comment block that opens the ``previous`` file (the editors' notes) is kept."""
    lead = []
    for line in previous.splitlines(keepends=True):  # only the block at the top, up to the first other line
        if not line.startswith("#"):
            break
        lead.append(line)
    notes = "".join(lead)
    header = notes or f"# {name} — 权责清单（由 hotline lists import 写入）\n"
    body = {"code": code, "items": [it.model_dump(exclude_defaults=False) for it in items]}
    for it in body["items"]:
        if not it["exclusions"]:
            del it["exclusions"]
    return header + yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=100)


def import_table(path: Path, lists_dir: Path, out_dir: Path | None = None,
                 notes: list[str] | None = None) -> dict[str, int]:
    """Import ``path`` into a copy of ``lists_dir`` written to ``out_dir`` (default: in place).

    Returns {department code: number of items} for every department in the sheet; only the departments whose items
    changed are rewritten. Raises ImportRejected (row problems) or ListsInvalid (the merged lists do not validate);
    in both cases nothing is written. ``notes`` collects what the editor should know (see :func:`rows_to_items`).
    """
    lists = load_lists(lists_dir)
    df = read_table(path)
    if df.empty:
        raise ImportRejected([RowProblem(2, "-", "表格没有数据行")])
    by_dep, problems = rows_to_items(df, lists, notes)
    if problems:
        raise ImportRejected(problems)
    out_dir = Path(out_dir or lists_dir)
    with tempfile.TemporaryDirectory(prefix="lists-import-", dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
        stage = Path(tmp) / "lists"
        shutil.copytree(lists_dir, stage, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
        for dep, items in by_dep.items():
            if items == lists.items_of(dep):
                continue  # unchanged: the file stays as the editors wrote it
            target = stage / (LOCALITY_COMMON if dep == LOCALITY else f"{DEPARTMENTS}/{dep}.yaml")
            previous = target.read_text(encoding="utf-8") if target.is_file() else ""
            target.write_text(_dump_department(dep, items, lists.name_of(dep), previous), encoding="utf-8")
        load_lists(stage)  # raises ListsInvalid with file/line problems; nothing written yet
        out_dir.mkdir(parents=True, exist_ok=True)
        for src in stage.rglob("*.yaml"):
            dst = out_dir / src.relative_to(stage)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists() or dst.read_bytes() != src.read_bytes():
                tmp_dst = dst.with_suffix(".yaml.tmp")
                shutil.copyfile(src, tmp_dst)
                tmp_dst.replace(dst)
    return {dep: len(items) for dep, items in by_dep.items()}


def export_table(lists: ResponsibilityLists, path: Path) -> int:
    names = lists.names
    rows = []
    for ref in lists.items:
        it = ref.item
        rows.append({
            "部门": ref.department,
            "事项编号": it.id,
            "事项名称": it.title,
            "职责": it.duties,
            "依据": "\n".join(it.basis),
            "示例诉求": "\n".join(it.phrasings),
            "关键词": "、".join(it.keywords),
            "不含事项": "\n".join(f"{e.matter} -> {e.owner}" for e in it.exclusions),
        })
    df = pd.DataFrame(rows, columns=COLUMNS)
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):  # before making any folder for it
        raise ValueError(f"{path.name}: unsupported file type '{suffix}' — use .xlsx or .csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".xlsx":
        with pd.ExcelWriter(path, engine="openpyxl") as xw:
            df.to_excel(xw, index=False, sheet_name="权责清单")
            pd.DataFrame([{"代码": c, "名称": n} for c, n in names.items()]).to_excel(xw, index=False, sheet_name="部门名册")
    else:
        df.to_csv(path, index=False, encoding="utf-8-sig")
    return len(rows)


__all__ = ["import_table", "export_table", "read_table", "ImportRejected", "RowProblem", "ListsInvalid"]
