"""``hotline eval routing`` / ``eval tune-fusion`` / ``eval compare``, ``hotline bench`` and ``hotline bench-api``: the
front door of the measuring room (``eval/``) — routing on labelled data, speed, the API under load. Registered on the
main app by ``register(app)``. Of the CLI, only these commands import ``eval/`` (and ``route --precedents FILE``, which
reads its labelled file as ``eval`` does): the product commands run without it (tests/test_layering.py)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from hotline.console import check_output, fail, lists_or_fail, router_or_fail
from hotline.settings import get_settings

eval_app = typer.Typer(help="Evaluate routing on labelled data.", no_args_is_help=True)


LABELLED_COLUMNS = "id, title, content, lead (roster code, department name or 'locality')"


def _eval_router(version: Optional[str]):
    """The router for ``version`` (None: the settings' default; ``none``: zero-shot); a version that cannot be loaded
    stops with one line."""
    try:
        return router_or_fail(version)
    except KeyError as e:
        fail(f"model version '{version}': {' '.join(str(e).split())} (`hotline models list` shows the versions; "
             "'none' = the zero-shot router)")


def _is_zero_shot(router) -> bool:
    from model.router import ZERO_SHOT_VERSION

    return str(getattr(router, "model_version", "")).startswith(ZERO_SHOT_VERSION)


def _department_names(router) -> dict:
    lists = getattr(router, "lists", None)
    return dict(lists.names) if lists is not None else dict(lists_or_fail().names)


def _labelled_or_fail(data: Path, columns: "ExportColumns | None" = None):
    """Tickets, gold leads and gold co-handlers (``None`` without a co column) of a labelled file, or one line saying
    what to fix. Department names and towns are read as ``hotline train`` reads them (区教育局 -> education, a town ->
    locality). Without ``columns`` the file is a CSV with id, title, content, lead[, co]; with them, any export
    ``hotline train`` reads (CSV/XLSX/JSONL/Parquet), mapped the same way."""
    import csv

    from eval.routing import read_labelled_csv, read_labelled_export
    from training.data import label_aliases
    from model.io import MalformedCsv, UnreadableText

    if not data.is_file():
        fail(f"{data}: no such file — give a CSV with columns {LABELLED_COLUMNS}, or an export with --text-cols/--label-col")
    aliases = label_aliases(lists_or_fail())
    if (columns is not None and columns.given) or data.suffix.lower() != ".csv":  # a spreadsheet or JSONL: mapped
        from hotline.cmd_training import _print_report

        columns = columns or ExportColumns(None, None)

        try:
            tickets, labels, co, report = read_labelled_export(data, aliases, columns.map())
        except (ValueError, FileNotFoundError) as e:
            fail(f"{' '.join(str(e).split())[:300]} — map the columns with --text-cols and --label-col (as for `hotline train`)")
        _print_report(report, limit=10)
        if not tickets:
            fail(f"{data}: no row has both text and lead — check --text-cols and --label-col")
        return tickets, labels, co
    try:
        tickets, labels, co = read_labelled_csv(data, aliases)
    except (UnreadableText, MalformedCsv) as e:
        fail(str(e))
    except (ValueError, csv.Error) as e:
        fail(f"{data}: {' '.join(str(e).split())[:300]} — the file needs columns {LABELLED_COLUMNS} "
             "(or map an export's columns with --text-cols and --label-col)")
    if not tickets:
        fail(f"{data}: no row has both content and lead — the file needs columns {LABELLED_COLUMNS}")
    return tickets, labels, co


def _labelled_rows_or_fail(data: Path, columns: "ExportColumns", rows: str):
    """:func:`_labelled_or_fail`, keeping ``rows``: all, or the even / odd rows (the even rows tune, the odd judge)."""
    if rows not in ("all", "even", "odd"):
        fail(f"--rows must be all, even or odd, not {rows!r}")
    tickets, labels, co = _labelled_or_fail(data, columns)
    if rows == "all":
        return tickets, labels, co
    keep = [i for i in range(len(tickets)) if i % 2 == (0 if rows == "even" else 1)]
    return [tickets[i] for i in keep], [labels[i] for i in keep], ([co[i] for i in keep] if co is not None else None)


class ExportColumns:
    """The column mapping options of the eval commands (the same as ``hotline train``'s)."""

    def __init__(self, text_cols: str | None, label_col: str | None, co_col: str | None = None,
                 address_col: str | None = None, id_col: str | None = None):
        self.text_cols, self.label_col, self.co_col, self.address_col, self.id_col = text_cols, label_col, co_col, address_col, id_col

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.text_cols, self.label_col, self.co_col, self.address_col, self.id_col))

    def map(self):
        from training.data import ColumnMap

        from hotline.cmd_training import _cols

        cols = _cols(self.text_cols or "title,content")
        if not cols:
            fail("--text-cols needs at least one column, e.g. --text-cols 留言主题,留言详情")
        return ColumnMap(cols, self.label_col or "lead", self.co_col, None, None, self.address_col, self.id_col)


