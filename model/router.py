"""Zero-shot routing: rank departments from the responsibility lists alone and suggest lead + co.

Steps for one ticket:
1. score every list item (dense e5 + BM25, ``ListIndex.score_items``);
2. a department's score is its best item plus a little of its second best;
3. joint-handling rules whose triggers fire fix lead and co (the rule is cited as evidence);
4. 先属责、后属地: when the winner is the common locality list (no functional department owns the
   matter) the ticket goes to the locality the address/text resolves to; a rule's ``locality``
   co-handler is resolved the same way;
5. a softmax over department scores with a fitted temperature gives ``confidence``; thresholds turn it
   into ``auto_dispatch`` and arbitration reasons.
"""
from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from responsibility_lists.loader import ResponsibilityLists
from responsibility_lists.schema import LOCALITY, BoundaryRule, OutsideBody

from .locality import Location, Locator
from .precedents import SETTLED_WEIGHT, Neighbour, PrecedentMemory
from .retrieval import ItemHit, ListIndex
from .suggestion import Candidate, DepartmentScore, Evidence, Reason, Suggestion, Ticket

ZERO_SHOT_VERSION = "zero-shot"
# A named administrative unit below the district: a sign the matter is local (属地).
ADMIN_UNIT = re.compile(r"[\u4e00-\u9fff]{1,4}(?:镇|乡|村委会|村|街道|社区居委会|社区)(?![\u4e00-\u9fff]{0,1}(?:医院|卫生|小学|中学|银行))")


@dataclass
class RouterConfig:
    temperature: float = 0.08  # softmax temperature over department scores
    second_item_weight: float = 0.15
    lexical_weight: float = 0.35
    lexical_floor: float = 8.0  # BM25 normaliser floor (see ListIndex.score_items)
    dense_window: float = 0.12  # cosine band below the best item that maps to [0, 1]
    rule_boost: float = 0.0  # added to a matched rule's lead score (0: the rule decides the lead, not the confidence)
    rule_text_chars: int = 60  # the ticket's head: title + this many leading characters
    rule_max_rank: int = 2  # a rule applies only if its lead ranks within this many by retrieval (0 = always)
    admin_unit_boost: float = 0.1  # added to the locality when the text names a 镇/村/街道/社区 (属地 signal)
    title_weight: float = 0.3  # the call-taker's title is a summary: mix its embedding into the query
    co_ratio: float = 0.8  # a non-rule co-handler needs prob >= co_ratio * lead prob
    co_min_prob: float = 0.2
    auto_dispatch_confidence: float = 0.9
    low_confidence: float = 0.3
    ambiguous_margin: float = 0.08  # top-2 probability gap below this = AMBIGUOUS (chosen on routing_dev even rows)
    novel_similarity: float = 0.885  # best dense cosine below this = NOVEL_MATTER (real tickets: >= 0.89)
    # OUTSIDE_ROSTER: a phrasing of a body outside the roster (outside.yaml) is nearer than every list item by at least
    # this cosine (read on unlabelled real messages, none raised on routing_dev; README); > 1 = off
    outside_margin: float = 0.01
    # ... or by this when the ticket says one of the body's keywords (公积金, 12306): as near as the nearest item will do
    outside_keyword_margin: float = 0.0
    evidence_items: int = 5
    repeated_return: int = 2  # REPEATED_RETURN: the ticket has come back from departments this many times


@dataclass
class RuleMatch:
    rule: BoundaryRule
    hits: list[str]
    at: int = 0  # where the text first states the rule's matter (end of the earliest passage with all its words)
    passage: str = ""  # that passage

    @property
    def strength(self) -> int:
        return sum(len(h) for h in self.hits)


def match_rules(rules, text: str) -> list[RuleMatch]:
    """The rules whose triggers ``text`` meets, the one that applies first: the matter the text states first (a
    ticket about several matters names its main one first, in the title), then the longest trigger words."""
    out = []
    for rule in rules:
        found = rule.triggers.find(text)
        if found:
            out.append(RuleMatch(rule, found.hits, found.end, found.passage))
    return sorted(out, key=lambda m: (m.at, -m.strength))


