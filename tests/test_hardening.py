"""Hardening (issue #8): input that one database refuses is a field-level 422 on both (found by schemathesis on
PostgreSQL: NUL characters gave 500s), and callers' phone numbers and API keys never reach the logs (the app's,
uvicorn's access and error logs, an unhandled error's traceback) or the response bodies."""
from __future__ import annotations

import logging
import threading
import time

import httpx

from hotline.settings import Settings
from serving.app import create_app

NUL = "\u0000"


def _h(key):
    return {"Authorization": f"Bearer {key}"}


def _field_422(r, field):
    assert r.status_code == 422, (r.status_code, r.text)
    j = r.json()
    d = next(d for d in j["detail"] if d["field"] == field)
    assert d["type"] == "string_nul" and "NUL" in d["msg"] and "空字符" in d["msg_zh"]
    assert j["message"] and j["message_zh"]


def test_nul_characters_are_field_level_422_on_both_databases(api_db):
    client, k = api_db
    d, a = _h(k["dispatcher"]), _h(k["arbitrator"])
    ok = {"content": "小区楼下烧烤店油烟太大", "address": "梅林路幸福里小区3号楼", "caller": "13812345678"}
    for field in ("content", "title", "address", "caller", "id", "channel", "created_at"):
        bad = {**ok, field: f"油烟{NUL}太大"}
        _field_422(client.post("/api/v1/tickets", json=bad, headers=d), field)
        _field_422(client.post("/api/v1/route", json=bad, headers=d), field)
    _field_422(client.post("/api/v1/route/batch", json={"tickets": [ok, {**ok, "content": f"噪音{NUL}"}]}, headers=d),
               "tickets.1.content")
    r = client.post("/api/v1/tickets", json=ok, headers=d)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    # the body is checked before the ticket's state: each of these is a 422 whatever the status
    _field_422(client.post(f"/api/v1/tickets/{tid}/dispatch", json={"lead": f"health{NUL}"}, headers=d), "lead")
    _field_422(client.post(f"/api/v1/tickets/{tid}/dispatch", json={"lead": "health", "co": ["civil_affairs", NUL]},
                           headers=d), "co")
    _field_422(client.post(f"/api/v1/tickets/{tid}/return", json={"reason": f"不归{NUL}我们"}, headers=d), "reason")
    _field_422(client.post(f"/api/v1/tickets/{tid}/return", json={"reason": "不归我们", "department": NUL}, headers=d),
               "department")
    _field_422(client.post(f"/api/v1/tickets/{tid}/escalate", json={"reason": f"推诿{NUL}"}, headers=d), "reason")
    _field_422(client.post(f"/api/v1/tickets/{tid}/close", json={"note": NUL}, headers=d), "note")
    _field_422(client.post(f"/api/v1/arbitration/{tid}/decision", json={"lead": "health", "rationale": f"理由{NUL}"},
                           headers=a), "rationale")
    _field_422(client.post(f"/api/v1/arbitration/{tid}/decision",
                           json={"lead": "health", "rationale": "理由充分", "clarification": NUL}, headers=a), "clarification")
    r = client.get("/api/v1/arbitration/clarifications", params={"status": NUL}, headers=a)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "status", r.text
    # nothing of the refused requests was stored; the ticket's life goes on
    assert client.post(f"/api/v1/tickets/{tid}/escalate", json={"reason": "推诿扯皮"}, headers=d).status_code == 200
    assert client.post(f"/api/v1/arbitration/{tid}/claim", headers=a).status_code == 200
    r = client.post(f"/api/v1/arbitration/{tid}/decision", json={"lead": "health", "rationale": "理由充分"}, headers=a)
    assert r.status_code == 200 and r.json()["status"] == "decided"
    assert client.post(f"/api/v1/tickets/{tid}/close", json={"note": "办结"}, headers=d).status_code == 200
    assert "\\u0000" not in client.get(f"/api/v1/tickets/{tid}", headers=d).text


# ------------------------------------------------------------------------------------------- logs

PHONE = "13812345678"
PHONE_FORMS = (PHONE, "138-1234-5678", "138 1234 5678", "12345678")


class _LiveServer:
    """The app under a real uvicorn (h11, access log on) in a thread, its logs left to propagate to pytest's
    capture (``log_config=None``)."""

    def __init__(self, app):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=True,
                                                   log_level="debug", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=60)