TextCols = Annotated[Optional[str], typer.Option("--text-cols", help="an export's text column(s), joined in order "
                     "(e.g. 留言主题,留言详情); with --label-col etc. any file `hotline train` reads (CSV/XLSX/JSONL/Parquet)")]
LabelCol = Annotated[Optional[str], typer.Option("--label-col", help="an export's lead-department column (code or name)")]
CoCol = Annotated[Optional[str], typer.Option("--co-col", help="an export's co-handling column (codes or names, | or 、)")]
AddressCol = Annotated[Optional[str], typer.Option("--address-col", help="an export's address column")]
IdCol = Annotated[Optional[str], typer.Option("--id-col", help="an export's ticket id column")]


def _warn_unknown_labels(labels: list[str], names: dict) -> None:
    """A warning for leads outside the roster (they count as misses); when no row has a lead on it, the wrong column
    or a file of another kind was given: one line and exit 1 before anything is routed, not a report of zeros."""
    unknown = sorted(set(labels) - set(names) - {"locality"})  # labels are read through the roster's aliases
    if unknown and set(labels) <= set(unknown):
        fail(f"no row has a lead on the roster ({', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}) — check "
             "--label-col (the column of the department that handled each ticket), or add the names to the lists' names.yaml")
    if unknown:
        n = sum(lab in unknown for lab in labels)
        typer.echo(f"warning: {n} row(s) have a lead outside the roster ({', '.join(unknown[:8])}): they count as misses", err=True)


def _dup_messages_or_fail(pairs: Path, messages: Optional[Path]) -> Path:
    from eval.report import find_messages_beside

    if not pairs.is_file():
        fail(f"{pairs}: no such file — give a CSV of judged pairs with columns a, b, same")
    if messages is not None:
        if not messages.is_file():
            fail(f"{messages}: no such file — give the message CSV (留言编号, 留言用户, 留言主题, 留言时间, 留言详情)")
        return messages
    try:
        found = find_messages_beside(pairs)
    except (KeyError, ValueError) as e:
        fail(f"{pairs}: {e}")
    if found is None:
        fail(f"no message CSV beside {pairs} holds every id its pairs name — give --dup-messages FILE "
             "(留言编号, 留言用户, 留言主题, 留言时间, 留言详情)")
    return found


def _dedup_owners(router, messages: Path) -> list[str]:
    """Each message's owner for the duplicate detector's owner window, as the service takes it for a ticket not yet
    dispatched: the lead the lists name (the suggestion's ``lists_lead``), cached as ``hotline eval-dedup`` caches it."""
    from eval.duplicates import read_messages
    from model.duplicates.file_cache import routed_owners

    try:
        tickets = read_messages(messages)
    except (KeyError, ValueError) as e:
        fail(f"duplicate pairs: {' '.join(str(e).split())}")
    s = get_settings()
    return routed_owners(router, tickets, Path(s.model_cache_dir) / "dedup-eval", dtype=s.encoder_dtype)


def _dedup_at_windows(pairs: Path, messages: Path, owners: list[str] | None) -> dict:
    """Duplicate precision/recall as ``hotline eval-dedup`` computes it: at the configured window, 180 days
    and no limit (``owners``: :func:`_dedup_owners`)."""
    from eval.report import dedup_windows
    from hotline.cmd_dedup import _encoder, _locator, dedup_config

    s = get_settings()
    cfg = dedup_config(s)
    windows = [(f"default (HOTLINE_DEDUP_WINDOW_DAYS={cfg.window_days:g})", cfg.window_days)]
    if cfg.window_days != 180:
        windows.append(("--window-days 180", 180.0))
    windows.append(("no limit (every earlier message)", None))
    try:
        return dedup_windows(messages, pairs, _encoder(s), cfg, windows, cache_dir=Path(s.model_cache_dir) / "dedup-eval",
                             locator=_locator(s), owners=owners)
    except (KeyError, ValueError) as e:
        fail(f"duplicate pairs: {' '.join(str(e).split())}")


