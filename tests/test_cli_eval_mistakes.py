"""A user's mistake on the dedup and eval commands (`hotline dedup`, `hot`, `eval-dedup`, `bench-dedup`, `eval
routing`): exit != 0 and one line on stderr saying what to fix, checked before any long work; never a traceback,
and nothing already stored lost. Every input is a tiny file written here (no real messages)."""
from __future__ import annotations

import csv
import json

import pytest
import typer
from typer.testing import CliRunner

from hotline.settings import get_settings

TICKETS = [  # written for the test, not taken from any data set
    {"id": "t1", "content": "幸福里小区3号楼楼下的烧烤店每天晚上油烟很大，熏得家里没法开窗。", "created_at": "2024-05-01T09:00:00+08:00",
     "caller": "13812345678"},
    {"id": "t2", "content": "幸福里小区3号楼下面那家烧烤店油烟还是很大，到现在都没人处理。", "created_at": "2024-05-03T09:00:00+08:00",
     "caller": "13812345678"},
]


@pytest.fixture
def env(monkeypatch, model_cache, tmp_path):
    monkeypatch.setenv("HOTLINE_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOTLINE_MODEL_VERSION", "none")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def dedup_cli(env):
    from hotline import cmd_dedup

    app = typer.Typer()
    cmd_dedup.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def main_cli(env):
    from hotline.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def one_error(r) -> str:
    """The one line a mistake gets: stopped by `fail` (no other exception), on stderr, nothing else there."""
    assert r.exit_code != 0 and isinstance(r.exception, SystemExit), (r.exception, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output
    return lines[0]


def tickets_file(tmp_path, name="in.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in TICKETS), encoding="utf-8")
    return path


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ 1. dedup --output


def test_dedup_output_under_a_file_stops_before_the_state_is_saved(dedup_cli, tmp_path):
    inp = tickets_file(tmp_path)
    line = one_error(dedup_cli("dedup", "--input", inp, "--output", inp / "x.jsonl",
                               "--state", tmp_path / "state", "--owners", "none"))
    assert "--output" in line and "is a file, not a folder" in line
    assert not (tmp_path / "state").exists()  # checked before any work: no state saved for a run that failed


def test_dedup_output_in_a_missing_folder_is_written_there(dedup_cli, tmp_path):
    inp = tickets_file(tmp_path)
    out = tmp_path / "nodir" / "x.jsonl"
    r = dedup_cli("dedup", "--input", inp, "--output", out, "--state", tmp_path / "state", "--owners", "none")
    assert r.exit_code == 0 and r.exception is None, r.output
    assert [json.loads(x)["id"] for x in out.read_text(encoding="utf-8").splitlines()] == ["t1", "t2"]


def test_dedup_output_that_is_the_input_leaves_the_input_alone(dedup_cli, tmp_path):
    inp = tickets_file(tmp_path)
    before = inp.read_bytes()
    line = one_error(dedup_cli("dedup", "--input", inp, "--output", inp, "--owners", "none"))
    assert "is the input file too" in line
    assert inp.read_bytes() == before
    line = one_error(dedup_cli("dedup", "--input", inp, "--output", tmp_path, "--owners", "none"))
    assert "is a folder" in line


def test_dedup_output_or_state_that_cannot_be_written_is_one_line(dedup_cli, tmp_path):
    """Found at write time (root writes any folder; /proc takes no new files from anyone): one line, and for the
    state, the state saved before is kept."""
    inp = tickets_file(tmp_path)
    line = one_error(dedup_cli("dedup", "--input", inp, "--output", "/proc/hotline-test/x.jsonl", "--owners", "none"))
    assert "--output /proc/hotline-test/x.jsonl: cannot write it" in line
    line = one_error(dedup_cli("dedup", "--input", inp, "--output", tmp_path / "o.jsonl", "--state",
                               "/proc/hotline-test-state", "--owners", "none"))
    assert "could not save the duplicate-detection state into /proc/hotline-test-state" in line
    assert "the state saved before is kept" in line


# ------------------------------------------------------------------------------------------------ 2. --state


def test_hot_state_that_is_a_file(dedup_cli, tmp_path):
    inp = tickets_file(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("keep me", encoding="utf-8")
    line = one_error(dedup_cli("hot", "--input", inp, "--state", afile, "--owners", "none"))
    assert "--state" in line and "is a file" in line
    assert afile.read_text(encoding="utf-8") == "keep me"
    line = one_error(dedup_cli("dedup", "--input", inp, "--state", afile, "--owners", "none"))
    assert "--state" in line and "is a file" in line


def test_damaged_dedup_state_says_which_folder_and_what_to_do(dedup_cli, tmp_path):
    inp = tickets_file(tmp_path)
    state = tmp_path / "state"
    r = dedup_cli("dedup", "--input", inp, "--state", state, "--owners", "none")
    assert r.exit_code == 0, r.output
    current = (state / "CURRENT").read_text(encoding="utf-8").strip()
    saved = state / current
    good = snapshot(state)

    def damaged(*args):
        before = snapshot(state)
        line = one_error(dedup_cli(*args))
        assert str(state) in line and "damaged" in line and "remove the folder" in line and "--state" in line, line
        assert snapshot(state) == before  # nothing stored is touched
        return line

    # CURRENT names a folder that is not there
    (state / "CURRENT").write_text("state-gone", encoding="utf-8")
    line = damaged("dedup", "--input", inp, "--state", state, "--owners", "none")
    assert "meta.json" in line
    damaged("hot", "--input", inp, "--state", state, "--owners", "none")
    (state / "CURRENT").write_text(current, encoding="utf-8")
    # meta.json is not JSON
    meta = (saved / "meta.json").read_bytes()
    (saved / "meta.json").write_text("{ half", encoding="utf-8")
    assert "not valid JSON" in damaged("dedup", "--input", inp, "--state", state, "--owners", "none")
    (saved / "meta.json").write_bytes(meta)
    # records.jsonl cut short in the middle of a character
    records = (saved / "records.jsonl").read_bytes()
    cut = records.index("幸".encode()) + 1 if "幸".encode() in records else len(records) // 2
    (saved / "records.jsonl").write_bytes(records[:cut])
    damaged("dedup", "--input", inp, "--state", state, "--owners", "none")
    (saved / "records.jsonl").write_bytes(records[: records.index(b"\n") + 5])  # a line cut short
    damaged("dedup", "--input", inp, "--state", state, "--owners", "none")
    (saved / "records.jsonl").write_bytes(records)
    assert snapshot(state) == good


# ------------------------------------------------------------------------------------------------ 3. eval-dedup --out


def _pairs_and_messages(tmp_path, pairs_text="a,b,same\nm1,m2,1\n"):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(pairs_text, encoding="utf-8")
    messages = tmp_path / "messages.csv"
    with open(messages, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["留言编号", "留言用户", "留言主题", "留言时间", "留言详情"])
        for i, t in enumerate(TICKETS, 1):
            w.writerow([f"m{i}", "A0001", "烧烤油烟", "2024/5/0%d 9:00:00" % i, t["content"]])
    return pairs, messages


def test_eval_dedup_out_checked_first(dedup_cli, tmp_path, monkeypatch):
    import hotline.cmd_dedup

    def no_work(*a, **k):
        raise AssertionError("worked before checking --out")
    monkeypatch.setattr(hotline.cmd_dedup, "_encoder", no_work)
    monkeypatch.setattr(hotline.cmd_dedup, "ticket_owners", no_work)
    pairs, messages = _pairs_and_messages(tmp_path)
    (tmp_path / "adir").mkdir()
    line = one_error(dedup_cli("eval-dedup", "--pairs", pairs, "--messages", messages, "--out", tmp_path / "adir"))
    assert "--out" in line and "is a folder" in line
    before = pairs.read_bytes()
    line = one_error(dedup_cli("eval-dedup", "--pairs", pairs, "--messages", messages, "--out", pairs))
    assert "is the input file too" in line and pairs.read_bytes() == before
    line = one_error(dedup_cli("eval-dedup", "--pairs", pairs, "--messages", messages, "--out", pairs / "sub" / "r.json"))
    assert "--out" in line and "is a file" in line


def test_eval_dedup_names_the_message_whose_time_cannot_be_read_before_any_work(dedup_cli, tmp_path, monkeypatch):
    """It said "created_at '昨天' is not a date/time" without the file or the message, and only after routing every
    message for its owner."""
    import hotline.cmd_dedup

    def no_work(*a, **k):
        raise AssertionError("worked before reading every message's time")
    monkeypatch.setattr(hotline.cmd_dedup, "_encoder", no_work)
    monkeypatch.setattr(hotline.cmd_dedup, "ticket_owners", no_work)
    pairs, messages = _pairs_and_messages(tmp_path)
    text = messages.read_text(encoding="utf-8").splitlines()
    text[2] = text[2].replace("2024/5/02 9:00:00", "昨天")
    messages.write_text("\n".join(text) + "\n", encoding="utf-8")
    line = one_error(dedup_cli("eval-dedup", "--pairs", pairs, "--messages", messages))
    assert f"{messages} row 3 (留言编号 m2): 留言时间: created_at '昨天' is not a date/time" in line, line


# ------------------------------------------------------------------------------------------------ 4. bench-dedup --sizes


@pytest.mark.parametrize("sizes", ["0", "-5", "10000,0", "ten", ""])
def test_bench_dedup_sizes_out_of_range(dedup_cli, sizes, monkeypatch):
    import eval.bench_dedup

    def no_bench(*a, **k):
        raise AssertionError("benchmarked a bad size")
    monkeypatch.setattr(eval.bench_dedup, "bench_dedup", no_bench)
    line = one_error(dedup_cli("bench-dedup", f"--sizes={sizes}"))
    assert "--sizes" in line


def test_parse_sizes_is_shared_and_strict():
    from eval.bench_dedup import bench_dedup, parse_sizes, size_tag

    assert parse_sizes("10000, 100000,1000000") == (10_000, 100_000, 1_000_000)
    assert parse_sizes("") == () and parse_sizes(" , ") == ()
    for bad in ("0", "-5", "3000,-1", "1e4", "ten"):
        with pytest.raises(ValueError):
            parse_sizes(bad)
    with pytest.raises(ValueError, match="1 or more"):
        bench_dedup((0,))
    assert [size_tag(n) for n in (500, 1500, 3000, 100_000, 2_000_000)] == ["500", "1500", "3k", "100k", "2m"]


# ------------------------------------------------------------------------------------------------ 5. eval-dedup pairs


@pytest.mark.parametrize("same", ["maybe", "", "2"])
def test_eval_dedup_bad_same_names_file_row_and_values(dedup_cli, tmp_path, same):
    pairs, messages = _pairs_and_messages(tmp_path, f"a,b,same\nm1,m2,1\nm1,m2,{same}\n")
    line = one_error(dedup_cli("eval-dedup", "--pairs", pairs, "--messages", messages, "--owners", "none"))
    assert "pairs.csv line 3" in line and "write 1" in line and "or 0" in line, line
    assert "invalid literal" not in line


def test_eval_dedup_pairs_file_without_pairs_is_an_error(dedup_cli, tmp_path):
    pairs, messages = _pairs_and_messages(tmp_path, "a,b,same\n")
    line = one_error(dedup_cli("eval-dedup", "--pairs", pairs, "--messages", messages, "--owners", "none"))
    assert "pairs.csv" in line and "no judged pair" in line


# ------------------------------------------------------------------------------------------------ 6. eval routing rows


def _labelled(tmp_path, rows, name="labelled.csv"):
    path = tmp_path / name
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "content", "lead"])
        w.writerows(rows)
    return path


ROWS = [("1", "", "公司拖欠我三个月工资不发，老板跑了", "human_resources"),
        ("2", "", "孩子学校食堂的饭菜很差，还不卫生", "education"),
        ("3", "油烟" * 260, "小区楼下烧烤店油烟太大，晚上窗户都不敢开", "ecology_environment"),  # a title of 520 characters
        ("4", "", "梅林路的路灯坏了三天，晚上走路很危险", ""),  # no lead
        ("5", "", "小区门口的下水道堵了，污水漫到路上", "urban_management")]


def test_eval_routing_skips_a_row_the_ticket_model_refuses_and_counts_rows_without_lead(main_cli, tmp_path):
    data = _labelled(tmp_path, ROWS)
    r = main_cli("eval", "routing", "--data", data, "--no-baseline")
    assert r.exit_code == 0, r.output
    assert "validation error" not in r.output and "n=3 " in r.stdout
    line = next(x for x in r.stderr.splitlines() if "skipped" in x)
    assert "labelled.csv: 5 rows, 3 used, 2 skipped" in line
    assert "1 without a lead: row 5" in line  # the header is row 1
    assert "1 refused" in line and "'title'" in line and "500" in line and "row 4" in line


def test_eval_routing_every_row_refused_names_the_first(main_cli, tmp_path):
    data = _labelled(tmp_path, [ROWS[2]])
    line = one_error(main_cli("eval", "routing", "--data", data, "--no-baseline"))
    assert "row 2" in line and "'title'" in line and "validation error" not in line


def test_read_labelled_csv_counts_only_when_asked(tmp_path, capsys):
    from eval.routing import read_labelled_csv

    data = _labelled(tmp_path, ROWS)
    tickets, leads, co = read_labelled_csv(data, warn=False)
    assert [t.id for t in tickets] == ["1", "2", "5"] and leads == ["human_resources", "education", "urban_management"]
    assert co is None and capsys.readouterr().err == ""
    read_labelled_csv(data)
    assert "5 rows, 3 used, 2 skipped" in capsys.readouterr().err
    clean = _labelled(tmp_path, [ROWS[0], ROWS[1]], "clean.csv")
    read_labelled_csv(clean)
    assert capsys.readouterr().err == ""  # nothing left out: nothing said


def test_dedup_router_that_cannot_be_built_is_one_line_naming_the_way_round(dedup_cli, tmp_path, monkeypatch):
    """The owners are routed with the lists (hotline/console.py `router_or_fail`, shared with `route` and `eval`): an
    index folder it may not read is one line that says how to go without the router, not a traceback; nothing is
    written; without routing (`--owners none`) the same file goes through."""
    import model.pipeline

    def unreadable(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "indexes"))
    monkeypatch.setattr(model.pipeline, "build_router", unreadable)
    inp, out = tickets_file(tmp_path), tmp_path / "out.jsonl"
    line = one_error(dedup_cli("dedup", "--input", inp, "--output", out))
    assert "Permission denied" in line and "(or pass --owners input)" in line, line
    assert not out.exists()
    r = dedup_cli("dedup", "--input", inp, "--output", out, "--owners", "none")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["duplicate_of"] for x in out.read_text(encoding="utf-8").splitlines()] == [None, "t1"]
