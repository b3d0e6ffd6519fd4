"""Fine-tune :class:`model.classifier.DispatchModel` with the Hugging Face Trainer.

Presets fit the hardware. ``cpu``: the lower encoder layers are frozen and run once per text (their
output is cached, also across cross-validation folds), only the top layer(s) and the two heads train —
minutes on 2 cores. ``full``: every layer except the embeddings trains on token ids (a GPU machine).
Early stopping on validation macro-F1 (best weights kept in memory, no checkpoints written), fixed seeds.
"""
from __future__ import annotations

import contextlib
import resource
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from model.classifier import DispatchModel, mean_pool, softmax_np
from model.ngram_head import NgramHead

from .data import History


@dataclass(frozen=True)
class Preset:
    name: str
    max_seq_length: int = 256
    train_layers: int | None = 1  # top encoder layers that train; None = all (full fine-tune)
    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-4  # encoder layers
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    patience: int = 3
    label_smoothing: float = 0.05
    co_loss_weight: float = 0.5
    dropout: float = 0.1
    max_steps: int = -1
    ngram_weight: float = 1.0  # character n-gram head beside the transformer (model/ngram_head.py); 0 = none

    @property
    def cached(self) -> bool:
        return self.train_layers is not None


PRESETS = {
    # 2 shared cores: the whole encoder is frozen and run once per text; the heads train on its cached
    # output. `--train-layers 1 --epochs 10` also trains the top layer: 5-fold macro-F1 on the 495 real
    # messages 0.832±0.054 vs 0.813±0.061 (both with the n-gram head; 0.812 / 0.784 without), for ~10x the
    # CPU time (keep --epochs 10: the 40 epochs here are for heads on cached vectors). max_seq_length 512
    # gained nothing for the frozen encoder (0.779).
    "cpu": Preset("cpu", max_seq_length=256, train_layers=0, epochs=40, batch_size=16, head_lr=2e-2, patience=6),
    "full": Preset("full", max_seq_length=384, train_layers=None, epochs=6, batch_size=32, lr=3e-5, head_lr=1e-3, patience=2),
    # for the test-suite: seconds, not minutes
    "tiny": Preset("tiny", max_seq_length=32, train_layers=1, epochs=1, batch_size=8, head_lr=5e-3, patience=1),
}
# 2 cores, more time for better accuracy on small real histories: the top 3 encoder layers train (their input
# is cached once), 10 epochs. 5-fold macro-F1 on the 495 real messages 0.875±0.048 (seed 13) and 0.859±0.026
# (seed 7: other folds) vs 0.813 / 0.821 for "cpu"; ~200 s per fold of ~400 training rows on 2 idle cores,
# peak 3.7 GB. Too slow for the 3,000-ticket default model within `make serve`'s first-start budget, hence
# not the default.
PRESETS["cpu-deep"] = replace(PRESETS["cpu"], name="cpu-deep", train_layers=3, epochs=10)


MIN_EARLY_STOP_ROWS = 100  # below this, the validation macro-F1 is too noisy to choose an epoch by


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_base(encoder_dir: Path, labels: list[str], preset: Preset, text_prefix: str = "query: ") -> DispatchModel:
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cfg = AutoConfig.from_pretrained(str(encoder_dir), local_files_only=True)
    cfg.num_labels = len(labels)
    cfg.id2label = dict(enumerate(labels))
    cfg.label2id = {l: i for i, l in enumerate(labels)}
    cfg.architectures = ["DispatchModel"]
    cfg.text_prefix = text_prefix
    cfg.co_loss_weight = preset.co_loss_weight
    cfg.label_smoothing = preset.label_smoothing
    cfg.classifier_dropout = preset.dropout
    cfg.train_max_seq_length = preset.max_seq_length
    hf_logging.set_verbosity_error()  # "newly initialized: lead_head..." is expected here
    try:
        model = DispatchModel.from_pretrained(str(encoder_dir), config=cfg, local_files_only=True)
    finally:
        hf_logging.set_verbosity_warning()
    return model


def freeze(model: DispatchModel, preset: Preset) -> int:
    """Freeze embeddings and all but the top ``train_layers`` layers; returns the first trainable layer."""
    n = model.config.num_hidden_layers
    start = 0 if preset.train_layers is None else max(0, n - preset.train_layers)
    for p in model.bert.embeddings.parameters():
        p.requires_grad = False
    for i, layer in enumerate(model.bert.encoder.layer):
        for p in layer.parameters():
            p.requires_grad = i >= start
    return start


