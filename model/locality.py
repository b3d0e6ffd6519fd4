"""Resolve an address or ticket text to its locality (属地: street office or town) via the gazetteer.

Every place name of the gazetteer (and, where unambiguous and at least three characters long, its short form
without a suffix such as 小区/社区/村/街道/镇) is searched in the text, longest names first, so "幸福里小区" is not also counted as
"幸福里". Each hit votes for its locality with a weight by type (an estate or community says more than a
road that may be long). The winner must beat the runner-up clearly or the result is marked ambiguous.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from responsibility_lists.schema import Gazetteer

WEIGHTS = {"estate": 3.0, "community": 3.0, "landmark": 2.5, "locality": 3.0, "alias": 2.0, "road": 2.0}
SUFFIXES = ("小区", "社区", "街道", "花园", "新村", "村委会", "村", "镇", "路", "街", "公园")
# A short form (the name without its suffix) is searched only from this length: two-character ones are mostly
# common words (人民路 → 人民, 建设小区 → 建设, 科技园 …) that would place every 人民政府 or 建设公司 in a town.
# The gazetteer's own aliases (新华, 梅林 …) are searched at any length.
MIN_SHORT = 3


@dataclass(frozen=True)
class PlaceHit:
    name: str
    type: str
    locality: str
    start: int


@dataclass(frozen=True)
class Location:
    code: str
    name: str
    score: float
    hits: list[PlaceHit] = field(default_factory=list)
    ambiguous: bool = False
    runner_up: str | None = None

    def explain(self) -> str:
        why = "、".join(f"{h.name}（{_TYPE_ZH[h.type]}）" for h in self.hits)
        text = f"{self.name}：文本中出现 {why}"
        if self.ambiguous and self.runner_up:
            text += f"；与 {self.runner_up} 难以区分"
        return text


_TYPE_ZH = {"estate": "小区", "community": "社区/村", "landmark": "地标", "locality": "街镇名", "alias": "街镇简称", "road": "道路"}


class Locator:
    def __init__(self, gazetteer: Gazetteer):
        self._names: dict[str, tuple[str, str]] = {}
        self.locality_names = {loc.code: loc.name for loc in gazetteer.localities}  # 柳溪镇: the place, by code
        full: dict[str, tuple[str, str]] = {}
        for loc in gazetteer.localities:
            for name, typ in loc.names():
                full[name] = (loc.code, typ)
        short: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for name, (code, typ) in full.items():
            for suf in SUFFIXES:
                if name.endswith(suf) and len(name) - len(suf) >= MIN_SHORT:
                    short[name[: -len(suf)]].add((code, typ))
                    break
        self._names.update(full)
        for s, owners in short.items():
            codes = {c for c, _ in owners}
            if s not in full and len(codes) == 1:
                self._names[s] = next(iter(owners))
        self._ordered = sorted(self._names, key=len, reverse=True)

    @property
    def place_types(self) -> dict[str, str]:
        """Every name of the map (full and short forms) with its kind: estate, community, landmark, road, locality,
        alias."""
        return {name: typ for name, (_, typ) in self._names.items()}

    def hits(self, text: str) -> list[PlaceHit]:
        taken = [False] * len(text)
        out: list[PlaceHit] = []
        for name in self._ordered:
            start = text.find(name)
            while start >= 0:
                end = start + len(name)
                if not any(taken[start:end]):
                    for k in range(start, end):
                        taken[k] = True
                    code, typ = self._names[name]
                    out.append(PlaceHit(name, typ, code, start))
                start = text.find(name, end)
        return sorted(out, key=lambda h: h.start)

    def place(self, address: str | None, text: str) -> Location | None:
        """Where a ticket is: its address field (事发地址) when that names a place of the map, else its text (a
        caller who says 我们是从滨江那边搬过来的 is not in 滨江): how the router places the ticket it suggests for."""
        return (self.locate(address) if address else None) or self.locate(text)

    def locate(self, text: str) -> Location | None:
        hits = self.hits(text or "")
        if not hits:
            return None
        scores: dict[str, float] = defaultdict(float)
        for h in hits:
            scores[h.locality] += WEIGHTS[h.type]
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        code, score = ranked[0]
        runner = ranked[1] if len(ranked) > 1 else None
        ambiguous = runner is not None and runner[1] >= score * 0.75
        return Location(
            code=code,
            name=self.locality_names[code],
            score=score,
            hits=[h for h in hits if h.locality == code],
            ambiguous=ambiguous,
            runner_up=self.locality_names[runner[0]] if ambiguous else None,
        )
