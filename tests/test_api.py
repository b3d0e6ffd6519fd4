"""The HTTP API: every endpoint x role (no key, revoked key, each role), a ticket's whole life over HTTP on
both databases, and user mistakes answered with 4xx and field-level messages in Chinese and English."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dbutil import DB_KINDS
from hotline.settings import Settings
from serving.app import create_app

ROLES = ("dispatcher", "arbitrator", "admin")
OILY = {"content": "小区楼下烧烤店油烟太大，晚上窗户都不敢开", "address": "梅林路幸福里小区3号楼", "caller": "13812345678"}


def make_client(url, tmp_path, router, **overrides):
    settings = Settings(data_dir=tmp_path, database_url=url, phone_salt="api-test-salt", api_max_batch=5, **overrides)
    app = create_app(settings, router=router)
    store = app.state.store
    keys = {r: store.create_key(r, f"{r}-test")[1] for r in ROLES}
    info, revoked = store.create_key("admin", "gone")
    store.revoke_key(str(info.id))
    keys["revoked"] = revoked
    return TestClient(app), keys


def h(key):
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.fixture(scope="module")
def api(router, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    client, keys = make_client(f"sqlite:///{tmp / 'api.sqlite3'}", tmp, router)
    yield client, keys
    client.app.state.store.dispose()


D, A, S = {"dispatcher"}, {"arbitrator"}, {"dispatcher", "arbitrator"}
# (method, path, json, roles allowed besides admin); {tid} is a ticket in arbitration
MATRIX = [
    ("get", "/api/v1/departments", None, S),
    ("get", "/api/v1/me", None, S),
    ("get", "/api/v1/responsibilities/search?q=油烟", None, S),
    ("post", "/api/v1/route", OILY, D),
    ("post", "/api/v1/route/batch", {"tickets": [OILY]}, D),
    ("post", "/api/v1/tickets", OILY, D),
    ("get", "/api/v1/tickets/{tid}", None, S),
    ("post", "/api/v1/tickets/{tid}/dispatch", {"lead": "urban_management"}, D),
    ("post", "/api/v1/tickets/{tid}/return", {"reason": "不属于本单位"}, D),
    ("post", "/api/v1/tickets/{tid}/escalate", {"reason": "推诿"}, D),
    ("post", "/api/v1/tickets/{tid}/close", {}, D),
    ("get", "/api/v1/arbitration/queue", None, A),
    ("get", "/api/v1/arbitration/queue/reasons", None, A),
    ("post", "/api/v1/arbitration/{tid}/claim", None, A),
    ("post", "/api/v1/arbitration/{tid}/release", None, A),
    ("post", "/api/v1/arbitration/{tid}/decision", {"lead": "urban_management", "rationale": "油烟归城管"}, A),
    ("get", "/api/v1/arbitration/{tid}/similar", None, A),
    ("get", "/api/v1/arbitration/clarifications", None, A),
    ("get", "/api/v1/arbitration/rules", None, A),
    ("post", "/api/v1/arbitration/clarifications/1/review", {"status": "rejected"}, set()),
    ("get", "/api/v1/duplicates/{tid}", None, S),
    ("get", "/api/v1/hot-issues?days=7&min_count=2", None, S),
    ("get", "/api/v1/stats/routing?days=7", None, A),
    ("get", "/metrics", None, set()),
    ("get", "/api/v1/metrics", None, set()),
]


@pytest.mark.parametrize("method,path,body,allowed", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_auth_matrix(api, method, path, body, allowed):
    client, keys = api
    tid = client.app.state.store.intake(
        __import__("model.suggestion", fromlist=["Ticket"]).Ticket(content="矩阵测试工单"), None, actor="t")["id"]
    path = path.format(tid=tid)
    call = lambda key: getattr(client, method)(path, headers=h(key), **({"json": body} if body is not None else {}))  # noqa: E731
    for who in (None, "revoked"):
        r = call(keys.get(who))
        assert r.status_code == 401, (who, r.text)
        assert r.json()["message_zh"] and r.json()["message"]
    for role in ROLES:
        r = call(keys[role])
        if role in allowed or role == "admin":
            assert r.status_code not in (401, 403) and r.status_code < 500, (role, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, r.text)
            assert "无权" in r.json()["message_zh"]


def test_healthz_is_public_and_reports_the_database(api):
    client, _ = api
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["database"] == "sqlite"
    assert r.json()["auto_send"] is False  # 智能流转 is off unless a centre turns it on
    # under /api/v1 too, where the README lists it (it was 404 there)
    assert client.get("/api/v1/healthz").json()["lists_version"] == r.json()["lists_version"]


def test_departments_carry_the_names_a_centre_writes(api):
    """The roster with each department's short and former names (names.yaml), which the widget's department
    filter matches: a dispatcher who types 区城管局 or 区国土资源局 finds the department."""
    client, keys = api
    r = client.get("/api/v1/departments", headers=h(keys["dispatcher"]))
    assert r.status_code == 200
    by_code = {d["code"]: d for d in r.json()}
    assert len(by_code) == 39
    assert "区城管局" in by_code["urban_management"]["other_names"]
    assert "区国土资源局" in by_code["natural_resources"]["other_names"]
    assert not set(by_code["urban_management"]["other_names"]) & set(by_code["natural_resources"]["other_names"])
    assert by_code["urban_management"]["name"] not in by_code["urban_management"]["other_names"]


def test_routing_stats_count_what_dispatchers_settled(api_db):
    """GET /stats/routing: the suggestions of the served router against the leads people then chose (both
    databases): a dispatch to the suggested lead is right, a change of lead is wrong, a waiting ticket is unsettled."""
    client, k = api_db
    d, a = h(k["dispatcher"]), h(k["arbitrator"])
    before = client.get("/api/v1/stats/routing", headers=a).json()
    assert before["all"]["tickets"] == 0 and before["all"]["lead_top1"] == {"count": 0, "of": 0, "rate": None}
    first = client.post("/api/v1/tickets", json={"content": "小区楼下烧烤店油烟太大，晚上熏得没法开窗"}, headers=d).json()
    second = client.post("/api/v1/tickets", json={"content": "路口的红绿灯坏了三天，车辆乱成一团"}, headers=d).json()
    third = client.post("/api/v1/tickets", json={"content": "楼上邻居天天装修，周末早上七点就开始电钻"}, headers=d).json()
    changed = "health" if second["suggestion"]["lead"]["code"] != "health" else "civil_affairs"
    for t, to in ((first, first["suggestion"]["lead"]["code"]), (second, changed)):
        if t["status"] == "in_arbitration":
            client.post(f"/api/v1/arbitration/{t['id']}/claim", headers=a)
            assert client.post(f"/api/v1/arbitration/{t['id']}/decision", json={"lead": to, "rationale": "测试"},
                               headers=a).status_code == 200
        else:
            assert client.post(f"/api/v1/tickets/{t['id']}/dispatch", json={"lead": to}, headers=d).status_code == 200
    rep = client.get("/api/v1/stats/routing?days=1", headers=a).json()
    assert rep["all"]["tickets"] == 3 and rep["all"]["settled"]["count"] == 2
    assert rep["all"]["lead_top1"] == {"count": 1, "of": 2, "rate": 0.5}
    assert [v["model_version"] for v in rep["by_model_version"]] == [first["suggestion"]["model_version"]]
    want: dict[str, list[int]] = {}  # per reason (the router's, at intake): tickets, and how many were decided
    for t in (first, second, third):
        for r in dict.fromkeys(x["code"] for x in t["arbitration_reasons"]):
            want.setdefault(r, [0, 0])[0] += 1
            want[r][1] += t is not third  # the first two were settled: decided when flagged
    assert want and {x["code"]: [x["tickets"], x["decided"]] for x in rep["by_reason"]} == want
    bad = client.get("/api/v1/stats/routing?days=0", headers=a)
    assert bad.status_code == 422 and "days" in bad.text


def test_one_decision_settles_the_waiting_reports_of_one_event(api_db):
    """GET /arbitration/queue?cluster= lists the waiting reports of one event; a decision with ``also`` settles them
    together; a bad id is a 422 naming ``also``, a ticket of another event a 409 that decides nothing (both
    databases: an id past PostgreSQL's integer is the user's mistake, not a 500)."""
    client, k = api_db
    d, a = h(k["dispatcher"]), h(k["arbitrator"])
    text = "光明路和平小区门口的供水管道爆裂，水漫到马路上已经两个小时了"
    ids = []
    for phone in ("13900001111", "13900001111"):  # the same caller twice: a repeat, one cluster
        t = client.post("/api/v1/tickets", json={"content": text, "caller": phone}, headers=d).json()
        if t["status"] != "in_arbitration":
            client.post(f"/api/v1/tickets/{t['id']}/escalate", json={"reason": "水务与供水互相推诿"}, headers=d)
        ids.append(t["id"])
    lone = client.post("/api/v1/tickets", json={"content": "学校门口的减速带被压坏了"}, headers=d).json()["id"]
    if client.get(f"/api/v1/tickets/{lone}", headers=d).json()["status"] != "in_arbitration":
        client.post(f"/api/v1/tickets/{lone}/escalate", json={"reason": "不清楚"}, headers=d)
    first, second = ids
    cluster = client.get(f"/api/v1/tickets/{second}", headers=d).json()["duplicate"]["cluster"]
    assert cluster == first
    r = client.get(f"/api/v1/arbitration/queue?cluster={cluster}", headers=a)
    assert [x["id"] for x in r.json()] == [first, second] and r.headers["X-Total-Count"] == "2"
    _err(client.get("/api/v1/arbitration/queue?cluster=0", headers=a), 422, "cluster")
    _err(client.get(f"/api/v1/arbitration/queue?cluster={2**31}", headers=a), 422, "cluster")  # past PostgreSQL's integer
    assert client.post(f"/api/v1/arbitration/{first}/claim", headers=a).status_code == 200
    body = {"lead": "water_supply", "rationale": "供水管道由供水公司牵头"}
    _err(client.post(f"/api/v1/arbitration/{first}/decision", json={**body, "also": [0]}, headers=a), 422, "also.0")
    _err(client.post(f"/api/v1/arbitration/{first}/decision", json={**body, "also": [True]}, headers=a), 422, "also.0")  # not ticket 1
    _err(client.post(f"/api/v1/arbitration/{first}/decision", json={**body, "also": [second, 2**31]}, headers=a), 422, "also.1")
    r = client.post(f"/api/v1/arbitration/{first}/decision", json={**body, "also": [second, 2**31 - 1]}, headers=a)
    _err(r, 404, "also.1")  # which of the reports asked for does not exist
    assert client.get(f"/api/v1/tickets/{first}", headers=d).json()["status"] == "in_arbitration"
    r = client.post(f"/api/v1/arbitration/{first}/decision", json={**body, "also": [first, lone, second]}, headers=a)
    assert "同一事件" in _err(r, 409, "also.1")["message_zh"]  # the position as sent, the ticket itself included
    assert client.get(f"/api/v1/tickets/{second}", headers=d).json()["status"] == "in_arbitration"
    r = client.post(f"/api/v1/arbitration/{first}/decision", json={**body, "also": [second]}, headers=a)
    assert r.status_code == 200 and r.json()["status"] == "decided"
    t2 = client.get(f"/api/v1/tickets/{second}", headers=d).json()
    assert t2["status"] == "decided" and t2["lead"] == "water_supply"
    assert client.get(f"/api/v1/arbitration/queue?cluster={cluster}", headers=a).json() == []


def test_a_queue_longer_than_a_page_says_how_many_wait(api):
    """A day can send more tickets to arbitration than one page holds: the page is the oldest, and X-Total-Count
    (what the workbench shows) counts them all, and the unclaimed ones when asked for those."""
    client, k = api
    d, a = h(k["dispatcher"]), h(k["arbitrator"])
    for i in range(3):
        t = client.post("/api/v1/tickets", json={"content": f"第{i}件：楼道里堆满杂物，物业和社区都说不归他们管"}, headers=d).json()
        if t["status"] != "in_arbitration":
            assert client.post(f"/api/v1/tickets/{t['id']}/escalate", json={"reason": "职责不清"}, headers=d).status_code == 200
    whole = client.get("/api/v1/arbitration/queue?limit=500", headers=a)
    n = len(whole.json())
    assert n >= 3 and whole.headers["X-Total-Count"] == str(n)
    page = client.get("/api/v1/arbitration/queue?limit=2", headers=a)
    assert [x["id"] for x in page.json()] == [x["id"] for x in whole.json()[:2]] and page.headers["X-Total-Count"] == str(n)
    nxt = client.get("/api/v1/arbitration/queue?limit=2&offset=2", headers=a)  # the next page: the workbench's 较新
    assert [x["id"] for x in nxt.json()] == [x["id"] for x in whole.json()[2:4]] and nxt.headers["X-Total-Count"] == str(n)
    assert client.get(f"/api/v1/arbitration/queue?offset={n}", headers=a).json() == []
    bad = client.get("/api/v1/arbitration/queue?offset=-1", headers=a)
    assert bad.status_code == 422 and "offset" in bad.text
    free = next(x["id"] for x in whole.json() if not x["claimed_by"])
    unclaimed = int(client.get("/api/v1/arbitration/queue?unclaimed=true", headers=a).headers["X-Total-Count"])
    assert client.post(f"/api/v1/arbitration/{free}/claim", headers=a).status_code == 200
    assert client.get("/api/v1/arbitration/queue?unclaimed=true", headers=a).headers["X-Total-Count"] == str(unclaimed - 1)
    assert client.post(f"/api/v1/arbitration/{free}/release", headers=a).status_code == 200
    # by reason (the workbench's filter): each code's count is its filtered queue's X-Total-Count, every ticket on
    # it carries the code, and the escalated tickets are all under DISPATCHER_REQUEST
    listed = client.get("/api/v1/arbitration/queue/reasons", headers=a).json()
    counts = {x["code"]: x["count"] for x in listed}
    assert {x["code"]: x["label"] for x in listed}.get("DISPATCHER_REQUEST") == "派单员提交"
    assert counts.get("DISPATCHER_REQUEST", 0) == sum(
        any(r["code"] == "DISPATCHER_REQUEST" for r in x["arbitration_reasons"]) for x in whole.json())
    for code, count in counts.items():
        got = client.get(f"/api/v1/arbitration/queue?reason={code}&limit=500", headers=a)
        assert got.headers["X-Total-Count"] == str(count) and len(got.json()) == count
        assert all(any(r["code"] == code for r in x["arbitration_reasons"]) for x in got.json())
        ids = [x["id"] for x in got.json()]
        assert ids == [x["id"] for x in whole.json() if x["id"] in ids]  # oldest first, as the whole queue
    assert client.get("/api/v1/arbitration/queue?reason=REPEATED_RETURN", headers=a).json() == []
    _err(client.get("/api/v1/arbitration/queue?reason=RETURNED", headers=a), 422, "reason")


SURE = "超市卖过期的牛奶，吃了肚子疼，要求处理"  # the test router: market_regulation at 0.99, no reason: auto_dispatch
UNSURE = "公司拖欠我工资，还不给我交社保和医保"  # human_resources at 0.72: a dispatcher checks it


@pytest.mark.parametrize("kind", DB_KINDS)
def test_smart_dispatch_sends_sure_tickets_at_intake_only_when_turned_on(kind, router, tmp_path):
    """智能流转 (HOTLINE_AUTO_SEND): a ticket marked auto_dispatch is dispatched at intake by the system to the
    suggested lead, the event says so; an unsure one waits for a dispatcher; a repeat goes out only to the unit already
    handling the problem; a department's return puts it back in a dispatcher's hands. Off (the default): nothing is sent."""
    from dbutil import database_url

    url, cleanup = database_url(kind, tmp_path)
    try:
        off, k0 = make_client(url, tmp_path / "off", router)
        school = "孩子今年上小学，我们家房子在学区里但是学校说没有学位了"  # education at 0.97: auto_dispatch too
        t = off.post("/api/v1/tickets", json={"content": school}, headers=h(k0["dispatcher"])).json()
        assert t["suggestion"]["auto_dispatch"] and t["status"] == "suggested"  # marked, not sent
        off.app.state.store.dispose()

        client, k = make_client(url, tmp_path / "on", router, auto_send=True)
        d = h(k["dispatcher"])
        assert client.get("/healthz").json()["auto_send"] is True
        t = client.post("/api/v1/tickets", json={"content": SURE, "caller": "13900001111"}, headers=d).json()
        assert t["status"] == "dispatched" and t["lead"] == t["suggestion"]["lead"]["code"] == "market_regulation"
        sent = t["history"][-1]
        assert sent["kind"] == "dispatched" and sent["actor"] == "system" and sent["data"]["auto"] is True
        assert sent["data"]["accepted"] is True
        u = client.post("/api/v1/tickets", json={"content": UNSURE}, headers=d).json()
        assert not u["suggestion"]["auto_dispatch"] and u["status"] == "suggested"
        assert all(e["kind"] != "dispatched" for e in u["history"])
        # the same caller again: the unit handling the problem is the suggested one, so the repeat goes out too
        medical = "我想咨询一下医保异地就医怎么备案报销"
        first = client.post("/api/v1/tickets", json={"content": medical, "caller": "13700002222"}, headers=d).json()
        again = client.post("/api/v1/tickets", json={"content": medical, "caller": "13700002222"}, headers=d).json()
        assert first["status"] == "dispatched" and again["duplicate"]["duplicate_of"] == first["id"]
        assert again["status"] == "dispatched" and again["lead"] == first["lead"] == "medical_security"
        # the department returns the first one, and a dispatcher sends it elsewhere: a repeat now waits for a
        # dispatcher (the unit handling the problem is not the suggested one), and the return is the dispatchers'
        r = client.post(f"/api/v1/tickets/{t['id']}/return", json={"reason": "不属于本单位职责"}, headers=d)
        assert r.json()["status"] == "returned"
        assert client.post(f"/api/v1/tickets/{t['id']}/dispatch", json={"lead": "health"}, headers=d).status_code == 200
        repeat = client.post("/api/v1/tickets", json={"content": SURE, "caller": "13900001111"}, headers=d).json()
        assert repeat["suggestion"]["auto_dispatch"] and repeat["duplicate"]["duplicate_of"] == t["id"]
        assert repeat["status"] == "suggested"  # health handles it now: a dispatcher reads the earlier report first
        assert client.get(f"/api/v1/duplicates/{repeat['id']}", headers=d).json()["settled"]["lead"] == "health"
        # in the centre's record: three sent at intake (t, first, again), one of them returned (t)
        rep = client.get("/api/v1/stats/routing?days=30", headers=h(k["arbitrator"])).json()["all"]
        assert (rep["auto_sent"]["count"], rep["auto_sent_returned"]["count"], rep["auto_sent_returned"]["of"]) == (3, 1, 3)
        # the metrics count the system's sends as accepted dispatches (3 sent at intake, 1 by the dispatcher to health)
        metrics = client.get("/metrics", headers=h(k["admin"])).text
        assert 'hotline_dispatches_total{accepted="true"} 3.0' in metrics
        client.app.state.store.dispose()
    finally:
        cleanup()


def test_whole_life_over_http(api_db):
    client, k = api_db
    d, a = h(k["dispatcher"]), h(k["arbitrator"])
    r = client.post("/api/v1/tickets", json={**OILY, "id": "GD-100"}, headers=d)
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["caller"] == "138****5678" and "13812345678" not in r.text
    assert t["suggestion"]["lead"]["code"] and t["history"][0]["kind"] == "received"
    tid, suggested = t["id"], t["suggestion"]["lead"]["code"]
    if t["status"] == "in_arbitration":  # flagged by the router: dispatching from the queue is still allowed
        assert t["arbitration_reasons"]
    assert "GD-100" in _err(client.post("/api/v1/tickets", json={**OILY, "id": "GD-100"}, headers=d), 409, "id")["message_zh"]
    r = client.post(f"/api/v1/tickets/{tid}/dispatch", json={"lead": suggested,
                                                              "co": [c["code"] for c in t["suggestion"]["co"]]}, headers=d)
    assert r.status_code == 200 and r.json()["history"][-1]["data"]["accepted"] is True
    assert client.post(f"/api/v1/tickets/{tid}/return", json={"reason": "不属于本单位职责"}, headers=d).json()["status"] == "returned"
    other = "health" if suggested != "health" else "civil_affairs"
    r = client.post(f"/api/v1/tickets/{tid}/dispatch", json={"lead": other}, headers=d)
    assert r.json()["history"][-1]["data"]["accepted"] is False
    r = client.post(f"/api/v1/tickets/{tid}/return", json={"reason": "也不归我们"}, headers=d)
    assert r.json()["status"] == "in_arbitration"
    r = client.post(f"/api/v1/tickets/{tid}/dispatch", json={"lead": suggested}, headers=d)  # a third try: not theirs
    assert r.status_code == 409 and "裁定小组" in r.json()["message_zh"]
    assert "detail" not in r.json()  # the ticket's state is at fault, not a field of the request
    r = client.get("/api/v1/arbitration/queue", headers=a)
    q = r.json()
    item = next(x for x in q if x["id"] == tid)
    assert int(r.headers["X-Total-Count"]) == len(q)  # the whole queue, on one page here
    assert [x["reason"] for x in item["returns"]] == ["不属于本单位职责", "也不归我们"]
    assert any(x["code"] == "REPEATED_RETURN" for x in item["arbitration_reasons"])
    assert client.post(f"/api/v1/arbitration/{tid}/claim", headers=a).status_code == 200
    r = client.post(f"/api/v1/arbitration/{tid}/claim", headers=h(k["admin"]))
    assert r.status_code == 409 and "已由" in r.json()["message_zh"]
    r = client.post(f"/api/v1/arbitration/{tid}/decision", headers=a,
                    json={"lead": "urban_management", "co": ["ecology_environment"], "rationale": "餐饮油烟由城管牵头",
                          "clarification": "边界规则补充：露天烧烤油烟由城管牵头"})
    assert r.status_code == 200 and r.json()["status"] == "decided"
    (clar,) = client.get("/api/v1/arbitration/clarifications", headers=a).json()
    assert clar["ticket_id"] == tid and clar["status"] == "pending" and clar["reviewed_by"] is None
    # the list editors (admin) accept or reject it, once; arbitrators propose but do not review
    review = f"/api/v1/arbitration/clarifications/{clar['id']}/review"
    assert client.post(review, json={"status": "accepted"}, headers=a).status_code == 403
    r = client.post(review, json={"status": "maybe"}, headers=h(k["admin"]))
    assert r.status_code == 422 and "status" in r.text
    _err(client.post("/api/v1/arbitration/clarifications/999/review", json={"status": "accepted"}, headers=h(k["admin"])), 404,
         "clarification_id")
    r = client.post(review, json={"status": "accepted", "note": "已写入边界规则 outdoor-bbq"}, headers=h(k["admin"]))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["review_note"], r.json()["reviewed_by"].startswith("admin")) == ("accepted", "已写入边界规则 outdoor-bbq", True)
    r = client.post(review, json={"status": "rejected"}, headers=h(k["admin"]))
    assert r.status_code == 409 and "已审核" in r.json()["message_zh"]
    assert client.get("/api/v1/arbitration/clarifications", headers=a).json() == []  # none pending
    (done,) = client.get("/api/v1/arbitration/clarifications", params={"status": "accepted"}, headers=a).json()
    assert done["id"] == clar["id"] and done["review_note"] == "已写入边界规则 outdoor-bbq" and done["reviewed_at"]
    r = client.post(f"/api/v1/tickets/{tid}/close", json={}, headers=d)
    kinds = [e["kind"] for e in r.json()["history"]]
    assert kinds[-5:] == ["arbitration", "claimed", "decided", "clarification_reviewed", "closed"] and kinds.count("returned") == 2
    metrics = client.get("/metrics", headers=h(k["admin"])).text
    assert 'hotline_tickets{status="closed"} 1.0' in metrics
    assert 'hotline_dispatches_total{accepted="false"} 1.0' in metrics


def _err(r, status, field=None):
    assert r.status_code == status, r.text
    j = r.json()
    assert j["message"] and j["message_zh"] and j["message"] != j["message_zh"]
    if field:
        assert field in [d["field"] for d in j["detail"]], j
        d = next(d for d in j["detail"] if d["field"] == field)
        assert d["msg"] and d["msg_zh"]
    return j


def test_user_mistakes_are_4xx_with_field_messages(api):
    client, k = api
    d, a = h(k["dispatcher"]), h(k["arbitrator"])
    assert "过长" in _err(client.post("/api/v1/tickets", json={"content": "长" * 20_001}, headers=d), 422, "content")["message_zh"]
    _err(client.post("/api/v1/tickets", json={"title": "无内容"}, headers=d), 422, "content")
    _err(client.post("/api/v1/tickets", json={"content": "！！！"}, headers=d), 422, "content")
    _err(client.post("/api/v1/tickets", content=b"{not json", headers={**d, "content-type": "application/json"}), 422, "body")
    _err(client.post("/api/v1/tickets", json=["a list"], headers=d), 422)
    j = _err(client.post("/api/v1/tickets", json={"content": OILY["content"], "title": True}, headers=d), 422, "title")
    assert next(x for x in j["detail"] if x["field"] == "title")["msg_zh"] == "应为字符串"  # not the English message
    j = _err(client.post("/api/v1/tickets", json={"content": OILY["content"], "returns": True}, headers=d), 422, "returns")
    assert next(x for x in j["detail"] if x["field"] == "returns")["msg_zh"] == "应为整数"  # true was read as 1 return
    j = _err(client.post("/api/v1/route/batch", json={"tickets": [OILY] * 6}, headers=d), 422, "tickets")
    assert "最多 5 条" in j["message_zh"]
    _err(client.post("/api/v1/route/batch", json={"tickets": []}, headers=d), 422, "tickets")
    _err(client.get("/api/v1/tickets/abc", headers=d), 422, "ticket_id")
    _err(client.get("/api/v1/tickets/999999", headers=d), 404, "ticket_id")  # the path's id: no such ticket
    _err(client.post("/api/v1/tickets/999999/dispatch", json={"lead": "health"}, headers=d), 404, "ticket_id")
    _err(client.get("/api/v1/responsibilities/search?q=", headers=d), 422, "q")
    _err(client.post("/api/v1/tickets", content=b"x" * 1_100_000, headers={**d, "content-type": "application/json"}), 413)
    tid = client.post("/api/v1/tickets", json={"content": "路灯不亮了，晚上很黑"}, headers=d).json()["id"]
    j = _err(client.post(f"/api/v1/tickets/{tid}/dispatch", json={"lead": "no_such_dept"}, headers=d), 422, "lead")
    assert "未知的部门代码" in j["message_zh"]
    # a suggestion's unplaced town (locality) sent back as it stood: says which towns there are to choose from
    j = _err(client.post(f"/api/v1/tickets/{tid}/dispatch", json={"lead": "health", "co": ["locality"]}, headers=d), 422, "co.0")
    assert "请指明是哪个街道（镇）" in j["message_zh"] and "xinhua" in j["message_zh"], j
    _err(client.post(f"/api/v1/tickets/{tid}/dispatch", json={"lead": "health", "co": ["health", "nope"]}, headers=d), 422, "co.1")
    _err(client.post(f"/api/v1/tickets/{tid}/dispatch", json={"lead": "health", "extra": 1}, headers=d), 422, "extra")
    _err(client.post(f"/api/v1/tickets/{tid}/return", json={"reason": "x"}, headers=d), 422, "reason")
    _err(client.post(f"/api/v1/arbitration/{tid}/decision", json={"lead": "health"}, headers=a), 422, "rationale")
    _err(client.get("/api/v1/arbitration/queue?limit=0", headers=a), 422, "limit")
    _err(client.get("/no/such/page"), 404)
    _err(client.delete("/api/v1/tickets/1", headers=d), 405)


def test_unexpected_errors_are_500_without_internals(router, tmp_path):
    """The catch-all handler: a real bug (the database is gone) answers 500 with a bilingual message, no traceback."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", phone_salt="s")
    app = create_app(settings, router=router)
    key = app.state.store.create_key("dispatcher", "d")[1]
    app.state.store.engine.dispose()
    (tmp_path / "x.sqlite3").unlink()
    (tmp_path / "x.sqlite3").mkdir()  # the database file is now a folder: every query fails
    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/api/v1/tickets/1", headers=h(key))
    assert r.status_code == 500, r.text
    assert "Traceback" not in r.text and r.json()["message_zh"]


