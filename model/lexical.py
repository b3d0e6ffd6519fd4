"""Lexical signal over the lists: BM25 on character uni- and bigrams (no dictionary to load).

Chinese has no spaces; character bigrams catch legal terms and place names ("油烟", "占道", "幸福里")
as well as a word segmenter would for matching purposes, and cost nothing to initialise.
"""
from __future__ import annotations

import re

import bm25s
import numpy as np

_KEEP = re.compile(r"[\u4e00-\u9fff]+|[A-Za-z]+|\d+")
STOP = set("的了是我在有和就不人都一个也很到说要去你会着没看好自己这那么吗吧呢啊呀哦嗯请您们他她它")


def char_ngrams(text: str) -> list[str]:
    toks: list[str] = []
    for m in _KEEP.finditer(text.lower()):
        run = m.group()
        if not ("\u4e00" <= run[0] <= "\u9fff"):
            toks.append(run)
            continue
        toks.extend(ch for ch in run if ch not in STOP)
        toks.extend(run[i : i + 2] for i in range(len(run) - 1))
    return toks


class LexicalIndex:
    def __init__(self, documents: list[str]):
        self._bm25 = bm25s.BM25()
        self._bm25.index([char_ngrams(d) or ["\u0000"] for d in documents], show_progress=False)
        self.size = len(documents)

    def scores(self, text: str) -> np.ndarray:
        toks = [t for t in char_ngrams(text) if t]
        if not toks:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(toks), dtype=np.float32)
