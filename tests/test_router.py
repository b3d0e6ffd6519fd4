"""The zero-shot router: contract of the suggestion, rules, 先属责后属地, reasons, batch input."""
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from model.io import read_tickets
from model.router import route_stream
from model.suggestion import REASON_LABELS, Reason, Ticket


def route(router, text, **kw):
    return router.route(Ticket(content=text, **kw))


def test_suggestion_contract(router):
    s = route(router, "小区楼下烧烤店油烟太大，晚上窗户都不敢开", address="梅林路幸福里小区3号楼")
    d = json.loads(s.model_dump_json())
    assert set(d) >= {"id", "lead", "co", "candidates", "confidence", "auto_dispatch", "needs_arbitration",
                      "reasons", "evidence", "model_version"}
    assert set(d["lead"]) >= {"code", "name", "kind", "score"}
    assert 1 <= len(d["candidates"]) <= 5
    assert all(set(c) >= {"code", "kind", "score"} for c in d["candidates"])
    assert 0.0 <= d["confidence"] <= 1.0
    assert all(set(r) >= {"code", "message"} for r in d["reasons"])
    assert d["evidence"] and all(set(e) >= {"department", "item_id", "item", "score"} for e in d["evidence"])
    assert s.model_version.startswith("zero-shot@")
    assert s.locality == "meilin"
    codes = {c.code for c in router.lists.departments.values()} | {"locality"}
    assert s.lead.code in codes and all(c.code in codes for c in s.co)


def test_reason_codes_are_one_list_the_screens_share():
    """A reason the screens have no label for showed its bare code (MODEL_LIST_DISAGREE did, in the workbench): a
    Reason with an unregistered code is refused, and the UI's labels are the registry's."""
    with pytest.raises(ValidationError, match="unknown reason code"):
        Reason(code="RETURNED", message="已退单")
    assert Reason(code="MODEL_LIST_DISAGREE", message="…").code == "MODEL_LIST_DISAGREE"
    js = (Path(__file__).parents[1] / "serving" / "static" / "common.js").read_text(encoding="utf-8")
    body = re.search(r"const REASON_ZH = \{(.*?)\};", js, re.S).group(1)
    assert dict(re.findall(r'(\w+): "([^"]+)"', body)) == REASON_LABELS


@pytest.mark.parametrize("text,lead", [
    ("我家楼上邻居天天半夜打麻将，吵得根本睡不着觉", "public_security"),
    ("孩子今年上小学，我们家房子在学区里但是学校说没有学位了", "education"),
    ("公司拖欠我三个月工资不发，老板电话都不接", "human_resources"),
    ("超市卖过期的牛奶，吃了肚子疼，要求处理", "market_regulation"),
    ("路口的红绿灯坏了好几天了，早晚高峰特别堵", "traffic_police"),
    ("家里突然停电了，整栋楼都没电，什么时候能来电", "power_supply"),
    ("我想咨询一下医保异地就医怎么备案报销", "medical_security"),
    # matters the lists came to cover after reading real messages (rural roads, rural housing, poverty relief)
    ("镇上到我们村规划的那条路，路基打好三年了一直不铺路面，到底哪年能修好通车", "transport"),
    ("爷爷住的老土房去年就被评成了危房，今年说改造名额没了，补助也没发", "housing_construction"),
    ("我们家是脱贫户，今年孩子生病花了很多钱，村里说可以申请防返贫监测，不知道找谁", "agriculture_rural"),
    # a new home's design or safety fault found at delivery: 开发商's duty under housing_construction-04, which the lists
    # sent to the gas company (入户 + 安全隐患) or to the town until the item said so (2026-12-04)
    ("刚收的新房阳台护栏间隙太大，小孩能钻出去，找开发商整改一直拖着，安全隐患太大了", "housing_construction"),
    ("买的期房交付了，两户的入户门挨得太近开门就撞上，设计有安全隐患，开发商说没问题", "housing_construction"),
    # matters the lists sent elsewhere until read department by department on the 7,127 unlabelled messages
    # (2026-12-05): a lift out of service for weeks (to fire_rescue's high-rise item), a civil-defence parking space
    # (no item: fire lanes), a refund for a cancelled flat (taxation: 退税), a pyramid-scheme den (civil_affairs or the town),
    # gambling at fishing-game machines (emergency_management; mahjong parlours went to power_supply)
    ("小区7栋的电梯停止运行一个多月了，物业一直不维修", "market_regulation"),
    ("小区地下的人防车位被物业拿来卖，人防车位到底能不能出售", "housing_construction"),
    ("恒大的退房款一个多月了还没到账，开发商一直拖着不退款", "housing_construction"),
    ("我家人被传销组织洗脑，在出租屋里不肯回家，求政府查处窝点", "market_regulation"),
    ("小区旁边有一家店摆着打鱼机，开了又关关了又开，请彻底取缔", "public_security"),
])
def test_plain_matters_go_to_their_owner(router, text, lead):
    s = route(router, text)
    assert s.lead.code == lead, (text, s.lead.code, [c.code for c in s.candidates])
    assert any(e.department == lead for e in s.evidence)


