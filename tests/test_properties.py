"""Property-based tests (hypothesis): arbitrary input never crashes the loaders, the locator or the router,
and the API answers arbitrary bodies with 2xx/4xx, never 5xx."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.settings import Settings
from model.io import read_tickets
from model.locality import Locator
from model.suggestion import Ticket
from responsibility_lists.loader import DEFAULT_DIR, load_lists
from serving.app import create_app

LISTS = load_lists(DEFAULT_DIR)
PLACES = [n for loc in LISTS.gazetteer.localities for n, _ in loc.names()]
# text that looks like tickets: CJK, ASCII, place names, controls, markup and SQL fragments
chunks = st.one_of(
    st.text(min_size=0, max_size=40),
    st.sampled_from(PLACES),
    st.sampled_from(["'; DROP TABLE tickets;--", "<script>alert(1)</script>", "\x00\x07\u202e", "油烟", "噪音", "12345"]),
)
texts = st.lists(chunks, min_size=0, max_size=6).map("".join)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FAST
@given(st.lists(st.one_of(st.binary(max_size=80), texts.map(lambda t: t.encode("utf-8")),
                          st.dictionaries(st.sampled_from(["id", "content", "title", "address", "caller"]),
                                          st.one_of(texts, st.integers(), st.none(), st.lists(st.integers(), max_size=2)))
                          .map(lambda d: json.dumps(d, ensure_ascii=False).encode())), max_size=12))
def test_jsonl_reader_accounts_for_every_line(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("p") / "t.jsonl"
    body = b"\n".join(l.replace(b"\n", b" ").replace(b"\r", b" ") for l in lines)
    path.write_bytes(body)
    tickets, problems = read_tickets(path)
    physical = [l for l in body.split(b"\n")]
    non_blank = sum(1 for l in physical if l.decode("utf-8", "replace").strip())
    assert len(tickets) + len(problems) == non_blank  # nothing silently dropped
    assert all(t.content.strip() for t in tickets)


@FAST
@given(texts)
def test_locator_never_crashes_and_cites_what_it_found(text):
    loc = Locator(LISTS.gazetteer).locate(text)
    if loc is not None:
        assert loc.hits and all(h.name in text for h in loc.hits)
        assert loc.code in {l.code for l in LISTS.gazetteer.localities}


@FAST
@given(texts)
def test_router_gives_a_valid_suggestion_for_any_text(router, text):
    try:
        ticket = Ticket(content=text)
    except ValueError:
        return  # rejected with a message: empty / wordless content
    s = router.route(ticket)
    codes = set(LISTS.departments) | {"locality"}
    assert s.lead.code in codes and 0.0 <= s.confidence <= 1.0
    assert not (s.auto_dispatch and s.needs_arbitration)


@pytest.fixture(scope="module")
def client(router, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prop-api")
    app = create_app(Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'p.sqlite3'}", phone_salt="x"), router=router)
    key = app.state.store.create_key("admin", "prop")[1]
    with TestClient(app) as c:
        yield c, {"Authorization": f"Bearer {key}"}
    app.state.store.dispose()


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), texts),
                           lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=8)
bodies = st.one_of(json_values, st.fixed_dictionaries({"content": json_values}, optional={"title": json_values, "address": json_values, "caller": json_values}))


@FAST
@given(bodies, st.sampled_from(["/api/v1/route", "/api/v1/tickets", "/api/v1/route/batch"]))
def test_api_never_answers_5xx(client, body, path):
    c, headers = client
    r = c.post(path, json=body, headers=headers)
    assert r.status_code < 500, (path, body, r.text)
    if r.status_code >= 400:
        assert "message" in r.json()


@FAST
@given(st.binary(max_size=200))
def test_api_rejects_undecodable_bodies_with_4xx(client, raw):
    c, headers = client
    r = c.post("/api/v1/route", content=raw, headers=headers | {"Content-Type": "application/json"})
    assert r.status_code < 500
