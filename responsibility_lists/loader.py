"""Load and validate the responsibility lists, reporting every problem at once.

``load_lists(folder)`` returns a :class:`ResponsibilityLists` or raises :class:`ListsInvalid` holding a
list of :class:`Problem` (file, line, what is wrong and how to fix it). ``validate_lists`` returns the
problems without raising. The lists' ``version`` is a content hash that models and indexes record.
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ValidationError

from .schema import (
    LOCALITY,
    BoundaryFile,
    BoundaryRule,
    DepartmentFile,
    Gazetteer,
    Item,
    NamesFile,
    OutsideBody,
    OutsideFile,
    Roster,
    RosterDepartment,
)

ROSTER = "roster.yaml"
BOUNDARIES = "boundaries.yaml"
GAZETTEER = "gazetteer.yaml"
LOCALITY_COMMON = "locality_common.yaml"
OUTSIDE = "outside.yaml"  # optional: matters of bodies outside the roster (transferred, not dispatched)
NAMES = "names.yaml"  # optional: the other names of roster departments in a centre's records (short, pre-reform)
DEPARTMENTS = "departments"

DEFAULT_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class ListsInvalid(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__(f"{len(problems)} problem(s) in the responsibility lists:\n" + "\n".join(map(str, self.problems)))


@dataclass(frozen=True)
class ItemRef:
    """An item with the department that owns it (``locality`` for the common locality items)."""

    department: str
    item: Item


@dataclass
class ResponsibilityLists:
    root: Path
    district: str
    departments: dict[str, RosterDepartment]
    items: list[ItemRef]
    rules: list[BoundaryRule]
    gazetteer: Gazetteer
    version: str
    outside: list[OutsideBody] = field(default_factory=list)
    other_names: dict[str, str] = field(default_factory=dict)  # name -> roster code (names.yaml)
    _by_id: dict[str, ItemRef] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {ref.item.id: ref for ref in self.items}

    def item(self, item_id: str) -> ItemRef:
        return self._by_id[item_id]

    def items_of(self, code: str) -> list[Item]:
        return [r.item for r in self.items if r.department == code]

    def group(self, code: str) -> str:
        """The routing label of a department code: every street office/town is ``locality``."""
        d = self.departments.get(code)
        return LOCALITY if code == LOCALITY or (d is not None and d.kind == "locality") else code

    def name_of(self, code: str) -> str:
        if code == LOCALITY:
            return "属地街道（镇）"
        return self.departments[code].name

    def codes_of_kind(self, kind: str) -> list[str]:
        return [d.code for d in self.departments.values() if d.kind == kind]

    @property
    def names(self) -> dict[str, str]:
        return {c: d.name for c, d in self.departments.items()} | {LOCALITY: "属地街道（镇）"}


# --------------------------------------------------------------------------------------------- YAML


class _Doc:
    """A parsed YAML file: its data, the line of every node, keyed by path, and the keys a mapping repeats (YAML
    keeps only the last value, so a second ``lead:`` or ``phrasings:`` would silently replace the first)."""

    def __init__(self, path: Path, rel: str):
        self.rel = rel
        self.lines: dict[tuple, int] = {}
        self.repeated: list[Problem] = []
        text = path.read_text(encoding="utf-8")
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            self.data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for k, v in node.value:
                line = k.start_mark.line + 1
                if isinstance(k, yaml.ScalarNode) and k.value in first:
                    self.repeated.append(Problem(
                        self.rel, line, f"'{k.value}' is given twice in one entry (first on line {first[k.value]}); YAML "
                                        "keeps only the last — merge them into one"))
                first.setdefault(k.value, line)
                self._walk(v, path + (k.value,))
                self.lines[path + (k.value,)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                self._walk(v, path + (i,))

    def line(self, path: Iterable) -> int:
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def problem(self, path: Iterable, message: str) -> Problem:
        return Problem(self.rel, self.line(path), message)


def _read(root: Path, rel: str, problems: list[Problem]) -> _Doc | None:
    path = root / rel
    if not path.is_file():
        problems.append(Problem(rel, 0, "file is missing"))
        return None
    try:
        doc = _Doc(path, rel)
        problems.extend(doc.repeated)
        return doc
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        problems.append(Problem(rel, line, f"not valid YAML: {e.problem} — fix the syntax (quote text containing ':' or '#')"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        problems.append(Problem(rel, 0, f"cannot be read: {e} — save it as UTF-8 YAML"))
    return None


def _parse(doc: _Doc, model: type[BaseModel], problems: list[Problem], data: Any = None, prefix: tuple = ()) -> Any:
    try:
        return model.model_validate(doc.data if data is None else data)
    except ValidationError as e:
        for err in e.errors():
            loc = prefix + tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(file)"
            problems.append(doc.problem(loc, f"{where}: {err['msg']}"))
        return None


# ------------------------------------------------------------------------------------------ loading


def lists_version(root: Path) -> str:
    """Content hash of every YAML file under ``root`` (names and bytes), 12 hex digits."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.yaml")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]