def test_phone_numbers_and_keys_never_reach_logs_or_responses(router, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="httpx")  # this test's own HTTP client logs the URLs it requests
    caplog.set_level(logging.DEBUG)  # every other logger, every level: the app's, uvicorn's, SQLAlchemy's, the index's
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'logs.sqlite3'}", phone_salt="log-salt")
    app = create_app(settings, router=router)
    store = app.state.store
    keys = {r: store.create_key(r, f"{r}-logs")[1] for r in ("dispatcher", "arbitrator", "admin")}
    unknown = "hk_" + "Zq9" * 14  # a key the server never issued
    secrets = [*keys.values(), unknown, *PHONE_FORMS]
    bodies: list[str] = []
    with _LiveServer(app) as base, httpx.Client(base_url=base, timeout=120) as c:
        d, a, adm = _h(keys["dispatcher"]), _h(keys["arbitrator"]), {"X-API-Key": keys["admin"]}

        def call(method, path, headers, **kw):
            r = c.request(method, path, headers=headers, **kw)
            bodies.append(r.text)
            return r

        t = call("POST", "/api/v1/tickets", d, json={"content": "小区楼下烧烤店油烟太大，晚上窗户都不敢开",
                                                     "address": "梅林路幸福里小区3号楼", "caller": PHONE}).json()
        assert t["caller"] == "138****5678"
        again = call("POST", "/api/v1/tickets", d, json={"content": "又来反映烧烤油烟的问题，还是没人管",
                                                         "caller": "+86 138-1234-5678", "id": "GD-LOG-2"}).json()
        assert [x["id"] for x in again["repeats"]] == [t["id"]]  # the same caller was recognised (by hash)
        assert call("POST", "/api/v1/route", d, json={"content": "路灯不亮", "caller": PHONE}).status_code == 200
        assert call("POST", "/api/v1/route/batch", d, json={"tickets": [{"content": "噪音扰民", "caller": PHONE}]}).status_code == 200
        for path in (f"/api/v1/tickets/{t['id']}", f"/api/v1/duplicates/{again['id']}", "/api/v1/hot-issues?days=7&min_count=2"):
            assert call("GET", path, d).status_code == 200
        assert call("POST", f"/api/v1/tickets/{t['id']}/escalate", d, json={"reason": "推诿"}).status_code == 200
        for path in ("/api/v1/arbitration/queue", f"/api/v1/arbitration/{t['id']}/similar"):
            assert call("GET", path, a).status_code == 200
        assert call("GET", "/metrics", adm).status_code == 200
        # a phone number typed into the lists' search box: the access log keeps the path, not the query
        assert call("GET", "/api/v1/responsibilities/search", d, params={"q": f"油烟 {PHONE}"}).status_code == 200
        # mistakes: the bad value is never echoed
        assert call("POST", "/api/v1/tickets", d, json={"content": "油烟", "caller": PHONE + "9" * 60}).status_code == 422
        assert call("POST", "/api/v1/tickets", d, json={"content": "油烟", "caller": PHONE, "id": "GD-LOG-2"}).status_code == 409
        assert call("POST", "/api/v1/route", {"Authorization": f"Bearer {unknown}"}, json={"content": "油烟"}).status_code == 401
        assert call("POST", "/api/v1/route", {"X-API-Key": unknown}, json={"content": "油烟"}).status_code == 401
        assert call("GET", "/api/v1/arbitration/queue", d).status_code == 403
        # a real bug: the database is gone; the traceback is logged (with the SQL and its parameters)
        store.engine.dispose()
        db = tmp_path / "logs.sqlite3"
        for p in tmp_path.glob("logs.sqlite3*"):
            p.unlink()
        db.mkdir()
        assert call("POST", "/api/v1/tickets", d, json={"content": "油烟太大", "caller": PHONE}).status_code == 500
    logs = caplog.text + "\n".join(str(r.exc_info) + str(r.args) for r in caplog.records)
    # the capture really holds the access log and the traceback, so the checks below can fail
    assert '"POST /api/v1/tickets HTTP/1.1" 201' in logs and '"POST /api/v1/route HTTP/1.1" 401' in logs
    assert '"GET /api/v1/responsibilities/search?… HTTP/1.1" 200' in logs
    assert "unhandled error" in logs and "Traceback" in logs and "unable to open database" in logs
    for s in secrets:
        assert s not in logs, f"{s[:6]}… appears in the logs"
        for b in bodies:
            assert s not in b, f"{s[:6]}… appears in a response: {b[:200]}"


