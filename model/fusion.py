"""Fusion: the trained classifier and the responsibility lists decide together.

The lists' router (:class:`model.router.ZeroShotRouter`) gives, for one ticket, a lead distribution
``p_lists`` over department codes, the matching joint-handling rule and the place. The classifier (a model
version, :class:`model.classifier.DispatchClassifier`) gives a calibrated lead distribution ``p_model`` over
its labels (roster codes; every street office/town collapsed to ``locality``) and co-handling sigmoids.

Lead: a weighted geometric mean (a product of experts) ``p ∝ (p_lists^w · p_model^(1-w))^(1/T)``. Within the
``locality`` label the model's mass is shared among the lists' locality codes in the lists' proportions
(the model knows "a town's matter", the lists and the address know which town). ``w`` and ``T`` are
:class:`FusionConfig` knobs chosen on validation data (README: how). Then exactly the lists router's
logic: a matched joint-handling rule fixes lead and co (and is cited); 先属责、后属地 resolves the locality.

Co-handling: a matched rule's co-handlers; otherwise the model's co-handling head above its calibrated
threshold.

Extra arbitration reason: ``MODEL_LIST_DISAGREE`` — the classifier and the lists name different owners,
each with at least the configured probability.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from responsibility_lists.loader import ResponsibilityLists
from responsibility_lists.schema import LOCALITY

from .classifier import DispatchClassifier
from .mixing import geometric_mix
from .retrieval import ListIndex
from .router import Analysis, RouterConfig, ZeroShotRouter
from .suggestion import Reason, Suggestion, Ticket

EPS = 1e-6


@dataclass
class FusionConfig:
    # Defaults chosen on half of ../shared/data/routing_dev.csv (even rows) with the default model; README.
    lists_weight: float = 0.75  # w: the lists' share of the geometric mean (1 = zero-shot, 0 = classifier only)
    temperature: float = 0.8  # T: sharpens (<1) or flattens (>1) the fused distribution (calibration)
    disagree_model: float = 0.9  # MODEL_LIST_DISAGREE: the classifier's top label has at least this probability
    disagree_lists: float = 0.7  # ... and the lists' top department at least this one
    auto_lists_confidence: float = 0.85  # auto-dispatch also needs the lists alone this sure of the lead
    # ... and, when set, the classifier's top label to be the same owner. Off since 2026-12-06 (evening): on the even
    # rows of routing_dev it cost two tickets at 1.00 precision (11 of 11 against 13 of 13; odd rows 7 of 7 either way)
    # and on centre-written tickets a fifth of the coverage at the same precision (docs/routing-log.md); a model that
    # is sure of another owner still stops it (MODEL_LIST_DISAGREE), and one unsure lowers the fused confidence
    auto_model_agrees: bool = False
    # co-handling sigmoid threshold (None = the version's own, F1-optimal on its synthetic validation split: it
    # over-predicts on new tickets — co F1 0.76 vs 0.92 at 0.8 on held-out synthetic history, 0.09 vs 0.105 on real)
    co_threshold: float | None = 0.8

    def check(self) -> "FusionConfig":
        """ValueError naming the knob that is out of range."""
        if not 0.0 <= self.lists_weight <= 1.0:
            raise ValueError(f"lists_weight must be within [0, 1], not {self.lists_weight}")
        if not 0.0 < self.temperature <= 10.0:
            raise ValueError(f"temperature must be within (0, 10], not {self.temperature}")
        for k in ("disagree_model", "disagree_lists", "auto_lists_confidence", "co_threshold"):
            v = getattr(self, k)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{k} must be within [0, 1], not {v}")
        if not isinstance(self.auto_model_agrees, bool):
            raise ValueError(f"auto_model_agrees must be true or false, not {self.auto_model_agrees!r}")
        return self


#: a model version's own fusion knobs, chosen on validation data by ``hotline eval tune-fusion --save``
FUSION_FILE = "fusion.json"


def read_version_fusion(folder: Path) -> dict:
    """The knobs in ``folder``'s ``fusion.json`` (``{}`` when there is none); ValueError naming the file when it is
    damaged or a knob is out of range."""
    path = Path(folder) / FUSION_FILE
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        knobs = {f.name: obj[f.name] for f in fields(FusionConfig) if f.name in obj}
        FusionConfig(**knobs).check()
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{folder}: {FUSION_FILE} is damaged ({e})") from None
    return knobs


def fusion_for_version(folder: Path | None, overrides: dict | None = None) -> FusionConfig:
    """The knobs a version is served with: the documented defaults, then the version's own ``fusion.json``, then
    ``overrides`` (what the operator set: ``HOTLINE_FUSION_*`` and the like) — the last wins."""
    knobs = read_version_fusion(folder) if folder is not None else {}
    return FusionConfig(**{**knobs, **(overrides or {})}).check()


#: the knobs ``hotline eval tune-fusion`` chooses; a version's file holds only these, so the others keep following
#: the documented defaults and the settings
TUNED = ("lists_weight", "temperature")


def write_version_fusion(folder: Path, config: FusionConfig, tuned_on: dict) -> Path:
    """Save the knobs chosen for a version (:data:`TUNED`, and what they were chosen on) as its ``fusion.json``."""
    path = Path(folder) / FUSION_FILE
    chosen = {k: v for k, v in asdict(config.check()).items() if k in TUNED}
    path.write_text(json.dumps({**chosen, "tuned_on": tuned_on}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


@dataclass
class ModelView:
    """The classifier's opinion on one ticket: label -> probability (lead, calibrated) and co-handling."""
    lead: dict[str, float]
    co: dict[str, float]


