"""``hotline eval routing`` report folder (confusion PNG, duplicate section, trained version beside zero-shot and
baseline, report.html) and ``hotline eval compare``: on tickets made up here or by training/synthetic.py, never
on the real data."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.compare import compare_suggestions, mcnemar_exact, write_compare
from eval.confusion import confusion_matrix, plot_confusion, tick_labels
from eval.report import write_report
from hotline.cli import app
from hotline.settings import get_settings
from model.suggestion import Candidate, DepartmentScore, Suggestion, Ticket

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_side: int = 100) -> None:
    from PIL import Image

    assert path.is_file(), f"{path} missing"
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side, im.size


def sug(i: int, lead: str, conf: float = 0.7, cands: tuple[str, ...] = (), arb: bool = False) -> Suggestion:
    kind = "locality" if lead == "meilin" else "functional"
    return Suggestion(id=f"T{i}", lead=DepartmentScore(code=lead, name=lead, kind=kind, score=conf), co=[],
                      candidates=[Candidate(code=c, kind="functional", score=0.1) for c in cands], confidence=conf,
                      auto_dispatch=False, needs_arbitration=arb, reasons=[], evidence=[], model_version="fake")


# 40 made-up tickets: gold leads, and two predictors with errors put there on purpose.
GOLD = ["education"] * 10 + ["health"] * 10 + ["public_security"] * 8 + ["urban_management"] * 8 + ["locality"] * 4


def predictor_a() -> list[Suggestion]:
    """Right everywhere except 5 education -> health and 3 public_security -> traffic_police."""
    out = []
    for i, g in enumerate(GOLD):
        lead = {"locality": "meilin"}.get(g, g)
        if g == "education" and i < 5:
            lead = "health"
        if g == "public_security" and i < 23:
            lead = "traffic_police"
        ok = lead == g or (g, lead) == ("locality", "meilin")
        out.append(sug(i, lead, conf=0.9 if ok else 0.4, cands=("education", "health"), arb=not ok))
    return out


def predictor_b() -> list[Suggestion]:
    """A, but fixes 2 of the education errors and breaks 4 urban_management tickets (-> ecology_environment)."""
    out = predictor_a()
    for i in (0, 1):
        out[i] = sug(i, "education", conf=0.8)
    for i in range(28, 32):
        out[i] = sug(i, "ecology_environment", conf=0.6)
    return out


def tickets() -> list[Ticket]:
    return [Ticket(id=f"T{i}", content=f"测试工单第{i}号：楼下有问题") for i in range(len(GOLD))]


NAMES = {"education": "区教育局", "health": "区卫生健康委员会（区疾控）", "public_security": "区公安分局",
         "traffic_police": "区交警大队", "urban_management": "区城管局", "ecology_environment": "区生态环境局",
         "locality": "属地街道（镇）"}


# ---------------------------------------------------------------------------------- functions


def test_confusion_matrix_holds_the_errors_made_on_purpose():
    pred = [s.lead.code if s.lead.kind != "locality" else "locality" for s in predictor_b()]
    cm = confusion_matrix(GOLD, pred, top=12)
    assert cm["errors_total"] == 3 + 3 + 4
    assert cm["errors_shown"] == cm["errors_total"]
    pos = {lab: i for i, lab in enumerate(cm["labels"])}
    assert cm["matrix"][pos["education"]][pos["health"]] == 3
    assert cm["matrix"][pos["public_security"]][pos["traffic_police"]] == 3
    assert cm["matrix"][pos["urban_management"]][pos["ecology_environment"]] == 4
    assert cm["matrix"][pos["health"]][pos["health"]] == 10  # the diagonal is kept for involved labels
    assert "locality" not in pos  # never confused: not shown
    small = confusion_matrix(GOLD, pred, top=2)
    assert small["labels"] == ["ecology_environment", "urban_management"] and small["errors_shown"] == 4


def test_tick_labels_names_with_a_cjk_font_else_codes(tmp_path):
    labels = ["health", "education"]
    assert tick_labels(labels, NAMES, font="WenQuanYi Micro Hei") == ["区卫生健康委员会", "区教育局"]
    assert tick_labels(labels, NAMES, font=None) == labels
    cm = confusion_matrix(["a", "b", "a"], ["b", "a", "a"])
    assert plot_confusion(cm, tmp_path / "c.png", {"a": "甲", "b": "乙"}, font=None) == ["a", "b"]
    assert_png(tmp_path / "c.png")


def test_report_folder_with_plots_confusions_and_html(tmp_path):
    out = tmp_path / "rep"
    baseline = {"name": "fake baseline", "top1": 0.5, "top3": 0.7}
    m = write_report(out, "made-up.csv", "zero-shot@test", tickets(), GOLD, predictor_a(), baseline, names=NAMES)
    for png in ("reliability.png", "coverage_accuracy.png", "confusion.png"):
        assert_png(out / png)
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(m, ensure_ascii=False))
    assert ["education", "health", 5] in saved["confusions"]
    assert ["public_security", "traffic_police", 3] in saved["confusions"]
    cm = saved["confusion_matrix"]
    assert set(cm["labels"]) == {"education", "health", "public_security", "traffic_police"}
    assert saved["router"]["top1"] == pytest.approx(32 / 40)
    assert saved["router"]["arbitration_rate"] == pytest.approx(8 / 40)
    assert saved["verdicts"] == [{"against": "baseline", "beats": True, "text": saved["verdicts"][0]["text"]}]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "![confusion matrix](confusion.png)" in md and "![reliability](reliability.png)" in md
    assert "beats the baseline" in md and "NOT" not in md
    assert "| education | health | 5 | 区教育局 |" in md
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 3 and "<table>" in html
    assert "测试工单" not in md + html  # ticket texts stay in misses.jsonl only


def test_report_without_cjk_font_draws_codes(tmp_path, monkeypatch):
    import eval.report

    monkeypatch.setattr(eval.report, "find_cjk_font", lambda: None)
    m = write_report(tmp_path, "made-up.csv", "zero-shot@test", tickets(), GOLD, predictor_a(), None, names=NAMES)
    assert m["confusion_matrix"]["font"] is None
    assert m["confusion_matrix"]["tick_labels"] == m["confusion_matrix"]["labels"]
    assert "fonts-wqy-microhei" in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert_png(tmp_path / "confusion.png")


def test_trained_version_beside_zero_shot_and_baseline_says_when_it_does_not_beat(tmp_path):
    baseline = {"name": "fake baseline", "top1": 0.78, "top3": 0.9}
    dedup = {"pairs": "p.csv", "messages": "m.csv", "n_messages": 9, "span_days": 80.0, "n_pairs": 3, "positives": 2,
             "windows": [{"setting": "default", "window_days": 30.0, "precision": 1.0, "recall": 0.5, "f1": 0.667,
                          "tp": 1, "fp": 0, "fn": 1},
                         {"setting": "no limit", "window_days": 81.0, "precision": 1.0, "recall": 1.0, "f1": 1.0,
                          "tp": 2, "fp": 0, "fn": 0}],
             "baseline_cosine": {"precision": 0.5, "recall": 1.0, "f1": 0.667, "tp": 2, "fp": 2, "fn": 0, "threshold": 0.9}}
    m = write_report(tmp_path, "made-up.csv", "v-trained", tickets(), GOLD, predictor_b(), baseline, names=NAMES,
                     zero_shot=predictor_a(), zero_shot_version="zero-shot@test", dedup=dedup)
    assert m["router"]["top1"] == pytest.approx(30 / 40) and m["zero_shot"]["top1"] == pytest.approx(32 / 40)
    assert {v["against"]: v["beats"] for v in m["verdicts"]} == {"baseline": False, "zero_shot": False}
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "The evaluated router `v-trained` does NOT beat the baseline" in md
    assert "The evaluated model `v-trained` does NOT beat the zero-shot router `zero-shot@test`" in md
    assert "| zero-shot router `zero-shot@test` | 0.800 |" in md and "| baseline: fake baseline | 0.780 |" in md
    cmp = m["comparison_to_zero_shot"]
    assert cmp["only_a_right"]["count"] == 4 and cmp["only_b_right"]["count"] == 2
    assert "## Duplicate detection" in md and "| no limit | 81 | 1.000 | 1.000 |" in md
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))["dedup"]["windows"][0]["recall"] == 0.5


def test_higher_top1_beats_zero_shot_only_beyond_chance(tmp_path):
    """A trained model 2 tickets better than zero-shot (McNemar p 0.69) does not 'beat' it; 22 tickets better does."""
    m = write_report(tmp_path / "close", "made-up.csv", "v-close", tickets(), GOLD, predictor_a(), None, zero_shot=predictor_b(),
                     zero_shot_version="zero-shot@test", version_arg="v-close")
    (v,) = m["verdicts"]
    assert v["against"] == "zero_shot" and v["beats"] is False
    md = (tmp_path / "close" / "report.md").read_text(encoding="utf-8")
    assert "`v-close` does NOT clearly beat the zero-shot router" in md and "within chance (McNemar p = 0.688)" in md
    assert "`hotline eval compare none v-close --data …`" in md
    all_health = [sug(i, "health", conf=0.5) for i in range(len(GOLD))]
    m = write_report(tmp_path / "far", "made-up.csv", "v-far", tickets(), GOLD, predictor_a(), None, zero_shot=all_health)
    assert m["verdicts"][0]["beats"] is True and m["comparison_to_zero_shot"]["mcnemar_p"] < 0.001
    md = (tmp_path / "far" / "report.md").read_text(encoding="utf-8")
    assert "`v-far` beats the zero-shot router" in md and "`v-far` beats `zero-shot` on lead top-1 (0.800 vs 0.250)" in md


def test_compare_finds_the_department_difference_made_on_purpose(tmp_path):
    a, b = predictor_a(), predictor_b()
    ids = [f"T{i}" for i in range(len(GOLD))]
    res = compare_suggestions(a, b, GOLD, ids, names=("va", "vb"), examples=3)
    per = {r["label"]: r for r in res["per_label"]}
    assert per["urban_management"]["f1_a"] == 1.0 and per["urban_management"]["f1_b"] == pytest.approx(0.667)
    assert per["urban_management"]["delta"] == pytest.approx(-0.333)
    assert per["education"]["delta"] > 0 and per["health"]["delta"] > 0
    assert per["locality"]["delta"] == 0 and per["public_security"]["delta"] == 0
    assert res["per_label"][0]["label"] == "urban_management"  # largest change first
    assert res["only_a_right"]["count"] == 4 and [e["id"] for e in res["only_a_right"]["examples"]] == ["T28", "T29", "T30"]
    assert res["only_a_right"]["examples"][0] == {"id": "T28", "gold": "urban_management", "a": "urban_management",
                                                  "b": "ecology_environment"}
    assert res["only_b_right"]["count"] == 2 and res["both_wrong"]["count"] == 3 + 3
    assert res["delta"]["top1"] == pytest.approx(-0.05)
    assert res["mcnemar_p"] == pytest.approx(2 * (1 + 6 + 15) / 64, abs=1e-4)
    write_compare(tmp_path, res, "made-up.csv", NAMES)
    md = (tmp_path / "compare.md").read_text(encoding="utf-8")
    assert "| urban_management | 区城管局 | 8 | 1.000 | 0.667 | -0.333 |" in md
    assert "`va` is ahead of `vb` on lead top-1 (0.800 vs 0.750), but within chance (McNemar p = 0.688" in md
    assert json.loads((tmp_path / "compare.json").read_text(encoding="utf-8"))["only_b_right"]["count"] == 2
    same = compare_suggestions(a, a, GOLD)
    assert same["only_a_right"]["count"] == same["only_b_right"]["count"] == 0 and same["mcnemar_p"] == 1.0
    assert all(r["delta"] == 0 for r in same["per_label"])
    with pytest.raises(ValueError):
        compare_suggestions(a, b[:-1], GOLD)


def test_what_each_part_knows_counts_where_classifier_and_lists_part_ways():
    from eval.components import component_metrics, components_line

    gold = ["education", "health", "locality", "urban_management", "transport"]
    lists = [sug(0, "education"), sug(1, "education"), sug(2, "meilin"), sug(3, "public_security"), sug(4, "health")]
    clf = [{"education": 0.8, "health": 0.2}, {"health": 0.6, "education": 0.4}, {"locality": 0.5, "health": 0.5},
           {"transport": 0.5, "health": 0.3, "public_security": 0.15, "urban_management": 0.05}, {"health": 0.9, "transport": 0.1}]
    served = [sug(0, "education"), sug(1, "health"), sug(2, "meilin"), sug(3, "transport"), sug(4, "transport")]
    c = component_metrics(clf, lists, served, gold)
    # a town's lead counts as locality; the lists and the classifier agree on tickets 0, 2 and 4
    assert c["agree"] == 0.6 and c["served_top1_where_agree"] == 1.0
    assert (c["classifier_top1"], c["lists_top1"], c["served_top1"]) == (0.6, 0.4, 0.8)
    assert c["classifier_top3"] == 0.8  # ticket 3's gold lead is the classifier's fourth
    assert (c["both_top1"], c["either_top1"]) == (0.4, 0.6)
    assert c["disagree"] == {"tickets": 2, "classifier_right": 1, "lists_right": 0, "served_right": 1}
    assert "one or the other right: 0.600" in components_line(c)
    with pytest.raises(ValueError):
        component_metrics(clf[:4], lists, served, gold)


def test_mcnemar_exact():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024, abs=1e-4)
    assert mcnemar_exact(3, 3) == 1.0


# ---------------------------------------------------------------------------------------- CLI

MESSAGES = [  # made up: a repeat within days, the same problem again 78 days later (from someone else: the same
    # caller would be linked over the 365-day caller window), an unrelated matter
    ("M1", "U1", "梅林路幸福里小区烧烤油烟", "2025-01-01 20:00:00", "梅林路幸福里小区3号楼楼下的烧烤店每天晚上油烟太大，熏得家里没法开窗，请相关部门管一管。"),
    ("M2", "U2", "梅林路幸福里小区烧烤油烟", "2025-01-04 21:00:00", "梅林路幸福里小区3号楼楼下的烧烤店每天晚上油烟太大，熏得家里没法开窗，请相关部门管一管！"),
    ("M3", "U5", "梅林路幸福里小区烧烤油烟", "2025-03-23 20:30:00", "梅林路幸福里小区3号楼楼下的烧烤店每天晚上油烟太大，熏得家里没法开窗，请相关部门管一管。"),
    ("M4", "U3", "柳溪镇小学门口路灯坏了", "2025-01-10 08:00:00", "柳溪镇中心小学门口的路灯坏了一个多月，晚上孩子放学路上一片漆黑，希望尽快修好。"),
]
PAIRS = [("M1", "M2", 1), ("M1", "M3", 1), ("M2", "M4", 0)]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, router):
    """60 synthetic tickets (training/synthetic.py) in the routing file format."""
    from training.synthetic import generate, write_csv

    path = tmp_path_factory.mktemp("eval-data") / "synthetic.csv"
    recs = generate(router.lists, 60, seed=5)
    write_csv(recs, path)
    return path, recs


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOTLINE_MODEL_CACHE_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("HOTLINE_MODEL_VERSION", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


class Memo:
    """The session router, routing each ticket once (the zero-shot router and the stand-in share it)."""

    def __init__(self, router):
        self.router, self.lists, self.model_version, self.seen = router, router.lists, router.model_version, {}
        self.group, self.config, self.index = router.group, router.config, router.index

    def route_many(self, tickets, batch_size=32):
        todo = [t for t in tickets if t.id not in self.seen]
        for t, s in zip(todo, self.router.route_many(todo, batch_size=batch_size) if todo else []):
            self.seen[t.id] = s
        return [self.seen[t.id] for t in tickets]


class TrainedStandIn:
    """Stands in for a trained model version: the zero-shot suggestions, except the chosen tickets get ``health``."""

    def __init__(self, memo: Memo, version: str, spoil: set[str]):
        self.memo, self.model_version, self.spoil, self.lists = memo, version, spoil, memo.lists
        self.group, self.config, self.index = memo.group, memo.config, memo.index

    def route_many(self, tickets, batch_size=32):
        out = []
        for s in self.memo.route_many(tickets, batch_size=batch_size):
            upd = {"model_version": self.model_version}
            if s.id in self.spoil:
                upd["lead"] = DepartmentScore(code="health", name="卫生", kind="functional", score=0.99)
            out.append(s.model_copy(update=upd))
        return out

    def route_many_with_views(self, tickets, batch_size=32):
        """Its "classifier": the lists' lead (their lead's label), except ``health`` on the spoiled tickets."""
        from eval.routing import as_label
        from model.fusion import ModelView

        views = [ModelView({"health" if s.id in self.spoil else as_label(s.lead.code, s.lead.kind): 1.0}, {})
                 for s in self.memo.route_many(tickets, batch_size=batch_size)]
        return self.route_many(tickets, batch_size), views


def test_cli_report_with_trained_version_and_duplicates(env, router, labelled, tmp_path):
    import model.pipeline
    from hotline import cmd_dedup

    path, recs = labelled
    target = [lab for lab, _ in __import__("collections").Counter(r["lead"] for r in recs if r["lead"] != "health").most_common()][0]
    spoil = {r["id"] for r in recs if r["lead"] == target}
    calls, memo = [], Memo(router)

    def fake_build_router(lists_dir, *, model_version=None, **kw):
        calls.append(model_version)
        if model_version in (None, "", "none"):
            return memo
        if model_version == "v-test":
            return TrainedStandIn(memo, "v-test", spoil)
        raise FileNotFoundError(f"no model version {model_version!r}")

    env.setattr(model.pipeline, "build_router", fake_build_router)
    env.setattr(cmd_dedup, "_encoder", lambda settings: router.index.encoder)
    dup = tmp_path / "dup"
    dup.mkdir()
    with open(dup / "messages.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["留言编号", "留言用户", "留言主题", "留言时间", "留言详情"])
        w.writerows(MESSAGES)
    (dup / "pairs.csv").write_text("a,b,same\n" + "".join(f"{a},{b},{s}\n" for a, b, s in PAIRS), encoding="utf-8")
    out = tmp_path / "report"
    r = run_cli("eval", "routing", "--data", path, "--out", out, "--model-version", "v-test", "--dup-pairs", dup / "pairs.csv")
    assert r.exit_code == 0, r.output
    assert calls == ["v-test", "none"]
    assert "v-test does NOT beat the zero-shot router" in r.stdout
    for png in ("reliability.png", "coverage_accuracy.png", "confusion.png"):
        assert_png(out / png)
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["model_version"] == "v-test" and m["zero_shot"]["model_version"].startswith("zero-shot")
    assert m["router"]["top1"] <= m["zero_shot"]["top1"] and m["baseline"]["top1"] is not None
    assert [target, "health", len(spoil)] in m["confusions"]
    assert {"health", target} <= set(m["confusion_matrix"]["labels"])
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "does NOT beat the zero-shot router" in md and "| baseline: char TF-IDF" in md
    d = m["dedup"]
    assert d["messages"] == "messages.csv" and d["n_pairs"] == 3 and d["positives"] == 2
    assert d["span_days"] == 81.0
    default, w180, unlimited = d["windows"]
    assert default["setting"].startswith("default") and default["window_days"] == 30.0
    assert w180["window_days"] == 180.0 and unlimited["setting"].startswith("no limit") and unlimited["window_days"] == 83.0
    # M3 comes 78 days after M2 from another caller: outside the 30-day window, linked through the owner window
    # (the lists name the same lead for both; the stand-in's spoiled leads do not move the owners)
    assert default["tp"] == 2 and default["fn"] == 0 and default["fp"] == 0
    assert unlimited["tp"] == 2 and unlimited["fp"] == 0 and w180["tp"] == 2
    assert "## Duplicate detection" in md
    # what each part knows: the stand-in's classifier and the lists part ways on the spoiled tickets only
    c = m["components"]
    assert c["disagree"]["tickets"] == len(spoil) and c["disagree"]["classifier_right"] == 0
    assert c["disagree"]["served_right"] == 0 and c["agree"] == round(1 - len(spoil) / len(recs), 3)
    assert c["either_top1"] == pytest.approx(m["zero_shot"]["top1"], abs=1e-3)
    assert c["classifier_top1"] == pytest.approx(m["router"]["top1"], abs=1e-3)
    assert "## What each part knows" in md and "one or the other right: " in r.stdout
    assert (out / "misses.jsonl").is_file() and (out / "report.html").is_file()


def test_cli_compare_none_vs_none_has_zero_deltas(monkeypatch, model_cache, labelled, tmp_path):
    """Through the real build_router (the zero-shot router from the test model cache)."""
    monkeypatch.setenv("HOTLINE_MODEL_CACHE_DIR", str(model_cache))
    get_settings.cache_clear()
    try:
        out = tmp_path / "cmp"
        r = run_cli("eval", "compare", "none", "none", "--data", labelled[0], "--out", out)
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line["a"] == line["b"] == "none" and line["n"] == 60
    assert line["delta_top1"] == 0 and line["only_a_right"] == line["only_b_right"] == 0 and line["mcnemar_p"] == 1.0
    assert line["top1_a"] == line["top1_b"] and 0 < line["top1_a"] <= 1
    res = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert res["per_label"] and all(r["delta"] == 0 for r in res["per_label"])
    assert all(v == 0 for v in res["delta"].values()) and res["same_lead"] == 60
    assert "same lead top-1" in (out / "compare.md").read_text(encoding="utf-8")


def _one_error_line(r) -> str:
    assert r.exit_code != 0, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_cli_bad_input_says_what_to_fix(env, model_cache, labelled, tmp_path):
    env.setenv("HOTLINE_MODEL_CACHE_DIR", str(model_cache))  # an unknown version must not convert an encoder first
    get_settings.cache_clear()
    line = _one_error_line(run_cli("eval", "routing", "--data", tmp_path / "nope.csv"))
    assert "nope.csv: no such file" in line and "content, lead" in line
    nolabel = tmp_path / "nolabel.csv"
    nolabel.write_text("id,title,content\n1,路灯,路灯坏了\n", encoding="utf-8")
    line = _one_error_line(run_cli("eval", "routing", "--data", nolabel))
    assert "missing column(s) lead" in line
    line = _one_error_line(run_cli("eval", "compare", "none", "none", "--data", nolabel, "--out", tmp_path / "c"))
    assert "missing column(s) lead" in line
    utf16 = tmp_path / "utf16.csv"  # Excel's "Unicode text": neither UTF-8 nor GBK
    utf16.write_bytes("id,title,content,lead\n1,路灯,路灯坏了,urban_management\n".encode("utf-16"))
    line = _one_error_line(run_cli("eval", "routing", "--data", utf16))
    assert "utf16.csv" in line and "save the file as UTF-8" in line and "codec" not in line
    line = _one_error_line(run_cli("eval", "routing", "--data", labelled[0], "--model-version", "no-such-version-9"))
    assert "'no-such-version-9'" in line
    line = _one_error_line(run_cli("eval", "compare", "none", "no-such-version-9", "--data", labelled[0], "--out", tmp_path / "c"))
    assert "'no-such-version-9'" in line
    line = _one_error_line(run_cli("eval", "compare", "bad name!", "none", "--data", labelled[0], "--out", tmp_path / "c"))
    assert "bad name!" in line
    line = _one_error_line(run_cli("eval", "routing", "--data", labelled[0], "--dup-pairs", tmp_path / "pairs.csv"))
    assert "pairs.csv: no such file" in line
    (tmp_path / "pairs.csv").write_text("a,b,same\nX1,X2,1\n", encoding="utf-8")
    line = _one_error_line(run_cli("eval", "routing", "--data", labelled[0], "--dup-pairs", tmp_path / "pairs.csv"))
    assert "--dup-messages" in line
    assert not (tmp_path / "c").exists()


def test_csv_files_saved_as_gbk_read_as_their_utf8_twins(tmp_path):
    """Excel on a Chinese Windows saves CSV as GBK: every CSV the eval commands read (labelled tickets and settled
    precedents, tickets to time, duplicate pairs and their messages) reads the same in GBK as in UTF-8."""
    from eval.bench import read_bench_tickets
    from eval.duplicates import read_messages, read_pairs
    from eval.routing import read_labelled_csv

    def both(name: str, text: str) -> tuple[Path, Path]:
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8-sig")
        (tmp_path / f"{name}_gbk.csv").write_bytes(text.encode("gbk"))
        return tmp_path / f"{name}.csv", tmp_path / f"{name}_gbk.csv"

    utf8, gbk = both("labelled", "id,title,content,lead,co\n1,路灯不亮,梅林路的路灯坏了三天,区城市管理委员会,属地街道\n"
                                 "2,,小区楼下烧烤店油烟太大,ecology_environment,\n3,空行,,health,\n")
    got = read_labelled_csv(gbk)
    assert got == read_labelled_csv(utf8) and [t.content for t in got[0]] == ["梅林路的路灯坏了三天", "小区楼下烧烤店油烟太大"]
    assert got[1] == ["区城市管理委员会", "ecology_environment"]
    assert got[2] == [["属地街道"], []]
    bench8, bench_gbk = both("bench", "id,title,content\n1,路灯不亮,梅林路的路灯坏了三天\n2,,小区楼下烧烤店油烟太大\n")
    assert [t.title for t in read_bench_tickets(bench_gbk)] == ["路灯不亮", None]
    assert read_bench_tickets(bench_gbk) == read_bench_tickets(bench8)
    from training.data import ColumnMap, load_history  # `hotline train` reads its CSV the same way

    maps = ColumnMap(["title", "content"], "lead", "co", None, None, None, "id")
    h8, hg = load_history(utf8, maps), load_history(gbk, maps)
    assert (hg.texts, hg.labels, hg.co) == (h8.texts, h8.labels, h8.co) and "梅林路的路灯坏了三天" in hg.texts[0]
    utf8, gbk = both("messages", "留言编号,留言用户,留言主题,留言时间,留言详情\nM1,A0001,噪音扰民,2019-4-24 15:07:30,工地半夜施工\n")
    assert read_messages(gbk) == read_messages(utf8) and read_messages(gbk)[0].content == "工地半夜施工"
    utf8, gbk = both("pairs", "a,b,same\nM1,M2,1\n")
    assert read_pairs(gbk) == read_pairs(utf8) == [("M1", "M2", 1)]


def test_a_title_above_a_labelled_csvs_header_is_not_data(tmp_path):
    """A centre's CSV export often opens with a title and its date range: the labelled and bench readers find the
    header under them, as `hotline train` does, and a file whose header is nowhere near the top is still refused."""
    from eval.bench import read_bench_tickets
    from eval.routing import read_labelled_csv

    body = "id,title,content,lead,co\n1,路灯不亮,梅林路的路灯坏了三天,区城市管理委员会,属地街道\n2,,小区楼下烧烤店油烟太大,ecology_environment,\n"
    plain, titled = tmp_path / "plain.csv", tmp_path / "titled.csv"
    plain.write_text(body, encoding="utf-8")
    titled.write_text("12345工单明细表,,,,\n导出时间：2026-11-01 至 2026-11-30,,,,\n" + body, encoding="utf-8")
    assert read_labelled_csv(titled) == read_labelled_csv(plain)
    assert len(read_labelled_csv(titled)[0]) == 2
    assert [t.title for t in read_bench_tickets(titled)] == ["路灯不亮", None]
    far = tmp_path / "far.csv"
    far.write_text("标题\n" * 11 + body, encoding="utf-8")
    with pytest.raises(ValueError, match="missing column"):
        read_labelled_csv(far)


def test_screenshot_of_the_report_page(tmp_path):
    from eval.screenshot import chromium_missing, screenshot

    why = chromium_missing()
    if why:
        pytest.skip(why)
    write_report(tmp_path, "made-up.csv", "zero-shot@test", tickets(), GOLD, predictor_a(), None, names=NAMES)
    png = screenshot(tmp_path / "report.html", tmp_path / "shot.png", width=1000, max_height=1500)
    assert_png(png, min_side=400)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] == 1000 and 400 <= im.size[1] <= 1500


def test_co_handling_metrics_count_labels_and_leave_the_lead_out():
    from eval.metrics import co_handling_metrics, system_metrics

    def with_co(s, codes):
        return s.model_copy(update={"co": [DepartmentScore(code=c, name=c, kind="locality" if c == "meilin" else "functional",
                                                           score=0.5) for c in codes]})

    labels = ["education", "health", "public_security"]
    sugs = [with_co(sug(0, "education"), ["health", "meilin"]),  # meilin counts as locality: 2 right
            with_co(sug(1, "health"), ["education"]),  # 1 wrong (gold has none)
            with_co(sug(2, "public_security"), [])]  # 1 missed
    gold = [["health", "locality", "education"], [], ["urban_management"]]  # the gold lead among co is ignored
    m = co_handling_metrics(sugs, labels, gold)
    assert (m["co_precision"], m["co_recall"], m["co_gold_pairs"]) == (round(2 / 3, 4), round(2 / 3, 4), 3)
    assert m["co_f1"] == round(2 / 3, 4)
    assert "co_f1" not in system_metrics(sugs, labels) and system_metrics(sugs, labels, gold)["co_f1"] == m["co_f1"]


def test_each_reason_is_counted_with_the_lead_accuracy_of_its_tickets(tmp_path):
    """Which flags are worth the arbitration group's time: per reason, its tickets, their lead accuracy, and how many
    it alone sends to arbitration; an informative reason (OUTSIDE_ROSTER) has no 'alone' count."""
    from eval.metrics import system_metrics
    from model.suggestion import Reason

    def flag(s, *codes):
        return s.model_copy(update={"reasons": [Reason(code=c, message=c) for c in codes], "needs_arbitration": True})

    labels = ["education", "health", "public_security", "education"]
    sugs = [flag(sug(0, "health"), "LOW_CONFIDENCE", "AMBIGUOUS"),   # wrong
            flag(sug(1, "health"), "LOW_CONFIDENCE"),                # right
            flag(sug(2, "education"), "AMBIGUOUS", "OUTSIDE_ROSTER"),  # wrong
            sug(3, "education")]                                     # right, no reason
    by = {r["code"]: r for r in system_metrics(sugs, labels)["reasons"]}
    assert [r["code"] for r in system_metrics(sugs, labels)["reasons"]] == ["AMBIGUOUS", "LOW_CONFIDENCE", "OUTSIDE_ROSTER"]
    assert (by["AMBIGUOUS"]["count"], by["AMBIGUOUS"]["accuracy"], by["AMBIGUOUS"]["alone"]) == (2, 0.0, 1)
    assert (by["LOW_CONFIDENCE"]["count"], by["LOW_CONFIDENCE"]["accuracy"], by["LOW_CONFIDENCE"]["alone"]) == (2, 0.5, 1)
    assert by["LOW_CONFIDENCE"]["rate"] == 0.5 and by["OUTSIDE_ROSTER"]["alone"] is None
    m = write_report(tmp_path, "made-up.csv", "zero-shot@test", tickets()[:4], labels, sugs, None, names=NAMES)
    assert m["router"]["reasons"][0]["code"] == "AMBIGUOUS"
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Why tickets were flagged" in md and "| LOW_CONFIDENCE | 2 | 50.0% | 0.500 | 1 |" in md


def test_top3_starts_with_the_suggested_lead():
    from eval.routing import score_suggestions

    # a rule chose a lead that is fourth among the candidates: top-3 still holds it
    s = sug(0, "health", cands=("education", "public_security", "urban_management", "health"))
    assert score_suggestions([s], ["health"]).top3 == 1.0
    assert score_suggestions([s], ["urban_management"]).top3 == 0.0


def test_cli_rows_halves_and_co_handling_line(env, model_cache, labelled, tmp_path):
    import csv

    env.setenv("HOTLINE_MODEL_CACHE_DIR", str(model_cache))
    env.setenv("HOTLINE_MODEL_VERSION", "none")
    get_settings.cache_clear()
    path, recs = labelled
    n = len(list(csv.DictReader(open(path, encoding="utf-8"))))
    outs = {}
    for rows in ("even", "odd"):
        r = run_cli("eval", "routing", "--data", path, "--rows", rows, "--no-baseline", "--out", tmp_path / rows)
        assert r.exit_code == 0, r.output
        assert "co-handling: precision" in r.output
        outs[rows] = json.loads((tmp_path / rows / "metrics.json").read_text(encoding="utf-8"))
    assert outs["even"]["n"] + outs["odd"]["n"] == n and outs["even"]["n"] == (n + 1) // 2
    assert "co_f1" in outs["even"]["router"]
    ro = outs["even"]["router"]  # the report says precision and recall too, not only F1 (as the README says)
    report = (tmp_path / "even" / "report.md").read_text(encoding="utf-8")
    assert (f"Co-handling (协办), the evaluated router: precision {ro['co_precision']:.3f}, recall {ro['co_recall']:.3f}, "
            f"F1 {ro['co_f1']:.3f}") in report, report[:2000]
    bad = run_cli("eval", "routing", "--data", path, "--rows", "first")
    assert bad.exit_code != 0 and "--rows" in bad.output


def test_an_exports_title_column_is_the_tickets_title_as_in_serving(tmp_path):
    """`eval routing/compare/tune-fusion --text-cols 诉求标题,诉求内容` joined the title into the content, so they
    measured another router than the one serving (which weighs a title apart and reads rules in it first): the first
    text column, when it is a title column, is the title; other mappings keep the joined text."""
    import pandas as pd

    from eval.routing import read_labelled_export
    from training.data import label_aliases
    from responsibility_lists.loader import DEFAULT_DIR, load_lists
    from training.data import ColumnMap

    rows = [{"工单编号": "GD1", "诉求标题": "楼下烧烤油烟扰民", "诉求内容": "每天晚上十点以后还在营业，油烟直冲窗户。", "承办单位": "区城管局"},
            {"工单编号": "GD2", "诉求标题": "", "诉求内容": "路灯坏了一个月没人修", "承办单位": "区城管局"}]
    sheet = tmp_path / "export.xlsx"
    pd.DataFrame(rows).to_excel(sheet, index=False)
    aliases = label_aliases(load_lists(DEFAULT_DIR))
    tickets, labels, _, _ = read_labelled_export(sheet, aliases, ColumnMap(["诉求标题", "诉求内容"], "承办单位", None, None, None,
                                                                           None, "工单编号"))
    assert [(t.title, t.content) for t in tickets] == [("楼下烧烤油烟扰民", "每天晚上十点以后还在营业，油烟直冲窗户。"),
                                                       (None, "路灯坏了一个月没人修")]
    assert labels == ["urban_management", "urban_management"]
    assert tickets[0].text == "楼下烧烤油烟扰民。每天晚上十点以后还在营业，油烟直冲窗户。"  # what the classifier reads, as in training
    tickets, _, _, _ = read_labelled_export(sheet, aliases, ColumnMap(["诉求内容", "诉求标题"], "承办单位", None, None, None,
                                                                      None, "工单编号"))
    assert tickets[0].title is None and tickets[0].content.startswith("每天晚上十点以后还在营业")  # not a title first: joined
