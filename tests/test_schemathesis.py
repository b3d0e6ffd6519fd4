"""Schemathesis (4.x) against the app's own OpenAPI schema: every operation, schema-valid and schema-violating
inputs (positive and negative generation), an admin key so every route is reached past auth, a real router
and a fresh store on each database (SQLite; PostgreSQL where reachable — it refuses what SQLite takes, e.g. NUL
characters) seeded with tickets in several states so path ids hit real rows. One check: no 5xx.

Bounded so it runs in a couple of minutes on two cores: ``MAX_EXAMPLES`` per operation (25; set
HOTLINE_SCHEMATHESIS_EXAMPLES for a deeper run), no deadline, derandomized (the same cases every run). A 5xx it
finds is a bug: fix it in serving/ and add a regression test beside the others (tests/test_api.py style).
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from dbutil import DB_KINDS, database_url
from hotline.settings import Settings
from model.suggestion import Ticket
from serving.app import create_app
from serving.bootstrap import ensure_admin_key

MAX_EXAMPLES = int(os.environ.get("HOTLINE_SCHEMATHESIS_EXAMPLES", "25"))  # more for a deeper local run


@pytest.fixture(scope="module", params=DB_KINDS)
def st_app(request, router, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    url, cleanup = database_url(request.param, tmp)  # PostgreSQL: a fresh schema; skipped with the reason if absent
    s = Settings(data_dir=tmp, database_url=url, phone_salt="st-salt", api_max_batch=5)
    app = create_app(s, router=router)
    key = ensure_admin_key(s, app.state.store)  # the same path `hotline serve` takes on first start
    assert key
    store = app.state.store
    # small ids are what the generator tries first: give them rows in several states
    for i, text in enumerate(["小区楼下烧烤店油烟太大，晚上窗户都不敢开", "路灯不亮了，晚上很黑", "工地夜间施工噪音扰民",
                              "小区门口占道经营", "河道里有人倾倒垃圾", "物业不作为，电梯经常坏"]):
        t = store.intake(Ticket(content=text, caller="13812345678"), router.route(Ticket(content=text)), actor="seed")
        if i % 3 == 1 and t["status"] != "in_arbitration":
            store.escalate(t["id"], "推诿扯皮", actor="seed")
        elif i % 3 == 2:
            store.dispatch(t["id"], "urban_management", [], actor="seed")
    app.state.admin_key = key
    yield app
    try:  # schemathesis runs the app's lifespan in its own portal: end it before the store goes away
        from schemathesis.python.asgi import shutdown_lifespans

        shutdown_lifespans()
    finally:
        store.dispose()
        cleanup()


class _SchemaOnly:
    """Stands in for the store while the schema is read at import (collection) time: nothing is opened."""


# Loaded at import from an app that opens nothing; the requests go to the real app (``app=`` below). (schemathesis'
# lazy ``pytest.from_fixture`` loader does not work with pytest 9.)
schema = schemathesis.openapi.from_dict(create_app(Settings(), store=_SchemaOnly()).openapi())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case, st_app):
    case.call_and_validate(app=st_app, headers={"Authorization": f"Bearer {st_app.state.admin_key}"},
                           checks=[not_a_server_error])


def test_schema_covers_every_api_route(st_app):
    """The fuzzing above is only as wide as the schema: it is the served app's, and every /api/v1 route is in it."""
    from fastapi.routing import APIRoute

    assert schema.raw_schema == st_app.openapi()
    routes = {(m, r.path) for r in st_app.routes if isinstance(r, APIRoute) and r.include_in_schema for m in r.methods}
    ops = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert {x for x in routes if x[1].startswith("/api/v1")} <= ops
    assert len(ops) >= 20
