"""Where trained model versions live and which one is promoted: the read side of the registry.

``training/package.py`` writes version folders and ``PROMOTED.json``; the router (and so serving) only
reads them through this module — serving never imports ``training``. Layout::

    <versions root>/<version>/   a folder written by training (see model/classifier.py)
    <versions root>/PROMOTED.json   {"version": ..., "promoted_at": ..., "history": [...]}
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .classifier import LABELS_FILE

PROMOTED_FILE = "PROMOTED.json"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ZERO_SHOT_NAMES = ("none", "zero-shot")


def versions_dir(model_cache_dir: Path) -> Path:
    return Path(model_cache_dir) / "versions"


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; ``{}`` when the file is missing, unreadable or not an object (``[]``, a number):
    the callers read fields from it, and a damaged file must not crash them."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def promotion_history(rec: dict) -> list[dict]:
    """The entries of a ``PROMOTED.json`` record's history that are objects (a hand-edited file may hold others)."""
    history = rec.get("history")
    return [e for e in history if isinstance(e, dict)] if isinstance(history, list) else []


def version_names(root: Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir()
                  if d.is_dir() and not d.name.endswith(".tmp") and (d / LABELS_FILE).is_file())


def promoted_version(root: Path, strict: bool = False) -> str | None:
    """The promoted version's name; None when none is promoted. ``strict`` (what the router serves): a
    ``PROMOTED.json`` that cannot be read, or that names a version not in ``root``, is a ValueError saying so — not a
    silent fall-back to the zero-shot router; else such a file reads as nothing promoted (listing, rollback)."""
    path = Path(root) / PROMOTED_FILE
    v = read_json(path).get("version")
    if not (isinstance(v, str) and VERSION_RE.match(v)):  # a number, a path: not a version name
        v = None
    if v and (Path(root) / v / LABELS_FILE).is_file():
        return v
    if strict and path.exists():
        what = f"names version {v!r}, which is not in {root}" if v else "is damaged (no version in it)"
        raise ValueError(f"{path} {what} — promote a version (`hotline models promote V`), or remove the file to "
                         "serve the lists-only router")
    return None


def resolve_version(root: Path, version: str) -> Path:
    """A version folder by name (or unique prefix); ``promoted`` = the promoted one."""
    root = Path(root)
    if version == "promoted":
        v = promoted_version(root)
        if not v:
            raise FileNotFoundError(f"no promoted model version in {root} — run `hotline models promote VERSION`")
        version = v
    if not VERSION_RE.match(version):
        raise ValueError(f"{version!r} is not a version name")
    if (root / version / LABELS_FILE).is_file():
        return root / version
    matches = [v for v in version_names(root) if v.startswith(version)]
    if len(matches) == 1:
        return root / matches[0]
    if matches:
        raise ValueError(f"{version!r} matches {len(matches)} versions: {', '.join(matches)}")
    raise FileNotFoundError(f"no model version {version!r} in {root} — see `hotline models list`")


def check_version(folder: Path) -> None:
    """Cheap checks that a version folder will load (no weights are read): labels, config and calibration parse
    and agree, the weights file is there, the n-gram head (if any) is whole. Raises ValueError naming the
    folder and the damaged file, so `hotline serve` can say so in one line instead of failing at start-up."""
    from .ngram_head import NgramHead

    folder = Path(folder)

    def parsed(name: str, required: bool = True) -> dict:
        path = folder / name
        if not path.is_file():
            if required:
                raise ValueError(f"{folder}: {name} is missing")
            return {}
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{folder}: {name} is damaged ({e})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{folder}: {name} is damaged (not a JSON object)")
        return obj

    labels = parsed(LABELS_FILE).get("labels")
    if not isinstance(labels, list) or not labels:
        raise ValueError(f"{folder}: {LABELS_FILE} has no label list")
    n = parsed("config.json").get("num_labels", len(parsed("config.json").get("id2label") or {}))
    if n != len(labels):
        raise ValueError(f"{folder}: {len(labels)} labels but config.json says {n}")
    parsed("calibration.json", required=False)
    weights = folder / "model.safetensors"
    if not weights.is_file() or weights.stat().st_size == 0:
        raise ValueError(f"{folder}: model.safetensors is missing or empty")
    from .fusion import read_version_fusion

    read_version_fusion(folder)  # its own fusion knobs, if any (hotline eval tune-fusion --save)
    head = NgramHead.load(folder)
    if head is not None and head.num_labels != len(labels):
        raise ValueError(f"{folder}: the n-gram head has {head.num_labels} labels, {LABELS_FILE} {len(labels)}")


def serving_version(root: Path, requested: str | None) -> Path | None:
    """The version folder the router should load: ``requested`` (a name, prefix or ``promoted``); when not
    given, the promoted one if any; ``none``/``zero-shot`` (or nothing promoted) = ``None``, the zero-shot router."""
    if requested is not None and requested.strip().lower() in ZERO_SHOT_NAMES + ("",):
        return None
    if requested is None:
        v = promoted_version(root, strict=True)
        return Path(root) / v if v else None
    return resolve_version(root, requested.strip())
