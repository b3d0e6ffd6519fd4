"""The cheap signals of duplicate detection: time, caller identity (salted hash only), near-identical
text (character n-gram MinHash) and place names.

Nothing here keeps a phone number: :func:`caller_key` turns it into a keyed hash (HMAC-SHA256 with a
salt the caller passes in) at the door, and only that key travels further.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

import numpy as np
from datasketch import MinHash

from ..times import CST, read_datetime  # noqa: F401  (CST: naive times are China Standard Time)


def parse_time(value: str | None) -> float:
    """Seconds since the epoch for a :func:`read_datetime` time; ``ValueError`` saying what to write if unreadable."""
    if value is None or not str(value).strip():
        raise ValueError("created_at is missing: duplicates are found in time order (ISO 8601, e.g. 2024-05-01T09:30:00+08:00)")
    dt = read_datetime(value)
    if dt is None:
        raise ValueError(f"created_at {str(value).strip()[:40]!r} is not a date/time (use ISO 8601, e.g. 2024-05-01T09:30:00+08:00)")
    return dt.timestamp()


def caller_key(caller: str | None, salt: str) -> str | None:
    """A keyed hash of the caller's number (digits only, +86 dropped): equal numbers give equal keys,
    the number cannot be read back without the salt. ``None`` when there is no caller. For a phone number
    it equals the store's ``phone_hash`` (HMAC-SHA256 hex, same normalisation) under the same salt."""
    if not caller:
        return None
    digits = re.sub(r"\D", "", caller)
    if not digits:  # a user id rather than a phone number (web channels): hash it as given
        digits = caller.strip().lower()
    elif len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if not salt:
        raise ValueError("a salt is required to hash caller identities")
    return hmac.new(salt.encode("utf-8"), digits.encode("utf-8"), hashlib.sha256).hexdigest()


_PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)|(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)|\d{7,}")


def mask_numbers(text: str) -> str:
    """Replace phone-like digit runs (7+ digits, mobile and landline forms) by ``*``: for titles kept in state."""
    return _PHONE.sub(lambda m: "*" * 4, text)


# ------------------------------------------------------------------------------- near-identical text

_CJK = re.compile(r"[\u4e00-\u9fff]+|[a-z]+|\d+")


def normalise(text: str) -> str:
    """NFKC, lower case, letters/digits/CJK only (punctuation and spaces do not make texts different)."""
    return "".join(m.group() for m in _CJK.finditer(unicodedata.normalize("NFKC", text).lower()))


def shingles(text: str, n: int = 3) -> set[bytes]:
    s = normalise(text)
    if len(s) <= n:
        return {s.encode("utf-8")} if s else set()
    return {s[i : i + n].encode("utf-8") for i in range(len(s) - n + 1)}


MINHASH_SCHEME = "affine32"


