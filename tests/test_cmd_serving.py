"""`hotline keys …` and `hotline export decisions` (hotline/cmd_serving.py), on a real SQLite store."""
from __future__ import annotations

import csv
import json

import pytest
import typer
from typer.testing import CliRunner

from hotline import cmd_serving
from hotline.settings import Settings, get_settings
from model.suggestion import Candidate, DepartmentScore, Suggestion, Ticket
from serving.bootstrap import ensure_admin_key, open_store


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    app = typer.Typer()
    cmd_serving.register(app)
    runner = CliRunner()
    yield (lambda *a: runner.invoke(app, list(a))), Settings(data_dir=tmp_path)
    get_settings.cache_clear()


def test_keys_create_list_revoke(env):
    cli, settings = env
    r = cli("keys", "create", "--role", "arbitrator", "--name", "王五")
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("hk_") and " " not in token
    store = open_store(settings)
    try:
        assert store.authenticate(token).role == "arbitrator"
        r = cli("keys", "list")
        assert r.exit_code == 0 and "王五" in r.output and token not in r.output and token[:10] in r.output
        r = cli("keys", "revoke", token[:10])
        assert r.exit_code == 0 and "revoked" in r.output
        assert store.authenticate(token) is None
    finally:
        store.dispose()
    r = cli("keys", "revoke", "999")
    assert r.exit_code == 1 and r.output.startswith("error: ")
    # a number past the id column (SQLite overflowed with a traceback) and non-ASCII digits (int("２") is 2: key #2, 赵六's,
    # would be revoked) are no key's id
    r = cli("keys", "create", "--role", "dispatcher", "--name", "赵六")
    token = r.output.strip().splitlines()[-1]
    for ref in ("99999999999999999999999", "\uff11", "\u0661"):
        r = cli("keys", "revoke", ref)
        assert r.exit_code == 1 and r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1, r.output
    store = open_store(settings)
    try:
        assert store.authenticate(token).role == "dispatcher"
    finally:
        store.dispose()
    r = cli("keys", "create", "--role", "boss")
    assert r.exit_code == 1 and "dispatcher, arbitrator, admin" in r.output


def test_first_start_admin_key_once(env):
    _, settings = env
    token = ensure_admin_key(settings)
    assert token and ensure_admin_key(settings) is None
    store = open_store(settings)
    try:
        assert store.authenticate(token).role == "admin"
    finally:
        store.dispose()


def _sug(lead):
    dep = DepartmentScore(code=lead, name=lead, kind="functional", score=0.9)
    return Suggestion(id=None, lead=dep, co=[], candidates=[Candidate(code=lead, kind="functional", score=0.9)],
                      confidence=0.9, auto_dispatch=True, needs_arbitration=False, reasons=[], evidence=[],
                      model_version="t")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_export_decisions_is_training_data(env, tmp_path, suffix):
    cli, settings = env
    store = open_store(settings)
    try:
        a = store.intake(Ticket(content="井盖丢了，很危险", title="井盖", created_at="2026-11-01 08:00"), _sug("urban_management"),
                         actor="d")["id"]
        store.dispatch(a, "water_affairs", ["urban_management"], actor="d")  # override
        b = store.intake(Ticket(content="接受建议"), _sug("health"), actor="d")["id"]
        store.dispatch(b, "health", [], actor="d")  # accepted: not a new label
        c = store.intake(Ticket(content="公交站牌损坏, \"引号\"\n换行", title="站牌坏了？"), _sug("transport"), actor="d")["id"]
        store.escalate(c, "不清楚", actor="d")
        store.claim(c, actor="a")
        store.decide(c, "transport", ["urban_management", "traffic_police"], "站牌归交通", actor="a")
    finally:
        store.dispose()
    out = tmp_path / f"labels{suffix}"
    r = cli("export", "decisions", "--out", str(out))
    assert r.exit_code == 0 and "wrote 2" in r.output, r.output
    if suffix == ".csv":
        rows = list(csv.DictReader(out.open(encoding="utf-8")))
    else:
        rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    # the text as the classifier reads the served ticket (no 。 after a title that ends its sentence), title and
    # content apart; the ticket's own time when it came with one, else when the service received it
    assert [(x["text"], x["title"], x["content"], x["lead"], x["co"], x["source"]) for x in rows] == [
        ("井盖。井盖丢了，很危险", "井盖", "井盖丢了，很危险", "water_affairs", "urban_management", "override"),
        ("站牌坏了？公交站牌损坏, \"引号\"\n换行", "站牌坏了？", "公交站牌损坏, \"引号\"\n换行", "transport",
         "urban_management|traffic_police", "decision")]
    assert rows[0]["created_at"] == "2026-11-01T08:00:00+08:00" and rows[1]["created_at"].endswith("Z")
    try:  # issue 5's reader, when it is there: the export must load as training data as-is
        from training.data import ColumnMap, load_history
    except ImportError:
        return
    hist = load_history(out, ColumnMap(text_cols=["text"], label_col="lead", co_col="co", time_col="created_at"))
    assert len(hist) == 2


