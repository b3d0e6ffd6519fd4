"""How the suggestions fared in service: the owners people settled, set against what the router suggested.

In service the only gold labels are what dispatchers and the arbitration group settle: the lead of a ticket that was
dispatched (and not returned since), decided or closed. Set against the suggestion each ticket got at intake, they
give the routing figures ``hotline eval routing`` measures offline — lead top-1/top-3, the accuracy of flagged and
unflagged tickets, the precision of auto-dispatch, the co-handlers (协办: an auto-dispatched ticket goes out with
them, so whether they were kept is counted beside its lead) — on the centre's own tickets and per model version, and the
arbitration group's load (how many tickets reached it for any reason, how many it decided, how long that took).

A dispatcher who accepts a wrong suggestion without reading it makes it look right until the department returns the
ticket: read ``returned`` beside ``lead_top1``. Tickets still waiting (suggested, returned, in arbitration) have no
settled owner and count only in the intake figures.
"""
from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime
from typing import Callable, Iterable


def kept(r: dict, group: Callable[[str], str] = lambda c: c) -> bool:
    """Whether people settled the suggested lead. A suggestion of the town whose address was not located
    (``locality``, 属地街道（镇）（地址未定位）) is kept when a street office or town was settled: the dispatcher only
    named which one, as ``hotline eval routing`` counts a suggestion of kind ``locality`` offline."""
    return r["suggested"] == r["final"] or (r["suggested"] == "locality" and group(r["final"]) == "locality")


def share(count: int, of: int) -> dict:
    return {"count": count, "of": of, "rate": round(count / of, 3) if of else None}


def summarize(rows: list[dict], group: Callable[[str], str] = lambda c: c) -> dict:
    """The figures of one set of :meth:`Store.outcome_rows` rows. ``group`` maps a department code to its routing
    label (a street office or town to ``locality``, as candidates name them) for top-3."""
    n = len(rows)
    settled = [r for r in rows if r["final"]]

    def right(sub: Iterable[dict]) -> dict:
        sub = list(sub)
        return share(sum(kept(r, group) for r in sub), len(sub))

    def co(r: dict, key: str) -> set[str]:
        return {group(c) for c in r.get(key) or ()}

    co_hits = sum(len(co(r, "suggested_co") & co(r, "final_co")) for r in settled)
    auto_settled = [r for r in settled if r["auto_dispatch"]]
    arbitrated = [r for r in rows if r["arbitration_at"] is not None]
    hours = [(r["decided_at"] - r["arbitration_at"]).total_seconds() / 3600 for r in arbitrated if r["decided_at"]]
    return {
        "tickets": n,
        "flagged": share(sum(r["flagged"] for r in rows), n),
        "auto_dispatch": share(sum(r["auto_dispatch"] for r in rows), n),
        "settled": share(len(settled), n),
        "lead_top1": right(settled),
        # the same without the tickets sent at intake that the department kept (智能流转): their "settled" owner is the
        # suggestion itself, confirmed only by no return — a model version is judged on people's choices here
        "lead_top1_people": right(r for r in settled if not (r["auto_sent"] and r["returns"] == 0)),
        "lead_top3": share(sum(r["final"] == r["suggested"] or group(r["final"]) in r["top3"] for r in settled),
                           len(settled)),
        "right_when_flagged": right(r for r in settled if r["flagged"]),
        "right_when_not_flagged": right(r for r in settled if not r["flagged"]),
        "auto_dispatch_precision": right(auto_settled),
        # co-handlers (协办) as the lead: suggested at intake against those settled, a street office or town counted as
        # ``locality``; an auto-dispatched ticket goes out with its co-handlers too, so its co-handlers are judged apart
        "co_precision": share(co_hits, sum(len(co(r, "suggested_co")) for r in settled)),
        "co_recall": share(co_hits, sum(len(co(r, "final_co")) for r in settled)),
        "auto_dispatch_co_kept": share(sum(co(r, "suggested_co") == co(r, "final_co") for r in auto_settled),
                                       len(auto_settled)),
        "auto_sent": share(sum(r["auto_sent"] for r in rows), n),
        "auto_sent_returned": share(sum(r["auto_sent"] and r["returns"] > 0 for r in rows),
                                    sum(r["auto_sent"] for r in rows)),
        "returned": share(sum(r["returns"] > 0 for r in rows), n),
        "escalated_by_dispatcher": share(sum(r["escalated"] and not r["flagged"] for r in rows), n),
        "arbitrated": share(len(arbitrated), n),
        "decided": share(len(hours), len(arbitrated)),
        "waiting_for_arbitration": sum(r["status"] == "in_arbitration" for r in rows),
        "hours_to_decision_median": round(statistics.median(hours), 1) if hours else None,
    }


