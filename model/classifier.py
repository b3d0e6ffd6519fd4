"""The trained dispatch classifier: an encoder (e5 by default) with a lead head and a co-handling head.

A model version is a folder written by ``training/package.py``::

    config.json, model.safetensors, tokenizer files   save_pretrained of :class:`DispatchModel`
    labels.json        {"labels": [...]}  (same order for the lead and the co-handling heads)
    calibration.json   {"temperature": T, "conformal_threshold": q, "alpha": a, "co_threshold": c, ...}
    metrics.json, README.md (model card), training.json (data fingerprint, lists version, preset)
    ngram_head.json, ngram_head.npz   optional character n-gram head (model/ngram_head.py)

:class:`DispatchClassifier` is the inference API the router and the CLI use::

    clf = DispatchClassifier.from_pretrained(folder)
    lead_probs, co_probs = clf.predict_proba(["工单文本", ...])   # (n, L), (n, L); labels = clf.labels
    clf.plausible_sets(lead_probs)   # the conformal sets: labels whose probability >= clf.conformal_threshold

``lead_probs`` is a softmax with the calibrated temperature applied (to the transformer's lead logits, or to
their combination with the n-gram head when the version has one); ``co_probs`` are independent
sigmoids (co-handling: several departments may help). This module never imports ``training``.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.masking_utils import create_bidirectional_mask
from transformers.utils import ModelOutput

from .ngram_head import NgramHead

LABELS_FILE = "labels.json"
CALIBRATION_FILE = "calibration.json"
METRICS_FILE = "metrics.json"
TRAINING_FILE = "training.json"


@dataclass
class DispatchOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # lead logits (n, L)
    co_logits: torch.Tensor | None = None  # co-handling logits (n, L)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-6)


class DispatchModel(BertPreTrainedModel):
    """BERT-family encoder, mean pooling, a softmax lead head and a sigmoid co-handling head.

    ``forward`` takes token ids, or ``hidden_states`` already computed by the frozen lower layers
    (the input of layer ``start_layer``): the CPU preset caches those once and trains only the top.
    Extra config fields: ``co_loss_weight`` (default 0.5), ``text_prefix`` (e.g. e5's ``"query: "``).
    """

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.lead_head = nn.Linear(config.hidden_size, config.num_labels)
        self.co_head = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def run_layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int | None = None) -> torch.Tensor:
        """Run encoder layers ``start:stop`` on ``hidden`` (the input of layer ``start``)."""
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in self.bert.encoder.layer[start:stop]:
            hidden = layer(hidden, mask)
        return hidden

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.bert.embeddings(input_ids=input_ids)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        hidden_states: torch.Tensor | None = None,
        start_layer: int | torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        co_labels: torch.Tensor | None = None,
        **kwargs,
    ) -> DispatchOutput:
        if hidden_states is None:
            if input_ids is None:
                raise ValueError("give input_ids or hidden_states")
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            hidden = self.run_layers(self.embed(input_ids), attention_mask, 0)
        else:
            if attention_mask is None:
                attention_mask = torch.ones(hidden_states.shape[:2], dtype=torch.long, device=hidden_states.device)
            start = int(start_layer.flatten()[0]) if isinstance(start_layer, torch.Tensor) else int(start_layer or 0)
            hidden = self.run_layers(hidden_states, attention_mask, start)
        pooled = self.dropout(mean_pool(hidden, attention_mask))
        logits = self.lead_head(pooled)
        co_logits = self.co_head(pooled)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels, label_smoothing=float(getattr(self.config, "label_smoothing", 0.0)))
            if co_labels is not None:
                w = float(getattr(self.config, "co_loss_weight", 0.5))
                loss = loss + w * nn.functional.binary_cross_entropy_with_logits(co_logits, co_labels.to(co_logits.dtype))
        return DispatchOutput(loss=loss, logits=logits, co_logits=co_logits)


WEIGHTS_FILE = "model.safetensors"
COMPARE_CHUNK = 4_000_000  # elements of a weight compared at once when deciding to share (16 MB in float32)
_PROBE = ["市民来电反映：楼上装修噪音扰民，物业不管。", "请问 12345 ABC 咨询医保报销"]


def _same_setup(encoder, tokenizer, text_prefix: str, max_seq_length: int) -> bool:
    """Everything but the weights: mean pooling, truncation, the query prompt and the tokens."""
    try:
        tok = encoder.model.tokenizer
        if (not encoder.mean_pooled or encoder.max_seq_length != max_seq_length
                or (encoder.prompts.get("query") or "") != text_prefix):
            return False
    except (AttributeError, IndexError, TypeError):
        return False
    probe = [text_prefix + t for t in _PROBE]
    return tok(probe)["input_ids"] == tokenizer(probe)["input_ids"]


def _same_weights(encoder, mine, n: int) -> bool:
    """``mine``: the ``n`` (name, tensor) pairs of a version's encoder, each already in the version's serving dtype;
    all the same as ``encoder``'s (compared in its dtype)? The encoder may carry a pooler that mean pooling ignores."""
    try:
        theirs = dict(encoder.model[0].auto_model.named_parameters())
    except (AttributeError, IndexError, TypeError):
        return False
    seen = 0
    with torch.no_grad():
        for k, a in mine:
            t = theirs.get(k)
            if t is None or a.shape != t.shape or not torch.equal(a.to(t.dtype), t):
                return False
            seen += 1
    return seen == n > 0


def _heads_if_shared(folder: Path, encoder, tokenizer, dtype: torch.dtype, max_seq_length: int | None):
    """A :class:`DispatchModel` with only its heads loaded (``bert`` None), when the version's encoder is ``encoder``
    (compared with the weights file a tensor at a time, so no whole copy is held); else None."""
    from safetensors import safe_open

    path = folder / WEIGHTS_FILE
    if not path.is_file():
        return None
    config = BertConfig.from_pretrained(str(folder), local_files_only=True)
    msl = max_seq_length or int(getattr(config, "train_max_seq_length", 256))
    if not _same_setup(encoder, tokenizer, getattr(config, "text_prefix", "") or "", msl):
        return None
    try:
        theirs = dict(encoder.model[0].auto_model.named_parameters())
    except (AttributeError, IndexError, TypeError):
        return None
    with safe_open(str(path), framework="pt") as f, torch.no_grad():
        keys = list(f.keys())
        body = [k for k in keys if k.startswith("bert.")]
        if not body:
            return None
        for k in body:
            t, part = theirs.get(k[len("bert."):]), f.get_slice(k)
            shape = tuple(part.get_shape())
            if t is None or not shape or shape != tuple(t.shape):
                return None
            rows = max(1, COMPARE_CHUNK // max(1, t[0].numel()))  # the 250k-row embeddings a slice at a time
            for i in range(0, shape[0], rows):
                # the file's weights cast to the serving dtype, as a whole load casts them, compared in the encoder's
                if not torch.equal(part[i : i + rows].to(dtype).to(t.dtype), t[i : i + rows]):
                    return None
        heads = {k: f.get_tensor(k).to(dtype) for k in keys if not k.startswith("bert.")}
    with torch.device("meta"):
        model = DispatchModel(config)
    model.bert = None
    model.lead_head = nn.Linear(config.hidden_size, config.num_labels, dtype=dtype)
    model.co_head = nn.Linear(config.hidden_size, config.num_labels, dtype=dtype)
    missing, unexpected = model.load_state_dict(heads, strict=False)
    if unexpected or any(k.startswith(("lead_head", "co_head")) for k in missing):
        return None
    return model.eval()


def _release_freed_memory() -> None:
    """Hand memory freed by Python back to the system (glibc keeps it otherwise: ~280 MB of a freed encoder copy)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def softmax_np(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / max(float(temperature), 1e-6)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid_np(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class DispatchClassifier:
    """Inference over a model version folder (see the module docstring)."""

    def __init__(self, model: DispatchModel, tokenizer, labels: list[str], calibration: dict, folder: Path | None = None,
                 max_seq_length: int = 256, ngram: NgramHead | None = None):
        self.model = model.eval()
        self.ngram = ngram
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.calibration = dict(calibration)
        self.folder = folder
        self.max_seq_length = max_seq_length
        self.text_prefix = getattr(model.config, "text_prefix", "") or ""
        self._lock = threading.Lock()
        self.encoder = None  # the retrieval encoder this version's frozen encoder is (share_encoder)

    def share_encoder(self, encoder) -> bool:
        """Read the pooled text from ``encoder`` (a :class:`model.encoder.Encoder`) instead of running this
        version's own copy, when the copy is that very encoder: the same weights (a version trained with its
        encoder frozen, the ``cpu`` preset), tokenizer, query prompt, truncation and mean pooling. Then routing a
        ticket costs one forward pass, not two (the encoder's query cache hands the router's pass to the heads),
        and this copy's weights are freed. Returns whether it is shared; otherwise nothing changes.
        (``from_pretrained(share_with=encoder)`` decides the same before loading the copy at all.)"""
        if self.encoder is not None:
            return True
        if self.model.bert is None or not _same_setup(encoder, self.tokenizer, self.text_prefix, self.max_seq_length):
            return False
        mine = list(self.model.bert.named_parameters())
        if not _same_weights(encoder, iter(mine), len(mine)):
            return False
        self.encoder = encoder
        self.model.bert = None  # the heads stay; the encoder's own weights and tokenizer serve
        self.tokenizer = encoder.model.tokenizer
        _release_freed_memory()
        return True

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, num_threads: int | None = None, max_seq_length: int | None = None,
                        dtype: str = "float32", share_with=None) -> "DispatchClassifier":
        """``dtype``: float32, bfloat16 or auto (bfloat16 on CPUs with native bf16, as for the encoder).
        ``share_with``: an encoder this version's own may be (:meth:`share_encoder`); it is compared with the weights
        file a tensor at a time and, when it is the same, only the heads are loaded (no transient copy of the
        encoder's weights); otherwise the whole version is loaded and not shared."""
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        folder = Path(folder)
        if not (folder / LABELS_FILE).is_file():
            raise FileNotFoundError(f"{folder}: not a model version folder (no {LABELS_FILE}) — train one with `hotline train`")
        if num_threads:
            torch.set_num_threads(num_threads)
        hf_logging.disable_progress_bar()
        if dtype == "auto":
            from .encoder.encoder import cpu_has_fast_bf16

            dtype = "bfloat16" if cpu_has_fast_bf16() else "float32"
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, not {dtype!r}")
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = None
        if share_with is not None:
            model = _heads_if_shared(folder, share_with, tok, getattr(torch, dtype), max_seq_length)
        shared = model is not None
        if model is None:
            # cast while loading: no float32 copy of the weights is held (and left behind in the allocator) first
            model = DispatchModel.from_pretrained(str(folder), local_files_only=True, dtype=getattr(torch, dtype))
        labels = json.loads((folder / LABELS_FILE).read_text(encoding="utf-8"))["labels"]
        if len(labels) != model.config.num_labels:
            raise ValueError(f"{folder}: {len(labels)} labels but the model has {model.config.num_labels} outputs")
        cal_path = folder / CALIBRATION_FILE
        calibration = json.loads(cal_path.read_text(encoding="utf-8")) if cal_path.is_file() else {}
        msl = max_seq_length or int(getattr(model.config, "train_max_seq_length", 256))
        ngram = NgramHead.load(folder)
        if ngram is not None and ngram.num_labels != len(labels):
            raise ValueError(f"{folder}: the n-gram head has {ngram.num_labels} labels, labels.json {len(labels)}")
        clf = cls(model, tok, labels, calibration, folder, msl, ngram)
        if shared:
            clf.encoder = share_with
            clf.tokenizer = share_with.model.tokenizer  # the same tokens (checked): the folder's copy is dropped
            del tok, model
            _release_freed_memory()
        return clf

    @property
    def version(self) -> str:
        return self.folder.name if self.folder else "unsaved"

    @property
    def temperature(self) -> float:
        return float(self.calibration.get("temperature", 1.0))

    @property
    def conformal_threshold(self) -> float:
        """Lead probability (calibrated) at or above which a label is in the conformal set; the set has
        coverage 1 - ``calibration['alpha']`` on held-out data. More than one member = ambiguous."""
        return float(self.calibration.get("conformal_threshold", 0.5))

    @property
    def co_threshold(self) -> float:
        return float(self.calibration.get("co_threshold", 0.5))

    def logits(self, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Raw (uncalibrated) lead and co-handling logits, both ``(n, L)``; with an n-gram head the lead
        score is the combined one (:meth:`NgramHead.combine`)."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single string")
        raw = list(texts)
        texts = [self.text_prefix + (t or "") for t in raw]
        L = len(self.labels)
        if not texts:
            return np.zeros((0, L), np.float32), np.zeros((0, L), np.float32)
        if self.encoder is not None:  # the shared encoder (and its cache) pools; only the heads run here
            _, pooled = self.encoder.encode_queries([t or "" for t in raw], batch_size=batch_size, pooled=True)
            w = self.model.lead_head.weight
            with self._lock, torch.inference_mode():
                x = torch.from_numpy(pooled).to(w.dtype)
                lead_l, co_l = self.model.lead_head(x).float().numpy(), self.model.co_head(x).float().numpy()
            if self.ngram is not None:
                lead_l = self.ngram.combine(lead_l, raw)
            return lead_l, co_l
        lead, co = [], []
        # sort by length so batches pad little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock, torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                enc = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_seq_length,
                                     padding=True, return_tensors="pt")
                out = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                lead.append(out.logits.float().numpy())
                co.append(out.co_logits.float().numpy())
        lead_l, co_l = np.concatenate(lead), np.concatenate(co)
        inv = np.empty(len(order), dtype=int)
        inv[order] = np.arange(len(order))
        lead_l, co_l = lead_l[inv], co_l[inv]
        if self.ngram is not None:
            lead_l = self.ngram.combine(lead_l, raw)
        return lead_l, co_l

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """(lead_probs ``(n, L)`` softmax with the calibrated temperature, co_probs ``(n, L)`` sigmoids)."""
        lead, co = self.logits(texts, batch_size)
        return softmax_np(lead, self.temperature).astype(np.float32), sigmoid_np(co).astype(np.float32)

    def plausible_sets(self, lead_probs: np.ndarray) -> list[list[str]]:
        """Conformal prediction sets: labels with calibrated probability >= the conformal threshold (never empty)."""
        out = []
        for row in np.atleast_2d(lead_probs):
            idx = [int(i) for i in np.argsort(-row) if row[i] >= self.conformal_threshold]
            out.append([self.labels[i] for i in (idx or [int(np.argmax(row))])])
        return out

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]:
        """Convenience: per text the lead label, its probability, the co-handlers above ``co_threshold``
        and the conformal set."""
        lead, co = self.predict_proba(texts, batch_size)
        sets = self.plausible_sets(lead)
        out = []
        for i in range(len(lead)):
            j = int(np.argmax(lead[i]))
            cos = [self.labels[k] for k in np.argsort(-co[i]) if co[i, k] >= self.co_threshold and k != j]
            out.append({"lead": self.labels[j], "confidence": float(lead[i, j]), "co": cos, "set": sets[i]})
        return out
