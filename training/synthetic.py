"""Synthetic dispatch history: realistic labelled tickets written from the responsibility lists.

Sources: each item's ``phrasings`` (how callers say it), ``keywords`` and ``title``; the joint-handling
rules (boundary cases labelled with the rule's lead and co-handlers, 先属责、后属地); the gazetteer (real
addresses of the district). Voices: a caller's own words (口语, 方言词, 错别字, run-on sentences,
emotion), a call-taker's summary (标题 + 详情 "市民来电反映…"), and an online message (网上留言:
"尊敬的领导…"). Lengths spread around a ~200-character median; some tickets repeat earlier ones.

Seeded: the same lists and seed give the same tickets (``generate(lists, n, seed)``); ticket ``i`` draws from its own
stream, so editing one item rewrites the few tickets that draw on it and leaves the rest of the history as it was. Labels are the
routing label space of :func:`training.data.roster_label_space` (roster codes; street offices/towns
collapse to ``locality``).
"""
from __future__ import annotations

import csv
import hashlib
import random
from datetime import datetime, timedelta
from pathlib import Path

from .data import LOCALITY

DIALECT = [("什么", "啥"), ("怎么", "咋"), ("没有", "没得"), ("不知道", "晓不得"), ("这里", "这块儿"), ("很", "老"),
           ("非常", "贼"), ("一直", "一天到晚"), ("现在", "这会儿"), ("那里", "那搭"), ("干什么", "干啥子"), ("东西", "玩意儿"),
           ("厉害", "凶"), ("晚上", "黑了"), ("我们", "俺们"), ("知道", "晓得"), ("特别", "忒")]
TYPOS = [("在", "再"), ("的", "得"), ("已经", "以经"), ("反映", "反应"), ("投诉", "投述"), ("部门", "布门"),
         ("处理", "处里"), ("严重", "严众"), ("影响", "影向"), ("休息", "休习"), ("情况", "情况况"), ("到底", "倒底"),
         ("马路", "马陆"), ("居民", "屈民"), ("已", "以")]
OPENERS = ["喂，你好，", "你好，我想反映个事，", "你好我要投诉，", "麻烦问一下啊，", "喂喂，听得到吗，我说个事，", "我跟你们说，",
           "你好，我是{place}的住户，", "我是住在{place}的，", "你好啊同志，", "我再打一次电话，", "那个，你好，"]
FILLERS = ["然后", "就是说", "那个", "反正", "你说说", "关键是", "结果"]
DETAILS = ["从上个月开始就这样了", "这半个月天天都是这样", "已经持续一年多了", "每天晚上十点以后最严重", "白天晚上都有",
           "家里老人孩子都休息不好", "我们出门都不方便", "小区里好多人都有意见", "之前找过物业，物业说管不了",
           "社区也来看过一次，后来就没下文了", "我打过好几次电话了，一直没人来处理", "我拍了照片和视频，可以提供",
           "周边商户和居民都受影响", "上次反映过，说是转给相关部门了，到现在也没人联系我", "我家里有孕妇，实在受不了",
           "下雨天更严重", "周末的时候尤其厉害", "很多人都看到了", "附近就是学校，孩子们天天经过", "这样下去迟早要出事"]
BACKGROUND = ["我们这栋楼一共住了三十多户，大部分是老人，平时有点事都不知道该找谁",
              "我在这里住了十几年了，以前从来没有出现过这种情况，这两年越来越严重",
              "前几天我专门去问了一下，工作人员让我打12345，说你们会转给负责的单位",
              "我们几户邻居商量过，也写过联名信交到社区，到现在已经两个多月了还是老样子",
              "物业说这不归他们管，社区说要上报，上报以后就没消息了，大家互相推来推去",
              "我家孩子今年上初三，晚上要学习，这样下去根本没法安心看书",
              "我知道你们工作也忙，但是这个事情确实影响太大了，不是我一个人的问题",
              "上周三下午我又专门过去看了一下，情况一点都没有改善，反而更严重了",
              "我年纪大了，腿脚也不方便，跑了好几趟都没办成，实在没办法才打这个电话",
              "这个问题在我们业主群里讨论了很久，大家都很有意见，有人说要集体去反映",
              "附近还有一个幼儿园和一个菜市场，每天来来往往的人很多，安全隐患很大",
              "具体位置我可以带你们去看，我电话一直开着，随时可以联系我"]