def test_matched_rule_fixes_lead_and_co_and_is_cited(router):
    rule = next(r for r in router.lists.rules if "locality" in r.co)
    text = "".join(g[0] for g in rule.triggers.all_of) + "，麻烦尽快处理，地址在梅林路幸福里小区"
    s = route(router, text)
    assert s.lead.code == rule.lead
    assert "meilin" in [c.code for c in s.co]
    assert all(c.score == s.lead.score for c in s.co)  # rule-mandated co-handlers share the rule's confidence
    assert s.evidence[0].item_id == f"rule:{rule.id}"
    if rule.disputed:
        assert s.needs_arbitration and "DISPUTED_BOUNDARY" in [r.code for r in s.reasons]


@pytest.mark.parametrize("text,rule,other", [
    # the title's matter applies, though the property rule's words are longer (物业 + 维修不及时 against 噪音 + 工地)
    ("楼旁工地夜间施工噪音扰民。小区物业维修不及时，物业费照收，这次也不出面", "noise-construction", "property-service"),
    # the same two matters the other way round: the property complaint comes first
    ("物业维修不及时，楼道灯坏了一个月没人修。最近旁边工地施工噪音也大", "property-service", "noise-construction"),
])
def test_of_two_rules_the_matter_stated_first_applies(router, text, rule, other):
    """A ticket about several matters names its main one first (2026-12-04: of 40 real messages where the choice
    changed, two readers found the first-stated rule the main matter 13 and 16 times, the longest-words one 6 and 7);
    the text's wording is ours."""
    matched = router.match_rules(text)
    assert [m.rule.id for m in matched][:2] == [rule, other]
    s = route(router, text)
    assert s.evidence[0].item_id == f"rule:{rule}" and s.lead.code == matched[0].rule.lead


def test_a_matter_an_item_excludes_goes_to_the_owner_it_names(router):
    """transport-15 (共享单车) excludes 押金退还和计费纠纷 (市场监管) and so does urban_management's 共享单车 item: the
    deposit dispute goes to market regulation, citing the exclusion, not to the item whose words it shares."""
    s = router.route(Ticket(id="x1", content="共享单车押金退还和计费纠纷"))
    assert s.lead.code == "market_regulation"
    assert any(e.department == "market_regulation" and "不含此项" in (e.text or "") for e in s.evidence)
    # a bike-share matter the transport item keeps stays there
    kept = router.route(Ticket(id="x2", content="新区这边一辆共享单车都没有，能不能让运营企业投放一些"))
    assert kept.lead.code == "transport"


@pytest.mark.parametrize("title, text, owner", [
    ("房东加价收电费", "市民来电反映：其租住在王庄安置小区，房东按每度电一块五收电费，比国家电价高很多，请相关部门查处。",
     "market_regulation"),
    ("物业停电检修没通知", "市民来电反映：今天上午物业自己检修小区配电房，全小区停电四个小时，事先没有任何通知，冰箱里的东西都坏了，"
     "请相关部门处理。", "housing_construction"),
    ("军人子女入学", "市民来电咨询：其丈夫是现役军人，孩子今年上小学，请问军人子女入学有什么优待政策，学位怎么安排。", "education"),
])
def test_an_excluded_matter_s_words_count_for_its_owner(router, title, text, owner):
    """A probe of centre-written tickets (2026-12-06): an exclusion's row found the owner by meaning (房东转供电加价:
    市场监管, 0.958) and lost it on the words of the item that excludes the matter (供电's 电费 items), since an item's
    words held its own text only. The matter's words now count for the owner's item its row belongs to."""
    s = route(router, text, title=title)
    assert s.lead.code == owner, [(c.code, c.score) for c in s.candidates]


