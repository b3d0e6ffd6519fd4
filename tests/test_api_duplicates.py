"""Duplicate detection in the service (issue 6 §3, issue 7): POST /tickets links repeats and stores the verdict,
REPEAT_COMPLAINT sends often-reported problems to arbitration, GET /duplicates/{id} and GET /hot-issues, on
both databases; the index rebuilt from the database (or loaded from its saved state) equals the live one; two
processes on one database see each other's tickets."""
from __future__ import annotations

import pytest

from dbutil import DB_KINDS, database_url
from serving.dedup import DedupService
from test_api import h, make_client

OIL_A = {"content": "幸福里小区3号楼楼下的烧烤店每天晚上油烟很大，家里窗户都不敢开，希望有关部门管一管。",
         "address": "梅林街道幸福里小区3号楼", "caller": "13812345678"}
OIL_A2 = {"content": "又是幸福里小区3号楼楼下那家烧烤店，油烟还是很大，上次反映了没人管，窗户都不敢开。",
          "address": "梅林街道幸福里小区3号楼", "caller": "+86 138-1234-5678"}
LIFT = {"content": "幸福里小区的电梯已经坏了两个星期，老人上下楼非常困难，物业一直不修。",
        "address": "幸福里小区", "caller": "13700000003"}
SEWER = ["柳溪大街菜市场门口下水道堵了，污水漫到路面上，臭气熏天。",
         "柳溪大街菜市场门口的下水道又堵了，路上全是污水，很臭。",
         "柳溪大街菜市场那里下水道堵塞，污水横流，走路都没法走。",
         "柳溪大街菜市场门前下水道堵塞污水外溢，气味难闻，请处理。"]


def post(client, key, body):
    r = client.post("/api/v1/tickets", json=body, headers=h(key))
    assert r.status_code == 201, r.text
    return r.json()


def test_repeat_by_same_caller_is_linked_other_problem_is_not(api_db):
    client, k = api_db
    d = k["dispatcher"]
    first = post(client, d, OIL_A)
    assert first["duplicate"] == {"duplicate_of": None, "cluster": first["id"], "kind": None, "score": 0.0, "places": None}
    again = post(client, d, OIL_A2)
    dup = again["duplicate"]
    at_once = dup.pop("places")  # the widget shows what makes them the same place with the first answer
    assert "幸福里小区" in at_once[0], at_once
    assert dup["duplicate_of"] == first["id"] and dup["cluster"] == first["id"] and dup["kind"] == "repeat"
    assert 0 < dup["score"] <= 1
    assert "13812345678" not in str(again)
    lift = post(client, d, LIFT)
    assert lift["duplicate"]["duplicate_of"] is None and lift["duplicate"]["cluster"] == lift["id"]
    # stored: GET /tickets/{id} shows the same verdict; GET /duplicates lists the earlier ticket
    assert client.get(f"/api/v1/tickets/{again['id']}", headers=h(d)).json()["duplicate"] == {**dup, "places": None}
    for role in ("dispatcher", "arbitrator", "admin"):
        r = client.get(f"/api/v1/duplicates/{again['id']}", headers=h(k[role]))
        assert r.status_code == 200, r.text
    j = r.json()
    places = j["duplicate"].pop("places")  # what makes them the same place, for the dispatcher to check
    assert j["duplicate"] == dup and [e["id"] for e in j["earlier"]] == [first["id"]]
    assert "幸福里小区" in places[0] and "幸福里" not in places, places  # the address both give, read whole
    assert places == at_once
    assert j["earlier"][0]["duplicate"]["kind"] is None and j["cluster_size"] == 2
    assert j["earlier"][0]["duplicate"]["places"] == []
    assert client.get(f"/api/v1/duplicates/{first['id']}", headers=h(d)).json()["cluster_size"] == 2
    lj = client.get(f"/api/v1/duplicates/{lift['id']}", headers=h(d)).json()
    assert lj["earlier"] == [] and lj["cluster_size"] == 1 and lj["duplicate"]["places"] == []
    r = client.get("/api/v1/duplicates/999999", headers=h(d))
    assert r.status_code == 404 and r.json()["message_zh"] and r.json()["detail"][0]["field"] == "ticket_id"
    assert client.get("/api/v1/duplicates/0", headers=h(d)).status_code == 422


