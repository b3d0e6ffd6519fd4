"""A running service serves a newly promoted version and edited lists without a restart (serving/reload.py), keeps
serving the old ones when the new cannot be loaded, and an edit of the lists re-encodes only what changed."""
from __future__ import annotations

import shutil

import yaml

from model.versions import PROMOTED_FILE
from responsibility_lists.loader import DEFAULT_DIR
from test_api import h, make_client

LAMP = {"title": "路灯不亮", "content": "我们小区门口那条路的路灯坏了一个多月了，晚上黑漆漆的没人修"}


def copy_lists(dst):
    shutil.copytree(DEFAULT_DIR, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dst


class Counting:
    """Counts the texts the shared encoder embeds (wraps its two encode methods for one test)."""

    def __init__(self, encoder, monkeypatch):
        self.texts: list[str] = []
        for name in ("encode_queries", "encode_passages"):
            real = getattr(encoder, name)

            def wrapped(texts, *a, _real=real, **kw):
                self.texts.extend(texts)
                return _real(texts, *a, **kw)

            monkeypatch.setattr(encoder, name, wrapped)


def test_a_promoted_version_and_edited_lists_are_served_without_a_restart(router, version_root, tmp_path, monkeypatch):
    root, name = version_root
    versions = tmp_path / "versions"
    shutil.copytree(root, versions)
    (versions / PROMOTED_FILE).unlink()  # nothing promoted yet: the zero-shot router serves
    lists_dir = copy_lists(tmp_path / "lists")
    # a cache of its own: the edited lists' index is built here, not found from an earlier run
    client, keys = make_client(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, router, lists_dir=lists_dir,
                               model_cache_dir=tmp_path / "cache", model_versions_dir=versions, precedent_weight=0.5,
                               encoder_dtype="float32", reload_seconds=0)
    app, d = client.app, h(keys["dispatcher"])
    reloader = app.state.reloader
    try:
        assert client.get("/healthz").json()["model_version"].startswith("zero-shot@")
        t = client.post("/api/v1/tickets", json=LAMP, headers=d).json()  # a dispatcher's override: a precedent
        assert client.post(f"/api/v1/tickets/{t['id']}/dispatch", json={"lead": "health"}, headers=d).status_code == 200
        assert reloader.check() is False  # nothing changed on disk

        # the ML engineer promotes a version: the next check serves it, on the same encoder and list index
        from training.package import promote

        promote(versions, name)
        assert reloader.check() is True
        hz = client.get("/healthz").json()
        assert hz["model_version"] == f"{name}+lists@{router.lists.version}" and "reloaded_at" in hz
        assert "reload_error" not in hz
        new = app.state.router
        assert new.classifier.version == name and new.index is router.index  # the encoder and index are not loaded again
        assert app.state.precedents.router is new and len(new.precedents) == 1  # the settled ticket still votes
        r = client.post("/api/v1/route", json=LAMP, headers=d).json()
        assert r["model_version"] == hz["model_version"]
        assert any(e["type"] == "precedent" for e in r["evidence"])
        assert reloader.check() is False  # and not again
        scrape = client.get("/metrics", headers=h(keys["admin"])).text  # what each serving process serves, for ops
        assert f'model_version="{hz["model_version"]}"' in scrape and 'hotline_model_reloads_total{outcome="ok"} 1.0' in scrape

        # lists that do not load: the old router keeps serving, the error is shown once, not retried
        dept = lists_dir / "departments" / "health.yaml"
        good = dept.read_text(encoding="utf-8")
        dept.write_text(good + "\nitems: [unclosed\n", encoding="utf-8")
        assert reloader.check() is False
        hz = client.get("/healthz").json()
        assert hz["model_version"] == f"{name}+lists@{router.lists.version}"
        assert "health.yaml" in hz["reload_error"]
        assert client.post("/api/v1/route", json=LAMP, headers=d).status_code == 200
        assert reloader.check() is False and app.state.router is new
        assert 'hotline_model_reloads_total{outcome="failed"} 1.0' in client.get("/metrics", headers=h(keys["admin"])).text

        # fixed, with one phrasing added: served, and only that phrasing is embedded for the new index
        doc = yaml.safe_load(good)
        phrasing = "医院门口的路灯不亮了好久"
        doc["items"][0]["phrasings"].append(phrasing)
        dept.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        counting = Counting(router.index.encoder, monkeypatch)
        assert reloader.check() is True
        hz = client.get("/healthz").json()
        assert "reload_error" not in hz and hz["lists_version"] != router.lists.version
        assert counting.texts[0] == phrasing  # the index: the one new text (then the precedents' cache: nothing)
        assert len([x for x in counting.texts if x == phrasing]) == 1 and len(counting.texts) <= 2
        newer = app.state.router
        assert newer.index is not router.index and newer.index.encoder is router.index.encoder
        assert newer.index.index.ntotal == router.index.index.ntotal + 1
        assert phrasing in newer.index.texts
        assert client.post("/api/v1/route", json=LAMP, headers=d).json()["model_version"] == hz["model_version"]
    finally:
        app.state.store.dispose()


def test_an_index_rebuilt_from_the_previous_one_equals_a_fresh_build(router, tmp_path, monkeypatch):
    """Reusing the vectors of unchanged texts (ListIndex.build_vectors(reuse=...)) gives the index a build from
    scratch gives, and encodes only the changed texts."""
    import numpy as np

    from model.retrieval import ListIndex
    from responsibility_lists.loader import load_lists

    lists_dir = copy_lists(tmp_path / "lists")
    f = lists_dir / "departments" / "education.yaml"
    doc = yaml.safe_load(f.read_text(encoding="utf-8"))
    doc["items"][1]["title"] += "（含课后服务）"  # changes that item's passage; its phrasings stay
    f.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    lists = load_lists(lists_dir)
    enc = router.index.encoder
    counting = Counting(enc, monkeypatch)
    vecs, owners, texts = ListIndex.build_vectors(lists, enc, reuse=router.index)
    assert len(counting.texts) == 1 and counting.texts[0].startswith(doc["items"][1]["title"])
    monkeypatch.undo()
    fresh, fresh_owners, fresh_texts = ListIndex.build_vectors(lists, enc)
    assert texts == fresh_texts and (owners == fresh_owners).all()
    assert np.abs(vecs - fresh).max() < 1e-4


def test_the_service_looks_for_a_promotion_by_itself_and_stops_looking_at_shutdown(router, version_root, model_cache,
                                                                                    tmp_path):
    import time

    from fastapi.testclient import TestClient

    from training.package import promote

    root, name = version_root
    versions = tmp_path / "versions"
    shutil.copytree(root, versions)
    (versions / PROMOTED_FILE).unlink()
    client, _ = make_client(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, router, model_cache_dir=model_cache,
                            model_versions_dir=versions, reload_seconds=0.2)
    app = client.app
    try:
        with TestClient(app) as c:  # the lifespan starts the watcher
            assert c.get("/healthz").json()["model_version"].startswith("zero-shot@")
            promote(versions, name)
            deadline = time.monotonic() + 60
            while not c.get("/healthz").json()["model_version"].startswith(name) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.get("/healthz").json()["model_version"].startswith(name + "+lists@")
            thread = app.state.reloader._thread
            assert thread is not None and thread.is_alive()
        assert not thread.is_alive() and app.state.reloader._thread is None  # stopped with the app
    finally:
        app.state.store.dispose()


def test_a_change_is_served_only_once_it_has_settled_and_dedup_follows_the_gazetteer(router, tmp_path):
    """A lists write under way (a ``*.tmp`` beside the file it replaces, as ``hotline lists import`` writes) or a
    second file changing within the settle time defers the reload to the next check; a crashed write's old ``*.tmp``
    does not block it. Once served, the duplicate index places new tickets with the edited gazetteer."""
    import os
    import time

    lists_dir = copy_lists(tmp_path / "lists")
    client, keys = make_client(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, router, lists_dir=lists_dir,
                               model_cache_dir=tmp_path / "cache", encoder_dtype="float32", reload_seconds=0)
    app, d = client.app, h(keys["dispatcher"])
    reloader, start = app.state.reloader, app.state.router
    try:
        ticket = {"title": "噪音扰民", "content": "晚上十点以后还在施工，吵得睡不着", "address": "樱桃湾小区", "created_at": "2024-05-01T22:30:00+08:00"}
        assert client.post("/api/v1/tickets", json=ticket, headers=d).status_code in (200, 201)
        det = app.state.dedup.det
        assert det.records.locality[-1] is None  # 樱桃湾小区 is not on the map yet

        gaz = lists_dir / "gazetteer.yaml"
        doc = yaml.safe_load(gaz.read_text(encoding="utf-8"))
        doc["localities"][0]["estates"].append("樱桃湾小区")
        code = doc["localities"][0]["code"]
        gaz.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")

        pending = lists_dir / "departments" / "health.yaml.tmp"  # another file of the same import, not yet in place
        pending.write_text("items: []\n", encoding="utf-8")
        assert reloader.check() is False and app.state.router is start
        old = time.time() - 3600  # the same file left by a crash an hour ago does not block reloading
        os.utime(pending, (old, old))

        # a second file written while the first change settles: not served yet ...
        dept = lists_dir / "departments" / "education.yaml"
        real_wait = reloader._stop.wait

        def wait_and_write(seconds):
            dept.write_text(dept.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
            return real_wait(seconds)

        reloader._stop.wait = wait_and_write
        assert reloader.check() is False and app.state.router is start
        reloader._stop.wait = real_wait
        # ... and served at the next check, both files together
        assert reloader.check() is True
        new = app.state.router
        assert new is not start and new.locator.locate("樱桃湾小区").code == code

        again = {**ticket, "created_at": "2024-05-02T22:30:00+08:00"}
        assert client.post("/api/v1/tickets", json=again, headers=d).status_code in (200, 201)
        assert det.records.locality[-1] == code  # the duplicate index places it with the edited gazetteer
        assert det.records.locality[0] is None  # the stored ticket keeps the place it was judged with
    finally:
        app.state.store.dispose()
