"""A persistent, incrementally updated faiss index of ticket vectors with a time-window filter.

Vectors get ids 0, 1, 2... in the order tickets are processed (time order), so "the last 30 days" is an
id range and faiss filters it inside the search (``IDSelectorRange``), not afterwards. The index starts
exact (``IndexFlatIP``); past ``train_at`` vectors it becomes an inverted-file index with fp16 scalar
quantisation (``IndexIVFScalarQuantizer``, 2*sqrt(n) lists, ``nprobe`` of them searched), trained on the
stored vectors and retrained when the store has grown ``retrain_factor`` times. Vectors can be read back
(``vectors``) for exact re-scoring.
"""
from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np


class VectorIndex:
    def __init__(self, dim: int, *, train_at: int = 20_000, nprobe: int = 24, retrain_factor: int = 4,
                 seed: int = 1234):
        self.dim = dim
        self.train_at = train_at
        self.nprobe = nprobe
        self.retrain_factor = retrain_factor
        self.seed = seed
        self.trained_on = 0  # number of vectors the current IVF was trained with (0 = flat)
        self.index: faiss.Index = faiss.IndexFlatIP(dim)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> str:
        return "flat" if self.trained_on == 0 else f"ivf{self.index.nlist},sq-fp16"

    # ------------------------------------------------------------------------------------------ add

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append vectors (n, dim) float32; returns their ids."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        first = self.ntotal
        self.index.add(vectors)
        n = self.ntotal
        if (self.trained_on == 0 and n >= self.train_at) or (self.trained_on and n >= self.trained_on * self.retrain_factor):
            self._retrain()
        return np.arange(first, first + len(vectors), dtype=np.int64)

    def _retrain(self) -> None:
        """Rebuild as IVF over everything stored (ids kept: the vectors are re-added in id order)."""
        n = self.ntotal
        all_vecs = self.vectors(0, n)
        nlist = int(min(8192, max(64, round(2 * math.sqrt(n)))))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFScalarQuantizer(quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                            faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(self.seed)
        sample = all_vecs if n <= 40 * nlist else all_vecs[np.sort(rng.choice(n, 40 * nlist, replace=False))]
        ivf.cp.seed = self.seed
        ivf.train(sample)
        for i in range(0, n, 65536):
            ivf.add(all_vecs[i : i + 65536])
        ivf.make_direct_map()
        ivf.nprobe = self.nprobe
        self.index = ivf
        self.trained_on = n

    # ---------------------------------------------------------------------------------------- search

    def search(self, query: np.ndarray, k: int, id_from: int = 0, id_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` inner products among ids in ``[id_from, id_to)`` for each query row: (scores, ids),
        ids = -1 where fewer were found."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1, self.dim)
        id_to = self.ntotal if id_to is None else min(id_to, self.ntotal)
        if id_to <= id_from or self.ntotal == 0:
            return np.zeros((len(query), 0), np.float32), np.zeros((len(query), 0), np.int64)
        k = min(k, id_to - id_from)
        sel = None if (id_from == 0 and id_to == self.ntotal) else faiss.IDSelectorRange(id_from, id_to)
        if self.trained_on:
            params = faiss.SearchParametersIVF(nprobe=self.nprobe, sel=sel) if sel is not None else faiss.SearchParametersIVF(nprobe=self.nprobe)
        else:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        scores, ids = self.index.search(query, k, params=params)
        return scores, ids

    def vectors(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.zeros((0, self.dim), np.float32)
        return self.index.reconstruct_n(start, stop - start)

    def vector_of(self, ids: list[int]) -> np.ndarray:
        if not ids:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.index.reconstruct(int(i)) for i in ids])

    # ----------------------------------------------------------------------------------- persistence

    def state(self) -> dict:
        return {"dim": self.dim, "train_at": self.train_at, "nprobe": self.nprobe,
                "retrain_factor": self.retrain_factor, "seed": self.seed, "trained_on": self.trained_on}

    def write(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def read(cls, path: Path, state: dict) -> "VectorIndex":
        vi = cls(state["dim"], train_at=state["train_at"], nprobe=state["nprobe"],
                 retrain_factor=state["retrain_factor"], seed=state["seed"])
        vi.trained_on = state["trained_on"]
        vi.index = faiss.read_index(str(path))
        if vi.trained_on:
            vi.index.make_direct_map()
            vi.index.nprobe = vi.nprobe
        if vi.index.d != vi.dim:
            raise ValueError(f"{path}: index has dimension {vi.index.d}, state says {vi.dim}")
        return vi