def _precedents_or_fail(router, path: Path) -> int:
    from eval.routing import precedents_from_file

    if not path.is_file():
        fail(f"--precedents {path}: no such file")
    _, labels, _ = _labelled_or_fail(path)  # one line naming what to fix
    known = set(router.lists.departments) | {"locality"}
    unknown = sorted({lab for lab in labels if lab not in known})
    if unknown:
        fail(f"--precedents {path.name}: lead(s) not in the roster: {', '.join(unknown[:5])} — use department codes or names, or 'locality'")
    return precedents_from_file(router, path, get_settings().precedent_config())


@eval_app.command("routing")
def eval_routing(
    data: Annotated[Path, typer.Option(help="CSV with id, title, content, lead (roster code, department name or 'locality'), "
                                    "or an export mapped with --text-cols / --label-col")],
    out: Annotated[Optional[Path], typer.Option(help="Report folder: report.md, report.html, PNG plots, metrics.json, misses.jsonl")] = None,
    baseline: Annotated[bool, typer.Option(help="also run the TF-IDF + LinearSVC baseline (k-fold CV on the file)")] = True,
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="version to evaluate (default HOTLINE_MODEL_VERSION; "
                             "'none' = zero-shot); a trained version is reported beside the zero-shot router and the baseline")] = None,
    dup_pairs: Annotated[Optional[Path], typer.Option("--dup-pairs", help="CSV a, b, same: add duplicate-detection precision/recall")] = None,
    dup_messages: Annotated[Optional[Path], typer.Option("--dup-messages", help="message CSV the pairs refer to (default: the one "
                            "beside --dup-pairs that holds every id)")] = None,
    rows: Annotated[str, typer.Option("--rows", help="all | even | odd: the even rows tune, the odd rows judge (a held-out half)")] = "all",
    precedents: Annotated[Optional[Path], typer.Option("--precedents", help="CSV of settled tickets (id, title, content, lead): "
                          "precedents that vote on similar tickets, as decisions do in serving (both routers)")] = None,
    text_cols: TextCols = None, label_col: LabelCol = None, co_col: CoCol = None, address_col: AddressCol = None,
    id_col: IdCol = None,
) -> None:
    """Lead top-1 / top-3 of the router on a labelled CSV beside a TF-IDF baseline (and the zero-shot router when a
    trained version is evaluated); with --out a report folder a reviewer can open."""
    from eval.report import beats_line, write_report
    from eval.routing import route_all, route_all_with_views, score_suggestions, write_misses

    check_output(out, "--out", folder=True)
    tickets, labels, co_gold = _labelled_rows_or_fail(data, ExportColumns(text_cols, label_col, co_col, address_col, id_col), rows)
    messages = _dup_messages_or_fail(dup_pairs, dup_messages) if dup_pairs is not None else None
    router = _eval_router(model_version if model_version is not None else get_settings().model_version)
    if precedents is not None:
        n_prec = _precedents_or_fail(router, precedents)
        typer.echo(f"{n_prec} precedents from {precedents.name} (weight {get_settings().precedent_weight})")
    names = _department_names(router)
    _warn_unknown_labels(labels, names)
    trained = not _is_zero_shot(router)
    # a trained version's classifier opinions come from the pass that routes (what each part knows, below)
    suggestions, views = route_all_with_views(router, tickets) if trained else (route_all(router, tickets), None)
    report = score_suggestions(suggestions, labels, tickets)
    version = router.model_version
    typer.echo(f"{version} on {data.name}: n={report.n} top1={report.top1:.3f} top3={report.top3:.3f}")
    if co_gold is not None:
        from eval.metrics import co_handling_metrics

        c = co_handling_metrics(suggestions, labels, co_gold)
        typer.echo(f"co-handling: precision {c['co_precision']:.3f} recall {c['co_recall']:.3f} F1 {c['co_f1']:.3f} "
                   f"({c['co_gold_pairs']} gold co-handlers)")
    owners = None  # the messages' owners for the duplicate figures (before this router is let go)
    if messages is not None and get_settings().dedup_owner_window_days > get_settings().dedup_window_days:
        owners = _dedup_owners(router, messages)
    zero = zero_version = parts = None
    if trained:
        del router
        zr = _eval_router("none")
        if precedents is not None:
            _precedents_or_fail(zr, precedents)
        zero, zero_version = route_all(zr, tickets), zr.model_version
        del zr
        z = score_suggestions(zero, labels)
        typer.echo(f"{zero_version} on {data.name}: n={z.n} top1={z.top1:.3f} top3={z.top3:.3f}")
        from eval.compare import compare_suggestions

        paired = compare_suggestions(zero, suggestions, labels)
        typer.echo(beats_line(f"{version}", {"top1": report.top1, "top3": report.top3}, "the zero-shot router",
                              {"top1": z.top1, "top3": z.top3}, paired=paired)[0])
        from eval.components import component_metrics, components_line

        parts = component_metrics([v.lead for v in views], zero, suggestions, labels)
        typer.echo(components_line(parts))
    base = None
    if baseline and report.n >= 10:
        from eval.report import tfidf_svc_baseline

        base = tfidf_svc_baseline([t.text for t in tickets], labels)
        typer.echo(f"baseline {base['name']}: top1={base['top1']:.3f} top3={base['top3']:.3f}")
        typer.echo(beats_line(f"{version}", {"top1": report.top1, "top3": report.top3}, "the baseline", base)[0])
    dedup = None
    if dup_pairs is not None:
        dedup = _dedup_at_windows(dup_pairs, messages, owners)
        for w in dedup["windows"]:
            typer.echo(f"dedup {w['setting']}, window {w['window_days']:g} d: precision {w['precision']:.3f} "
                       f"recall {w['recall']:.3f} F1 {w['f1']:.3f} ({dedup['n_pairs']} pairs, {dedup['positives']} same)")
    if out:
        write_misses(out, report.misses)
        write_report(out, data.name, version, tickets, labels, suggestions, base, names=names, zero_shot=zero,
                     zero_shot_version=zero_version or "zero-shot", dedup=dedup,
                     version_arg=model_version or get_settings().model_version or "promoted", co_gold=co_gold,
                     components=parts)
        typer.echo(f"report: {out / 'report.md'} (and report.html)")
    for (gold, pred, k) in report.confusions[:10]:
        typer.echo(f"  {gold:22} -> {pred:22} {k}")