EMOTION = ["你们到底管不管！", "实在受不了了！！", "太气人了！", "再不管我就找媒体曝光了。", "请你们一定要重视啊！",
           "这都什么事啊，真是没办法了。", "希望你们这次真能解决，别又是走个过场。", "求求你们管一管吧。", "我真的很着急。"]
REQUESTS = ["希望相关部门尽快核实处理", "要求相关部门依法查处", "请尽快协调解决", "希望有关部门到现场查看并给予答复",
            "要求尽快整改", "希望相关部门加强监管", "请相关部门给个说法", "希望尽快安排人员处理"]
CALLTAKER = ["市民来电反映：", "来电人反映：", "市民来电称，", "市民来电反映，", "来电人称："]
WEB_OPEN = ["尊敬的领导：您好！", "领导您好，", "尊敬的区领导：", "您好！", "各位领导好，"]
WEB_CLOSE = ["恳请相关部门重视并尽快解决，谢谢！", "望领导百忙之中予以关注，谢谢！", "希望政府部门能给我们一个满意的答复。",
             "期待回复，谢谢！", "请领导帮忙协调解决，万分感谢。"]
TITLE_TPL = ["关于{loc}{topic}的问题", "反映{loc}{topic}", "{loc}{topic}问题", "投诉{topic}", "{topic}", "咨询{topic}",
             "关于{topic}的投诉", "{loc}{kw}问题亟待解决"]


class Gaz:
    def __init__(self, gazetteer):
        self.localities = list(gazetteer.localities)
        self.by_code = {l.code: l for l in self.localities}

    def address(self, rng: random.Random, code: str | None = None) -> tuple[str, str, str]:
        """(full address, short place name, locality code)."""
        loc = self.by_code.get(code) if code else None
        loc = loc or rng.choice(self.localities)
        kinds = [k for k in ("estates", "roads", "communities", "landmarks") if getattr(loc, k)]
        kind = rng.choices(kinds, weights=[{"estates": 4, "roads": 3, "communities": 1, "landmarks": 2}[k] for k in kinds])[0]
        name = rng.choice(getattr(loc, kind))
        if kind == "estates":
            full = name + rng.choice(["", f"{rng.randint(1, 30)}栋", f"{rng.randint(1, 20)}号楼{rng.randint(1, 6)}单元",
                                      f"{rng.randint(1, 12)}幢"])
        elif kind == "roads":
            full = name + rng.choice(["", f"{rng.randint(1, 399)}号", "与" + rng.choice(loc.roads) + "交叉口", "边上", "中段"])
        elif kind == "communities":
            full = name + rng.choice(["", "这边", "辖区内", "附近"])
        else:
            full = name + rng.choice(["附近", "旁边", "门口", "对面", ""])
        prefix = rng.choice(["", "", loc.name, "清河区" + loc.name])
        return prefix + full, name, loc.code


def _mutate(text: str, rng: random.Random, dialect: float, typo: float) -> str:
    for a, b in DIALECT:
        if a in text and rng.random() < dialect:
            text = text.replace(a, b, 1)
    for a, b in TYPOS:
        if a in text and rng.random() < typo:
            text = text.replace(a, b, 1)
    return text


def _run_on(parts: list[str], rng: random.Random) -> str:
    out = parts[0]
    for p in parts[1:]:
        out += "，" + (rng.choice(FILLERS) if rng.random() < 0.5 else "") + p
    return out


def _strip_end(s: str) -> str:
    return s.rstrip("。！？!?，, ")


