"""What each part of the fused router knows (``hotline eval routing`` with a trained version).

The served router weighs two opinions: the classifier's and the lists' (the zero-shot router, which the fusion starts
from). On labelled tickets this evaluator scores each alone, how often they name the same lead and how right the
served router is there, and — the figure to read before tuning the fusion — how often **one or the other** names the
gold lead (``either_top1``). A weighting of the two chooses between their leads (it may rank a third department first,
rarely rightly), so ``either_top1`` is about the most any fusion knob can reach; when a goal lies above it, the parts
themselves must learn more (the lists, or a classifier trained on the centre's own decisions).
"""
from __future__ import annotations

from collections.abc import Sequence

from model.suggestion import Suggestion

from .metrics import lead_labels


def component_metrics(classifier: Sequence[dict[str, float]], lists: Sequence[Suggestion], served: Sequence[Suggestion],
                      labels: Sequence[str]) -> dict:
    """``classifier``: per ticket the classifier's lead probabilities by its labels (``ModelView.lead``; a town is
    ``locality``); ``lists``: the zero-shot router's suggestions; ``served``: the fused router's; ``labels``: gold
    leads. Shares are of all tickets unless named otherwise."""
    n = len(labels)
    if not (len(classifier) == len(lists) == len(served) == n):
        raise ValueError("one classifier opinion, one lists suggestion and one served suggestion per labelled ticket")
    if n == 0:
        raise ValueError("no labelled tickets")
    ranked = [sorted(p, key=p.get, reverse=True) for p in classifier]
    c1 = [r[0] == g if r else False for r, g in zip(ranked, labels)]
    c3 = [g in r[:3] for r, g in zip(ranked, labels)]
    lists_leads = lead_labels(list(lists))
    l1 = [x == g for x, g in zip(lists_leads, labels)]
    s1 = [x == g for x, g in zip(lead_labels(list(served)), labels)]
    agree = [bool(r) and r[0] == x for r, x in zip(ranked, lists_leads)]
    split = [i for i in range(n) if not agree[i]]
    same = [i for i in range(n) if agree[i]]

    def share(xs) -> float:
        return round(sum(xs) / n, 3)

    return {
        "n": n,
        "classifier_top1": share(c1), "classifier_top3": share(c3), "lists_top1": share(l1), "served_top1": share(s1),
        "both_top1": share([a and b for a, b in zip(c1, l1)]),
        "either_top1": share([a or b for a, b in zip(c1, l1)]),
        "agree": share(agree),
        "served_top1_where_agree": round(sum(s1[i] for i in same) / len(same), 3) if same else None,
        "disagree": {"tickets": len(split), "classifier_right": sum(c1[i] for i in split),
                     "lists_right": sum(l1[i] for i in split), "served_right": sum(s1[i] for i in split)},
    }


def components_line(c: dict) -> str:
    d = c["disagree"]
    return (f"parts: classifier alone top-1 {c['classifier_top1']:.3f} / top-3 {c['classifier_top3']:.3f}, lists alone "
            f"{c['lists_top1']:.3f}; they name the same lead on {c['agree']:.0%} (served right on "
            f"{c['served_top1_where_agree'] or 0:.3f} of those); of the {d['tickets']} others the classifier is right on "
            f"{d['classifier_right']}, the lists on {d['lists_right']}, the served router on {d['served_right']}; "
            f"one or the other right: {c['either_top1']:.3f} (about the most a fusion weighting can reach)")