def validate_lists(root: Path | str = DEFAULT_DIR) -> list[Problem]:
    try:
        load_lists(root)
    except ListsInvalid as e:
        return e.problems
    return []


def load_lists(root: Path | str = DEFAULT_DIR) -> ResponsibilityLists:
    root = Path(root)
    problems: list[Problem] = []
    if not root.is_dir():
        raise ListsInvalid([Problem(str(root), 0, "not a folder — give the folder that holds roster.yaml")])

    roster_doc = _read(root, ROSTER, problems)
    roster: Roster | None = _parse(roster_doc, Roster, problems) if roster_doc else None
    if roster is None:
        raise ListsInvalid(problems)
    departments: dict[str, RosterDepartment] = {}
    for i, d in enumerate(roster.departments):
        if d.code in departments:
            problems.append(roster_doc.problem(("departments", i), f"department code '{d.code}' is listed twice"))
        departments[d.code] = d
    known = set(departments) | {LOCALITY}

    def check_code(doc: _Doc, path: tuple, code: str, what: str) -> None:
        if code not in known:
            problems.append(doc.problem(path, f"{what} '{code}' is not a department code in roster.yaml — use one of the roster codes or 'locality'"))

    items: list[ItemRef] = []
    item_where: dict[str, tuple[_Doc, tuple]] = {}

    def take_items(doc: _Doc, owner: str, parsed: DepartmentFile) -> None:
        for i, it in enumerate(parsed.items):
            path = ("items", i)
            if it.department_prefix != owner:
                problems.append(doc.problem(path + ("id",), f"item id '{it.id}' must start with '{owner}-'"))
            if it.id in item_where:
                other, opath = item_where[it.id]
                problems.append(doc.problem(path + ("id",), f"duplicate item id '{it.id}' (also at {other.rel}:{other.line(opath)}) — give it a new number"))
            else:
                item_where[it.id] = (doc, path + ("id",))
            for j, ex in enumerate(it.exclusions):
                check_code(doc, path + ("exclusions", j, "owner"), ex.owner, "exclusion owner")
                if ex.owner == owner:
                    problems.append(doc.problem(path + ("exclusions", j, "owner"), f"exclusion names the department itself ('{owner}') — name the neighbour that owns '{ex.matter}'"))
            items.append(ItemRef(owner, it))

    dep_dir = root / DEPARTMENTS
    files = {p.stem: p for p in sorted(dep_dir.glob("*.yaml"))} if dep_dir.is_dir() else {}
    for code in departments:
        if code not in files:
            problems.append(Problem(f"{DEPARTMENTS}/{code}.yaml", 0, "file is missing — every roster department needs a list (may be 'items: []' for a locality)"))
    for stem, path in files.items():
        rel = f"{DEPARTMENTS}/{path.name}"
        doc = _read(root, rel, problems)
        if doc is None:
            continue
        parsed = _parse_department(doc, problems)
        if parsed is None:
            continue
        if stem not in departments:
            problems.append(doc.problem(("code",), f"'{stem}' is not a department code in roster.yaml — rename the file to a roster code or add the department to the roster"))
            continue
        if parsed.code != stem:
            problems.append(doc.problem(("code",), f"code '{parsed.code}' does not match the file name '{stem}.yaml'"))
        kind = departments[stem].kind
        if not parsed.items and kind != "locality":
            problems.append(doc.problem(("items",), "a functional or enterprise department needs at least one item"))
        take_items(doc, stem, parsed)

    common_doc = _read(root, LOCALITY_COMMON, problems)
    if common_doc:
        parsed = _parse_department(common_doc, problems)
        if parsed is not None:
            if parsed.code != LOCALITY:
                problems.append(common_doc.problem(("code",), f"code must be 'locality', not '{parsed.code}'"))
            take_items(common_doc, LOCALITY, parsed)

    rules: list[BoundaryRule] = []
    bdoc = _read(root, BOUNDARIES, problems)
    if bdoc:
        parsed_b: BoundaryFile | None = _parse(bdoc, BoundaryFile, problems)
        if parsed_b is not None:
            seen: dict[str, int] = {}
            for i, r in enumerate(parsed_b.rules):
                path = ("rules", i)
                if r.id in seen:
                    problems.append(bdoc.problem(path + ("id",), f"duplicate rule id '{r.id}' (also at line {seen[r.id]})"))
                seen.setdefault(r.id, bdoc.line(path + ("id",)))
                check_code(bdoc, path + ("lead",), r.lead, "rule lead")
                for j, c in enumerate(r.co):
                    check_code(bdoc, path + ("co", j), c, "rule co-handler")
                if r.lead in r.co:
                    problems.append(bdoc.problem(path + ("co",), f"'{r.lead}' is both lead and co-handler"))
            rules = list(parsed_b.rules)

    outside: list[OutsideBody] = []
    if (root / OUTSIDE).is_file():
        odoc = _read(root, OUTSIDE, problems)
        raw = odoc.data if odoc else None
        if odoc is not None and not (isinstance(raw, dict) and isinstance(raw.get("bodies", []), list)):
            _parse(odoc, OutsideFile, problems)  # the file's own shape is wrong: say so
        elif odoc is not None:  # body by body, so that one bad body does not hide the others' problems
            _parse(odoc, OutsideFile, problems, data={k: v for k, v in raw.items() if k != "bodies"})  # unknown keys
            parsed = [(i, _parse(odoc, OutsideBody, problems, data=b if b is not None else {}, prefix=("bodies", i)))
                      for i, b in enumerate(raw.get("bodies") or [])]
            seen_o: dict[str, int] = {}
            for i, b in parsed:
                if b is None:
                    continue
                if b.id in seen_o:
                    problems.append(odoc.problem(("bodies", i, "id"), f"duplicate body id '{b.id}' (also at line {seen_o[b.id]})"))
                seen_o.setdefault(b.id, odoc.line(("bodies", i, "id")))
                if b.id in departments or b.id == LOCALITY:
                    problems.append(odoc.problem(("bodies", i, "id"), f"'{b.id}' is a roster code: a body outside the roster needs an id of its own"))
                outside.append(b)

    other_names = _other_names(root, departments, problems) if (root / NAMES).is_file() else {}

    gdoc = _read(root, GAZETTEER, problems)
    gazetteer: Gazetteer | None = _parse(gdoc, Gazetteer, problems) if gdoc else None
    if gazetteer is not None:
        _check_gazetteer(gdoc, gazetteer, departments, problems)

    if problems:
        raise ListsInvalid(problems)
    return ResponsibilityLists(
        root=root,
        district=roster.district,
        departments=departments,
        items=items,
        rules=rules,
        gazetteer=gazetteer,
        version=lists_version(root),
        outside=outside,
        other_names=other_names,
    )