def minhash(text: str, num_perm: int, n: int = 3) -> MinHash:
    m = MinHash(num_perm=num_perm, scheme=MINHASH_SCHEME)
    sh = shingles(text, n)
    if sh:
        m.update_batch(list(sh))
    return m


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two MinHash signatures (their ``hashvalues``)."""
    return float(np.count_nonzero(a == b)) / len(a)


# ------------------------------------------------------------------------------------------ places

# words that end a place name: estates, roads, villages, schools, markets...
PLACE_SUFFIXES = (
    "小区", "花园", "家园", "社区", "新村", "村", "组", "镇", "乡", "街道", "大道", "路", "街", "巷", "苑", "城", "园",
    "广场", "公园", "小学", "中学", "学校", "学院", "大学", "幼儿园", "医院", "大厦", "公寓", "府", "湾", "站",
    "市场", "商场", "中心", "公司", "工地", "项目", "酒店", "酒吧", "大桥", "桥", "湖", "山", "庄", "里", "坊",
)
# characters that do not belong inside a place name ("我们小区", "这条路", "附近的村")
_NOT_IN_NAME = set("的了是我你他她它们在有和就不都也很到说要去会着没这那么吗吧呢啊呀哦嗯请您个该此各所本某附近条家边旁对从被把给让向往于与及或等为上下里外前后内中其每哪什")
_GENERIC = {"马路", "道路", "公路", "铁路", "小路", "大路", "街道", "社区", "小区", "学校", "医院", "公园", "广场",
            "市场", "商场", "中心", "公司", "工地", "项目", "酒店", "新城", "老城", "县城", "市区", "城区", "农村"}
_AUTHORITY = ("政府",)  # 府 ends estate names ("金地三千府"), but 政府 is the authority written to
# words that, before a place suffix, make a kind of place rather than a named one ("物业公司", "安置小区",
# "公交线路", "普惠性幼儿园", "影响小区", "A1区路"): two complaints mentioning one are not thereby at the same place
_KIND_HEADS = ("物业", "自来水", "来水", "开发", "地产", "公交", "有限", "安置", "住宅", "居民", "影响", "导致", "进入",
               "服务", "建设", "配套", "套", "性", "公办", "民办", "办", "人行", "必经", "必经之", "高速", "区", "市", "县",
               "临", "工作")  # 临街 (facing the street), 工作组 (a working group)


_SUFFIXES_LONGEST_FIRST = sorted(PLACE_SUFFIXES, key=len, reverse=True)


def _kind_of_place(key: str) -> bool:
    """Whether ``key`` names a kind of place: what precedes its longest place suffix is empty or ends with one of
    :data:`_KIND_HEADS` ("性幼儿园" from 普惠性幼儿园, "物业公司")."""
    for suf in _SUFFIXES_LONGEST_FIRST:
        if key.endswith(suf):
            head = key[: -len(suf)]
            return not head or head.endswith(_KIND_HEADS)
    return False


def place_keys(text: str) -> set[str]:
    """Candidate place names in free text: 2-4 characters before a place suffix, ending with it
    (e.g. "丽发新城", "滨河苑", "茶场村"), without function words or a kind of place ("物业公司", "安置小区"). Two tickets sharing one are likely
    about the same place; works without a gazetteer (anonymised or out-of-district text)."""
    out: set[str] = set()
    for run in re.findall(r"[\u4e00-\u9fffA-Za-z0-9]+", unicodedata.normalize("NFKC", text or "")):
        for suf in PLACE_SUFFIXES:
            start = run.find(suf)
            while start >= 0:
                end = start + len(suf)
                for k in (2, 3, 4):
                    if start - k < 0:
                        break
                    head = run[start - k : start]
                    if any(ch in _NOT_IN_NAME for ch in head) or head.isascii():
                        break
                    key = head + suf
                    if key.endswith(_AUTHORITY):  # "市政府", "要求政府": who is asked, not where it happens
                        break
                    if key not in _GENERIC and head not in _GENERIC and not _kind_of_place(key):
                        out.add(key)
                start = run.find(suf, end)
    return out


def readable_places(keys) -> list[str]:
    """Place keys as a person reads them, longest first. :func:`place_keys` finds a name in pieces of at most four
    characters before each suffix it holds (伊景园 before 园, 景园滨河苑 and 滨河苑 before 苑): keys that overlap by
    two characters or more are joined again (伊景园滨河苑), and a key inside another is dropped. A name with more
    than four characters before its last suffix and none inside shows its end (开区泉星公园 for 经开区泉星公园)."""
    keys = set(keys)
    joined = True
    while joined:
        joined = False
        for a in sorted(keys):
            for b in sorted(keys):
                if a == b or a in b or b in a:
                    continue
                n = next((n for n in range(min(len(a), len(b)) - 1, 1, -1) if a.endswith(b[:n])), 0)
                if n:
                    keys = (keys - {a, b}) | {a + b[n:]}
                    joined = True
                    break
            if joined:
                break
    return sorted((k for k in keys if not any(k != o and k in o for o in keys)), key=lambda k: (-len(k), k))


# ------------------------------------------------------------------------------- "the same problem"

#: What a call-taker writes around every ticket: 市民来电反映：…，请相关部门尽快处理。 The same words on every ticket make
#: two tickets about different problems near-identical text with problem words in common; they are judged without
#: them (:func:`problem_text`).
_INTAKE = re.compile(
    r"(?:市民|群众|居民|业主|该市民|来电市民|来电人)?(?:再次|多次|又)?来电(?:人)?(?:反映|反应|称|表示|投诉|求助|咨询|要求|询问)?[：:，,]?"
    r"|(?:来电人|市民|群众|居民)(?:反映|反应|称|表示|投诉)[：:，,]")
_FORMULA = re.compile(
    _INTAKE.pattern
    + r"|[，,。；;]?\s*(?:请|恳请|望|希望|要求)(?:相关|有关|职能|主管|责任)?(?:部门|单位)?"
    r"(?:尽快|及时|予以|帮忙|帮助|协调|前往|到场|现场|核实|调查|查看|核查|依法)*"
    r"(?:处理|处置|查处|解决|维修|抢修|修复|疏导|整治|清理|清运|落实|回复|跟进|管理)+[。！!]*")


_DOOR = re.compile(r"(?<=[路街巷道])(\d{1,5})号(?![楼院])")
_BUILDING = re.compile(r"(\d{1,3})(?:号楼|栋|幢)")
NUMBER_MARK = "#"  # a number key among a ticket's places: never a place name (see :func:`number_keys`)
ADDRESS_ESTATE_MARK = "@"  # an estate named in the ticket's address field (see the detector's ``_estates``)
FORMULA_KEY = "%formula"  # the ticket opens with a call-taker's formula (市民来电反映：…)


def is_mark(key: str) -> bool:
    """Whether a key among a ticket's places is a marker (a number, an address estate, the formula), not a name."""
    return key[:1] in (NUMBER_MARK, ADDRESS_ESTATE_MARK, "%")