def test_unowned_matter_goes_to_the_locality(router):
    # most of the common locality items' own phrasings, said by someone in 柳溪村, go to 柳溪镇 itself
    items = router.lists.items_of("locality")
    leads = [route(router, it.phrasings[0] + "，我住在柳溪镇柳溪村").lead for it in items]
    to_locality = [l for l in leads if l.kind == "locality"]
    assert len(to_locality) >= 0.6 * len(items)
    assert all(l.code == "liuxi" for l in to_locality)  # resolved to the town, never the bare pseudo-code
    s = route(router, items[0].phrasings[0] + "，我住在柳溪镇柳溪村")
    # the locality's place must be cited
    assert any(e.type == "locality" and e.department == "liuxi" for e in s.evidence)


def test_the_town_the_place_points_to_is_one_candidate_with_its_whole_share(router):
    """`locality` resolved to the ticket's town and that town named by code (a precedent settled to it, a classifier's
    share of the town mass) are one recipient: listed apart, the town filled two of the top 3 and a lead on it was as
    sure as one of its two shares."""
    t = Ticket(content="村里的路灯坏了好几盏，晚上出行不安全，我住在柳溪镇柳溪村")
    a = router.analyse(t, router.query_vectors([t])[0])
    assert a.location is not None and a.location.code == "liuxi"
    probs = {"locality": 0.3, "liuxi": 0.25, "urban_management": 0.35, "transport": 0.1}
    s = router.suggest(t, a, probs)
    codes = [c.code for c in s.candidates]
    assert len(codes) == len(set(codes)) and codes[:3] == ["liuxi", "urban_management", "transport"]
    assert s.lead.code == "liuxi" and abs(s.confidence - 0.55) < 1e-6
    assert probs == {"locality": 0.3, "liuxi": 0.25, "urban_management": 0.35, "transport": 0.1}  # the caller's left alone
    # a joint-handling rule whose lead is the locality (群租房: the town leads) is as sure as the town's whole share
    t = Ticket(content="我住在柳溪镇柳溪村，隔壁的房子被二房东打隔断群租，住了十几个人")
    a = router.analyse(t, router.query_vectors([t])[0])
    assert a.rule is not None and a.rule.rule.lead == "locality" and a.location.code == "liuxi"
    s = router.suggest(t, a, probs)
    assert s.lead.code == "liuxi" and abs(s.confidence - 0.55) < 1e-6 and [c.code for c in s.candidates][0] == "liuxi"


def test_a_locality_matter_without_a_place_asks_which_town(router):
    """LOCALITY_UNRESOLVED: a matter the locality owns whose address names no town of the map leads to the bare
    ``locality`` and says so (it informs the dispatcher, it does not by itself send the ticket to arbitration); the
    same matter with a place is the town's, with no such reason."""
    items = router.lists.items_of("locality")
    bare = [route(router, it.phrasings[0]) for it in items]
    placed = [route(router, it.phrasings[0], address="柳溪镇柳溪村") for it in items]
    unresolved = [s for s in bare if s.lead.code == "locality"]
    assert unresolved and all("LOCALITY_UNRESOLVED" in [r.code for r in s.reasons] for s in unresolved)
    assert all(s.locality is None for s in unresolved)
    assert all("LOCALITY_UNRESOLVED" not in [r.code for r in s.reasons] for s in bare + placed if s.lead.code != "locality")
    assert any(s.lead.code == "liuxi" for s in placed)
    quiet = [s for s in unresolved if [r.code for r in s.reasons] == ["LOCALITY_UNRESOLVED"]]
    assert quiet and all(not s.needs_arbitration for s in quiet)


UNSURE = {"LOW_CONFIDENCE", "AMBIGUOUS", "NOVEL_MATTER"}