def test_pages_work_offline_and_refuse_framing_and_foreign_scripts(api):
    """The API docs page loaded Swagger UI from a CDN (blank offline, and foreign code on the origin that keeps the
    staff's API keys); the widget and workbench could be framed by another site (clickjacking of claim/decide)."""
    import re

    client, _ = api
    for page in ("/", "/workbench", "/docs"):
        r = client.get(page)
        assert r.status_code == 200
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text), page  # every script and style from this app
        for src in re.findall(r"""(?:src|href)="(/static/[^"]+)\"""", r.text):
            assert client.get(src).status_code == 200, src
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in client.get("/").headers["content-security-policy"]
    assert "/api/v1/openapi.json" in client.get("/static/docs.js").text
    r = client.get("/api/v1/route", headers={})  # the API's answers carry them too (an error page is a page)
    assert r.headers["x-frame-options"] == "DENY"


def test_me_says_who_a_key_is(api):
    """The workbench shows the decision form only to the arbitrator holding a ticket: it asks who its key is."""
    client, keys = api
    for role in ROLES:
        me = client.get("/api/v1/me", headers=h(keys[role])).json()
        assert me["role"] == role and me["actor"] == f"{role}-test#{['dispatcher', 'arbitrator', 'admin'].index(role) + 1}"
        assert me["role_zh"] in ("派单员", "裁定员", "管理员")
    assert client.get("/api/v1/me").status_code == 401