def rule_head(ticket: Ticket, chars: int) -> str:
    """What a rule is first read on: the call-taker's title and the first ``chars`` characters of the text (a rule
    met only further on applies when retrieval ranks its lead high too, :meth:`ZeroShotRouter.analyse`)."""
    return f"{ticket.title}。{ticket.content[:chars]}" if ticket.title else ticket.content[:chars]


@dataclass
class Analysis:
    """What the responsibility lists say about one ticket (before any trained model has a say)."""
    hits: list[ItemHit]
    scores: dict[str, float]  # department code -> score (best item + a little of the second)
    probs: dict[str, float]  # softmax of ``scores`` with the fitted temperature: the lists' lead distribution
    rule: RuleMatch | None
    location: Location | None
    outside: tuple[OutsideBody, float] | None = None  # a body outside the roster nearer than any item, and its cosine

    @property
    def best_dense(self) -> float:
        return max((h.dense for h in self.hits), default=0.0)


class ZeroShotRouter:
    def __init__(self, lists: ResponsibilityLists, index: ListIndex, config: RouterConfig | None = None):
        self.lists = lists
        self.index = index
        self.config = config or RouterConfig()
        self.locator = Locator(lists.gazetteer)
        self.codes = sorted({r.department for r in lists.items})  # departments that own items (+ locality)
        self.model_version = f"{ZERO_SHOT_VERSION}@{lists.version}"
        self.precedents: PrecedentMemory | None = None  # settled tickets that vote on similar ones (model/precedents.py)
        # the outside bodies' phrasings as query vectors, made here (routing a ticket then runs the encoder once)
        self._outside_of = [b for b in lists.outside for _ in b.phrasings]
        self._outside_vecs = index.phrasing_vectors([p for b in lists.outside for p in b.phrasings]) if lists.outside else None

    def outside_match(self, query_vec: np.ndarray, best_dense: float, text: str = "") -> tuple[OutsideBody, float] | None:
        """The body outside the roster whose phrasing is nearest the ticket, when it is nearer than every list item
        by ``outside_margin`` — or by ``outside_keyword_margin`` when ``text`` says one of the body's keywords
        (its matters are transferred, not dispatched inside the district)."""
        cfg = self.config
        if self._outside_vecs is None or cfg.outside_margin > 1:
            return None
        sims = self._outside_vecs @ np.asarray(query_vec, dtype=self._outside_vecs.dtype)
        said = text.casefold()
        best: tuple[OutsideBody, float] | None = None
        lead_by = -np.inf  # how far the best qualifying body's phrasing is past what it needs
        for body, sim in zip(self._outside_of, sims.tolist()):
            margin = cfg.outside_keyword_margin if any(k.casefold() in said for k in body.keywords) else cfg.outside_margin
            past = sim - (best_dense + margin)
            if past >= 0 and past > lead_by:
                best, lead_by = (body, sim), past
        return best

    # ---------------------------------------------------------------------------- pieces
    def match_rules(self, text: str) -> list[RuleMatch]:
        return match_rules(self.lists.rules, text)

    def group(self, code: str) -> str:
        """The routing label of a department code (every street office/town is ``locality``)."""
        return self.lists.group(code)

    def with_precedents(self, ticket: Ticket, probs: dict[str, float], query_vec: np.ndarray
                        ) -> tuple[dict[str, float], list[Neighbour]]:
        """``probs`` mixed with the vote of the nearest settled tickets (unchanged when none is similar)."""
        mem = self.precedents
        if mem is None or not len(mem) or mem.config.weight <= 0:
            return probs, []
        near = mem.neighbours(query_vec, exclude=ticket.id)
        if not near:
            return probs, []
        return mem.mix(probs, mem.vote(near, self.group), self.group), near

    def contest_rule(self, a: Analysis) -> Analysis:
        """A matched rule that the arbitration group keeps overruling (PrecedentConfig.contest_rule decisions naming
        another lead, more than upheld it) is treated as disputed: DISPUTED_BOUNDARY says so, with what was decided,
        until the lists are clarified (a near-identical decided ticket can still settle it, :meth:`settle_dispute`)."""
        mem = self.precedents
        if a.rule is None or a.rule.rule.disputed or mem is None or mem.config.contest_rule <= 0:
            return a
        rule = a.rule.rule
        rec = mem.rule_record(rule.id, rule.lead, self.group)
        if not rec.contested(mem.config.contest_rule):
            return a
        name = self.lists.name_of  # the locality: 属地街道（镇）
        decided = "、".join(f"{name(g)}{n}次" for g, n in rec.decided(self.group).items())
        ids = "、".join(f"#{p.id}" for p in rec.overruled[-3:])
        note = (f"本规则定由{name(self.group(rule.lead))}牵头，但裁定小组已{len(rec.overruled)}次改判（{decided}；如工单 {ids}），"
                f"维持{len(rec.upheld)}次，规则有待澄清。")
        contested = rule.model_copy(update={"disputed": True, "dispute_note": note})
        return dataclasses.replace(a, rule=RuleMatch(contested, a.rule.hits))

    def settle_dispute(self, a: Analysis, probs: dict[str, float], near: list[Neighbour]
                       ) -> tuple[Analysis, dict[str, float], bool]:
        """A disputed rule whose matter the arbitration group settled on a near-identical ticket: that decision, not
        the contested rule, names lead and co (the rule is still cited; DISPUTED_BOUNDARY is not raised), and the
        precedents dominate the lead distribution. Returns the analysis, the distribution and whether it settled."""
        mem = self.precedents
        if a.rule is None or not a.rule.rule.disputed or not near or mem is None:
            return a, probs, False
        top = near[0]
        if top.similarity < mem.config.settles_dispute or top.precedent.source == "override":
            return a, probs, False
        lead = self.group(top.precedent.lead)  # a town settles as 属地: the new ticket's own locality leads
        co = [self.group(c) for c in top.precedent.co if self.group(c) != lead]
        settled = a.rule.rule.model_copy(update={"lead": lead, "co": co, "disputed": False, "dispute_note": ""})
        probs = mem.mix(probs, mem.vote(near, self.group), self.group, weight=SETTLED_WEIGHT)
        return dataclasses.replace(a, rule=RuleMatch(settled, a.rule.hits)), probs, True

    def precedent_co(self, near: list[Neighbour], lead_code: str) -> list[str]:
        """The co-handlers settled for the nearest precedent whose lead is ``lead_code``'s (none if no such)."""
        g = self.group(lead_code)
        for n in near:
            if self.group(n.precedent.lead) == g:
                return [c for c in n.precedent.co if self.group(c) != g]
        return []

    def department_scores(self, hits: list[ItemHit]) -> dict[str, float]:
        best: dict[str, list[float]] = defaultdict(list)
        for h in hits:
            lst = best[h.ref.department]
            if len(lst) < 2:
                lst.append(h.score)
        w = self.config.second_item_weight
        return {d: s[0] + (w * s[1] if len(s) > 1 else 0.0) for d, s in best.items()}

    def _probs(self, scores: dict[str, float]) -> dict[str, float]:
        codes = list(scores)
        x = np.array([scores[c] for c in codes]) / self.config.temperature
        x = np.exp(x - x.max())
        p = x / x.sum()
        return dict(zip(codes, p.tolist()))

    def _dep(self, code: str, score: float, location: Location | None) -> DepartmentScore:
        if code == LOCALITY and location is not None:
            code = location.code
        if code == LOCALITY:
            return DepartmentScore(code=LOCALITY, name="属地街道（镇）（地址未定位）", kind="locality", score=round(score, 4))
        d = self.lists.departments[code]
        return DepartmentScore(code=code, name=d.name, kind=d.kind, score=round(score, 4))

    # ---------------------------------------------------------------------------- route
    def analyse(self, ticket: Ticket, query_vec: np.ndarray) -> Analysis:
        """What the lists say about one ticket: item hits, department scores, the matching rule, the place."""
        cfg = self.config
        text = ticket.text
        hits = self.index.score_items(text, query_vec, lexical_weight=cfg.lexical_weight,
                                      dense_window=cfg.dense_window, lexical_floor=cfg.lexical_floor)
        scores = self.department_scores(hits)
        if cfg.admin_unit_boost and LOCALITY in scores and ADMIN_UNIT.search(text):
            scores[LOCALITY] += cfg.admin_unit_boost
        # A rule whose trigger words all appear in the head of the ticket (title + first sentences) applies;
        # one that fires somewhere in a long text applies only if retrieval also ranks its lead high.
        rules = self.match_rules(rule_head(ticket, cfg.rule_text_chars))
        if not rules:
            rules = self.match_rules(text)
            if cfg.rule_max_rank:
                order = sorted(scores, key=lambda c: -scores[c])[: cfg.rule_max_rank]
                rules = [m for m in rules if m.rule.lead in order]
        rule = rules[0] if rules else None
        if rule:
            scores[rule.rule.lead] = scores.get(rule.rule.lead, 0.0) + cfg.rule_boost
        location = self.locator.place(ticket.address, text)
        outside = self.outside_match(query_vec, max((h.dense for h in hits), default=0.0), text)
        return Analysis(hits=hits, scores=scores, probs=self._probs(scores), rule=rule, location=location, outside=outside)

    def route(self, ticket: Ticket, query_vec: np.ndarray | None = None) -> Suggestion:
        if query_vec is None:
            query_vec = self.query_vectors([ticket])[0]
        a = self.contest_rule(self.analyse(ticket, query_vec))
        own = self.lists_lead(a)
        probs, near = self.with_precedents(ticket, a.probs, query_vec)
        a, probs, settled = self.settle_dispute(a, probs, near)
        return self.suggest(ticket, a, probs, precedents=near, auto_gate=not settled, lists_lead=own)

    def lists_lead(self, a: Analysis) -> str:
        """The lead the lists alone name for an analysis made before precedents: a matched rule's, else the
        best-scoring department (the locality as the town the place points to, when one does)."""
        code = a.rule.rule.lead if a.rule else max(a.probs, key=a.probs.get)
        return self._dep(code, 0.0, a.location).code

    def suggest(self, ticket: Ticket, a: Analysis, probs: dict[str, float], co_extra: dict[str, float] | None = None,
                extra_reasons: list[Reason] | None = None, auto_gate: bool = True,
                precedents: list[Neighbour] | None = None, lists_lead: str | None = None) -> Suggestion:
        """The suggestion from an analysis and a lead distribution over department codes (the lists' own, or
        fused with a classifier). ``co_extra``: co-handlers proposed by a model (code -> probability);
        ``auto_gate``: a further condition for auto-dispatch (fusion: the model and the lists agree);
        ``lists_lead``: :meth:`lists_lead` of the analysis before precedents (``a``'s own when not given)."""
        cfg = self.config
        rule, location, hits = a.rule, a.location, a.hits
        if location is not None and probs.get(LOCALITY) and location.code in probs:
            # `locality` is the town the place points to (:meth:`_dep`): one recipient, one candidate (the two were
            # listed apart, the town twice in the top 3, and a lead on it read only one of its shares as the
            # confidence). The share stays under `locality`, the code a rule's lead names.
            probs = dict(probs)
            probs[LOCALITY] += probs.pop(location.code)
        ranked = sorted(probs.items(), key=lambda kv: -kv[1])

        lead_code = rule.rule.lead if rule else ranked[0][0]
        confidence = probs.get(lead_code, 0.0)
        lead = self._dep(lead_code, confidence, location)

        co_codes: list[str] = []
        co_probs: dict[str, float] = {}
        if rule:
            co_codes = list(rule.rule.co)
            co_probs = {c: confidence for c in co_codes}  # a rule's co-handler is as sure as the rule's matter
        elif co_extra is not None:
            co_codes = [c for c, _ in sorted(co_extra.items(), key=lambda kv: -kv[1])]
            co_probs = dict(co_extra)
        else:
            for code, p in ranked[1:3]:
                if p >= cfg.co_ratio * confidence and p >= cfg.co_min_prob:
                    co_codes.append(code)
                    co_probs[code] = p
        if not rule and precedents:  # the co-handlers of the nearest settled ticket with the same lead
            for c in self.precedent_co(precedents, lead_code):
                if c not in co_codes:
                    co_codes.append(c)
                    co_probs[c] = confidence
        co: list[DepartmentScore] = []
        seen = {lead.code}
        for c in co_codes:
            dep = self._dep(c, co_probs.get(c, 0.0), location)
            if dep.code not in seen:
                seen.add(dep.code)
                co.append(dep)

        candidates = [
            Candidate(code=d.code, kind=d.kind, score=round(p, 4))
            for d, p in ((self._dep(c, p, location), p) for c, p in ranked[:5])
        ]

        evidence: list[Evidence] = []
        if rule:
            evidence.append(Evidence(department=rule.rule.lead, item_id=f"rule:{rule.rule.id}", item=rule.rule.matter,
                                     score=1.0, type="rule", text=rule.rule.conditions))
        for n in (precedents or [])[: self.precedents.config.evidence if self.precedents else 0]:
            p = n.precedent
            how = "经裁定" if p.source == "decision" else ("经派单员改派" if p.source == "override" else "已")
            evidence.append(Evidence(department=p.lead, item_id=f"ticket:{p.id}", type="precedent", score=round(n.similarity, 4),
                                     item=f"相似工单 #{p.id} {how}由{self.lists.name_of(p.lead)}牵头", text=p.text[:80] or None))
        wanted = {lead_code, *co_codes}
        if LOCALITY in wanted and location is not None:
            wanted.add(location.code)  # the town's own items (liuxi-02 柳溪河) are evidence for it too
        for h in hits:
            if len(evidence) >= cfg.evidence_items:
                break
            if h.ref.department in wanted:
                evidence.append(Evidence(department=h.ref.department, item_id=h.ref.item.id, item=h.ref.item.title,
                                         score=round(h.score, 4), text=h.matched_text))
        if location is not None:
            evidence.append(Evidence(department=location.code, item_id=f"place:{location.code}", item=location.explain(),
                                     score=round(location.score, 2), type="locality"))

        reasons = self._reasons(ranked, confidence, rule, hits, lead, location) + list(extra_reasons or [])
        town = self._town_doubt(lead, co, location)
        if town is not None and not any(r.code == "LOCALITY_UNRESOLVED" for r in reasons):
            reasons.append(town)
        if a.outside is not None:
            body = a.outside[0]
            reasons.append(Reason(code="OUTSIDE_ROSTER", message=f"该诉求可能属于区外单位{body.label()}的职责"
                                  f"（{body.matter.split('：')[0]}），请核实后转办；本区内的建议仅供参考。"))
        if ticket.returns >= cfg.repeated_return:
            reasons.append(Reason(code="REPEATED_RETURN",
                                  message=f"该工单已被部门退回 {ticket.returns} 次，需裁定牵头单位。"))
        # a matter of a body outside the roster is transferred, not arbitrated: the doubt about which district
        # department owns it comes from its not being the district's (the group could only say "transfer")
        doubts = ARBITRATION_CODES - OUTSIDE_DOUBTS if a.outside is not None else ARBITRATION_CODES
        arbitration = any(r.code in doubts for r in reasons)
        auto = auto_gate and (not reasons) and confidence >= cfg.auto_dispatch_confidence
        return Suggestion(
            id=ticket.id, lead=lead, co=co, candidates=candidates, confidence=round(confidence, 4),
            auto_dispatch=auto, needs_arbitration=arbitration, reasons=reasons, evidence=evidence,
            model_version=self.model_version, locality=location.code if location else None,
            lists_lead=lists_lead if lists_lead is not None else self.lists_lead(a),
        )

    def _town_doubt(self, lead: DepartmentScore, co: list[DepartmentScore], location: Location | None) -> Reason | None:
        """A street office or town among lead and co-handlers that the address does not settle (informs; no
        auto-dispatch): the town not located (属地街道（镇）（地址未定位）) as a co-handler, the place named in words
        of two towns alike, or a town other than the one the place points to (another town's own item matched)."""
        towns = [d for d in [lead, *co] if d.kind == "locality"]
        if not towns:
            return None
        if any(d.code == LOCALITY for d in towns):
            return Reason(code="LOCALITY_UNRESOLVED", message="需属地街道（镇）协办，但未能从地址中确定是哪个街道（镇），请派单员确认。")
        if location is None:
            names = "、".join(d.name for d in towns)
            return Reason(code="LOCALITY_UNRESOLVED", message=f"建议由{names}办理，但地址未能定位到街道（镇），请派单员确认。")
        if location.ambiguous:
            return Reason(code="LOCALITY_UNRESOLVED", message=f"地址所属街道（镇）难以确定：{location.explain()}，请派单员确认。")
        other = [d for d in towns if d.code != location.code]
        if other:
            return Reason(code="LOCALITY_UNRESOLVED", message=f"建议的{other[0].name}与地址所在的{location.name}不一致，请派单员确认。")
        return None

    def _reasons(self, ranked, confidence, rule: RuleMatch | None, hits: list[ItemHit], lead: DepartmentScore,
                 location: Location | None) -> list[Reason]:
        cfg = self.config
        out: list[Reason] = []
        if confidence < cfg.low_confidence:
            if rule and ranked and ranked[0][0] != rule.rule.lead:
                # the rule names the lead (policy), the rest of the ticket reads as another owner's matter: say which,
                # so that the dispatcher sees why the first candidate is not the lead (often a trigger that fired on
                # a long letter's side remark)
                top, p_top = ranked[0]
                other = self._dep(top, p_top, location).name
                msg = (f"联办规则「{rule.rule.matter}」定由{lead.name}牵头，但工单其余内容更像{other}的事项（{p_top:.0%}），"
                       f"规则是否适用把握较低（{confidence:.0%}），请人工判断。")
            else:
                msg = f"系统对牵头单位的把握较低（{confidence:.0%}），请人工判断。"
            out.append(Reason(code="LOW_CONFIDENCE", message=msg))
        if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < cfg.ambiguous_margin and not rule:
            a, b = (self._dep(c, 0.0, location).name for c, _ in ranked[:2])  # the town the place points to, by name
            out.append(Reason(code="AMBIGUOUS", message=f"{a}与{b}均可能负责，权责不够清晰。"))
        if rule and rule.rule.disputed:
            out.append(Reason(code="DISPUTED_BOUNDARY",
                              message=f"涉及存在争议的职责边界「{rule.rule.matter}」：{rule.rule.dispute_note}"))
        best_dense = max((h.dense for h in hits), default=0.0)
        if best_dense < cfg.novel_similarity:
            out.append(Reason(code="NOVEL_MATTER", message="与已知权责事项都不相近，可能是新业态或新问题。"))
        if lead.code == LOCALITY:
            out.append(Reason(code="LOCALITY_UNRESOLVED", message="属地事项，但未能从地址中确定所属街道（镇），请派单员确认。"))
        return out

    def query_vectors(self, tickets: list[Ticket], batch_size: int = 32) -> np.ndarray:
        """One query vector per ticket: the full text, mixed with the title's when there is one. Titles are encoded
        in a call of their own: in one call with the texts, a ticket's short title shares its long text's batch and
        is padded to its length (for one ticket, twice the encoder's work; the vectors are the same either way)."""
        titled = [i for i, t in enumerate(tickets) if t.title] if self.config.title_weight > 0 else []
        enc = self.index.encoder
        out = enc.encode_queries([t.text for t in tickets], batch_size=batch_size).copy()
        if titled:
            title_vecs = enc.encode_queries([tickets[i].title for i in titled], batch_size=batch_size)
            w = self.config.title_weight
            for j, i in enumerate(titled):
                v = (1 - w) * out[i] + w * title_vecs[j]
                out[i] = v / np.linalg.norm(v)
        return out

    def route_many(self, tickets: list[Ticket], batch_size: int = 32) -> list[Suggestion]:
        vecs = self.query_vectors(tickets, batch_size=batch_size)
        return [self.route(t, v) for t, v in zip(tickets, vecs)]