def corrections(rows: list[dict], top: int = 10, group: Callable[[str], str] = lambda c: c) -> list[dict]:
    """The changes people made most often: suggested lead → settled lead, with how many tickets and a few of them
    (what the list editors and the next training run should look at first)."""
    pairs: Counter = Counter()
    tickets: dict[tuple, list[int]] = {}
    for r in rows:
        if r["final"] and not kept(r, group):
            key = (r["suggested"], r["final"])
            pairs[key] += 1
            tickets.setdefault(key, []).append(r["ticket_id"])
    return [{"suggested": a, "settled": b, "count": n, "tickets": tickets[(a, b)][-5:]}
            for (a, b), n in pairs.most_common(top)]


def by_reason(rows: list[dict], group: Callable[[str], str] = lambda c: c) -> list[dict]:
    """Per reason a ticket was sent to arbitration for, most frequent first: how many tickets, how many the group has
    decided, and how often the suggested lead was the one people settled (a flag worth the group's time marks
    suggestions that turn out wrong; ``hotline eval routing`` reports the same offline)."""
    codes: dict[str, list[dict]] = {}
    for r in rows:
        for code in r.get("reasons") or ():
            codes.setdefault(code, []).append(r)
    out = []
    for code, rs in codes.items():
        settled = [r for r in rs if r["final"]]
        out.append({"code": code, "tickets": len(rs), "decided": sum(r["decided_at"] is not None for r in rs),
                    "suggestion_right": share(sum(kept(r, group) for r in settled), len(settled))})
    return sorted(out, key=lambda x: (-x["tickets"], x["code"]))


def outcomes(rows: list[dict], since: datetime, until: datetime, group: Callable[[str], str] = lambda c: c) -> dict:
    """All tickets, then each model version (in the order of its first ticket), the most frequent corrections and the
    figures per arbitration reason."""
    versions: dict[str, list[dict]] = {}
    for r in rows:
        versions.setdefault(r["model_version"] or "", []).append(r)
    return {"since": since.isoformat(), "until": until.isoformat(), "all": summarize(rows, group),
            "by_model_version": [{"model_version": v, **summarize(rs, group)} for v, rs in versions.items()],
            "corrections": corrections(rows, group=group), "by_reason": by_reason(rows, group)}


LINES = (  # (key, label) in the order a report prints them
    ("tickets", "tickets received with a suggestion"),
    ("flagged", "flagged for arbitration at intake"),
    ("auto_dispatch", "marked auto-dispatch"),
    ("settled", "owner settled by people"),
    ("lead_top1", "lead top-1 (suggested = settled)"),
    ("lead_top1_people", "  owners people chose (sent and kept excluded)"),
    ("lead_top3", "lead top-3"),
    ("right_when_flagged", "  right when flagged"),
    ("right_when_not_flagged", "  right when not flagged"),
    ("auto_dispatch_precision", "auto-dispatch precision"),
    ("auto_dispatch_co_kept", "  co-handlers as settled"),
    ("co_precision", "co-handlers suggested that were settled"),
    ("co_recall", "co-handlers settled that were suggested"),
    ("auto_sent", "sent at intake by the system (智能流转)"),
    ("auto_sent_returned", "  returned by the department"),
    ("returned", "returned at least once"),
    ("escalated_by_dispatcher", "escalated by a dispatcher, not flagged"),
    ("arbitrated", "reached arbitration (any reason)"),
    ("decided", "  decided"),
    ("waiting_for_arbitration", "  waiting now"),
    ("hours_to_decision_median", "  hours to decision (median)"),
)


def cell(v) -> str:
    if isinstance(v, dict):
        return "—" if v["rate"] is None else f"{v['rate']:.3f} ({v['count']}/{v['of']})"
    return "—" if v is None else str(v)


def table(report: dict) -> list[str]:
    """Plain-text lines: one row per figure, one column for all tickets and one per model version."""
    cols = [("all", report["all"])] + [(c["model_version"] or "(none)", c) for c in report["by_model_version"]]
    if len(cols) == 2:  # one version: its column is the same as "all"
        cols = cols[:1]
    label_w = max(len(label) for _, label in LINES)
    widths = [max(len(name), *(len(cell(c[k])) for k, _ in LINES)) for name, c in cols]
    out = [" " * label_w + "  " + "  ".join(name.rjust(w) for (name, _), w in zip(cols, widths))]
    for key, label in LINES:
        out.append(label.ljust(label_w) + "  " + "  ".join(cell(c[key]).rjust(w) for (_, c), w in zip(cols, widths)))
    if report.get("by_reason"):
        out.append("sent to arbitration, by reason (tickets, decided, suggested lead = settled lead):")
        w = max(len(x["code"]) for x in report["by_reason"])
        out += [f"  {x['code'].ljust(w)}  {x['tickets']:>5}  {x['decided']:>5}  {cell(x['suggestion_right'])}"
                for x in report["by_reason"]]
    if report.get("corrections"):
        out.append("most frequent corrections (suggested -> settled: tickets, the latest of them):")
        out += [f"  {c['suggested']} -> {c['settled']}: {c['count']}  (#{', #'.join(map(str, c['tickets']))})"
                for c in report["corrections"]]
    return out
