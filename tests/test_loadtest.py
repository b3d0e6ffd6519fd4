"""The API load test (eval/loadtest.py, `hotline bench-api`): failures are counted, and a short real run — the
server started by `hotline serve` in a subprocess, a key made by `hotline keys create` — ends with no error, every
ticket answered 201 found in the database, and the server stopped cleanly."""
from __future__ import annotations

import asyncio
import os

from eval.loadtest import ROUTE, TICKETS, Results, _drive, run_loadtest, synthetic_tickets


def test_every_non_2xx_and_every_unanswered_request_is_an_error():
    res = Results(samples=[(ROUTE, 200, 0.01), (TICKETS, 201, 0.02), (TICKETS, 409, 0.03), (ROUTE, 500, 0.04),
                           (ROUTE, "exc:ReadTimeout", 0.05), (ROUTE, 200, 0.01)])
    s = res.summary(2.0)
    assert s["requests"] == 6 and s["requests_per_s"] == 3.0
    assert s["errors"] == 3 and s["errors_by_status"] == {"409": 1, "500": 1, "exc:ReadTimeout": 1}
    assert s["endpoints"][TICKETS]["requests"] == 2 and s["max_ms"] == 50.0


def test_synthetic_tickets_are_varied_chinese_with_callers():
    bodies = synthetic_tickets(n=60)
    assert len({b["content"] for b in bodies}) >= 55
    assert all(b["content"] and b["caller"].isdigit() and len(b["caller"]) == 11 for b in bodies)
    assert sum(any("\u4e00" <= ch <= "\u9fff" for ch in b["content"]) for b in bodies) == len(bodies)


def test_the_driver_counts_what_the_server_answers(router, tmp_path):
    """Against the app under uvicorn: a valid key gives 2xx only; an unknown key makes every request an error."""
    from hotline.settings import Settings
    from serving.app import create_app
    from test_hardening import _LiveServer

    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'd.sqlite3'}", phone_salt="x"),
                     router=router)
    key = app.state.store.create_key("dispatcher", "drive")[1]
    bodies = synthetic_tickets(n=20)
    with _LiveServer(app) as base:
        good, bad = Results(), Results()
        misses = router.index.encoder.query_cache_misses
        asyncio.run(_drive(base, key, bodies, clients=3, seconds=2, tickets_share=0.5, seed=1, res=good))
        misses = router.index.encoder.query_cache_misses - misses
        asyncio.run(_drive(base, "hk_not-a-key", bodies, clients=2, seconds=1, tickets_share=0.5, seed=2, res=bad))
    s = good.summary(2)
    assert s["requests"] >= 3 and s["errors"] == 0 and set(s["status"]) <= {"200", "201"}
    assert misses >= s["requests"]  # every request a new text: the encoder's cache does not flatter the load test
    assert good.created == s["status"].get("201", 0) == sum(app.state.store.count_by_status().values())
    b = bad.summary(1)
    assert b["requests"] >= 2 and b["errors"] == b["requests"] and set(b["errors_by_status"]) == {"401"}
    app.state.store.dispose()


def test_a_short_real_run_has_no_errors_and_loses_no_ticket(model_cache):
    said = []
    res = run_loadtest(clients=4, seconds=4, model_cache_dir=model_cache, say=said.append)
    assert res["errors"] == 0, res
    assert res["requests"] >= 4 and res["status"].get("201", 0) >= 1 and res["status"].get("200", 0) >= 1
    assert res["tickets_stored"] == res["tickets_created"] == res["status"]["201"]
    assert res["server_exit"] == 0  # stopped by SIGINT, shut down cleanly
    tmp = said[0].rsplit(" in ", 1)[1]
    assert not os.path.exists(tmp)  # the temporary data dir is gone


def test_router_benchmark_embeds_every_ticket_and_restores_the_cache(router):
    """`hotline bench` routes the same tickets one by one and then in batches: with the query cache kept between
    tickets, the batch pass would skip the encoder and flatter the throughput (it is emptied before each ticket and
    batch, and stays on)."""
    from eval.bench import bench_router

    enc = router.index.encoder
    size, hits = enc.query_cache_size, enc.query_cache_hits
    res = bench_router(router, single=3, batch=6, batch_size=3)
    assert enc.query_cache_hits == hits and enc.query_cache_size == size > 0
    assert res["route_p50_ms"] > 0 and res["batch_tickets_per_s"] > 0
    assert res["classifier_shares_encoder"] is False  # the zero-shot router has no classifier
