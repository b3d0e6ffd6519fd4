"""Model versions: write a version folder (weights, tokenizer, labels, calibration, metrics, model card),
list them, promote one. Layout under ``<model_cache_dir>/versions``::

    <version>/            one folder per trained model (see model/classifier.py for the files)
    PROMOTED.json         {"version": ..., "promoted_at": ..., "history": [...]}: what serving will load once classifier fusion (issue 6) lands
"""
from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from model.classifier import CALIBRATION_FILE, LABELS_FILE, METRICS_FILE, TRAINING_FILE

from model.versions import PROMOTED_FILE, VERSION_RE, promoted_version, resolve_version, version_names, versions_dir  # noqa: F401  (re-exported)
from model.versions import promotion_history
from model.versions import read_json as _read


def _json(path: Path, obj) -> None:
    def default(o):
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        if isinstance(o, datetime):
            return o.isoformat()
        raise TypeError(type(o))

    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2, default=default) + "\n", encoding="utf-8")


def new_version_name(slug: str, now: datetime | None = None) -> str:
    now = now or datetime.now()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", slug).strip("-")[:40] or "model"
    return f"{now:%Y%m%d-%H%M%S}-{slug}"


def save_version(folder: Path, model, tokenizer, labels: list[str], calibration: dict, metrics: dict, training: dict,
                 names: dict[str, str] | None = None, ngram=None) -> Path:
    """Write a complete version folder (written to ``folder.tmp`` then renamed, so a crash leaves no
    half version behind). ``ngram``: the character n-gram head (:class:`model.ngram_head.NgramHead`), if any."""
    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} exists already")
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    _json(tmp / LABELS_FILE, {"labels": list(labels), "names": {l: (names or {}).get(l, l) for l in labels}})
    _json(tmp / CALIBRATION_FILE, calibration)
    _json(tmp / METRICS_FILE, metrics)
    _json(tmp / TRAINING_FILE, training)
    if ngram is not None:
        ngram.save(tmp)
    (tmp / "README.md").write_text(model_card(folder.name, labels, calibration, metrics, training, names), encoding="utf-8")
    tmp.rename(folder)
    return folder


def model_card(version: str, labels: list[str], calibration: dict, metrics: dict, training: dict,
               names: dict[str, str] | None = None) -> str:
    names = names or {}
    val = metrics.get("validation", {})
    lines = [f"# Dispatch classifier {version}", "",
             "Lead department (softmax) and co-handling departments (sigmoid) for 12345 hotline tickets, "
             f"fine-tuned from `{training.get('encoder')}` with the `{training.get('preset', {}).get('name')}` preset"
             + (f", beside a character 1–3-gram TF-IDF + logistic-regression head (weight {training['preset']['ngram_weight']} in the "
                "combined lead score)." if training.get("preset", {}).get("ngram_weight") else "."), "",
             "## Data", "",
             f"- source: `{training.get('data')}` ({training.get('rows_used')} rows used, {training.get('rows_skipped', 0)} skipped — see training.json)",
             f"- data fingerprint: `{training.get('data_fingerprint')}`; responsibility lists version: `{training.get('lists_version')}`",
             f"- split: {training.get('split')}; train {training.get('n_train')} / validation {training.get('n_val')}",
             f"- labels: {len(labels)}", "", "## Metrics (validation)", ""]
    if val:
        lines += [f"- macro-F1 **{val.get('macro_f1')}**, accuracy {val.get('accuracy')}, top-3 {val.get('top3')}",
                  f"- ECE {calibration.get('ece_before')} → {calibration.get('ece_after')} after temperature scaling "
                  f"(T = {calibration.get('temperature')})",
                  f"- conformal threshold {calibration.get('conformal_threshold')} (alpha {calibration.get('alpha')}): "
                  f"mean set size {calibration.get('mean_set_size')}, {calibration.get('multi_member_rate')} of tickets get more than one plausible department"]
    for k in ("cv", "external"):
        if metrics.get(k):
            m = metrics[k]
            lines.append(f"- {k}: " + ", ".join(f"{a} {b}" for a, b in m.items() if isinstance(b, (int, float, str))))
    lines += ["", f"Training: {training.get('seconds')} s, peak memory {training.get('peak_memory_mb')} MB, "
              f"{training.get('epochs_run')} epochs, seed {training.get('seed')}.", "", "## Per label (validation)", "",
              "| label | name | support | F1 |", "|---|---|---|---|"]
    per, sup = val.get("per_label_f1", {}), val.get("support", {})
    for l in labels:
        lines.append(f"| {l} | {names.get(l, '')} | {sup.get(l, 0)} | {per.get(l, '—')} |")
    lines += ["", "## Known limits", "",
              "- Validation rows come from the same source as the training rows; when that source is the synthetic "
              "history, these numbers say nothing about real tickets — judge on real labelled data (`hotline eval routing`).",
              "- The validation set also chose the early-stopping epoch and fitted the calibration, so its numbers are slightly optimistic.",
              "- Labels with few examples (see support) have unreliable F1; `locality` means the street office/town of the address.",
              f"- Texts longer than {training.get('preset', {}).get('max_seq_length')} tokens are truncated.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- registry


def list_versions(root: Path) -> list[dict]:
    root = Path(root)
    promoted = promoted_version(root)
    out = []
    for name in version_names(root):
        d = root / name
        metrics = _read(d / METRICS_FILE)
        training = _read(d / TRAINING_FILE)
        val = metrics.get("validation") if isinstance(metrics.get("validation"), dict) else {}
        preset = training.get("preset") if isinstance(training.get("preset"), dict) else {}
        out.append({"version": d.name, "promoted": d.name == promoted, "created": training.get("created"),
                    "data": training.get("data"), "rows": training.get("rows_used"), "labels": len(labels) if isinstance(labels := _read(d / LABELS_FILE).get("labels"), list) else 0,
                    "macro_f1": val.get("macro_f1"), "accuracy": val.get("accuracy"), "preset": preset.get("name"),
                    "path": str(d)})
    return out


def previous_promoted(root: Path) -> str | None:
    """The version that was promoted before the promoted one (None: none was, or nothing is promoted)."""
    rec = _read(Path(root) / PROMOTED_FILE)
    current = rec.get("version")
    for entry in reversed(promotion_history(rec)):
        if entry.get("version") == current:
            previous = entry.get("previous")
            return previous if isinstance(previous, str) else None
    return None


def promote(root: Path, version: str) -> str:
    folder = resolve_version(root, version)
    rec = _read(Path(root) / PROMOTED_FILE)
    history = promotion_history(rec)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    history.append({"version": folder.name, "promoted_at": now, "previous": rec.get("version")})
    tmp = Path(root) / (PROMOTED_FILE + ".tmp")
    _json(tmp, {"version": folder.name, "promoted_at": now, "history": history})
    tmp.replace(Path(root) / PROMOTED_FILE)
    return folder.name
