"""Writes the two .xls (Excel 97–2003) fixtures of the tests. The project reads .xls and never writes it, so the
writer (xlwt, unmaintained) is not a dependency: `python -m venv /tmp/xv && /tmp/xv/bin/pip install xlwt &&
/tmp/xv/bin/python tests/data/make_xls_fixtures.py`. The texts are made up here."""
import datetime
from pathlib import Path

import xlwt

HERE = Path(__file__).resolve().parent


def write(path: Path, header: list[str], rows: list[list], cover: list[str] | None = None) -> None:
    wb = xlwt.Workbook(encoding="utf-8")
    if cover:  # a first sheet that explains the export, as some systems write one
        front = wb.add_sheet("说明")
        for r, line in enumerate(cover):
            front.write(r, 0, line)
    ws = wb.add_sheet("工单明细" if cover else "Sheet1")
    when = xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM")
    for c, h in enumerate(header):
        ws.write(0, c, h)
    for r, row in enumerate(rows, start=1):
        for c, v in enumerate(row):
            ws.write(r, c, v, when) if isinstance(v, datetime.datetime) else ws.write(r, c, v)
    wb.save(str(path))


# a history export of an older 12345 system: pre-reform department names, a date cell, a numeric id cell
write(HERE / "history.xls", ["工单编号", "留言主题", "留言详情", "牵头单位", "协办单位", "受理时间"], [
    [20180301001, "油烟", "楼下烧烤店油烟太大，晚上窗户都不敢开", "区环保局", "区城管局", datetime.datetime(2018, 3, 1, 10, 0)],
    [20180302002, "占地", "村里有人占耕地盖厂房", "区国土资源局", "石桥镇", datetime.datetime(2018, 3, 2, 9, 5)],
    [20180303003, "路灯", "幸福路路灯坏了三天", "区城市管理委员会（区城管综合执法局）", "", datetime.datetime(2018, 3, 3, 20, 30)],
])

# a 权责清单 sheet with one item
write(HERE / "lists_taxation.xls", ["部门", "事项名称", "职责", "依据", "示例诉求", "关键词", "不含事项"], [
    ["taxation", "电子发票开具", "指导纳税人开具和查验电子发票。", "《中华人民共和国发票管理办法》", "饭店不给开发票\n开票系统一直登录不上",
     "发票、电子发票", "餐饮卫生 -> market_regulation"],
])

# the same history behind a cover sheet
write(HERE / "history_cover.xls", ["工单编号", "留言主题", "留言详情", "牵头单位", "协办单位", "受理时间"], [
    [20180301001, "油烟", "楼下烧烤店油烟太大，晚上窗户都不敢开", "区环保局", "区城管局", datetime.datetime(2018, 3, 1, 10, 0)],
    [20180302002, "占地", "村里有人占耕地盖厂房", "区国土资源局", "石桥镇", datetime.datetime(2018, 3, 2, 9, 5)],
], cover=["清河区12345热线工单导出", "导出时间：2018-03-31", "工单明细见下一工作表"])