class FrozenCache:
    """Output of the frozen lower layers per text (float16, unpadded), computed once and reused."""

    def __init__(self, model: DispatchModel, tokenizer, start_layer: int, max_seq_length: int, batch_size: int = 32):
        self.model, self.tokenizer = model, tokenizer
        self.start, self.max_len, self.batch_size = start_layer, max_seq_length, batch_size
        self._memo: dict[str, torch.Tensor] = {}
        self.key = f"{start_layer}|{max_seq_length}"

    def get(self, texts: list[str], progress: bool = True) -> list[torch.Tensor]:
        from tqdm import tqdm

        prefix = getattr(self.model.config, "text_prefix", "") or ""
        todo = sorted({t for t in texts if t not in self._memo}, key=len)
        if todo:
            was_training = self.model.training
            self.model.eval()
            with torch.inference_mode(), tqdm(total=len(todo), desc=f"encoding (frozen layers 0-{self.start - 1})",
                                              unit="text", disable=not progress) as bar:
                for s in range(0, len(todo), self.batch_size):
                    chunk = todo[s : s + self.batch_size]
                    enc = self.tokenizer([prefix + t for t in chunk], truncation=True, max_length=self.max_len,
                                         padding=True, return_tensors="pt")
                    h = self.model.run_layers(self.model.embed(enc["input_ids"]), enc["attention_mask"], 0, self.start)
                    if self.start >= self.model.config.num_hidden_layers:
                        # nothing trains below the heads: keep the pooled vector only (same result, 100x less work)
                        h = mean_pool(h, enc["attention_mask"]).unsqueeze(1)
                        lens = [1] * len(chunk)
                    else:
                        lens = enc["attention_mask"].sum(1).tolist()
                    for t, hi, n in zip(chunk, h, lens):
                        self._memo[t] = hi[:n].to(torch.float16).clone()
                    bar.update(len(chunk))
            self.model.train(was_training)
        return [self._memo[t] for t in texts]


class TicketDataset(Dataset):
    def __init__(self, data: History, label_index: dict[str, int], tokenizer=None, max_len: int = 256,
                 cache: FrozenCache | None = None, progress: bool = True, text_prefix: str = ""):
        self.labels = [label_index[l] for l in data.labels]
        L = len(label_index)
        self.co = np.zeros((len(data), L), np.float32)
        for i, cs in enumerate(data.co):
            for c in cs:
                if c in label_index:
                    self.co[i, label_index[c]] = 1.0
        self.cache = cache
        if cache is not None:
            self.hidden = cache.get(data.texts, progress)
            self.lengths = [h.shape[0] for h in self.hidden]
        else:
            self.enc = tokenizer([text_prefix + t for t in data.texts], truncation=True, max_length=max_len)
            self.lengths = [len(x) for x in self.enc["input_ids"]]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {"labels": self.labels[i], "co_labels": self.co[i]}
        if self.cache is not None:
            item["hidden_states"] = self.hidden[i]
        else:
            item["input_ids"] = self.enc["input_ids"][i]
        return item


class Collator:
    def __init__(self, start_layer: int, pad_id: int = 1):
        self.start, self.pad_id = start_layer, pad_id

    def __call__(self, items: list[dict]) -> dict:
        out = {"labels": torch.tensor([x["labels"] for x in items], dtype=torch.long),
               "co_labels": torch.tensor(np.stack([x["co_labels"] for x in items]))}
        if "hidden_states" in items[0]:
            n = max(x["hidden_states"].shape[0] for x in items)
            H = items[0]["hidden_states"].shape[1]
            hs = torch.zeros(len(items), n, H)
            mask = torch.zeros(len(items), n, dtype=torch.long)
            for i, x in enumerate(items):
                k = x["hidden_states"].shape[0]
                hs[i, :k] = x["hidden_states"].float()
                mask[i, :k] = 1
            out.update(hidden_states=hs, attention_mask=mask, start_layer=torch.full((len(items),), self.start))
        else:
            n = max(len(x["input_ids"]) for x in items)
            ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
            mask = torch.zeros(len(items), n, dtype=torch.long)
            for i, x in enumerate(items):
                ids[i, : len(x["input_ids"])] = torch.tensor(x["input_ids"])
                mask[i, : len(x["input_ids"])] = 1
            out.update(input_ids=ids, attention_mask=mask)
        return out