@pytest.mark.parametrize("text,fires,silent", [
    # a new kind of business (新业态) between two owners: unsure and torn (how near it is to known matters sits
    # within bfloat16's rounding of the threshold, so NOVEL_MATTER is not asserted either way)
    ("元宇宙数字藏品平台突然关闭，充进去的钱提不出来", {"LOW_CONFIDENCE", "AMBIGUOUS"}, set()),
    # says nothing: all three
    ("你好", UNSURE, set()),
    # no words at all: far from every list item, whatever the (meaningless) distribution says
    ("asdkjh qwe zzzz 12345 ????", {"NOVEL_MATTER"}, {"LOW_CONFIDENCE", "AMBIGUOUS"}),
    # plain matters: none
    ("公司拖欠我工资，还不给我交社保和医保", set(), UNSURE),
    ("路边有人摆摊卖烧烤，油烟很大还占道", set(), UNSURE),
    ("超市卖过期的牛奶，老板还拖欠我三个月工资", set(), UNSURE),  # two matters, one clearly first
])
def test_the_uncertainty_reasons_fire_where_they_should_and_only_there(router, text, fires, silent):
    import copy
    from dataclasses import replace

    s = route(router, text)
    codes = {r.code for r in s.reasons}
    why = (text, s.confidence, [(c.code, c.score) for c in s.candidates[:2]], codes)
    assert fires <= codes and not silent & codes, why
    assert ("LOW_CONFIDENCE" in codes) == (s.confidence < router.config.low_confidence)
    assert s.needs_arbitration == bool(codes & UNSURE) and not (s.needs_arbitration and s.auto_dispatch)
    # each comes from its knob: at 0 none fires
    off = copy.copy(router)
    off.config = replace(router.config, low_confidence=0.0, ambiguous_margin=0.0, novel_similarity=0.0)
    assert not {r.code for r in route(off, text).reasons} & UNSURE


def test_a_rule_the_rest_of_the_ticket_contradicts_says_so(router):
    """A matched rule names the lead (policy); when the rest of the ticket reads as another owner's matter the lead's
    confidence is low and the first candidate is that owner. LOW_CONFIDENCE then says which rule and which owner, so the
    dispatcher sees why the lead is not the first candidate; elsewhere it keeps its plain sentence."""
    bar = route(router, "城西小区楼下新开的酒吧每天放音乐到凌晨两三点，年轻人在门口喝酒大声喧哗打架，居民无法休息")
    low = [r.message for r in bar.reasons if r.code == "LOW_CONFIDENCE"]
    other = router.lists.departments[bar.candidates[0].code].name
    assert bar.evidence[0].item_id == "rule:noise-entertainment" and bar.lead.code == "culture_tourism"
    assert bar.candidates[0].code != "culture_tourism", [(c.code, c.score) for c in bar.candidates]
    assert len(low) == 1 and low[0].startswith("联办规则「KTV、酒吧等娱乐场所噪声扰民」定由区文化和旅游局牵头") and other in low[0], low
    # a rule the ticket agrees with: no such sentence; no rule at all: the plain one
    stall = route(router, "路边有人摆摊卖烧烤，油烟很大还占道")
    assert stall.evidence[0].type == "rule" and not [r for r in stall.reasons if r.code == "LOW_CONFIDENCE"]
    plain = [r.message for r in route(router, "你好").reasons if r.code == "LOW_CONFIDENCE"]
    assert len(plain) == 1 and plain[0].startswith("系统对牵头单位的把握较低"), plain


def test_nonsense_is_flagged_not_auto_dispatched(router):
    s = route(router, "asdkjh qwe zzzz 12345 ????")
    assert not s.auto_dispatch
    assert s.needs_arbitration
    assert {r.code for r in s.reasons} & {"NOVEL_MATTER", "LOW_CONFIDENCE", "AMBIGUOUS"}
    assert all(r.message for r in s.reasons)


def test_batch_equals_single(router):
    texts = ["井盖丢了，晚上走路差点掉进去", "外卖骑手在人行道上逆行撞到人", "燃气费怎么交，营业厅在哪里"]
    batch = router.route_many([Ticket(id=str(i), content=t) for i, t in enumerate(texts)])
    for i, t in enumerate(texts):
        single = route(router, t)
        assert batch[i].lead.code == single.lead.code
        assert batch[i].confidence == pytest.approx(single.confidence, abs=1e-3)


def test_route_stream_keeps_the_tickets_order_across_batches(router):
    texts = ["井盖丢了，晚上走路差点掉进去", "外卖骑手在人行道上逆行撞到人", "燃气费怎么交，营业厅在哪里",
             "小区门口烧烤油烟太大", "路灯不亮好几天了"]
    tickets = [Ticket(id=str(i), content=t) for i, t in enumerate(texts)]
    done = []
    streamed = list(route_stream(router, iter(tickets), 2, done.append))
    assert done == [2, 2, 1]
    assert [s.id for s in streamed] == [t.id for t in tickets]
    assert [s.lead.code for s in streamed] == [s.lead.code for s in router.route_many(tickets)]


