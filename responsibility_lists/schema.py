"""Typed shapes of the responsibility-list files (see SCHEMA.md).

Pydantic checks the shape of each file; cross-file checks (codes exist, ids unique...) live in
``loader.py``. The models are frozen so a loaded list can be shared between threads.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

LOCALITY = "locality"  # pseudo-code: the street office / town the ticket resolves to

Kind = Literal["functional", "enterprise", "locality"]
NonEmpty = Field(min_length=1)


def _strip_all(values: list[str]) -> list[str]:
    out = [v.strip() for v in values]
    if any(not v for v in out):
        raise ValueError("contains an empty string")
    return out


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class RosterDepartment(_Frozen):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Kind
    name: str = Field(min_length=1)


class Roster(_Frozen):
    model_config = ConfigDict(frozen=True, extra="ignore")
    district: str = Field(min_length=1)
    departments: list[RosterDepartment] = Field(min_length=1)


#: Longest texts an item may hold, far above any written so far (title 26 characters, duties 108, a basis 44, a
#: phrasing 47, a keyword 9, an excluded matter 50): a page pasted into a spreadsheet cell by mistake is refused, not
#: indexed as a phrasing (it was imported, 140,000 characters long).
Phrase = Annotated[str, Field(max_length=500)]
KEYWORD_MAX = 30


class Exclusion(_Frozen):
    matter: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=1)


class Item(_Frozen):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*-\d{2,3}$")
    title: str = Field(min_length=2, max_length=100)
    duties: str = Field(min_length=4, max_length=2000)
    basis: list[Annotated[str, Field(max_length=300)]] = Field(min_length=1)
    phrasings: list[Phrase] = Field(min_length=1)
    keywords: list[Annotated[str, Field(max_length=KEYWORD_MAX)]] = Field(min_length=1)
    exclusions: list[Exclusion] = Field(default_factory=list)

    _clean = field_validator("basis", "phrasings", "keywords")(_strip_all)

    @property
    def department_prefix(self) -> str:
        return self.id.rsplit("-", 1)[0]

    def exclusion_texts(self, names: dict[str, str]) -> list[str]:
        return [f"不含{e.matter}，由{names.get(e.owner, e.owner)}负责" for e in self.exclusions]


class DepartmentFile(_Frozen):
    code: str = Field(min_length=1)
    items: list[Item] = Field(default_factory=list)


#: Phrases a ticket may carry whatever its matter, blanked before triggers are read: a call-taker's 市民来电反映 is not
#: power coming back (来电), a caller's 你们到底管不管 / 再不管我就… is not a body that does nothing (不管), and 不管是…
#: means "whether…". (2026-12-03: they made village matters power cuts and any complaint a property-service case;
#: 2026-12-06: a centre's 12345热线转来电 did again, a school's catchment area a 片区 power cut.)
GENERIC_PHRASES = re.compile(r"管不管|再不管|不管是|不管怎么|不管什么|(?:转|热线|市民|群众|居民)来电|来电(?:人|反映|称|表示|咨询|投诉|求助|要求)")


#: How close a rule's trigger words must stand (characters from the first hit's start to the last hit's end): one
#: word from each group inside one passage. Long letters list several complaints, and generic words of different
#: groups fall in different complaints far apart (2026-12-04, judged fire by fire: on the 4,326 hot-issue messages
#: 80 removes 87 wrong fires and 24 right ones, on the 2,801 unlabelled 52 and 12). A rule may set its own ``within``.
TRIGGER_WINDOW = 80


class Triggers(_Frozen):
    all_of: list[list[str]] = Field(min_length=1)
    none_of: list[str] = Field(default_factory=list)
    within: int = Field(default=TRIGGER_WINDOW, ge=4)

    @field_validator("all_of")
    @classmethod
    def _groups(cls, groups: list[list[str]]) -> list[list[str]]:
        for g in groups:
            if not g:
                raise ValueError("a keyword group is empty")
        return [[w.casefold() for w in _strip_all(g)] for g in groups]

    @field_validator("none_of")
    @classmethod
    def _excluded(cls, words: list[str]) -> list[str]:
        return [w.casefold() for w in _strip_all(words)]

    def matches(self, text: str) -> tuple[bool, list[str]]:
        """Whether every group has a word in ``text``, all within ``within`` characters of one another, and no
        excluded word appears; the hits (per group the longest word of the passage whose words are longest). Phrases
        that callers and call-takers use for any matter (:data:`GENERIC_PHRASES`) are not read as trigger words;
        Latin letters match in either case (KTV, ktv)."""
        found = self.find(text)
        return (True, found.hits) if found else (False, [])

    def find(self, text: str) -> "TriggerMatch | None":
        """:meth:`matches` with where the text first states the matter: the end of the earliest passage that holds a
        word of every group (a ticket about several matters names its main one first, in the title)."""
        text = GENERIC_PHRASES.sub("，", text).casefold()
        if any(w in text for w in self.none_of):
            return None
        present = [[w for w in group if w in text] for group in self.all_of]
        if not all(present):
            return None
        found = [(m.start(), m.start() + len(w), g, w)  # start, end, group, word
                 for g, words in enumerate(present) for w in words for m in re.finditer(re.escape(w), text)]
        found.sort()
        n, best, best_len, first = len(self.all_of), None, -1, (len(text), 0)
        for i, (start, _, _, _) in enumerate(found):
            longest: dict[int, str] = {}
            ends: dict[int, int] = {}
            for s, e, g, w in found[i:]:
                if s - start > self.within:
                    break
                if e - start <= self.within:
                    ends[g] = min(e, ends.get(g, e))
                    if len(w) > len(longest.get(g, "")):
                        longest[g] = w
            if len(longest) == n:
                first = min(first, (max(ends.values()), start))
                if (size := sum(map(len, longest.values()))) > best_len:
                    best, best_len = [longest[g] for g in range(n)], size
        return TriggerMatch(best, first[0], text[first[1]:first[0]]) if best else None


class TriggerMatch(NamedTuple):
    hits: list[str]  # per group, the longest word of the passage whose words are longest
    end: int  # characters into the text where the earliest passage holding a word of every group ends
    passage: str = ""  # that passage, as the words were looked for in it (generic phrases blanked, letters casefolded)


class BoundaryRule(_Frozen):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    topic: str = Field(min_length=1)
    matter: str = Field(min_length=1)
    conditions: str = Field(min_length=1)
    triggers: Triggers
    lead: str = Field(min_length=1)
    co: list[str] = Field(default_factory=list)
    basis: list[str] = Field(min_length=1)
    disputed: bool = False
    dispute_note: str = ""

    @field_validator("dispute_note")
    @classmethod
    def _note(cls, v: str, info) -> str:
        if info.data.get("disputed") and not v.strip():
            raise ValueError("a disputed rule needs a dispute_note saying what is contested")
        return v


class BoundaryFile(_Frozen):
    rules: list[BoundaryRule] = Field(min_length=1)


class OutsideBody(_Frozen):
    """A body outside the district's roster (a city-level or vertically managed unit) whose matters citizens bring to
    the district hotline: the dispatcher transfers them (转办) rather than dispatching them to a department."""
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=2)
    hotline: str = ""
    matter: str = Field(min_length=4)
    phrasings: list[str] = Field(min_length=3)
    # words that name the body's own matter outright (公积金, 12306): a ticket saying one needs only to be about as
    # near the body's phrasings as to every list item (``outside_keyword_margin``), not nearer by ``outside_margin``
    keywords: list[Annotated[str, Field(max_length=KEYWORD_MAX)]] = Field(default_factory=list)

    _clean = field_validator("phrasings", "keywords")(_strip_all)

    def label(self) -> str:
        """The body as a dispatcher reads it: its name and, when known, its own hotline."""
        return f"{self.name}（{self.hotline}）" if self.hotline else self.name


class OutsideFile(_Frozen):
    bodies: list[OutsideBody] = Field(default_factory=list)


class NamesFile(_Frozen):
    """names.yaml: the other names a centre's records give roster departments (code -> names)."""
    names: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("names")
    @classmethod
    def _clean_names(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {code: _strip_all(names or []) for code, names in v.items()}


class Locality(_Frozen):
    code: str = Field(min_length=1)
    name: str = Field(min_length=2)
    aliases: list[str] = Field(default_factory=list)
    roads: list[str] = Field(default_factory=list)
    communities: list[str] = Field(default_factory=list)
    estates: list[str] = Field(default_factory=list)
    landmarks: list[str] = Field(default_factory=list)

    _clean = field_validator("aliases", "roads", "communities", "estates", "landmarks")(_strip_all)

    def names(self) -> list[tuple[str, str]]:
        """(name, type) for every place name of this locality, its own name first."""
        out = [(self.name, "locality")]
        out += [(a, "alias") for a in self.aliases]
        for typ in ("roads", "communities", "estates", "landmarks"):
            out += [(n, typ[:-1] if typ != "communities" else "community") for n in getattr(self, typ)]
        return out


class Gazetteer(_Frozen):
    district: str = Field(min_length=1)
    localities: list[Locality] = Field(min_length=1)


ID_PREFIX = re.compile(r"^(?P<code>[a-z][a-z0-9_]*)-\d{2,3}$")