def lead_metrics(logits: np.ndarray, y: np.ndarray, labels: list[str], temperature: float = 1.0) -> dict:
    from sklearn.metrics import f1_score

    from .calibration import ece

    y = np.asarray(y)
    if len(y) == 0:
        return {"n": 0}
    pred = logits.argmax(1)
    present = sorted(set(y.tolist()))
    per = f1_score(y, pred, labels=present, average=None, zero_division=0)
    top3 = np.argsort(-logits, axis=1)[:, :3]
    probs = softmax_np(logits, temperature)
    return {"n": int(len(y)), "accuracy": round(float((pred == y).mean()), 4),
            "macro_f1": round(float(f1_score(y, pred, labels=present, average="macro", zero_division=0)), 4),
            "top3": round(float(np.mean([y[i] in top3[i] for i in range(len(y))])), 4),
            "ece": round(ece(probs, y), 4),
            "per_label_f1": {labels[k]: round(float(f), 4) for k, f in zip(present, per)},
            "support": {labels[k]: int((y == k).sum()) for k in present}}


def co_metrics(co_logits: np.ndarray, co_targets: np.ndarray, threshold: float = 0.5) -> dict:
    t = co_targets > 0
    if not t.any():
        return {}
    p = (1 / (1 + np.exp(-co_logits))) >= threshold
    tp = int((p & t).sum())
    prec = tp / max(int(p.sum()), 1)
    rec = tp / max(int(t.sum()), 1)
    return {"co_precision": round(prec, 4), "co_recall": round(rec, 4),
            "co_f1": round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0}


@dataclass
class TrainResult:
    model: DispatchModel
    tokenizer: object
    labels: list[str]
    preset: Preset
    val_logits: np.ndarray | None
    val_co_logits: np.ndarray | None
    val_y: np.ndarray | None
    val_co: np.ndarray | None
    seconds: float
    peak_memory_mb: float
    epochs_run: float
    log: list[dict] = field(default_factory=list)
    cache: FrozenCache | None = None
    ngram: NgramHead | None = None


def _trainer_classes():
    from transformers import Trainer, TrainerCallback

    class BestKeeper(TrainerCallback):
        """Early stopping on eval macro-F1, keeping the best trainable weights in memory."""

        def __init__(self, patience: int):
            self.patience, self.best, self.bad, self.state = patience, -1.0, 0, None

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kw):
            score = (metrics or {}).get("eval_macro_f1", -1.0)
            if score > self.best + 1e-4:
                self.best, self.bad = score, 0
                self.state = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
            else:
                self.bad += 1
                if self.bad >= self.patience:
                    control.should_training_stop = True

    class DispatchTrainer(Trainer):
        head_lr: float = 1e-3

        def _get_train_sampler(self, train_dataset=None):
            # batches of similar length (shuffled megabatches): on the 495 real messages at 256 tokens, 26% fewer
            # padded tokens per epoch for the layers that train; pooled-vector caches (train_layers=0, all length 1)
            # keep the plain random sampler, so heads-only results are unchanged
            ds = self.train_dataset if train_dataset is None else train_dataset
            lengths = getattr(ds, "lengths", None)
            if lengths and len(set(lengths)) > 1:
                from transformers.trainer_pt_utils import LengthGroupedSampler

                return LengthGroupedSampler(self.args.train_batch_size, lengths=lengths)
            return super()._get_train_sampler(train_dataset)

        def create_optimizer(self, model=None):
            if self.optimizer is None:
                m = self.model if model is None else model
                heads = [p for n, p in m.named_parameters() if p.requires_grad and n.startswith(("lead_head", "co_head"))]
                body_decay = [p for n, p in m.named_parameters() if p.requires_grad and not n.startswith(("lead_head", "co_head"))
                              and p.ndim > 1]
                body_nodecay = [p for n, p in m.named_parameters() if p.requires_grad and not n.startswith(("lead_head", "co_head"))
                                and p.ndim <= 1]
                groups = [{"params": heads, "lr": self.head_lr, "weight_decay": self.args.weight_decay},
                          {"params": body_decay, "lr": self.args.learning_rate, "weight_decay": self.args.weight_decay},
                          {"params": body_nodecay, "lr": self.args.learning_rate, "weight_decay": 0.0}]
                self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
            return self.optimizer

    return DispatchTrainer, BestKeeper