def test_jsonl_reader_reports_bad_lines(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_bytes("\n".join([
        json.dumps({"id": "a", "content": "路灯不亮"}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "b"}),
        json.dumps(["list"]),
        json.dumps({"id": 7, "content": "   "}),
        "",
        json.dumps({"id": "c", "content": "噪音扰民", "title": "噪音"}, ensure_ascii=False),
    ]).encode() + b"\n\xff\xfe\n")
    tickets, problems = read_tickets(f)
    assert [t.id for t in tickets] == ["a", "c"]
    assert [p.split(":")[0] for p in problems] == ["2", "3", "4", "5", "8"]
    assert "content" in problems[1] and "not UTF-8" in problems[-1]
    # saved by Notepad or Excel as "UTF-8 with BOM": the first line is a ticket like the others
    f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    assert [t.id for t in read_tickets(f)[0]] == ["a", "c"]


def test_csv_reader_reports_bad_rows_by_their_row_number(tmp_path):
    """A ticket CSV: blank rows are not tickets; a row with more cells than the header and a row without content are
    reported with the spreadsheet's row number; the rows around them are read; another column is ignored."""
    f = tmp_path / "t.csv"
    f.write_text("工单编号,诉求内容,点赞数\nA1,路灯不亮,3\n,,\nA2,噪音扰民,1,多出来的一格\nA3,,0\nA4,楼上漏水,\n", encoding="utf-8")
    tickets, problems = read_tickets(f)
    assert [(t.id, t.content) for t in tickets] == [("A1", "路灯不亮"), ("A4", "楼上漏水")]
    assert [p.split(":")[0] for p in problems] == ["4", "5"], problems
    assert "4 fields but the header has 3" in problems[0] and "content" in problems[1]


def test_the_header_is_the_first_row_naming_every_column_else_the_one_naming_most():
    from model.io import header_index

    title, dates, header = ["12345工单明细表"], ["2026-11-01", "至", "2026-11-30"], ["工单编号", "诉求内容", "承办单位"]
    assert header_index([title, dates, header, header], ["诉求内容", "承办单位"]) == 2
    assert header_index([title, ["诉求内容"], header[:2]], ["诉求内容", "承办单位"]) == 1  # most of them: the first of equals
    assert header_index([title, dates], ["诉求内容"]) == 0 and header_index([], ["诉求内容"]) is None
    assert header_index([header, title], None) == 0


def test_title_weight_mixes_the_title_into_the_query(router):
    """title_weight 0: the title does not change the query; 1: the title alone is the query; between: a mix."""
    import dataclasses

    import numpy as np

    from model.router import ZeroShotRouter

    t = Ticket(title="拖欠工资", content="小区楼下烧烤店油烟太大，晚上窗户都不敢开")
    enc = router.index.encoder
    full, title = enc.encode_queries([t.text, t.title])

    def query(w):
        r = ZeroShotRouter(router.lists, router.index, dataclasses.replace(router.config, title_weight=w))
        return r.query_vectors([t])[0]

    assert np.allclose(query(0.0), full, atol=1e-5)
    assert np.allclose(query(1.0), title / np.linalg.norm(title), atol=1e-5)
    mid = query(0.5)
    assert abs(np.linalg.norm(mid) - 1) < 1e-5 and float(mid @ title) > float(full @ title)
    # untitled tickets are never mixed
    plain = Ticket(content=t.content)
    assert np.allclose(ZeroShotRouter(router.lists, router.index, dataclasses.replace(router.config, title_weight=1.0))
                       .query_vectors([plain])[0], enc.encode_queries([plain.text])[0], atol=1e-5)


def test_a_short_title_is_not_padded_to_its_long_text(router, monkeypatch):
    """Routing one titled ticket runs the encoder over the text and the title, not over the title padded to the text's
    length (which doubled the encoder's work per ticket): counted in tokens the model sees, not timed."""
    model = router.index.encoder.model
    seen = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda features, *a, **kw: seen.append(tuple(features["input_ids"].shape))
                        or forward(features, *a, **kw))
    t = Ticket(title="路灯坏了", content="我们小区门口那条路上的路灯已经坏了半个多月了，" * 6 + "晚上出门黑漆漆的，老人孩子都不敢出门。")
    router.index.encoder.clear_query_cache()
    router.route(t)
    tokens = sum(b * n for b, n in seen)
    longest = max(n for _, n in seen)
    assert seen and tokens < 1.3 * longest, seen  # the text once, the title a few tokens (padded together: 2x)