def number_keys(text: str) -> set[str]:
    """The door numbers (幸福路12号) and building numbers (3号楼, 12栋) a text gives, as keys kept among its places
    (``#门12``, ``#楼3``): two reports that give different ones are about different premises — a call-taker's
    formula makes 望江苑3栋 and 望江苑12栋's leaking roofs near-identical text."""
    t = unicodedata.normalize("NFKC", text or "")
    return ({f"{NUMBER_MARK}门{n}" for n in _DOOR.findall(t)}
            | {f"{NUMBER_MARK}楼{n}" for n in _BUILDING.findall(t)})


def problem_text(text: str) -> str:
    """The ticket's own words: the call-taker's formula (:data:`_FORMULA`) taken out."""
    return _FORMULA.sub(" ", text or "")


def short_title(text: str, limit: int = 40) -> str:
    """A ticket without a title, as a hot issue's title: its own words (the formula taken out) up to the end of its
    first sentence, or the last comma before ``limit`` characters — not ``市民来电反映：本人住在…噪音也`` cut mid-word."""
    own = re.sub(r"\s+", " ", problem_text(text)).strip(" ，,。；;：:")
    end = re.search(r"[。！？!?；;]", own)
    if end is not None and end.start() <= limit:
        return own[: end.start()]
    if len(own) <= limit:
        return own
    cut = max(own.rfind(c, 0, limit) for c in "，,、")
    return own[:cut] if cut >= limit // 3 else own[:limit] + "…"


def written_by_call_taker(text: str) -> bool:
    """Whether the ticket opens with a call-taker's intake formula (市民来电反映：…) — a ticket of a centre's own,
    short and formulaic, rather than a citizen's letter."""
    return bool(_INTAKE.match((text or "").lstrip()))

def problem_signature(text: str, places: set[str] | frozenset[str], cap: int = 512) -> np.ndarray:
    """What the ticket is about once its place names are taken out: sorted unique 32-bit hashes of its
    character bigrams (CJK runs), at most ``cap``. Compared with :func:`dice`."""
    s = unicodedata.normalize("NFKC", text or "")
    for k in sorted(places, key=len, reverse=True):
        s = s.replace(k, " ")
    grams = set()
    for run in re.findall(r"[\u4e00-\u9fff]+", s):
        grams.update(run[i : i + 2] for i in range(len(run) - 1))
    hashes = sorted({int.from_bytes(hashlib.blake2b(g.encode("utf-8"), digest_size=4).digest(), "little") for g in grams})
    return np.asarray(hashes[:cap], dtype=np.uint32)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a) or not len(b):
        return 0.0
    return 2.0 * len(np.intersect1d(a, b, assume_unique=True)) / (len(a) + len(b))
