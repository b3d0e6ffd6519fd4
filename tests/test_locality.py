"""Addresses and ticket texts resolve to one locality (属地) of the gazetteer, with the reason."""
import pytest

from model.locality import Locator
from responsibility_lists.loader import DEFAULT_DIR, load_lists


@pytest.fixture(scope="module")
def locator():
    return Locator(load_lists(DEFAULT_DIR).gazetteer)


@pytest.fixture(scope="module")
def gazetteer():
    return load_lists(DEFAULT_DIR).gazetteer


def test_issue_example_resolves_to_meilin(locator):
    loc = locator.locate("梅林路幸福里小区3号楼")
    assert loc.code == "meilin" and not loc.ambiguous
    assert {h.name for h in loc.hits} == {"梅林路", "幸福里小区"}
    assert "幸福里小区" in loc.explain()


def test_longest_name_wins_and_short_forms_work(locator):
    loc = locator.locate("幸福里3栋楼下烧烤店油烟太大")
    assert loc.code == "meilin"
    # "幸福里小区" must count once, not also as "幸福里"
    assert [h.name for h in locator.hits("幸福里小区门口")] == ["幸福里小区"]


def test_two_character_short_forms_are_common_words_not_places(locator):
    """人民路 → 人民, 建设小区 → 建设, 铁路新村 → 铁路: as short forms they would place every 人民政府, 建设公司 or 铁路职工
    in a town (seen on real messages). The full names and the gazetteer's own aliases still resolve."""
    for text in ("请区人民政府尽快处理", "某建设有限公司拖欠工资", "铁路职工购房捆绑车位", "高新科技园区的企业", "景区门票太贵"):
        assert locator.locate(text) is None, (text, locator.locate(text))
    assert locator.locate("人民路上井盖松动").code == locator.locate("建设小区门口").code == "xinhua"
    assert locator.locate("新华这边路灯不亮").code == "xinhua"  # an alias of the gazetteer
    assert locator.locate("幸福里3栋").code == "meilin"  # a three-character short form still counts


def test_every_place_name_resolves_to_its_own_locality(locator, gazetteer):
    for loc in gazetteer.localities:
        for name, _ in loc.names():
            got = locator.locate(f"市民来电反映{name}附近有问题")
            assert got is not None and got.code == loc.code, (name, loc.code, got)


def test_no_place_gives_none_and_conflict_is_ambiguous(locator, gazetteer):
    assert locator.locate("我家楼上天天半夜吵") is None
    a, b = gazetteer.localities[0], gazetteer.localities[1]
    loc = locator.locate(f"{a.estates[0]}和{b.estates[0]}之间的路")
    assert loc.ambiguous and loc.runner_up is not None