@pytest.mark.parametrize("text, body", [
    ("镇上的快递代收点取件要另外收三块钱，不给钱就不让拿", "postal"),
    ("公司一直没给我们交住房公积金，想知道去哪里投诉", "housing_fund"),
    ("举报街道办一个科长收了老板的钱，帮他把不合格的工程验收通过了", "discipline_inspection"),  # 12388
    # the metro (2026-12-04): its lines, stations, exits, gates and app are the city's metro group's, no roster department's
    ("地铁四号线说好明年通车，车站出入口到现在还没修完，到底哪天能开通", "metro"),
    ("地铁站的扫码闸机老是刷不开，早高峰进站要排很久", "metro"),
    # courts (2026-12-05): a judgment, a retrial, enforcement — 涉诉涉法, the court's; the lists sent them to justice
    ("法院判决生效一年多了，执行局一直不执行，判给我的钱一分没拿到", "court"),
    # … 立案 refused and a judicial auction (2026-12-06: not flagged before the court's phrasings said them)
    ("我去法院起诉，立案窗口说材料不全不让立案，跑了好几趟了，也不给个书面说法", "court"),
    ("法院拍卖我家的房子，评估价低得离谱，提了异议也没人管", "court"),
    # a bank's loan deductions (2026-12-05): the lists sent them to telecom (扣费)
    ("在农商行贷的款，银行连着两个月多扣了月供，去营业厅问也不给退", "financial"),
    # an ATM that kept the card (2026-12-06 probe: sent to 新华街道)
    ("市民来电反映：其在中山路一家银行的自助取款机取钱，卡被吞了，钱也没吐出来，打银行电话一直占线，请相关部门帮忙处理。", "financial"),
    # a claim the insurer sits on once the police's report is out (2026-12-06: auto-dispatched to traffic_police, whose
    # phrasing said 保险公司不给理赔 beside a report not yet issued)
    ("市民来电反映：其车辆上个月发生交通事故，事故认定书已经出了，保险公司一直拖着不给理赔，请相关部门处理。", "financial"),
    # a second writer's held-out outside tickets (2026-12-06): a parcel stuck in transit went to 交通运输, a train's
    # broken air conditioning to 交通运输 at 0.97, a deposit sold as insurance to 税务 — each an item nearer by < 0.01
    ("寄出去的快递一个星期了，物流一直显示在转运中心，查不到下一站", "postal"),
    ("坐绿皮火车回老家，车厢空调坏了一路都没修，厕所也用不了", "railway"),
    ("去银行存定期，柜员推销说这个保险跟存款一样，结果是五年期分红险", "financial"),
])
def test_a_matter_of_a_body_outside_the_roster_is_to_be_transferred(router, text, body):
    """OUTSIDE_ROSTER names the body (outside.yaml) and its hotline; the ticket is not auto-dispatched, and it is not
    an arbitration matter on that account (the dispatcher transfers it)."""
    from model.router import ARBITRATION_CODES

    s = route(router, text)
    reason = next((r for r in s.reasons if r.code == "OUTSIDE_ROSTER"), None)
    assert reason is not None, [r.code for r in s.reasons]
    b = next(x for x in router.lists.outside if x.id == body)
    assert b.name in reason.message and (b.hotline or "") in reason.message and "转办" in reason.message
    assert not s.auto_dispatch and "OUTSIDE_ROSTER" not in ARBITRATION_CODES


@pytest.mark.parametrize("text", [
    "我们这条路的路灯坏了一个多月了，晚上很黑",
    "快递员骑电动车在人行道上横冲直撞，差点撞到小孩",  # a courier's traffic offence: traffic_police
    "火车站出口的出租车乱喊价，不打表",  # the station's taxis: transport
    "快递公司拖欠我们快递员三个月工资",  # a courier's wages: human_resources
    "村里的低保名额都给了村干部的亲戚，真正困难的人家评不上",  # 低保 assessment: civil_affairs
    "村务公开栏好几年没更新了，村里的账目村民想看都看不到",  # 村务公开: the village's own affairs, not a 检举
    "派出所民警出警的时候态度很差，还不让我们拍视频",  # police conduct: public_security
    "修地铁的工地半夜还在打桩，吵得整栋楼睡不着",  # the metro's building site at night: the noise rule's owners
    "社区巴士能不能多开几个班次，早上等车要半小时",  # buses: transport, not the metro
    "请加快我们片区的发展，公共服务配套一直跟不上",  # a district's development: not a metro line
    "兄弟几个为了老房子拆迁款闹翻了，想找个地方调解，不想打官司",  # mediation: justice, not the court
    "律师收了代理费以后就不管案子了，想投诉这个律师",  # a lawyer's conduct: justice
    "想打官司但是请不起律师，能不能申请法律援助",  # legal aid: justice
    "手机套餐每个月莫名多扣了二十块钱，营业厅说查不到",  # a carrier's charges: telecom, not a bank
    "出了交通事故一个多月了，事故认定书还没出来，交警队一直说在调查",  # the report itself: traffic_police
])
def test_matters_a_roster_department_owns_are_not_sent_outside(router, text):
    s = route(router, text)
    assert "OUTSIDE_ROSTER" not in [r.code for r in s.reasons], s.reasons