def check_routes(version: str, labels: list[str], lists: ResponsibilityLists) -> None:
    """ValueError unless a classifier with these labels can route tickets over ``lists``: most labels must be
    department codes of the lists (or ``locality``), not a category model's categories."""
    known = set(lists.departments) | {LOCALITY}
    unknown = [l for l in labels if l not in known]
    if len(unknown) > len(labels) / 2:
        raise ValueError(
            f"model version {version}: its labels ({', '.join(labels[:5])}, …) are not department codes of the lists "
            "— a category model cannot route tickets; train with --labels roster")
    # fusion reads the classifier's street-office mass from its `locality` label (shared among the towns the lists and
    # the address point to): a model that learnt each street office as a label of its own (an export read with
    # --labels any) gives `locality` nothing, and fusion would push every town's matter to a functional department
    towns = sorted(set(labels) & set(lists.codes_of_kind("locality")))
    if towns:
        raise ValueError(
            f"model version {version}: its labels include street offices or towns ({', '.join(towns[:5])}), which fusion "
            "reads only as `locality` — train again with --labels roster (it reads a street office as locality)")


class FusionRouter(ZeroShotRouter):
    def __init__(self, lists: ResponsibilityLists, index: ListIndex, classifier: DispatchClassifier,
                 config: RouterConfig | None = None, fusion: FusionConfig | None = None):
        super().__init__(lists, index, config)
        self.classifier = classifier
        self.fusion = fusion or FusionConfig()
        check_routes(classifier.version, classifier.labels, lists)
        self.model_version = f"{classifier.version}+lists@{lists.version}"

    # ------------------------------------------------------------------------------ pieces
    def model_views(self, tickets: list[Ticket], batch_size: int = 32) -> list[ModelView]:
        texts = [t.text for t in tickets]  # the router's query text: a shared encoder has it in its cache
        lead, co = self.classifier.predict_proba(texts, batch_size=batch_size)
        labels = self.classifier.labels
        return [ModelView(dict(zip(labels, lead[i].tolist())), dict(zip(labels, co[i].tolist()))) for i in range(len(tickets))]

    def group_mass(self, probs: dict[str, float]) -> dict[str, float]:
        """``probs`` summed by classifier label (the towns' probabilities add up under ``locality``)."""
        mass: dict[str, float] = {}
        for c, p in probs.items():
            g = self.group(c)
            mass[g] = mass.get(g, 0.0) + p
        return mass

    def fuse(self, a: Analysis, view: ModelView) -> dict[str, float]:
        """The fused lead distribution over department codes: a weighted geometric mean of the lists' and the
        classifier's (model/mixing.py), sharpened or flattened by the temperature."""
        f = self.fusion
        return geometric_mix(a.probs, view.lead, self.group, 1.0 - min(max(f.lists_weight, 0.0), 1.0), EPS, f.temperature)

    def disagreement(self, a: Analysis, view: ModelView) -> Reason | None:
        if a.rule is not None or not view.lead:
            return None  # a matched joint-handling rule is policy: it decides
        lists_top, lists_p = max(self.group_mass(a.probs).items(), key=lambda kv: kv[1])
        model_top, model_p = max(view.lead.items(), key=lambda kv: kv[1])
        if model_top == lists_top or model_p < self.fusion.disagree_model or lists_p < self.fusion.disagree_lists:
            return None
        name = lambda g: "属地街道（镇）" if g == LOCALITY else self.lists.name_of(g)  # noqa: E731
        return Reason(code="MODEL_LIST_DISAGREE",
                      message=f"历史派单模型倾向{name(model_top)}（{model_p:.0%}），权责清单倾向{name(lists_top)}（{lists_p:.0%}），两者不一致。")

    def co_handlers(self, view: ModelView) -> dict[str, float]:
        t = self.fusion.co_threshold if self.fusion.co_threshold is not None else self.classifier.co_threshold
        return {label: p for label, p in view.co.items() if p >= t}

    # ------------------------------------------------------------------------------ route
    def route(self, ticket: Ticket, query_vec: np.ndarray | None = None, view: ModelView | None = None,
              analysis: Analysis | None = None) -> Suggestion:
        """``analysis``: the lists' analysis of this ticket when already made (it does not depend on the fusion
        knobs; ``hotline eval tune-fusion`` reuses it across a grid of them)."""
        if query_vec is None:
            query_vec = self.query_vectors([ticket])[0]
        if view is None:
            view = self.model_views([ticket])[0]
        a = self.contest_rule(analysis if analysis is not None else self.analyse(ticket, query_vec))
        own = self.lists_lead(a)
        probs, near = self.with_precedents(ticket, self.fuse(a, view), query_vec)
        a, probs, settled = self.settle_dispute(a, probs, near)
        lead = a.rule.rule.lead if a.rule else max(probs, key=probs.get)
        co = {c: p for c, p in self.co_handlers(view).items() if c != self.group(lead)}
        extra = [r for r in [self.disagreement(a, view)] if r is not None]
        return self.suggest(ticket, a, probs, co_extra=co, extra_reasons=extra,
                            auto_gate=self.auto_gate(a, view, lead) and not settled, precedents=near,
                            lists_lead=own)

    def auto_gate(self, a: Analysis, view: ModelView, lead: str) -> bool:
        """Routine enough to go out unchecked (besides the fused confidence and no reason raised): the lists alone
        are sure of the lead (on real data the fused confidence alone never reached 95% precision) and, with
        ``auto_model_agrees``, the model's top label is the same owner."""
        if not view.lead:
            return False
        if self.fusion.auto_model_agrees and max(view.lead, key=view.lead.get) != self.group(lead):
            return False
        return a.probs.get(lead, 0.0) >= self.fusion.auto_lists_confidence

    def route_many(self, tickets: list[Ticket], batch_size: int = 32) -> list[Suggestion]:
        return self.route_many_with_views(tickets, batch_size)[0]

    def route_many_with_views(self, tickets: list[Ticket], batch_size: int = 32) -> tuple[list[Suggestion], list[ModelView]]:
        """The suggestions and the classifier's own opinions they fused, from one pass (``hotline eval routing``
        scores both: ``eval/components.py``)."""
        vecs = self.query_vectors(tickets, batch_size=batch_size)
        views = self.model_views(tickets, batch_size=batch_size)
        return [self.route(t, v, m) for t, v, m in zip(tickets, vecs, views)], views