class SyntheticHistory:
    def __init__(self, lists, seed: int = 0):
        from .data import roster_label_space

        self.lists = lists
        self.seed = seed
        self.labels, self.aliases = roster_label_space(lists)
        self.gaz = Gaz(lists.gazetteer)
        self.by_label: dict[str, list] = {}
        for ref in lists.items:
            lab = self.aliases.get(ref.department, LOCALITY if ref.department == LOCALITY else ref.department)
            self.by_label.setdefault(lab, []).append(ref)
        self.rules = list(lists.rules)

    def _label(self, code: str) -> str:
        return self.aliases.get(code, code)

    def _rule_for(self, text: str):
        for r in self.rules:
            if r.triggers.matches(text)[0]:
                return r
        return None

    def _body(self, rng: random.Random, phrasing: str, item, extra_phrasing: str | None) -> list[str]:
        parts = [_strip_end(phrasing)]
        if extra_phrasing and rng.random() < 0.7:
            parts.append(_strip_end(extra_phrasing))
        if rng.random() < 0.3:
            parts.append(_strip_end(rng.choice(item.phrasings)))
        k = rng.choices([1, 2, 3, 4, 5, 6, 8], weights=[2, 3, 4, 4, 3, 2, 1])[0]
        parts += rng.sample(DETAILS, k)
        parts[1:1] = rng.sample(BACKGROUND, rng.choices([0, 1, 2, 3], weights=[2, 4, 3, 1])[0])
        if rng.random() < 0.35:
            kw = rng.choice(item.keywords)
            parts.append(rng.choice([f"这个是不是算{kw}", f"我觉得这就是{kw}", f"{kw}的问题到底谁来管", f"网上说{kw}是要管的"]))
        return parts

    def ticket(self, rng: random.Random, i: int, start: datetime) -> dict:
        rule = None
        if rng.random() < 0.2 and self.rules:  # a boundary case
            # the rule whose hash with this ticket is highest (rendezvous hashing): a rule added or removed changes only
            # the tickets that pick it, where rng.choice(self.rules) re-dealt every boundary case (a fifth of the
            # history) and made a rules edit's retrain a new draw
            rule = max(self.rules, key=lambda r: hashlib.blake2b(f"{self.seed}:{i}:{r.id}".encode(), digest_size=8).digest())
            cands = [(ref, p) for ref in self.lists.items for p in ref.item.phrasings if rule.triggers.matches(p)[0]]
            if cands:
                ref, phrasing = rng.choice(cands)
            else:
                words = [rng.choice(g) for g in rule.triggers.all_of]
                ref = rng.choice(self.by_label.get(self._label(rule.lead)) or self.lists.items)
                phrasing = rng.choice([f"{rule.matter}，{'、'.join(words)}的问题一直解决不了",
                                       f"我要反映{words[0]}的事，" + "，".join(words[1:]) + f"，就是{rule.matter}",
                                       f"{'，'.join(words)}，这个情况{rule.conditions[:30]}"])
        else:
            lab = rng.choices(self.labels, weights=[len(self.by_label.get(l, [])) ** 0.5 for l in self.labels])[0]
            ref = rng.choice(self.by_label[lab])
            phrasing = rng.choice(ref.item.phrasings)
        item = ref.item
        others = [p for p in item.phrasings if p != phrasing]
        extra = rng.choice(others) if others else None
        loc_code = ref.department if ref.department in self.gaz.by_code else None
        address, place, loc_code = self.gaz.address(rng, loc_code)
        body = self._body(rng, phrasing, item, extra)
        style = rng.choices(["caller", "calltaker", "web"], weights=[3, 4, 3])[0]
        loc_name = self.gaz.by_code[loc_code].name
        topic = rng.choice([item.title, rng.choice(item.keywords)])
        title = rng.choice(TITLE_TPL).format(loc=rng.choice(["", place, loc_name]), topic=topic, kw=rng.choice(item.keywords))
        if style == "caller":
            opener = rng.choice(OPENERS).format(place=place)
            text = opener + f"就在{address}，" + _run_on(body, rng) + rng.choice(["，", "。", "！"]) + rng.choice(EMOTION + [""])
            text = _mutate(text, rng, dialect=0.35, typo=0.15)
            title = title if rng.random() < 0.3 else ""
        elif style == "calltaker":
            detail = "，".join(_mutate(b, rng, 0.05, 0.03) for b in body)
            text = rng.choice(CALLTAKER) + f"{address}" + rng.choice(["", "附近", "处"]) + detail + "。" + \
                rng.choice(["市民诉求：", "来电人要求", "诉求："]) + rng.choice(REQUESTS) + "。"
        else:
            text = rng.choice(WEB_OPEN) + rng.choice([f"我是{loc_name}{place}的居民，", f"本人住在{address}，", ""]) + \
                "。".join(body) + "。" + rng.choice(WEB_CLOSE)
            text = _mutate(text, rng, 0.05, 0.05)
        lead = self._label(rule.lead) if rule else self._label(ref.department)
        co = [self._label(c) for c in rule.co] if rule else []
        if rule is None:
            # the matter, as the caller states it, may fall under a joint-handling rule: then its lead/co are the truth.
            # Judged on the title, the place and what is said of the matter, not on the filler around it: 「物业说这不归
            # 他们管」 or 「你们到底管不管」 in a library complaint does not make it a property-service matter
            matter = [b for b in body if b not in DETAILS and b not in BACKGROUND]
            r2 = self._rule_for(title + address + "，".join(matter))
            if r2 is not None:
                rule = r2
                lead, co = self._label(r2.lead), [self._label(c) for c in r2.co]
        co = [c for c in dict.fromkeys(co) if c != lead]
        when = start + timedelta(minutes=rng.randint(0, 365 * 24 * 60))
        caller = f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(10000000, 99999999)}"
        return {"id": f"S{self.seed}-{i:06d}", "title": title, "content": text, "created_at": when.strftime("%Y-%m-%d %H:%M:%S"),
                "lead": lead, "co": co, "caller": caller, "address": address, "style": style,
                "source": rule.id if rule else item.id}

    def generate(self, n: int, repeat_rate: float = 0.05) -> list[dict]:
        start = datetime(2025, 1, 1)
        out: list[dict] = []
        for i in range(n):
            # each ticket draws from its own stream (seed, i): an edit to the lists changes the tickets whose label or
            # item it touches, not every ticket after the first one it touches (one stream for all reshuffled the whole
            # history, so a lists edit's retrain was a new draw: 1,010 of 3,000 tickets stayed the same for one item
            # more, 2,963 with a stream per ticket)
            rng = random.Random(f"{self.seed}:{i}")
            if out and rng.random() < repeat_rate:  # the same caller calls again about the same problem
                prev = rng.choice(out)
                again = rng.choice(["上次反映的问题到现在还没解决，", "我又打来了，还是那个事，", "再次反映：", "第三次打电话了！"])
                rec = dict(prev, id=f"S{self.seed}-{i:06d}", content=again + prev["content"], style=prev["style"] + "+repeat")
                when = datetime.strptime(prev["created_at"], "%Y-%m-%d %H:%M:%S") + timedelta(days=rng.randint(1, 20))
                rec["created_at"] = when.strftime("%Y-%m-%d %H:%M:%S")
                out.append(rec)
            else:
                out.append(self.ticket(rng, i, start))
        return out


def generate(lists, n: int = 3000, seed: int = 0) -> list[dict]:
    return SyntheticHistory(lists, seed).generate(n)


def text_of(rec: dict) -> str:
    from .data import join_texts

    return join_texts([rec.get("title") or "", rec["content"]])


def write_csv(records: list[dict], path: Path) -> Path:
    """Write in the routing file format (id, title, content, created_at, lead, co joined by |, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["id", "title", "content", "created_at", "lead", "co", "caller", "address", "style", "source"]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in records:
            w.writerow({**{k: r.get(k, "") for k in cols}, "co": "|".join(r["co"])})
    return path