def train_classifier(train: History, val: History | None, labels: list[str], *, encoder_dir: Path, preset: Preset,
                     seed: int = 13, work_dir: Path | None = None, cache: FrozenCache | None = None,
                     base: tuple | None = None, progress: bool = True) -> TrainResult:
    """Train on ``train``, early-stop and report on ``val`` (when given). ``cache``/``base`` let
    cross-validation reuse the frozen-layer outputs and the tokenizer across folds."""
    import tempfile

    from transformers import AutoTokenizer, TrainingArguments
    from transformers.utils import logging as hf_logging

    t0 = time.time()
    set_seed(seed)
    hf_logging.set_verbosity_error()
    tok = base[1] if base else AutoTokenizer.from_pretrained(str(encoder_dir), local_files_only=True)
    model = load_base(encoder_dir, labels, preset)
    start = freeze(model, preset)
    if preset.cached:
        if cache is None or cache.key != f"{start}|{preset.max_seq_length}":
            cache = FrozenCache(model, tok, start, preset.max_seq_length)
        else:
            cache.model = model  # the frozen layers are the same weights in every fresh copy
    index = {l: i for i, l in enumerate(labels)}
    prefix = getattr(model.config, "text_prefix", "") or ""
    train_ds = TicketDataset(train, index, tok, preset.max_seq_length, cache if preset.cached else None, progress, prefix)
    val_ds = (TicketDataset(val, index, tok, preset.max_seq_length, cache if preset.cached else None, progress, prefix)
              if val is not None and len(val) else None)
    DispatchTrainer, BestKeeper = _trainer_classes()
    keeper = BestKeeper(preset.patience)
    early_stop = val_ds is not None and len(val_ds) >= MIN_EARLY_STOP_ROWS

    def compute(ep):
        (lg, _co_lg), (y, _co_y) = ep.predictions, ep.label_ids
        m = lead_metrics(lg, y, labels)
        return {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=str(work_dir or tmp), num_train_epochs=preset.epochs, max_steps=preset.max_steps,
            per_device_train_batch_size=preset.batch_size, per_device_eval_batch_size=64,
            learning_rate=preset.lr, weight_decay=preset.weight_decay, warmup_steps=preset.warmup,
            lr_scheduler_type="linear", eval_strategy="epoch" if val_ds else "no", save_strategy="no",
            logging_strategy="epoch", report_to="none", seed=seed, data_seed=seed, use_cpu=not torch.cuda.is_available(),
            remove_unused_columns=False, label_names=["labels", "co_labels"], disable_tqdm=not progress,
            dataloader_num_workers=0,
        )
        trainer = DispatchTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                                  data_collator=Collator(start), compute_metrics=compute if val_ds else None,
                                  callbacks=[keeper] if early_stop else [])
        trainer.head_lr = preset.head_lr
        if not progress:
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        with contextlib.redirect_stdout(sys.stderr):  # the trainer's per-epoch log lines: stdout is for results
            trainer.train()
        if keeper.state:
            with torch.no_grad():
                params = dict(model.named_parameters())
                for k, v in keeper.state.items():
                    params[k].copy_(v)
        vl = vc = vy = vco = None
        if val_ds:
            out = trainer.predict(val_ds)
            vl, vc = out.predictions
            vy, vco = out.label_ids
        log = [dict(x) for x in trainer.state.log_history]
        epochs_run = float(trainer.state.epoch or 0)
    hf_logging.set_verbosity_warning()
    ngram = None
    if preset.ngram_weight > 0:
        from .ngram import fit_ngram_head

        ngram = fit_ngram_head(train.texts, np.array([index[l] for l in train.labels]), len(labels),
                               weight=preset.ngram_weight, seed=seed)
        if vl is not None:
            vl = ngram.combine(vl, val.texts)
    for p in model.parameters():
        p.requires_grad = True
    model.eval()
    return TrainResult(model, tok, labels, preset, vl, vc, vy, vco, time.time() - t0, peak_memory_mb(), epochs_run, log,
                       cache if preset.cached else None, ngram)