@eval_app.command("tune-fusion")
def eval_tune_fusion(
    data: Annotated[Path, typer.Option(help="CSV with id, title, content, lead (or an export mapped with --text-cols / "
                                    "--label-col): tickets the version was NOT trained on")],
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="the trained version to tune "
                             "(default HOTLINE_MODEL_VERSION, else the promoted one)")] = None,
    rows: Annotated[str, typer.Option("--rows", help="all | even | odd rows of the file")] = "all",
    save: Annotated[bool, typer.Option("--save", help="write the chosen knobs into the version (fusion.json): serving "
                    "then uses them unless HOTLINE_FUSION_LISTS_WEIGHT / _TEMPERATURE say otherwise")] = False,
    text_cols: TextCols = None, label_col: LabelCol = None, address_col: AddressCol = None, id_col: IdCol = None,
) -> None:
    """Choose the fusion knobs (the lists' share and the temperature) for a trained version on labelled tickets:
    every pair is scored and the one giving the gold lead the highest mean log-probability (lowest NLL) is chosen.
    Ends with one JSON line."""
    from datetime import datetime, timezone

    from eval.fusion_tuning import tune_fusion
    from model.fusion import write_version_fusion

    tickets, labels, _ = _labelled_rows_or_fail(data, ExportColumns(text_cols, label_col, None, address_col, id_col), rows)
    router = _eval_router(model_version if model_version is not None else get_settings().model_version)
    _warn_unknown_labels(labels, _department_names(router))
    try:
        choice = tune_fusion(router, tickets, labels)
    except ValueError as e:
        fail(f"{e} — give --model-version a trained version (`hotline models list`)")
    typer.echo("lists_weight  temperature  NLL    top1   top3   ECE    arbitration  auto-dispatch", err=True)
    for r in choice.rows:
        mark = " <- chosen" if r is choice.chosen else (" (current)" if r is choice.current else "")
        auto = f"{r['auto_dispatch_coverage']:.1%}" + (f" @ {r['auto_dispatch_precision']:.2f}" if r["auto_dispatch_precision"] is not None else "")
        typer.echo(f"{r['lists_weight']:>12.2f}  {r['temperature']:>11.2f}  {r['nll']:.3f}  {r['top1']:.3f}  {r['top3']:.3f}  {r['ece']:.3f}  "
                   f"{r['arbitration_rate']:>11.1%}  {auto}{mark}", err=True)
    c, cur = choice.chosen, choice.current
    typer.echo(f"chosen: lists_weight {c['lists_weight']:g}, temperature {c['temperature']:g} — NLL {c['nll']:.3f} (current "
               f"{cur['nll']:.3f}), top-1 {c['top1']:.3f} ({cur['top1']:.3f}), top-3 {c['top3']:.3f} ({cur['top3']:.3f}), "
               f"ECE {c['ece']:.3f} ({cur['ece']:.3f}) on {len(tickets)} tickets of {data.name}", err=True)
    saved = None
    if save:
        tuned_on = {"data": data.name, "rows": rows, "n": len(tickets), "nll": c["nll"], "top1": c["top1"], "top3": c["top3"], "ece": c["ece"],
                    "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        try:
            saved = write_version_fusion(router.classifier.folder, choice.config, tuned_on)
        except OSError as e:
            fail(f"could not write fusion.json into {router.classifier.folder}: {e.strerror or e} — check the folder's permissions")
        typer.echo(f"saved: {saved} (serving uses it for this version unless HOTLINE_FUSION_* is set)", err=True)
    typer.echo(json.dumps({"version": router.classifier.version, "lists_weight": c["lists_weight"],
                           "temperature": c["temperature"], "chosen": c, "current": cur,
                           "saved": str(saved) if saved else None}, ensure_ascii=False))


@eval_app.command("compare")
def eval_compare(
    v1: Annotated[str, typer.Argument(help="first model version ('none' = the zero-shot router)")],
    v2: Annotated[str, typer.Argument(help="second model version ('none' = the zero-shot router)")],
    data: Annotated[Path, typer.Option(help="CSV with id, title, content, lead (roster code, department name or 'locality'), "
                                    "or an export mapped with --text-cols / --label-col")],
    out: Annotated[Path, typer.Option(help="Folder for compare.md + compare.json")],
    examples: Annotated[int, typer.Option(min=0, max=100, help="ticket ids listed per side")] = 8,
    text_cols: TextCols = None, label_col: LabelCol = None, address_col: AddressCol = None, id_col: IdCol = None,
) -> None:
    """Two versions on the same labelled tickets: top-1/top-3/ECE/arbitration rate, per-department F1 and its
    delta, the tickets one gets right and the other wrong. Ends with one JSON line."""
    from eval.compare import compare_suggestions, summary_line, write_compare
    from eval.routing import route_all

    check_output(out, "--out", folder=True)
    tickets, labels, _ = _labelled_or_fail(data, ExportColumns(text_cols, label_col, None, address_col, id_col))
    routers = {v: _eval_router(v) for v in dict.fromkeys((v1, v2))}  # both load before any routing; the same version once
    names = _department_names(routers[v1])
    routed = {v: route_all(r, tickets) for v, r in routers.items()}
    resolved = {v: r.model_version for v, r in routers.items()}
    del routers
    _warn_unknown_labels(labels, names)
    ids = [t.id or f"#{i + 1}" for i, t in enumerate(tickets)]
    res = compare_suggestions(routed[v1], routed[v2], labels, ids, names=(v1, v2), examples=examples)
    res["versions"] = {"a": resolved[v1], "b": resolved[v2]}
    md = write_compare(out, res, data.name, names)
    typer.echo(f"compare: {md} (and compare.json)", err=True)
    typer.echo(json.dumps(summary_line(res, out), ensure_ascii=False))


def bench(json_out: Annotated[bool, typer.Option("--json", help="end with one JSON line of all figures")] = False,
          single: Annotated[int, typer.Option(min=10)] = 100, batch: Annotated[int, typer.Option(min=32)] = 256,
          dedup_sizes: Annotated[str, typer.Option(help="stored tickets for the duplicate-lookup benchmark, comma-separated; '' skips it")] = "10000,100000,1000000",
          precedent_sizes: Annotated[str, typer.Option(help="settled tickets for the precedent-lookup benchmark, comma-separated; '' skips it")] = "10000,100000",
          precedent_sync: Annotated[int, typer.Option("--precedent-sync", min=0, help="settled tickets stored (temporary SQLite) to time "
                                                      "what a sync re-reads after a new one: all of them vs the changed ones (0 skips it)")] = 0,
          tickets: Annotated[Optional[Path], typer.Option("--tickets", help="real tickets to route instead of ones built from the lists: "
                                                          "JSONL as `hotline route --input`, or a CSV with content (and title)")] = None) -> None:
    """Route latency p50/p99 (one ticket), batch throughput, duplicate and precedent lookup at scale, peak memory."""
    from eval.bench import bench_router, peak_rss_mb, read_bench_tickets

    def _sizes(opt: str, value: str) -> tuple[int, ...]:
        from eval.bench_dedup import parse_sizes

        try:
            return parse_sizes(value)
        except ValueError as e:
            fail(f"{opt}: {e}")

    sizes = _sizes("--dedup-sizes", dedup_sizes)
    prec_sizes = _sizes("--precedent-sizes", precedent_sizes)
    real = None
    if tickets is not None:
        try:
            real = read_bench_tickets(tickets)
        except OSError as e:
            fail(f"--tickets: cannot read {tickets}: {e.strerror or e}")
        except ValueError as e:
            fail(f"--tickets: {e}")
    router = router_or_fail()
    res = bench_router(router, texts=real, single=single, batch=batch)
    res["model_version"] = router.model_version
    res["encoder"] = router.index.encoder.name
    if sizes:
        from eval.bench_dedup import bench_dedup

        res.update(bench_dedup(sizes))
    if prec_sizes:
        from eval.bench_precedents import bench_precedents

        res.update(bench_precedents(prec_sizes))
    if precedent_sync:
        from eval.bench_precedents import bench_precedent_sync

        res.update(bench_precedent_sync(precedent_sync))
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if json_out:
        typer.echo(json.dumps(res, ensure_ascii=False))
    else:
        for k, v in res.items():
            typer.echo(f"{k:26} {v}")


def bench_api(clients: Annotated[int, typer.Option(min=1, max=500, help="concurrent clients")] = 20,
              seconds: Annotated[float, typer.Option(min=1, help="how long the load lasts")] = 60.0,
              database_url: Annotated[Optional[str], typer.Option(help="PostgreSQL URL: the run uses a scratch schema there, dropped after (default: a temporary SQLite file)")] = None,
              tickets_share: Annotated[float, typer.Option(min=0, max=1, help="share of POST /tickets (the rest POST /route)")] = 0.5,
              keep: Annotated[bool, typer.Option(help="keep the temporary data dir (server log, database)")] = False) -> None:
    """Load test over HTTP: start `hotline serve` on a free port with a temporary store, create a dispatcher key,
    run concurrent clients mixing POST /route and POST /tickets; requests/s, p50/p99, errors by status, then one
    JSON line. Exit 1 if any request failed (non-2xx or no answer)."""
    from eval.loadtest import run_loadtest

    try:
        res = run_loadtest(clients=clients, seconds=seconds, database_url=database_url, tickets_share=tickets_share,
                           keep=keep, say=lambda m: typer.echo(m, err=True))
    except KeyboardInterrupt:
        fail("interrupted; the server was stopped", 130)
    except RuntimeError as e:
        fail(str(e))
    for k in ("requests", "seconds", "requests_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "status", "errors_by_status",
              "tickets_created", "tickets_stored", "load_avg_1m"):
        typer.echo(f"{k:18} {res[k]}")
    for ep, v in res["endpoints"].items():
        typer.echo(f"{ep:18} {v}")
    if res.get("server_log_tail"):
        typer.echo(res.pop("server_log_tail"), err=True)
    typer.echo(json.dumps(res, ensure_ascii=False))
    if res["errors"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
    app.command("bench")(bench)
    app.command("bench-api")(bench_api)
