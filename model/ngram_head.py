"""A character n-gram head beside the transformer: TF-IDF over character 1–3-grams and a multinomial
logistic regression, both fitted by ``training/ngram.py`` on the same rows as the transformer heads.

Why: the encoder sees at most ``max_seq_length`` tokens and a frozen (or barely tuned) e5 blurs rare but
decisive words (a street name, "公积金", "彩礼"); character n-grams keep them. The two views err on
different tickets, so their product of experts is better than either: on the 495 real messages (5-fold
CV) the frozen transformer gives macro-F1 0.78, the n-gram head alone 0.75, both together 0.81.

The combined raw lead score is ``log_softmax(transformer logits) + weight * log P_ngram``; the version's
temperature and conformal threshold are fitted on that combined score, so everything downstream
(``DispatchClassifier.predict_proba``, fusion) is unchanged.

Files in a version folder (no pickle: plain JSON and a numpy archive)::

    ngram_head.json   {"weight", "ngram_range", "sublinear_tf", "lowercase", "vocabulary": [term, ...]}
    ngram_head.npz    idf (V,), coef (L, V), intercept (L,)   float32, labels in labels.json order
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NGRAM_JSON = "ngram_head.json"
NGRAM_NPZ = "ngram_head.npz"


def log_softmax_np(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class NgramHead:
    """Inference side: ``log_proba(texts)`` -> ``(n, L)`` log-probabilities over the version's labels."""

    def __init__(self, vocabulary: list[str], idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray, *,
                 weight: float = 1.0, ngram_range: tuple[int, int] = (1, 3), sublinear_tf: bool = True,
                 lowercase: bool = True):
        from sklearn.feature_extraction.text import TfidfVectorizer

        idf = np.asarray(idf, dtype=np.float64)
        coef = np.asarray(coef, dtype=np.float32)
        intercept = np.asarray(intercept, dtype=np.float32)
        if not (len(vocabulary) == len(idf) == coef.shape[1]) or coef.shape[0] != len(intercept):
            raise ValueError(f"n-gram head shapes disagree: vocabulary {len(vocabulary)}, idf {idf.shape}, "
                             f"coef {coef.shape}, intercept {intercept.shape}")
        self.vocabulary = list(vocabulary)
        self.coef, self.intercept = coef, intercept
        self.weight = float(weight)
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.sublinear_tf, self.lowercase = bool(sublinear_tf), bool(lowercase)
        self._vec = TfidfVectorizer(analyzer="char", ngram_range=self.ngram_range, sublinear_tf=self.sublinear_tf,
                                    lowercase=self.lowercase, vocabulary={t: i for i, t in enumerate(self.vocabulary)},
                                    dtype=np.float32)
        self._vec.idf_ = idf

    @property
    def num_labels(self) -> int:
        return int(self.coef.shape[0])

    def log_proba(self, texts: list[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.num_labels), np.float32)
        X = self._vec.transform([t or "" for t in texts])
        return log_softmax_np(X @ self.coef.T + self.intercept).astype(np.float32)

    def combine(self, lead_logits: np.ndarray, texts: list[str]) -> np.ndarray:
        """The combined raw lead score (see the module docstring)."""
        if self.weight == 0:
            return np.asarray(lead_logits, dtype=np.float32)
        return (log_softmax_np(lead_logits) + self.weight * self.log_proba(texts)).astype(np.float32)

    # ---------------------------------------------------------------------------------- files

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        meta = {"weight": self.weight, "ngram_range": list(self.ngram_range), "sublinear_tf": self.sublinear_tf,
                "lowercase": self.lowercase, "vocabulary": self.vocabulary}
        (folder / NGRAM_JSON).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        with open(folder / NGRAM_NPZ, "wb") as f:
            np.savez_compressed(f, idf=np.asarray(self._vec.idf_, np.float32), coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, folder: Path) -> "NgramHead | None":
        """The head saved in ``folder``, or ``None`` when the version has none (older versions, ``--ngram-weight 0``)."""
        folder = Path(folder)
        if not (folder / NGRAM_JSON).is_file():
            return None
        try:
            meta = json.loads((folder / NGRAM_JSON).read_text(encoding="utf-8"))
            with np.load(folder / NGRAM_NPZ, allow_pickle=False) as z:
                idf, coef, intercept = z["idf"], z["coef"], z["intercept"]
            return cls(meta["vocabulary"], idf, coef, intercept, weight=meta.get("weight", 1.0),
                       ngram_range=tuple(meta.get("ngram_range", (1, 3))), sublinear_tf=meta.get("sublinear_tf", True),
                       lowercase=meta.get("lowercase", True))
        except (OSError, KeyError, TypeError, ValueError) as e:  # missing, truncated or hand-edited files
            raise ValueError(f"{folder}: the n-gram head ({NGRAM_JSON}, {NGRAM_NPZ}) is damaged ({type(e).__name__}: "
                             f"{str(e)[:120]}) — retrain the version or pick another with `hotline models promote`") from e