def test_repeat_complaint_goes_to_arbitration_and_hot_issue_appears(api_db):
    client, k = api_db
    d, a = h(k["dispatcher"]), h(k["arbitrator"])
    out = [post(client, k["dispatcher"], {"content": SEWER[i % 4], "address": "柳溪大街", "caller": f"1590000{i:04d}"})
           for i in range(5)]
    assert all(t["duplicate"]["cluster"] == out[0]["id"] for t in out), [t["duplicate"] for t in out]

    def repeat(t):
        return [r for r in t["arbitration_reasons"] if r["code"] == "REPEAT_COMPLAINT"]

    # default dedup_repeat_min_count = 3: the first two are not flagged for it, the third on are
    assert not repeat(out[0]) and not repeat(out[1])
    third = out[2]
    assert repeat(third) and repeat(third)[0]["message"] == "同一问题已被反复反映3次，建议重点督办"
    assert third["status"] == "in_arbitration" and third["needs_arbitration"]
    assert any(r["code"] == "REPEAT_COMPLAINT" for r in third["suggestion"]["reasons"])
    assert third["suggestion"]["needs_arbitration"] is True
    assert "同一问题已被反复反映5次" in repeat(out[4])[0]["message"]
    queue = {t["id"] for t in client.get("/api/v1/arbitration/queue", headers=a).json()}
    assert {out[2]["id"], out[3]["id"], out[4]["id"]} <= queue
    j = client.get(f"/api/v1/duplicates/{out[4]['id']}", headers=a).json()
    assert j["cluster_size"] == 5 and [e["id"] for e in j["earlier"]] == [t["id"] for t in out[:4]]
    hist = client.get(f"/api/v1/tickets/{third['id']}", headers=d).json()["history"]
    assert any(e["kind"] == "arbitration" and e["data"]["reasons"] == ["REPEAT_COMPLAINT"] for e in hist)

    # hot issues: not yet hot at 6, hot at 5
    assert client.get("/api/v1/hot-issues?days=7&min_count=6", headers=a).json() == []
    hot = client.get("/api/v1/hot-issues?days=7&min_count=5", headers=a).json()
    assert len(hot) == 1 and hot[0]["cluster"] == out[0]["id"] and hot[0]["count"] == 5
    assert sorted(hot[0]["ticket_ids"]) == sorted(t["id"] for t in out) and "下水道" in hot[0]["title"]
    assert hot[0]["trend"] == "new" and hot[0]["callers"] == 5  # five phones: five callers
    waiting = [t["id"] for t in client.get(f"/api/v1/arbitration/queue?cluster={out[0]['id']}", headers=a).json()]
    assert {out[2]["id"], out[3]["id"], out[4]["id"]} <= set(waiting) and hot[0]["waiting"] == waiting  # oldest first
    for bad, field in (("days=0", "days"), ("days=1000", "days"), ("min_count=1", "min_count"), ("days=x", "days")):
        r = client.get(f"/api/v1/hot-issues?{bad}", headers=d)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
    # up to a year, as `hotline hot --days` and HOTLINE_HOT_WINDOW_DAYS (180 was refused: "≤ 90")
    r = client.get("/api/v1/hot-issues?days=180", headers=d)
    assert r.status_code == 200 and r.json()[0]["count"] == hot[0]["count"], r.text
    for bad in ("nan", "inf"):  # not a number of days, rather than "should be <= 90"
        r = client.get(f"/api/v1/hot-issues?days={bad}", headers=d)
        assert r.status_code == 422 and r.json()["detail"][0]["msg_zh"] == "应为有限数字", r.text


