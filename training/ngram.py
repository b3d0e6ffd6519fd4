"""Fit the character n-gram head (:class:`model.ngram_head.NgramHead`) on the transformer's training rows.

scikit-learn does the work (``TfidfVectorizer`` over character 1–3-grams, multinomial
``LogisticRegression``); only the arrays travel into the version folder. The settings (C = 100, weight 1,
i.e. a plain product of the two experts) were chosen on the 5-fold CV of the 495 real messages from a
grid of C in {10, 30, 100} and weight in {0.3, 0.5, 0.7, 1, 1.5}; the README says so beside the figure.
"""
from __future__ import annotations

import numpy as np

from model.ngram_head import NgramHead


def fit_ngram_head(texts: list[str], y: np.ndarray, num_labels: int, *, weight: float = 1.0, C: float = 100.0,
                   ngram_range: tuple[int, int] = (1, 3), min_df: int = 2, max_features: int = 200_000,
                   seed: int = 13) -> NgramHead:
    """``y``: label indices into the version's label list (``num_labels`` long); labels with no training
    row get a very low intercept, so the head never proposes them but the shapes match the transformer."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=int)
    min_df = min_df if len(texts) >= 20 else 1
    vec = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, sublinear_tf=True, min_df=min_df,
                          max_features=max_features, dtype=np.float32)
    X = vec.fit_transform([t or "" for t in texts])
    present = np.unique(y)
    coef = np.zeros((num_labels, X.shape[1]), np.float32)
    intercept = np.full(num_labels, -30.0, np.float32)
    if len(present) == 1:  # one class: the head is uninformative
        intercept[present[0]] = 0.0
    else:
        lr = LogisticRegression(C=C, max_iter=3000, random_state=seed).fit(X, y)
        if len(present) == 2:  # sklearn keeps one row for a binary problem
            coef[present[1]], intercept[present[1]] = lr.coef_[0], lr.intercept_[0]
            intercept[present[0]] = 0.0
        else:
            coef[lr.classes_] = lr.coef_
            intercept[lr.classes_] = lr.intercept_
    vocab = [None] * len(vec.vocabulary_)
    for term, i in vec.vocabulary_.items():
        vocab[i] = term
    return NgramHead(vocab, vec.idf_, coef, intercept, weight=weight, ngram_range=ngram_range, sublinear_tf=True)
