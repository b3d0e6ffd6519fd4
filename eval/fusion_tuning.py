"""Choose a model version's fusion knobs on labelled tickets (``hotline eval tune-fusion``).

The served router mixes the lists' lead distribution with the classifier's (``model/fusion.py``): the lists' share
``lists_weight`` and a ``temperature``. Their defaults were chosen for the default model, trained on synthetic
history; a version trained on a centre's own history knows that centre's practice better and deserves a larger say.
This evaluator routes the tickets once per knob pair (the lists' analysis and the classifier's opinion are computed
once per ticket: neither depends on the knobs), scores every pair as the report does, and picks the pair with the
lowest mean negative log-probability of the gold lead (:func:`gold_nll`): a proper scoring rule, as temperature
scaling uses, so it weighs the right lead ranked high and honest confidence together and moves less with one ticket
than top-1 does (on 82 tickets, choosing by top-1 picked the lists alone for a model trained on real tickets, one
ticket better there and 6 points worse on the held-out half; README).

Give it tickets the version was not trained on (a validation split or a later month), or the knobs fit the
training data. The chosen knobs can be saved into the version (``fusion.json``), which serving then uses unless
``HOTLINE_FUSION_*`` says otherwise.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from model.fusion import FusionConfig, FusionRouter
from model.suggestion import Ticket

from .metrics import system_metrics
from .routing import as_label

WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0)
TEMPERATURES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.2)


def gold_nll(suggestions, labels: list[str], floor: float = 1e-3) -> float:
    """Mean negative log-probability the suggestions give the gold lead (a proper scoring rule: it rewards the right
    lead ranked high *and* honest confidence); a gold lead outside a suggestion's candidates gets ``floor``."""
    total = 0.0
    for s, gold in zip(suggestions, labels):
        p = sum(c.score for c in s.candidates if as_label(c.code, c.kind) == gold)
        total -= math.log(max(p, floor))
    return round(total / max(len(labels), 1), 4)


@dataclass
class FusionChoice:
    config: FusionConfig
    rows: list[dict]      # one per knob pair: lists_weight, temperature, nll, top1, top3, ece, arbitration_rate, ...
    chosen: dict          # the row of the chosen pair
    current: dict         # the row of the knobs the router had (for comparison)


def tune_fusion(router: FusionRouter, tickets: list[Ticket], labels: list[str], *, weights=WEIGHTS,
                temperatures=TEMPERATURES, batch_size: int = 32) -> FusionChoice:
    """Score every (lists_weight, temperature) pair on ``tickets`` and choose the lowest NLL (module docstring). The
    router's other knobs are kept; the router is left as it was."""
    if not isinstance(router, FusionRouter):
        raise ValueError("tuning fusion needs a trained model version (the zero-shot router has nothing to fuse)")
    if not tickets:
        raise ValueError("no labelled tickets to tune on")
    base = router.fusion
    vecs = router.query_vectors(tickets, batch_size=batch_size)
    views = router.model_views(tickets, batch_size=batch_size)
    analyses = [router.analyse(t, v) for t, v in zip(tickets, vecs)]
    grid = sorted({(float(w), float(t)) for w in [*weights, base.lists_weight] for t in [*temperatures, base.temperature]})
    rows = []
    try:
        for w, temp in grid:
            router.fusion = dataclasses.replace(base, lists_weight=w, temperature=temp)
            sugs = [router.route(t, v, m, analysis=a) for t, v, m, a in zip(tickets, vecs, views, analyses)]
            m = system_metrics(sugs, labels)
            rows.append({"lists_weight": w, "temperature": temp, "nll": gold_nll(sugs, labels), **{k: m[k] for k in (
                "top1", "top3", "ece", "arbitration_rate", "auto_dispatch_coverage", "auto_dispatch_precision")}})
    finally:
        router.fusion = base
    at = {(r["lists_weight"], r["temperature"]): r for r in rows}
    current = at[(float(base.lists_weight), float(base.temperature))]
    # the lowest NLL; ties go to the pair nearest the current knobs
    chosen = min(rows, key=lambda r: (r["nll"], abs(r["lists_weight"] - base.lists_weight) + abs(r["temperature"] - base.temperature)))
    cfg = dataclasses.replace(base, lists_weight=chosen["lists_weight"], temperature=chosen["temperature"])
    return FusionChoice(cfg, rows, chosen, current)