ARBITRATION_CODES = {"LOW_CONFIDENCE", "AMBIGUOUS", "DISPUTED_BOUNDARY", "NOVEL_MATTER", "MODEL_LIST_DISAGREE",
                     "REPEATED_RETURN", "REPEAT_COMPLAINT"}
#: The doubts that come from a matter not being the district's at all: with OUTSIDE_ROSTER they do not send the
#: ticket to arbitration (REPEATED_RETURN, REPEAT_COMPLAINT and a disputed rule still do).
OUTSIDE_DOUBTS = {"LOW_CONFIDENCE", "AMBIGUOUS", "NOVEL_MATTER", "MODEL_LIST_DISAGREE"}


def iter_batches(items: Iterable, size: int):
    batch = []
    for x in items:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def route_stream(router, tickets: Iterable[Ticket], batch_size: int = 32,
                 on_batch: Callable[[int], object] | None = None) -> Iterator[Suggestion]:
    """``router.route_many`` over ``tickets`` a batch at a time, the suggestions in the tickets' order;
    ``on_batch(n)`` after each batch of ``n`` (a progress bar's ``update``)."""
    for batch in iter_batches(tickets, batch_size):
        yield from router.route_many(batch, batch_size=batch_size)
        if on_batch is not None:
            on_batch(len(batch))