def test_export_rejects_other_formats(env, tmp_path):
    cli, _ = env
    r = cli("export", "decisions", "--out", str(tmp_path / "x.xlsx"))
    assert r.exit_code == 1 and ".csv or .jsonl" in r.output


def test_stats_reports_how_the_suggestions_fared(env):
    """`hotline stats`: the suggestions against the owners people settled, as a table and as JSON; a street office
    the dispatcher chose counts in the top 3 as `locality`; a bad --until is one line and changes nothing."""
    cli, settings = env
    store = open_store(settings)
    try:
        a = store.intake(Ticket(content="井盖丢了"), _sug("urban_management"), actor="d")["id"]
        store.dispatch(a, "urban_management", [], actor="d")
        town = _sug("water_affairs").model_copy(update={"candidates": [
            Candidate(code="water_affairs", kind="functional", score=0.5), Candidate(code="locality", kind="locality", score=0.4)]})
        b = store.intake(Ticket(content="村里的路灯坏了"), town, actor="d")["id"]
        store.dispatch(b, "xinhua", [], actor="d")
        c = store.intake(Ticket(content="楼道堆物没人管"), _sug("urban_management"), actor="d")["id"]
        store.escalate(c, "职责不清", actor="d")
    finally:
        store.dispose()
    r = cli("stats", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["all"]["lead_top1"] == {"count": 1, "of": 2, "rate": 0.5}
    assert rep["by_reason"] == [{"code": "DISPATCHER_REQUEST", "tickets": 1, "decided": 0,
                                 "suggestion_right": {"count": 0, "of": 0, "rate": None}}]
    assert rep["all"]["lead_top3"]["count"] == 2 and rep["all"]["auto_dispatch_precision"]["count"] == 1
    assert [v["model_version"] for v in rep["by_model_version"]] == ["t"]
    r = cli("stats")
    assert r.exit_code == 0 and "lead top-1 (suggested = settled)" in r.output and "0.500 (1/2)" in r.output
    assert "  DISPATCHER_REQUEST      1      0  —" in r.output.splitlines()
    r = cli("stats", "--until", "2020-01-01")  # a period before every ticket
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("tickets received with a suggestion"))
    assert line.split()[-1] == "0" and "most frequent corrections" not in r.output
    r = cli("stats", "--until", "01/12/2026")
    assert r.exit_code == 1 and r.output.startswith("error: ") and "YYYY-MM-DD" in r.output
    for far in ("0001-01-01", "9999-12-31"):  # an OverflowError traceback before
        r = cli("stats", "--until", far)
        assert r.exit_code == 1 and r.output.startswith("error: ") and "between 1970 and 2200" in r.output, r.output