@pytest.mark.parametrize("text, body", [
    ("您好，我想问一下公积金贷款的最高额度是多少，夫妻双方都缴存的话能贷多少？", "housing_fund"),
    ("从外市调动工作过来，公积金账户异地转移接续一直办不下来。", "housing_fund"),
])
def test_a_body_s_keyword_lets_a_ticket_as_near_its_phrasings_as_any_item_go_outside(router, text, body):
    """A housing-fund loan question sat about as near 住建's and 人社's items as the fund centre's phrasings (a cosine
    apart), so OUTSIDE_ROSTER needed a margin it did not reach and the ticket could go out to 住建 unchecked. A ticket
    that says 公积金 needs only to be as near the fund centre's phrasings as every item (``outside_keyword_margin``)."""
    import copy
    from dataclasses import replace

    reason = lambda r: next((x for x in route(r, text).reasons if x.code == "OUTSIDE_ROSTER"), None)  # noqa: E731
    b = next(x for x in router.lists.outside if x.id == body)
    assert reason(router) is not None and b.name in reason(router).message
    strict = copy.copy(router)
    strict.config = replace(router.config, outside_keyword_margin=router.config.outside_margin)
    assert reason(strict) is None  # without the keyword's say, as before


@pytest.mark.parametrize("text", [
    "公司拖欠三个月工资，也不给交社保和公积金，请劳动监察部门处理。",  # wages first: human_resources
    "开发商迟迟不给办理网签备案，导致银行按揭贷款无法发放，请住建部门处理。",  # 网签备案: housing_construction
    "邻居起诉到法院了，但他家的狗还是天天在楼道里拉屎",  # a dog in the stairwell, whatever the court does
])
def test_a_body_s_keyword_alone_does_not_send_a_roster_matter_outside(router, text):
    assert "OUTSIDE_ROSTER" not in [r.code for r in route(router, text).reasons]


@pytest.mark.parametrize("text, lead", [
    # a shop selling a non-standard e-bike is 市场监管's (traffic_police-05 excludes it); registering one is the police's
    ("市民来电反映：其在人民路一家电动车店买的电动车，买回来才发现是超标车，上不了牌，商家不给退，请相关部门处理。", "market_regulation"),
    ("我以前买的超标电动车过渡期结束了还能不能上牌", "traffic_police"),
])
def test_a_non_standard_e_bike_sold_and_one_registered(router, text, lead):
    assert route(router, text).lead.code == lead


def test_a_fake_gas_inspector_is_market_regulation_s_and_not_sent_unchecked(router):
    """gas_supply-04's phrasing stated the matter it excludes (a caller asking whether the inspector selling a hose
    was real), and a centre's ticket about one went out to the gas company at intake. A rule now says who leads."""
    s = route(router, "市民来电反映：有两个人穿着工作服自称燃气公司安检，说其家燃气软管老化必须换，强行换了一根收了两百八十元，"
                      "事后问燃气公司说没派人来，请相关部门处理。")
    assert s.lead.code == "market_regulation" and not s.auto_dispatch  # the lists rank it second: a person reads it
    assert any(e.type == "rule" and e.item_id == "rule:gas-fake-inspection" for e in s.evidence), s.evidence
    assert route(router, "燃气公司安检的人说我家软管老化要换，必须找他们换吗").lead.code == "gas_supply"