def test_one_caller_reporting_again_over_months_is_a_repeat_complaint(api_db):
    """The third report of one caller within the caller window (365 days) goes to arbitration as REPEAT_COMPLAINT
    though the earlier two are months old; other callers' months-old reports of the same problem do not count."""
    from datetime import timedelta

    from model.suggestion import Ticket
    from serving.store.store import utcnow

    client, k = api_db
    store, d = client.app.state.store, k["dispatcher"]
    now = utcnow()

    def earlier(body, days):
        return store.intake(Ticket(**body), None, actor="import", received_at=now - timedelta(days=days))["id"]

    other = {**OIL_A, "caller": "13900000001"}  # the same problem from other callers, months ago: outside the window
    earlier(other, 300)
    earlier({**OIL_A2, "caller": "13900000002"}, 260)
    first, second = earlier(OIL_A, 200), earlier(OIL_A2, 100)
    third = post(client, d, OIL_A)
    assert third["duplicate"]["kind"] == "repeat" and third["duplicate"]["cluster"] == first, third["duplicate"]
    assert store.get(second)["duplicate"]["duplicate_of"] == first
    codes = [r["code"] for r in third["arbitration_reasons"]]
    assert "REPEAT_COMPLAINT" in codes and third["status"] == "in_arbitration"
    assert [r for r in third["arbitration_reasons"] if r["code"] == "REPEAT_COMPLAINT"][0]["message"] == \
        "同一问题已被反复反映3次，建议重点督办"
    # another caller reporting it now: linked to nobody within 30 days, so no 重点督办
    fresh = post(client, d, {**OIL_A, "caller": "13900000003"})
    assert "REPEAT_COMPLAINT" not in [r["code"] for r in fresh["arbitration_reasons"] or []]


def test_two_reports_of_one_caller_over_months_are_not_yet_a_repeat_complaint(api_db):
    from datetime import timedelta

    from model.suggestion import Ticket
    from serving.store.store import utcnow

    client, k = api_db
    store = client.app.state.store
    first = store.intake(Ticket(**OIL_A), None, actor="import", received_at=utcnow() - timedelta(days=150))["id"]
    again = post(client, k["dispatcher"], OIL_A2)
    assert again["duplicate"]["duplicate_of"] == first
    assert "REPEAT_COMPLAINT" not in [r["code"] for r in again["arbitration_reasons"] or []]


def test_another_callers_report_months_ago_links_when_it_went_to_the_same_department(api_db):
    """The owner window in the service: another caller's report of 100 days ago is linked when both tickets have the
    same lead (the earlier one's lists-named lead, read from the database); one stored without a suggestion is not."""
    from datetime import timedelta

    from model.suggestion import Ticket
    from serving.store.store import utcnow

    client, k = api_db
    store, router = client.app.state.store, client.app.state.router
    old = {**OIL_A, "caller": "13900000011"}
    unowned = store.intake(Ticket(**{**OIL_A, "caller": "13900000010"}), None, actor="import", received_at=utcnow() - timedelta(days=140))["id"]
    assert store.dedup_rows(ids=[unowned])[0]["owner"] is None
    owned = store.intake(Ticket(**old), router.route(Ticket(**old)), actor="import",
                         received_at=utcnow() - timedelta(days=100))["id"]
    assert store.dedup_rows(ids=[owned])[0]["owner"] == router.route(Ticket(**old)).lists_lead
    now = post(client, k["dispatcher"], {**OIL_A, "caller": "13900000012"})
    assert now["duplicate"]["duplicate_of"] == owned, now["duplicate"]
    assert store.get(owned)["duplicate"]["duplicate_of"] is None  # 40 days after the unowned one: no owner to compare


