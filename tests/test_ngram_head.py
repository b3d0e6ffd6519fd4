"""The character n-gram head beside the transformer (model/ngram_head.py, training/ngram.py)."""
from __future__ import annotations

import numpy as np
import pytest

from model.ngram_head import NGRAM_JSON, NGRAM_NPZ, NgramHead, log_softmax_np
from training.ngram import fit_ngram_head

LABELS = ["water_supply", "gas_supply", "education", "unused"]
TEXTS = {
    0: ["家里停水三天了自来水公司不管", "水管爆了停水没人修", "自来水发黄有异味停水频繁", "小区停水也不通知"],
    1: ["燃气灶打不着火燃气公司不来修", "闻到燃气泄漏的味道很害怕", "燃气费收得太多了", "燃气管道老化要更换"],
    2: ["孩子上学划片不合理学校不收", "学校乱收补课费", "幼儿园学位不够孩子没法上学", "学校食堂饭菜太差"],
}


def _data():
    texts, y = [], []
    for label, ts in TEXTS.items():
        texts += ts
        y += [label] * len(ts)
    return texts, np.array(y)


def test_fitted_head_predicts_by_decisive_ngrams_and_never_an_unseen_label():
    texts, y = _data()
    head = fit_ngram_head(texts, y, len(LABELS))
    lp = head.log_proba(["我家又停水了", "楼道里燃气味很重", "学校不让孩子上学"])
    assert lp.shape == (3, len(LABELS))
    assert np.allclose(np.exp(lp).sum(1), 1.0, atol=1e-5)
    assert list(lp.argmax(1)) == [0, 1, 2]
    assert (np.exp(lp[:, 3]) < 1e-6).all()  # no training row: never proposed


def test_combine_adds_weighted_log_probabilities_and_weight_zero_is_the_transformer_alone():
    texts, y = _data()
    head = fit_ngram_head(texts, y, len(LABELS), weight=1.0)
    flat = np.zeros((1, len(LABELS)), np.float32)  # a transformer that cannot tell
    confident_wrong = np.array([[0.0, 0.0, 3.0, 0.0]], np.float32)
    assert head.combine(flat, ["燃气泄漏"]).argmax() == 1
    combined = head.combine(confident_wrong, ["燃气泄漏"])
    assert np.allclose(combined, log_softmax_np(confident_wrong) + head.log_proba(["燃气泄漏"]), atol=1e-5)
    off = fit_ngram_head(texts, y, len(LABELS), weight=0.0)
    assert np.array_equal(off.combine(confident_wrong, ["燃气泄漏"]), confident_wrong)


def test_save_and_load_round_trip_without_pickle(tmp_path):
    texts, y = _data()
    head = fit_ngram_head(texts, y, len(LABELS), weight=0.7)
    head.save(tmp_path)
    assert (tmp_path / NGRAM_JSON).is_file() and (tmp_path / NGRAM_NPZ).is_file()
    back = NgramHead.load(tmp_path)
    probe = ["停水", "燃气费太贵", "学校收费", ""]
    assert np.allclose(back.log_proba(probe), head.log_proba(probe), atol=1e-5)
    assert back.weight == 0.7 and back.num_labels == len(LABELS)
    assert NgramHead.load(tmp_path / "nothing-here") is None
    # damaged files: one clear ValueError naming the folder (the CLI and the server turn it into one line)
    (tmp_path / NGRAM_NPZ).write_bytes(b"not a numpy archive")
    with pytest.raises(ValueError, match="n-gram head .* is damaged"):
        NgramHead.load(tmp_path)
    (tmp_path / NGRAM_NPZ).unlink()
    with pytest.raises(ValueError, match="is damaged"):
        NgramHead.load(tmp_path)


def test_two_classes_and_one_class_keep_the_version_label_count():
    texts, y = _data()
    keep = y < 2
    two = fit_ngram_head([t for t, k in zip(texts, keep) if k], y[keep], len(LABELS))
    lp = two.log_proba(["停水", "燃气"])
    assert lp.shape == (2, len(LABELS)) and list(lp.argmax(1)) == [0, 1]
    one = fit_ngram_head(TEXTS[2], np.full(4, 2), len(LABELS))
    assert one.log_proba(["随便什么"]).argmax() == 2


def test_shapes_that_disagree_are_refused():
    with pytest.raises(ValueError, match="shapes disagree"):
        NgramHead(["a", "b"], np.ones(2), np.zeros((3, 5)), np.zeros(3))


def test_cli_trains_with_the_head_by_default_and_without_it_at_weight_zero(tmp_path, model_cache, monkeypatch):
    import csv
    import json

    from typer.testing import CliRunner

    from hotline.cli import app
    from hotline.settings import get_settings
    from model.classifier import DispatchClassifier

    data = tmp_path / "history.csv"
    with open(data, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["标题", "详情", "分类"])
        for label, ts in TEXTS.items():
            for t in ts * 3:
                w.writerow([t[:6], t, LABELS[label]])
    monkeypatch.setenv("HOTLINE_MODEL_CACHE_DIR", str(model_cache))
    get_settings.cache_clear()
    try:
        base = ["train", "--data", str(data), "--text-cols", "标题,详情", "--label-col", "分类", "--epochs", "2",
                "--max-seq-length", "32", "--quiet"]
        folders = {}
        for weight, has_head in ((None, True), ("0", False)):
            out = tmp_path / f"versions-{weight}"
            res = CliRunner().invoke(app, base + ["--out", str(out)] + (["--ngram-weight", weight] if weight else []))
            assert res.exit_code == 0, res.output
            folder = folders[weight] = out / json.loads(res.output.strip().splitlines()[-1])["version"]
            assert (folder / NGRAM_JSON).is_file() == has_head
            clf = DispatchClassifier.from_pretrained(folder)
            assert (clf.ngram is not None) == has_head
            assert clf.predict(["停水好几天了"])[0]["lead"] in LABELS
        res = CliRunner().invoke(app, base + ["--ngram-weight", "-1"])
        assert res.exit_code != 0 and "ngram-weight" in res.output
        # `hotline serve` checks the version it will serve before starting: a damaged head is one line, no server
        import uvicorn

        from hotline.cli import _check_serving_version

        started = []
        monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(a))
        with_head = folders[None]
        monkeypatch.setenv("HOTLINE_MODEL_VERSIONS_DIR", str(with_head.parent))
        monkeypatch.setenv("HOTLINE_MODEL_VERSION", with_head.name)
        get_settings.cache_clear()
        _check_serving_version(get_settings())  # whole: passes
        (with_head / NGRAM_NPZ).write_bytes(b"truncated")
        res = CliRunner().invoke(app, ["serve"])
        assert res.exit_code == 1 and not started, res.output
        line = res.output.strip()
        assert "\n" not in line and "damaged" in line and "hotline models promote" in line and "Traceback" not in line
    finally:
        get_settings.cache_clear()