@pytest.mark.parametrize("title, text, lead", [
    # the heating period is 城管's to set (urban_management-19); heating_supply-07's phrasings asked for it
    ("降温想早点供暖", "市民来电反映：最近连续降温，家里冷得受不了，今年能不能提前几天开始供暖。", "urban_management"),
    ("延长供暖", "都三月份了还在下雪，暖气明天就停了，能不能延长几天供暖期。", "urban_management"),
    ("暖气不热", "供暖都开始一周了，我家暖气还是冰凉的，打热力公司电话也没人来", "heating_supply"),
    # a property company that keeps a carrier out for an entry fee is property management (telecom-01 gave it to
    # the town, telecom-02 to 住建)
    ("物业收基站进场费", "市民来电反映：移动公司要在小区楼顶装信号设备，物业不让进场，非要收进场费，现在家里一点信号都没有。",
     "housing_construction"),
    # an estate with nowhere to charge e-bikes asks for a charging point: the town's (fire_rescue-03 excludes it; its
    # own phrasing said it)
    ("小区没有充电桩", "市民来电反映：小区里一个电动车集中充电桩都没有，不让在楼道充，能不能建几个集中充电的地方。", "locality"),
])
def test_a_matter_two_items_claimed_goes_to_the_owner_the_lists_name(router, title, text, lead):
    """Contradictions a second reader of the lists found (2026-12-06): an item's phrasings stated a matter its own
    exclusion gives away, or two items gave one matter to two owners. Each text went elsewhere before; ours."""
    s = route(router, text, title=title)
    assert s.lead.code == lead, [(c.code, c.score) for c in s.candidates]


def test_outside_roster_can_be_switched_off(router):
    import copy
    from dataclasses import replace

    off = copy.copy(router)
    off.config = replace(router.config, outside_margin=1.5)
    assert "OUTSIDE_ROSTER" not in [r.code for r in route(off, "镇上的快递代收点取件要另外收三块钱，不给钱就不让拿").reasons]


def test_the_address_places_a_ticket_and_an_unsettled_town_is_said(router):
    """What a probe with a centre's tickets found: the text's place names beat the address field (a caller who came
    from 滨江 was sent there); a co-handling town not located, a place of two towns alike, or another town's own
    item were auto-dispatched without a word; and a matter of a body outside the roster went to arbitration,
    where the group could only say "transfer"."""
    s = route(router, "邻居家的狗天天叫，我们是从滨江那边搬过来的，以前没这么吵", address="西门街15号")
    assert s.locality == "wenchang"
    codes = lambda s: [r.code for r in s.reasons]  # noqa: E731
    s = route(router, "小区物业把消防通道改成停车位收停车费")
    assert "locality" in [c.code for c in s.co] and "LOCALITY_UNRESOLVED" in codes(s) and not s.auto_dispatch
    s = route(router, "路边有人私自搭建彩钢房，占用绿地，属于违章建筑", address="书院街石桥米线店旁")
    town = next(r for r in s.reasons if r.code == "LOCALITY_UNRESOLVED")
    assert "难以确定" in town.message and "文昌街道" in town.message and not s.auto_dispatch
    s = route(router, "我们小区没有物业，是街道托管的，楼道灯坏了好久没人修", address="西门老宿舍")
    # 梅林's own item matched this matter; the address is in 文昌. The lead is 文昌 by a few points or 梅林 by a few (the
    # two swapped when an exclusion's words came to count, 2026-12-06): either way it is not sent unchecked, and a lead
    # on the other town says so
    assert not s.auto_dispatch
    assert s.lead.code == "wenchang" or "LOCALITY_UNRESOLVED" in codes(s), (s.lead.code, codes(s))
    s = route(router, "快递驿站把我的包裹弄丢了，打电话也不接")
    assert {"OUTSIDE_ROSTER", "LOW_CONFIDENCE"} <= set(codes(s)) and not s.needs_arbitration
    # AMBIGUOUS names the town the place points to, not 属地街道（镇）
    s = route(router, "路边有人私搭乱建的棚子，好几年了没人管", address="西门街15号")
    amb = next(r for r in s.reasons if r.code == "AMBIGUOUS")
    assert "文昌街道" in amb.message and "属地街道（镇）" not in amb.message, amb.message
    # the one reading of a place (Locator.place): the address when it names one, else the text
    loc = router.locator
    assert loc.place("西门街15号", "我们是从滨江那边搬过来的").code == "wenchang"
    assert loc.place(None, "我们是从滨江那边搬过来的").code == "binjiang" and loc.place("门口", "滨江路").code == "binjiang"
