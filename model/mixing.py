"""One mechanism for combining a lead distribution with another opinion given per routing label: a weighted geometric
mean. Fusion uses it for the classifier (model/fusion.py), precedents for their vote (model/precedents.py)."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def geometric_mix(probs: dict[str, float], other: dict[str, float], group: Callable[[str], str], weight: float,
                  eps: float, temperature: float = 1.0, probs_eps: float | None = None) -> dict[str, float]:
    """``(1 - weight)·log probs[c] + weight·log(other[group(c)]·share(c))``, divided by ``temperature``, softmaxed.
    ``eps`` floors both logarithms; ``probs_eps``, when given, floors the first instead for the codes ``other`` does
    not name. A code ``other`` names keeps ``eps`` (so that a sparse vote can move the lead to a department ``probs``
    deems unlikely, or bring in one it gives nothing), while the rest of the tail is not lifted: a floor as large as
    the vote's on every code would flatten a sure distribution's long tail — with 39 departments, a unanimous vote
    *for* the lead would then lower it.

    ``probs`` is over department codes, ``other`` over routing labels (every town is ``locality``); a label's mass in
    ``other`` is shared among its codes as ``probs`` shares the label (evenly when ``probs`` gives it nothing). A label
    ``other`` names but no code of ``probs`` carries joins with probability 0."""
    w = min(max(weight, 0.0), 1.0)
    peps = eps if probs_eps is None else probs_eps
    probs = dict(probs)
    known = {group(c) for c in probs}
    for g in other:
        if g not in known:
            probs[g] = 0.0
    mass: dict[str, float] = {}
    members: dict[str, int] = {}
    for c, p in probs.items():
        g = group(c)
        mass[g] = mass.get(g, 0.0) + p
        members[g] = members.get(g, 0) + 1
    codes = list(probs)
    logits = np.empty(len(codes))
    for i, c in enumerate(codes):
        g = group(c)
        share = probs[c] / mass[g] if mass[g] > 0 else 1.0 / members[g]
        floor = eps if probs[c] <= 0 or other.get(g, 0.0) > 0 else peps
        logits[i] = (1 - w) * math.log(probs[c] + floor) + w * math.log(other.get(g, 0.0) * share + eps)
    logits /= max(temperature, 1e-3)
    e = np.exp(logits - logits.max())
    p = e / e.sum()
    return dict(zip(codes, p.tolist()))