def test_a_body_too_large_or_unreadable_says_what_to_send(api_db):
    client, k = api_db
    d = {**_h(k["dispatcher"]), "Content-Type": "application/json"}
    big = ('{"content": "' + "楼" * 400_000 + '"}').encode()  # 1.2 MB, over the 1 MB limit

    def chunks(b, n=65536):  # streamed without a Content-Length: the limit is found while reading
        for i in range(0, len(b), n):
            yield b[i:i + n]

    for content in (big, chunks(big)):
        r = client.post("/api/v1/route", content=content, headers=d)
        assert r.status_code == 413, r.text
        assert r.json()["error"] == "too_large" and "字节上限" in r.json()["message_zh"]
    before = client.get("/api/v1/arbitration/queue", headers=_h(k["admin"])).headers["X-Total-Count"]
    for raw in ('{"content": "楼道灯坏了"}'.encode("gbk"), b'{"content": "\xe6\xa5"}', b"[" * 5000 + b"]" * 5000):
        r = client.post("/api/v1/tickets", content=raw, headers=d)
        assert r.status_code == 400, r.text
        j = r.json()
        assert j["error"] == "unreadable_body" and "UTF-8" in j["message"] and "UTF-8 编码的 JSON" in j["message_zh"]
        assert j["detail"][0]["field"] == "body"
    assert client.get("/api/v1/arbitration/queue", headers=_h(k["admin"])).headers["X-Total-Count"] == before


def test_ticket_fields_a_caller_gets_wrong_are_refused_not_dropped(api_db):
    client, k = api_db
    d = _h(k["dispatcher"])
    ok = {"content": "小区楼下烧烤店油烟太大", "address": "梅林路幸福里小区3号楼"}

    def refused(extra, field, zh):
        r = client.post("/api/v1/tickets", json={**ok, **extra}, headers=d)
        assert r.status_code == 422, (extra, r.text)
        e = next(e for e in r.json()["detail"] if e["field"] == field)
        assert zh in e["msg_zh"], e

    refused({"tittle": "油烟"}, "tittle", "不允许的字段")  # a misspelt field was dropped unseen
    refused({"caller": "abc"}, "caller", "电话号码")  # no digits: the repeat-caller link was lost unseen
    refused({"caller": "12"}, "caller", "至少 5 位")
    refused({"created_at": "2020-13-45"}, "created_at", "无法识别的时间")
    for caller in ("13812345678", "+86 138-1234-5678", "(0531) 8888 6666", "12345"):
        assert client.post("/api/v1/route", json={**ok, "caller": caller}, headers=d).status_code == 200, caller
    assert client.post("/api/v1/route", json={**ok, "created_at": "2019-4-24 15:07:30"}, headers=d).status_code == 200
    # a blank id is no id: two tickets without one are two tickets, not a 409 for the second
    a = client.post("/api/v1/tickets", json={**ok, "id": ""}, headers=d)
    b = client.post("/api/v1/tickets", json={**ok, "content": "烧烤店油烟又来了", "id": "   "}, headers=d)
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    assert a.json()["external_id"] is None and b.json()["external_id"] is None
    # a number id is that number (12.0 from a spreadsheet cell is 12); 1e300 and 2.5 are no ticket numbers
    # ("1e+300" was stored as the id)
    c = client.post("/api/v1/tickets", json={**ok, "content": "烧烤店油烟第三次", "id": 12.0}, headers=d)
    assert c.status_code == 201 and c.json()["external_id"] == "12", c.text
    refused({"id": 1e300}, "id", "过长")
    refused({"id": 2.5}, "id", "应为字符串")
    # the query of a list search must hold a word (blank text matched every item with a made-up score)
    r = client.get("/api/v1/responsibilities/search", params={"q": "   "}, headers=d)
    assert r.status_code == 422 and "查询内容不能为空" in r.json()["message_zh"], r.text
    r = client.get("/api/v1/arbitration/clarifications", params={"status": "bogus"}, headers=_h(k["arbitrator"]))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "status", r.text
    # a bound that is strict says so in Chinese too (it read 应不小于 0.0, which 0 satisfies)
    r = client.get("/api/v1/hot-issues", params={"days": 0}, headers=_h(k["arbitrator"]))
    assert r.status_code == 422 and "应大于 0" in r.json()["message_zh"], r.text