def cross_validate(data: History, labels: list[str], *, encoder_dir: Path, preset: Preset, k: int = 5, seed: int = 13,
                   progress: bool = True) -> dict:
    """Stratified k-fold: per-fold metrics, mean and standard deviation, and out-of-fold logits (for
    calibration and the audit). Inside each fold 10% of the training part is held out for early stopping."""
    from sklearn.model_selection import StratifiedKFold

    from .calibration import calibrate

    index = {l: i for i, l in enumerate(labels)}
    y = np.array([index[l] for l in data.labels])
    counts = np.bincount(y, minlength=len(labels))
    strat = np.where(counts[y] >= k, y, -1)  # rare labels go to one stratum
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    oof = np.zeros((len(y), len(labels)), np.float32)
    oof_co = np.zeros((len(y), len(labels)), np.float32)
    folds, cache, base = [], None, None
    t0 = time.time()
    for f, (tr, te) in enumerate(skf.split(np.zeros(len(y)), strat)):
        rng = np.random.default_rng(seed + f)
        tr = rng.permutation(tr)
        n_es = int(0.1 * len(tr))
        if n_es >= MIN_EARLY_STOP_ROWS:
            es, tr2 = tr[:n_es], tr[n_es:]
        else:  # too few rows to pick an epoch reliably: train every epoch on all of the fold
            es, tr2 = [], tr
        res = train_classifier(data.subset(tr2), data.subset(es) if len(es) else None, labels, encoder_dir=encoder_dir, preset=preset,
                               seed=seed, cache=cache, base=base, progress=progress)
        cache, base = res.cache, (None, res.tokenizer)
        te_res = predict_logits(res, data.subset(te), cache)
        oof[te], oof_co[te] = te_res
        m = lead_metrics(te_res[0], y[te], labels)
        folds.append({"fold": f, "macro_f1": m["macro_f1"], "accuracy": m["accuracy"], "epochs": res.epochs_run,
                      "seconds": round(res.seconds, 1)})
        if progress:
            print(f"fold {f + 1}/{k}: macro_f1={m['macro_f1']:.4f} accuracy={m['accuracy']:.4f} ({res.seconds:.0f}s)", flush=True)
    mf = np.array([x["macro_f1"] for x in folds])
    acc = np.array([x["accuracy"] for x in folds])
    overall = lead_metrics(oof, y, labels)
    co_t = np.zeros_like(oof_co)
    for i, cs in enumerate(data.co):
        for c in cs:
            if c in index:
                co_t[i, index[c]] = 1
    cal = calibrate(oof, y, oof_co, co_t)
    return {"cv_folds": k, "macro_f1": round(float(mf.mean()), 4), "macro_f1_std": round(float(mf.std(ddof=1)) if k > 1 else 0.0, 4),
            "accuracy": round(float(acc.mean()), 4), "accuracy_std": round(float(acc.std(ddof=1)) if k > 1 else 0.0, 4),
            "oof_macro_f1": overall["macro_f1"], "per_label_f1": overall["per_label_f1"], "ece": cal["ece_before"],
            "ece_calibrated": cal["ece_after"], "folds": folds, "seconds": round(time.time() - t0, 1),
            "peak_memory_mb": round(peak_memory_mb()), "oof_logits": oof, "oof_co_logits": oof_co}


def predict_logits(res: TrainResult, data: History, cache: FrozenCache | None = None, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Lead and co logits of a freshly trained model (uses the frozen cache when there is one); with an
    n-gram head the lead score is the combined one, as the saved version will compute it."""
    model = res.model.eval()
    if res.preset.cached and cache is not None:
        hs = cache.get(data.texts, progress=False)
        col = Collator(cache.start)
        lead, co = [], []
        with torch.inference_mode():
            for s in range(0, len(hs), batch_size):
                b = col([{"hidden_states": h, "labels": 0, "co_labels": np.zeros(1, np.float32)} for h in hs[s : s + batch_size]])
                out = model(hidden_states=b["hidden_states"], attention_mask=b["attention_mask"], start_layer=cache.start)
                lead.append(out.logits.numpy())
                co.append(out.co_logits.numpy())
        lead_l = np.concatenate(lead)
        return (res.ngram.combine(lead_l, data.texts) if res.ngram is not None else lead_l), np.concatenate(co)
    from model.classifier import DispatchClassifier

    clf = DispatchClassifier(model, res.tokenizer, res.labels, {}, None, res.preset.max_seq_length, res.ngram)
    return clf.logits(data.texts, batch_size)


def preset_dict(p: Preset) -> dict:
    return asdict(p)


def with_overrides(p: Preset, **kw) -> Preset:
    return replace(p, **{k: v for k, v in kw.items() if v is not None})
