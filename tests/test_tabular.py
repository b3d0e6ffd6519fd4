"""Import/export of 权责清单 spreadsheets: round trip, per-row errors, nothing written on failure."""
import csv
import io
import shutil

import pandas as pd
import pytest

from responsibility_lists.loader import DEFAULT_DIR, lists_version, load_lists
from responsibility_lists.tabular import ImportRejected, export_table, import_table, read_table


@pytest.fixture
def lists_copy(tmp_path):
    dst = tmp_path / "lists"
    shutil.copytree(DEFAULT_DIR, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dst


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_export_then_import_round_trip(tmp_path, lists_copy, suffix):
    lists = load_lists(lists_copy)
    sheet = tmp_path / f"lists{suffix}"
    assert export_table(lists, sheet) == len(lists.items)
    out = tmp_path / "imported"
    counts = import_table(sheet, lists_copy, out)
    assert sum(counts.values()) == len(lists.items)
    again = load_lists(out)
    assert [r.item for r in again.items] == [r.item for r in lists.items]


def test_a_csv_saved_as_gbk_imports_as_its_utf8_twin(tmp_path, lists_copy):
    """Excel on a Chinese Windows saves CSV as GBK: it imports the same lists; a file in neither encoding (UTF-16, as
    Excel's "Unicode text" saves it) is one error saying what to do, and nothing is written."""
    lists = load_lists(lists_copy)
    utf8 = tmp_path / "lists.csv"
    export_table(lists, utf8)
    gbk = tmp_path / "lists_gbk.csv"
    gbk.write_bytes(utf8.read_text(encoding="utf-8-sig").encode("gb18030"))
    out = tmp_path / "imported"
    import_table(gbk, lists_copy, out)
    assert [r.item for r in load_lists(out).items] == [r.item for r in lists.items]
    utf16 = tmp_path / "lists_utf16.csv"
    utf16.write_bytes(utf8.read_text(encoding="utf-8-sig").encode("utf-16"))
    before = lists_version(lists_copy)
    with pytest.raises(ValueError, match="save it as UTF-8"):
        import_table(utf16, lists_copy)
    assert lists_version(lists_copy) == before


def test_import_reports_every_bad_row_and_writes_nothing(tmp_path, lists_copy):
    before = lists_version(lists_copy)
    df = pd.DataFrame([
        {"部门": "区市场监督管理局", "事项名称": "共享充电宝收费", "职责": "查处共享充电宝价格违法行为。", "依据": "《中华人民共和国价格法》",
         "示例诉求": "充电宝一小时收我八块钱\n扫码借充电宝还不进去一直扣钱", "关键词": "充电宝、收费", "不含事项": ""},
        {"部门": "城管局", "事项名称": "某事项", "职责": "某职责描述", "依据": "某法", "示例诉求": "某诉求", "关键词": "a", "不含事项": ""},
        {"部门": "market_regulation", "事项名称": "X", "职责": "职责描述内容", "依据": "", "示例诉求": "", "关键词": "", "不含事项": ""},
        {"部门": "market_regulation", "事项名称": "网购纠纷", "职责": "处理网购消费纠纷投诉。", "依据": "《消费者权益保护法》",
         "示例诉求": "网上买的东西坏了商家不退", "关键词": "网购", "不含事项": "快递丢件 交给邮政"},
    ])
    sheet = tmp_path / "bad.xlsx"
    df.to_excel(sheet, index=False)
    with pytest.raises(ImportRejected) as exc:
        import_table(sheet, lists_copy)
    msgs = [str(p) for p in exc.value.problems]
    assert any(m.startswith("第3行 [部门]") and "城管局" in m for m in msgs)
    assert any(m.startswith("第4行 [事项名称]") for m in msgs)
    assert any(m.startswith("第4行 [依据]") for m in msgs)
    assert any(m.startswith("第5行 [不含事项]") for m in msgs)
    assert not any(m.startswith("第2行") for m in msgs)
    assert lists_version(lists_copy) == before


def test_a_page_pasted_into_a_cell_is_refused_and_quoted_short(tmp_path, lists_copy):
    """A 140,000-character phrasing was imported and indexed; a cell that long in a column that names something was
    printed back whole in the problem line."""
    before = lists_version(lists_copy)
    page = "长" * 140_000
    df = pd.DataFrame([
        {"部门": "market_regulation", "事项名称": "网购纠纷", "职责": "处理网购消费纠纷投诉。", "依据": "《消费者权益保护法》",
         "示例诉求": "网上买的东西坏了商家不退\n" + page, "关键词": "网购", "不含事项": ""},
        {"部门": "market_regulation", "事项名称": "团购纠纷", "职责": "处理团购消费纠纷投诉。", "依据": "《消费者权益保护法》",
         "示例诉求": "团购券过期不退", "关键词": "团购", "不含事项": page},
    ])
    sheet = tmp_path / "long.csv"
    df.to_csv(sheet, index=False)
    with pytest.raises(ImportRejected) as exc:
        import_table(sheet, lists_copy)
    msgs = [str(p) for p in exc.value.problems]
    assert msgs[0] == "第2行 [示例诉求]: 第 2 条过长（最多 500 字）", msgs
    assert msgs[1].startswith("第3行 [不含事项]: '长长") and "（共 140000 字）" in msgs[1] and len(msgs[1]) < 200, msgs[1][:300]
    assert lists_version(lists_copy) == before


def test_import_replaces_one_department_and_numbers_new_items(tmp_path, lists_copy):
    df = pd.DataFrame([{"部门": "区国税局", "事项名称": "电子发票开具", "职责": "指导纳税人开具和查验电子发票。",  # names.yaml
                        "依据": "《中华人民共和国发票管理办法》", "示例诉求": "饭店不给开发票\n开票系统一直登录不上",
                        "关键词": "发票、电子发票", "不含事项": "餐饮卫生 -> market_regulation"}])
    sheet = tmp_path / "tax.csv"
    df.to_csv(sheet, index=False)
    held = [it.id for it in load_lists(lists_copy).items_of("taxation")]
    import_table(sheet, lists_copy)
    lists = load_lists(lists_copy)
    tax = lists.items_of("taxation")
    # numbered after every item the department held (the sheet dropped them all): taxation-01 was another matter,
    # which stored suggestions cite
    assert [it.id for it in tax] == [f"taxation-{len(held) + 1:02d}"] and held[-1] == f"taxation-{len(held):02d}"
    assert tax[0].exclusions[0].owner == "market_regulation"
    assert len(lists.items_of("market_regulation")) == len(load_lists(DEFAULT_DIR).items_of("market_regulation"))


def test_an_xls_sheet_imports_and_a_broken_workbook_is_one_error(tmp_path, lists_copy):
    """Excel 97–2003 (.xls, tests/data/make_xls_fixtures.py) imports as .xlsx does; a file that is not the workbook
    its name says is one error saying what to do, and nothing is written."""
    from pathlib import Path

    import_table(Path(__file__).parent / "data" / "lists_taxation.xls", lists_copy)
    tax = load_lists(lists_copy).items_of("taxation")
    assert [it.title for it in tax] == ["电子发票开具"] and tax[0].phrasings == ["饭店不给开发票", "开票系统一直登录不上"]
    before = lists_version(lists_copy)
    for name in ("broken.xlsx", "broken.xls"):
        (tmp_path / name).write_bytes(b"not a workbook")
        with pytest.raises(ValueError, match="not a readable Excel workbook"):
            import_table(tmp_path / name, lists_copy)
    assert lists_version(lists_copy) == before


def test_a_workbook_that_opens_with_a_cover_sheet_imports_its_lists_sheet(tmp_path, lists_copy):
    """A 权责清单 workbook whose first sheet is a cover (说明): the sheet imported is the one whose header names the
    required columns."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "说明"
    wb.active.append(["清河区部门权责清单（2026年版），清单见第二个工作表"])
    items = wb.create_sheet("清单")
    items.append(["部门", "事项名称", "职责", "依据", "示例诉求", "关键词", "不含事项"])
    items.append(["taxation", "电子发票开具", "指导纳税人开具和查验电子发票。", "《中华人民共和国发票管理办法》", "饭店不给开发票", "发票", ""])
    wb.save(tmp_path / "cover.xlsx")
    assert import_table(tmp_path / "cover.xlsx", lists_copy) == {"taxation": 1}
    assert [it.title for it in load_lists(lists_copy).items_of("taxation")] == ["电子发票开具"]


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_an_empty_sheet_is_refused_and_changes_nothing(tmp_path, lists_copy, suffix):
    """A workbook saved with an empty sheet, or an empty CSV: the import says the table has no rows, writes nothing."""
    from openpyxl import Workbook

    sheet = tmp_path / f"empty{suffix}"
    if suffix == ".csv":
        sheet.write_text("", encoding="utf-8")
    else:
        Workbook().save(sheet)
    before = lists_version(lists_copy)
    with pytest.raises(ImportRejected) as e:
        import_table(sheet, lists_copy)
    assert [p.message for p in e.value.problems] == ["表格没有数据行"]
    assert lists_version(lists_copy) == before


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_a_title_above_the_header_is_not_an_item(tmp_path, lists_copy, suffix):
    """A sheet that opens with a title and a date above its header imports its items; row numbers in problems stay
    the file's (第5行 is the fifth row, under two title rows and the header)."""
    header = ["部门", "事项名称", "职责", "依据", "示例诉求", "关键词", "不含事项"]
    good = ["taxation", "电子发票开具", "指导纳税人开具和查验电子发票。", "《中华人民共和国发票管理办法》", "饭店不给开发票", "发票", ""]
    bad = ["区宣传部", "宣传栏", "管理宣传栏。", "某办法", "宣传栏内容过时", "", ""]
    rows = [["清河区部门权责清单（2026年版）"], ["更新日期：2026-11-01"], header, good, bad]
    sheet = tmp_path / f"titled{suffix}"
    if suffix == ".csv":
        import csv

        with open(sheet, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(rows)
    else:
        from openpyxl import Workbook

        wb = Workbook()
        for r in rows:
            wb.active.append(r)
        wb.save(sheet)
    with pytest.raises(ImportRejected) as exc:
        import_table(sheet, lists_copy)
    assert [str(p)[:8] for p in exc.value.problems] == ["第5行 [部门]"]
    df = read_table(sheet)
    assert list(df.index) == [4, 5] and list(df.columns) == header


def test_empty_trailing_excel_rows_are_ignored(tmp_path):
    df = pd.DataFrame([{"部门": "taxation", "事项名称": "发票"}] + [{"部门": "", "事项名称": ""}] * 50)
    sheet = tmp_path / "t.xlsx"
    df.to_excel(sheet, index=False)
    assert len(read_table(sheet)) == 1


def test_a_stray_quote_in_a_csv_sheet_is_one_error_and_nothing_is_written(tmp_path, lists_copy):
    """A quote that opens a cell and never closes it swallowed the rows after it into one cell: fewer items imported,
    unseen. Now it names its row, and the lists stay as they were."""
    lists = load_lists(lists_copy)
    sheet = tmp_path / "lists.csv"
    export_table(lists, sheet)
    rows = list(csv.reader(io.StringIO(sheet.read_text(encoding="utf-8-sig"), newline="")))

    def written(rs):
        buf = io.StringIO(newline="")
        csv.writer(buf).writerows(rs)
        return buf.getvalue()

    bad = tmp_path / "bad.csv"  # a quote opened at the start of the sixth row, closed nowhere it should be
    bad.write_text(written(rows[:5]) + '"' + written(rows[5:]), encoding="utf-8")
    before = lists_version(lists_copy)
    with pytest.raises(ValueError, match="row 6: a quote"):
        import_table(bad, lists_copy)
    assert lists_version(lists_copy) == before


def test_export_refuses_another_format_before_making_any_folder(tmp_path, lists_copy):
    """`lists export out/new/l.txt` said "unsupported" but had already made out/new."""
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        export_table(load_lists(lists_copy), tmp_path / "new" / "deeper" / "l.txt")
    assert not (tmp_path / "new").exists()


def test_what_a_probe_of_the_editors_workflow_found(tmp_path, lists_copy):
    """Each of these lost or misfiled something without a word: a new item took a deleted item's id (stored
    suggestions cite it); a sheet without 关键词/不含事项 wiped them; only the first list sheet of a workbook was read;
    a round trip rewrote every file and dropped the editors' notes; and the messages for a duplicate id, an exclusion
    of the department's own matter, a name typed with ASCII brackets or an arrow typed full-width."""
    lists = load_lists(lists_copy)
    sheet = tmp_path / "all.xlsx"
    export_table(lists, sheet)
    df = pd.read_excel(sheet, dtype=str, keep_default_na=False)
    um = df[df["部门"] == "urban_management"].copy()
    last = um.iloc[-1]["事项编号"]

    # 1. the last item deleted, a new one added without an id: numbered after the deleted one
    new = um.iloc[-1].copy()
    new["事项编号"], new["事项名称"] = "", "共享电动车头盔管理"
    sheet1 = tmp_path / "reuse.csv"
    pd.concat([um.iloc[:-1], new.to_frame().T]).to_csv(sheet1, index=False)
    import_table(sheet1, lists_copy)
    got = load_lists(lists_copy).items_of("urban_management")
    assert got[-1].title == "共享电动车头盔管理" and got[-1].id != last
    assert int(got[-1].id.rsplit("-", 1)[1]) == int(last.rsplit("-", 1)[1]) + 1

    # 2. no 关键词, 不含事项, 事项编号 columns: existing items (matched by title) keep theirs; nothing wiped
    notes: list[str] = []
    before = load_lists(lists_copy).items_of("urban_management")
    bare = tmp_path / "bare.csv"
    pd.DataFrame([{c: row[c] for c in ("部门", "事项名称", "职责", "依据", "示例诉求")}
                  for _, row in pd.read_excel(sheet, dtype=str, keep_default_na=False).iterrows()
                  if row["部门"] == "urban_management" and row["事项编号"] != last]
                 + [{"部门": "urban_management", "事项名称": "对违反城市市容和环境卫生管理条例擅自在街道两侧和公共场地堆放物料的处罚",
                     "职责": "查处擅自堆放物料。", "依据": "《城市市容和环境卫生管理条例》", "示例诉求": "路边堆了一堆沙子"}]
                 ).to_csv(bare, index=False)
    import_table(bare, lists_copy, notes=notes)
    after = load_lists(lists_copy).items_of("urban_management")
    assert any("关键词" in n for n in notes) and any("不含事项" in n for n in notes)
    kept = {it.id: it for it in after}
    for it in before[:-1]:  # the helmet item is not in this sheet
        assert kept[it.id].keywords == it.keywords and kept[it.id].exclusions == it.exclusions, it.id
    assert after[-1].keywords and all(len(k) <= 30 for k in after[-1].keywords)  # a title too long for a keyword

    # 3. every list sheet of a workbook is read
    book = tmp_path / "two.xlsx"
    full = pd.read_excel(sheet, dtype=str, keep_default_na=False)
    health = full[full["部门"] == "health"].copy()
    health.iloc[0, health.columns.get_loc("事项名称")] = "医疗机构执业监管（已改）"
    with pd.ExcelWriter(book) as xw:
        full[full["部门"] == "taxation"].to_excel(xw, index=False, sheet_name="税务")
        health.to_excel(xw, index=False, sheet_name="卫健委")
    counts = import_table(book, lists_copy)
    assert set(counts) == {"taxation", "health"}
    assert load_lists(lists_copy).items_of("health")[0].title == "医疗机构执业监管（已改）"

    # 4. problems named by the sheet's row, in the editors' words
    bad = full[full["部门"] == "taxation"].copy().reset_index(drop=True)
    dup = bad.iloc[[0]].copy()
    dup["事项名称"] = "另一个事项"  # the same id on a second row
    bad.loc[1, "不含事项"] = "发票问题 -> taxation"  # its own department
    bad.loc[2, "不含事项"] = "工业企业废气 -> nobody"
    bad.loc[3, "部门"] = "区税务局 "  # noqa: RUF001 — a name with a stray space still resolves
    sheets = {"bad": pd.concat([bad, dup])}
    bad_csv = tmp_path / "bad.csv"
    sheets["bad"].to_csv(bad_csv, index=False)
    with pytest.raises(ImportRejected) as exc:
        import_table(bad_csv, lists_copy)
    msgs = [str(p) for p in exc.value.problems]
    assert any("[事项编号]" in m and "与第2行的事项编号相同" in m for m in msgs), msgs
    assert any(m.startswith("第3行 [不含事项]") and "本部门负责" in m for m in msgs), msgs
    assert any(m.startswith("第4行 [不含事项]") and "'nobody' 不是名册中的部门" in m for m in msgs), msgs
    assert not any(m.startswith("第5行") for m in msgs) and len(msgs) == 3, msgs

    # 5. full-width arrows and a roster name with ASCII brackets
    ok = full[full["部门"] == "taxation"].copy().reset_index(drop=True)
    ok.loc[0, "不含事项"] = "工业企业废气排放 －＞ ecology_environment\n餐饮油烟 => 区城市管理委员会(区城管综合执法局)"
    ok_csv = tmp_path / "ok.csv"
    ok.to_csv(ok_csv, index=False)
    import_table(ok_csv, lists_copy)
    ex = load_lists(lists_copy).items_of("taxation")[0].exclusions
    assert [(e.matter, e.owner) for e in ex] == [("工业企业废气排放", "ecology_environment"), ("餐饮油烟", "urban_management")]


def test_a_round_trip_rewrites_nothing_and_a_rewrite_keeps_the_notes(tmp_path, lists_copy):
    files = {p: p.read_bytes() for p in lists_copy.rglob("*.yaml")}
    sheet = tmp_path / "all.xlsx"
    export_table(load_lists(lists_copy), sheet)
    import_table(sheet, lists_copy)
    assert {p: p.read_bytes() for p in lists_copy.rglob("*.yaml")} == files  # notes, version: nothing moved
    heating = lists_copy / "departments" / "heating_supply.yaml"
    notes = [ln for ln in heating.read_text(encoding="utf-8").splitlines() if ln.startswith("#")]
    df = pd.read_excel(sheet, dtype=str, keep_default_na=False)
    df = df[df["部门"] == "heating_supply"]
    df.iloc[0, df.columns.get_loc("事项名称")] = df.iloc[0]["事项名称"] + "（修订）"
    one = tmp_path / "heating.csv"
    df.to_csv(one, index=False)
    import_table(one, lists_copy)
    text = heating.read_text(encoding="utf-8")
    assert notes and text.splitlines()[: len(notes)] == notes and "（修订）" in text


def test_a_sheet_separated_by_tabs_is_one_line(tmp_path, lists_copy):
    sheet = tmp_path / "tabs.csv"
    sheet.write_text("部门\t事项名称\t职责\t依据\t示例诉求\nhealth\t某事项\t某职责描述\t某法\t某诉求\n", encoding="utf-8")
    with pytest.raises(ValueError, match="separated by tabs or semicolons"):
        import_table(sheet, lists_copy)