def test_rebuilt_and_loaded_index_equal_the_live_one(router, tmp_path):
    client, k = make_client(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, router)
    app = client.app
    try:
        for body in (OIL_A, LIFT, OIL_A2, *({"content": s, "address": "柳溪大街", "caller": f"1590000{i:04d}"}
                                             for i, s in enumerate(SEWER))):
            post(client, k["dispatcher"], body)
        # a ticket stored by another path (not POST /tickets) is picked up by the next sync
        from model.suggestion import Ticket
        tid = app.state.store.intake(Ticket(content=SEWER[0], address="柳溪大街"), None, actor="import")["id"]
        live = app.state.dedup
        live.sync()
        assert app.state.store.get(tid)["duplicate"]["cluster"] is not None
        settings, store, enc, loc = app.state.settings, app.state.store, router.index.encoder, router.locator

        rebuilt = DedupService(settings.model_copy(update={"dedup_state_dir": tmp_path / "elsewhere"}), store, enc, loc)
        rebuilt.open()
        assert not rebuilt.loaded_from_state
        assert rebuilt.det.results() == live.det.results() and len(live.det) == 8
        stored = {str(r["id"]): (r["duplicate_of"], r["cluster_id"], r["dup_kind"]) for r in store.dedup_rows()}
        assert stored == {x.id: (int(x.duplicate_of) if x.duplicate_of else None, int(x.cluster), x.kind)
                          for x in rebuilt.det.results()}

        live.save()
        loaded = DedupService(settings, store, enc, loc)
        loaded.open()
        assert loaded.loaded_from_state and loaded.det.results() == live.det.results()

        # a damaged state is rebuilt from the database, whatever the damage (a field of the wrong type, a vector index
        # that does not open, an array cut short raised past the service before: the index never opened)
        damages = {"records.jsonl": lambda b: b.replace(b'"places": [', b'"places": 5, "x": [', 1),
                   "vectors.faiss": lambda b: b[: len(b) // 3], "window_ids.npy": lambda b: b[:40]}
        for name, damage in damages.items():
            saved = tmp_path / "dedup" / (tmp_path / "dedup" / "CURRENT").read_text(encoding="utf-8").strip()
            good = (saved / name).read_bytes()
            assert damage(good) != good, name
            (saved / name).write_bytes(damage(good))
            again = DedupService(settings, store, enc, loc)
            again.open()  # rebuilt, and saved afresh
            assert not again.loaded_from_state and again.det.results() == live.det.results(), name
    finally:
        app.state.store.dispose()


def test_start_up_opens_the_index_and_shutdown_saves_it(router, tmp_path):
    """The lifespan: the index is opened (rebuilt from the database) at start-up and saved at shut-down."""
    from fastapi.testclient import TestClient

    client, k = make_client(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, router)
    app = client.app
    try:
        from model.suggestion import Ticket
        app.state.store.intake(Ticket(content=SEWER[0], address="柳溪大街"), None, actor="import")
        with TestClient(app) as c:
            assert app.state.dedup.det is not None and len(app.state.dedup.det) == 1
            assert c.get("/api/v1/tickets/1", headers=h(k["dispatcher"])).json()["duplicate"]["cluster"] == 1
            post(c, k["dispatcher"], {"content": SEWER[1], "address": "柳溪大街"})
        assert (tmp_path / "dedup" / "CURRENT").is_file()
        again = DedupService(app.state.settings, app.state.store, router.index.encoder, router.locator)
        again.open()
        assert again.loaded_from_state and again.det.results() == app.state.dedup.det.results()
    finally:
        app.state.store.dispose()


def test_a_failing_duplicate_check_does_not_lose_the_ticket(router, tmp_path, monkeypatch):
    client, k = make_client(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, router)
    app = client.app
    try:
        def boom(*a, **kw):
            raise RuntimeError("index down")

        monkeypatch.setattr(app.state.dedup, "sync", boom)
        t = post(client, k["dispatcher"], OIL_A)
        assert t["duplicate"] is None
        monkeypatch.undo()
        again = post(client, k["dispatcher"], OIL_A2)  # the next sync catches up the first ticket too
        assert again["duplicate"]["duplicate_of"] == t["id"]
        assert app.state.store.get(t["id"])["duplicate"]["cluster"] == t["id"]
    finally:
        app.state.store.dispose()


@pytest.mark.parametrize("kind", DB_KINDS)
def test_two_processes_on_one_database_see_each_others_tickets(router, tmp_path, kind):
    """Two app instances (two `hotline serve` processes) on one database: each index catches up with the
    tickets the other stored before every lookup, and adopts the other's stored verdicts instead of rewriting."""
    url, cleanup = database_url(kind, tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    c1, k1 = make_client(url, tmp_path / "a", router)
    c2, k2 = make_client(url, tmp_path / "b", router)
    s1, s2 = c1.app.state.store, c2.app.state.store
    try:
        lift = post(c1, k1["dispatcher"], LIFT)  # the first process's index is open from here on
        first = post(c2, k2["dispatcher"], OIL_A)  # judged (and stored) by the second process
        assert first["duplicate"]["duplicate_of"] is None
        again = post(c1, k1["dispatcher"], OIL_A2)
        assert again["duplicate"]["duplicate_of"] == first["id"] and again["duplicate"]["kind"] == "repeat"
        j = c1.get(f"/api/v1/duplicates/{again['id']}", headers=h(k1["arbitrator"])).json()
        assert [e["id"] for e in j["earlier"]] == [first["id"]] and j["cluster_size"] == 2
        # and the other way round, through GET /duplicates alone (no POST on the second process)
        j = c2.get(f"/api/v1/duplicates/{again['id']}", headers=h(k2["arbitrator"])).json()
        assert j["duplicate"]["duplicate_of"] == first["id"]
        assert c2.app.state.dedup.det.by_id.keys() >= {str(lift["id"]), str(again["id"])}

        # a verdict the second process stored differently (e.g. a race between the two) is kept and adopted
        x = post(c2, k2["dispatcher"], {"content": SEWER[0], "address": "柳溪大街"})
        y = post(c2, k2["dispatcher"], {"content": SEWER[1], "address": "柳溪大街"})
        assert y["duplicate"]["cluster"] == x["id"]
        s2.record_duplicate(y["id"], duplicate_of=None, cluster=y["id"], kind=None, score=0.0)
        z = post(c1, k1["dispatcher"], {"content": SEWER[2], "address": "柳溪大街"})
        assert z["duplicate"]["duplicate_of"] in (x["id"], y["id"])
        # y's own verdict is adopted, not rewritten (it would be a duplicate of x); z, a strong duplicate of both x
        # and y, then joins their clusters under x's (in the index and in the database)
        assert s1.get(y["id"])["duplicate"] == {"duplicate_of": None, "cluster": x["id"], "kind": None, "score": 0.0}
        live = c1.app.state.dedup.det
        assert live.result(live.by_id[str(y["id"])]).duplicate_of is None
        assert live.result(live.by_id[str(y["id"])]).cluster == str(x["id"])
        assert live.result(live.by_id[str(x["id"])]).cluster == str(x["id"])
        assert c1.app.state.dedup.max_id == z["id"]
    finally:
        s1.dispose()
        s2.dispose()
        cleanup()


def test_a_ticket_is_embedded_once_from_route_to_stored_and_checked(api_db):
    """The widget asks POST /route, then saves with POST /tickets (which routes again and runs the duplicate
    check): the encoder's query cache means the text goes through the model only for the first call."""
    client, k = api_db
    enc = client.app.state.router.index.encoder
    import uuid

    tag = uuid.uuid4().hex[:8]  # the router (and its encoder's cache) is shared by the whole test session
    body = {"title": f"电梯坏了 {tag}", "content": f"{LIFT['content']}（编号 {tag}）", "address": LIFT["address"]}
    misses = enc.query_cache_misses
    assert client.post("/api/v1/route", json=body, headers=h(k["dispatcher"])).status_code == 200
    assert enc.query_cache_misses - misses == 2  # the full text and the title
    misses, hits = enc.query_cache_misses, enc.query_cache_hits
    stored = post(client, k["dispatcher"], body)
    assert stored["duplicate"] is not None  # the duplicate check ran
    assert enc.query_cache_misses == misses and enc.query_cache_hits - hits == 3  # route (2) + duplicate check (1)


def test_two_clusters_joined_by_a_new_ticket_are_stored_as_one(api_db):
    """Two stored clusters of one problem (the second started 35 days after the first, by another caller) are
    joined when a new report is a strong duplicate of both: the earlier tickets' stored cluster moves too, so the
    ticket pages and hot issues show one cluster."""
    from datetime import timedelta

    from model.suggestion import Ticket
    from serving.store.store import utcnow

    client, k = api_db
    app, store = client.app, client.app.state.store
    first = store.intake(Ticket(**OIL_A), None, actor="import", received_at=utcnow() - timedelta(days=40))["id"]
    other = {**OIL_A2, "caller": "13700000099"}
    second = store.intake(Ticket(**other), None, actor="import", received_at=utcnow() - timedelta(days=5))["id"]
    app.state.dedup.sync()  # both judged and stored: two clusters
    assert store.get(second)["duplicate"]["cluster"] == second
    now = post(client, k["dispatcher"], OIL_A2)  # OIL_A's caller again, the same words as the second report
    assert now["duplicate"]["cluster"] == first, now["duplicate"]
    assert store.get(second)["duplicate"]["cluster"] == first  # moved in the database
    assert store.get(second)["duplicate"]["duplicate_of"] is None  # its own verdict otherwise unchanged
    j = client.get(f"/api/v1/duplicates/{first}", headers=h(k["dispatcher"])).json()
    assert j["cluster_size"] == 3
