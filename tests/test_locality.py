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