def name_key(name: str) -> str:
    """How a department name is compared and looked up: full-width forms folded (（）→ ()), spaces dropped, Latin
    lower-cased, so that 区城市管理委员会(区城管综合执法局) typed with ASCII brackets is the roster's name."""
    return "".join(unicodedata.normalize("NFKC", name).split()).lower()


def _other_names(root: Path, departments: dict[str, RosterDepartment], problems: list[Problem]) -> dict[str, str]:
    """names.yaml as ``name -> code``: every name names one roster department, and never another department's
    roster name or code."""
    doc = _read(root, NAMES, problems)
    parsed: NamesFile | None = _parse(doc, NamesFile, problems) if doc else None
    if parsed is None:
        return {}
    official = {name_key(d.name): c for c, d in departments.items()} | {name_key(c): c for c in departments}
    out: dict[str, str] = {}
    taken: dict[str, tuple[str, int]] = {}  # folded name -> (code, line)
    for code, names in parsed.names.items():
        if code not in departments:
            problems.append(doc.problem(("names", code), f"'{code}' is not a department code in roster.yaml — use a roster code"))
            continue
        for j, name in enumerate(names):
            path, key = ("names", code, j), name_key(name)
            if official.get(key, code) != code:
                problems.append(doc.problem(path, f"'{name}' is the roster name or code of '{official[key]}' — remove it here"))
            elif taken.get(key, (code,))[0] != code:
                problems.append(doc.problem(path, f"'{name}' also names '{taken[key][0]}' (line {taken[key][1]}) — a name may name one department only"))
            else:
                out[name] = code
                taken.setdefault(key, (code, doc.line(path)))
    return out


