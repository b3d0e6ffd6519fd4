"""The design card's one-way dependencies (README, "Layout"): serving → model → responsibility_lists, training → model,
eval → model/training; serving never imports training or eval (they meet through files), and the CLI's product
commands run without the evaluation room."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("responsibility_lists", "model", "training", "serving", "eval", "hotline")
# room -> the rooms it must not import (``hotline`` is the front door: the CLI and the one settings object, which
# serving and the API load test read)
FORBIDDEN = {
    "responsibility_lists": {"model", "training", "serving", "eval", "hotline"},
    "model": {"training", "serving", "eval", "hotline"},
    "training": {"serving", "eval", "hotline"},
    "serving": {"training", "eval"},
    "eval": set(),
    "hotline": set(),
}


def imports_of(room: str) -> dict[str, set[str]]:
    """Each file of ``room`` -> the other rooms it imports (at module level or inside a function)."""
    found: dict[str, set[str]] = {}
    for f in sorted((ROOT / room).rglob("*.py")):
        rooms = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            rooms |= {n.split(".")[0] for n in names} & set(ROOMS) - {room}
        found[f.relative_to(ROOT).as_posix()] = rooms
    return found


def test_the_scan_sees_imports_inside_functions():
    """The scan reads lazy imports too: the CLI's measuring commands import eval only inside their bodies."""
    tree = ast.parse((ROOT / "hotline" / "cmd_eval.py").read_text(encoding="utf-8"))
    top = {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert "eval" not in top and "eval" in imports_of("hotline")["hotline/cmd_eval.py"]
    assert "eval" not in imports_of("hotline")["hotline/cli.py"]  # the product commands' module


@pytest.mark.parametrize("room", [r for r in ROOMS if FORBIDDEN[r]])
def test_dependencies_point_one_way(room):
    wrong = {f: sorted(rooms & FORBIDDEN[room]) for f, rooms in imports_of(room).items() if rooms & FORBIDDEN[room]}
    assert not wrong, f"{room} must not import {sorted(FORBIDDEN[room])}: {wrong}"


HOT = [{"id": f"h{i}", "content": f"幸福里小区门口的垃圾桶{i}天没人清运了，臭气熏天，麻烦尽快处理",
        "created_at": f"2024-05-0{i}T09:00:00", "caller": f"1390000000{i}"} for i in range(1, 5)]

SCRIPT = """
import json, sys
from typer.testing import CliRunner
from hotline.cli import app
runner = CliRunner()
hot = runner.invoke(app, ["hot", "--input", sys.argv[1], "--min-count", "2", "--days", "30", "--json"])
dedup = runner.invoke(app, ["dedup", "--input", sys.argv[1], "--output", sys.argv[2]])
route = runner.invoke(app, ["route", "--json", "小区门口的垃圾桶好几天没人清运了，臭气熏天"])
print(json.dumps({"codes": [hot.exit_code, dedup.exit_code, route.exit_code],
                  "errors": [r.output[-500:] for r in (hot, dedup, route) if r.exit_code],
                  "hot": [h["count"] for h in json.loads(hot.stdout.strip().splitlines()[-1])] if not hot.exit_code else None,
                  "lead": json.loads(route.stdout)["lead"]["code"] if not route.exit_code else None,
                  "eval": sorted(m for m in sys.modules if m == "eval" or m.startswith("eval."))}, ensure_ascii=False))
"""


def test_product_commands_run_without_the_evaluation_room(model_cache, tmp_path):
    """`hotline hot`, `dedup` and `route` (owners routed by the lists, as a centre runs them) load no module of
    ``eval/``: the room that measures may change without touching what a centre runs."""
    inp = tmp_path / "t.jsonl"
    inp.write_text("\n".join(json.dumps(t, ensure_ascii=False) for t in HOT) + "\n", encoding="utf-8")
    env = {**os.environ, "HOTLINE_MODEL_CACHE_DIR": str(model_cache), "HOTLINE_DATA_DIR": str(tmp_path / "data")}
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(inp), str(tmp_path / "o.jsonl")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["codes"] == [0, 0, 0], out["errors"]
    assert out["hot"] == [4]  # the four reports of the estate's bins, one hot issue
    assert len((tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    assert out["lead"]  # a suggestion came back
    assert out["eval"] == [], f"product commands imported {out['eval']}"
