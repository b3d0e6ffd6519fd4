"""One training run end to end: split, (cross-validate), train, calibrate, package a version folder."""
from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from .calibration import calibrate
from .data import History, split_indices
from .package import new_version_name, save_version
from .trainer import Preset, co_metrics, cross_validate, lead_metrics, peak_memory_mb, preset_dict, train_classifier


def co_matrix(data: History, labels: list[str]) -> np.ndarray:
    index = {l: i for i, l in enumerate(labels)}
    m = np.zeros((len(data), len(labels)), np.float32)
    for i, cs in enumerate(data.co):
        for c in cs:
            if c in index:
                m[i, index[c]] = 1
    return m


def run_training(data: History, labels: list[str] | None, *, encoder_dir: Path, encoder_name: str, preset: Preset,
                 versions_root: Path | None, slug: str, seed: int = 13, by_time: bool = False, cv: int = 0,
                 cv_only: bool = False, lists_version: str | None = None, source: str = "", names: dict | None = None,
                 extra_training: dict | None = None, progress: bool = True) -> dict:
    """Returns the metrics summary (the JSON line ``hotline train`` prints) with ``version``/``path`` when saved."""
    t0 = time.time()
    labels = list(labels) if labels else data.label_names
    summary: dict = {}
    cv_res = None
    if cv and cv > 1:
        cv_res = cross_validate(data, labels, encoder_dir=encoder_dir, preset=preset, k=cv, seed=seed, progress=progress)
        summary.update({k: v for k, v in cv_res.items() if not k.startswith("oof_")})
        if cv_only:
            summary["peak_memory_mb"] = round(peak_memory_mb())
            return summary
    tr, va, how = split_indices(data, seed=seed, by_time=by_time)
    if by_time and not how.startswith("time"):  # said in the model card too; the engineer asked for a time split
        print(f"warning: no time split: validation is a {how}", file=sys.stderr)
    train, val = data.subset(tr), data.subset(va)
    res = train_classifier(train, val if len(val) else None, labels, encoder_dir=encoder_dir, preset=preset, seed=seed,
                           progress=progress)
    if res.val_logits is not None:
        cal = calibrate(res.val_logits, res.val_y, res.val_co_logits, res.val_co)
        val_m = lead_metrics(res.val_logits, res.val_y, labels, cal["temperature"])
        val_m["ece_uncalibrated"] = cal["ece_before"]
        val_m.update(co_metrics(res.val_co_logits, res.val_co, cal["co_threshold"]))
    else:
        cal = {"temperature": 1.0, "conformal_threshold": 0.5, "alpha": 0.1, "co_threshold": 0.5, "n_calibration": 0,
               "note": "no validation rows: not calibrated"}
        val_m = {}
    metrics = {"validation": val_m}
    if cv_res:
        metrics["cv"] = {k: v for k, v in summary.items() if k not in ("folds", "per_label_f1")}
    training = {"created": datetime.now().isoformat(timespec="seconds"), "data": source, "data_fingerprint": data.fingerprint(),
                "rows_used": len(data), "rows_skipped": data.report.dropped, "load_report": data.report.summary(),
                "lists_version": lists_version, "encoder": encoder_name, "preset": preset_dict(preset), "seed": seed,
                "split": how, "n_train": len(train), "n_val": len(val), "epochs_run": res.epochs_run,
                "seconds": round(time.time() - t0, 1), "train_seconds": round(res.seconds, 1),
                "peak_memory_mb": round(peak_memory_mb()), "log": res.log, **(extra_training or {})}
    if not cv_res:
        summary = {"macro_f1": val_m.get("macro_f1"), "accuracy": val_m.get("accuracy"), "top3": val_m.get("top3"),
                   "ece": val_m.get("ece_uncalibrated"), "ece_calibrated": val_m.get("ece"),
                   "per_label_f1": val_m.get("per_label_f1", {})}
    summary.update({"n_train": len(train), "n_val": len(val), "seconds": training["seconds"],
                    "peak_memory_mb": training["peak_memory_mb"], "temperature": cal["temperature"],
                    "conformal_threshold": cal["conformal_threshold"]})
    if versions_root is not None:
        folder = Path(versions_root) / new_version_name(slug)
        save_version(folder, res.model, res.tokenizer, labels, cal, metrics, training, names, res.ngram)
        summary.update({"version": folder.name, "path": str(folder)})
    summary["_result"] = res
    return summary


def default_history(lists, n: int = 3000, seed: int = 0) -> History:
    from .synthetic import generate, text_of

    recs = generate(lists, n, seed)
    return History.from_records([{"text": text_of(r), "label": r["lead"], "co": r["co"], "id": r["id"],
                                  "caller": r["caller"], "address": r["address"],
                                  "time": datetime.strptime(r["created_at"], "%Y-%m-%d %H:%M:%S")} for r in recs],
                                source=f"synthetic(n={n}, seed={seed})")