def _parse_department(doc: _Doc, problems: list[Problem]) -> DepartmentFile | None:
    """Validate item by item, so that one bad item does not hide the cross-file problems of the others."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("items", []), list):
        return _parse(doc, DepartmentFile, problems)
    items = []
    for i, raw in enumerate(data.get("items") or []):
        it = _parse(doc, Item, problems, data=raw if raw is not None else {}, prefix=("items", i))
        if it is not None:
            items.append(it)
    head = _parse(doc, DepartmentFile, problems, data={k: v for k, v in data.items() if k != "items"})
    return None if head is None else head.model_copy(update={"items": items})


def _check_gazetteer(doc: _Doc, gaz: Gazetteer, departments: dict[str, RosterDepartment], problems: list[Problem]) -> None:
    locality_codes = {c for c, d in departments.items() if d.kind == "locality"}
    owners: dict[str, list[tuple[str, tuple]]] = defaultdict(list)
    seen_codes: set[str] = set()
    for i, loc in enumerate(gaz.localities):
        base = ("localities", i)
        if loc.code not in locality_codes:
            problems.append(doc.problem(base + ("code",), f"'{loc.code}' is not a locality (街道/镇) code in roster.yaml"))
        if loc.code in seen_codes:
            problems.append(doc.problem(base + ("code",), f"locality '{loc.code}' appears twice — merge the two entries"))
        seen_codes.add(loc.code)
        for field_name in ("aliases", "roads", "communities", "estates", "landmarks"):
            for j, name in enumerate(getattr(loc, field_name)):
                owners[name].append((loc.code, base + (field_name, j)))
        owners[loc.name].append((loc.code, base + ("name",)))
    for code in sorted(locality_codes - seen_codes):
        problems.append(doc.problem(("localities",), f"locality '{code}' from the roster has no gazetteer entry"))
    for name, where in owners.items():
        codes = sorted({c for c, _ in where})
        if len(codes) > 1:
            for _, path in where:
                problems.append(doc.problem(path, f"place name '{name}' is claimed by several localities ({', '.join(codes)}) — keep it in one"))
        elif len(where) > 1:
            for _, path in where[1:]:
                problems.append(doc.problem(path, f"place name '{name}' is listed twice in '{codes[0]}'"))
