"""Hybrid search over the responsibility items: a faiss index of e5 vectors plus BM25 on char n-grams.

Every item is represented by several vectors: one passage (``passage:`` side: title + duties + keywords)
and one per example phrasing (``query:`` side, since phrasings are worded like tickets). An item's
dense score is the best of its vectors. An item's exclusions (不含事项: "not ours, X's") are matters the lists
give to another department: each is a vector (``query:`` side) of the owner's item nearest to it, so a ticket
about the excluded matter finds its owner, with the exclusion as the evidence. The index is persisted under
``<index_dir>/<encoder>-<lists version>/`` and rebuilt only when the lists or the encoder change.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from responsibility_lists.loader import ItemRef, ResponsibilityLists
from responsibility_lists.schema import Exclusion

from .lexical import LexicalIndex

INDEX_FORMAT = 3  # 3: exclusion rows


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[-60:]


def item_passage(ref: ItemRef) -> str:
    it = ref.item
    return f"{it.title}。{it.duties} 关键词：{'、'.join(it.keywords)}"


def exclusion_note(ref: ItemRef, matter: str, owner_name: str) -> str:
    """How an exclusion row reads as evidence: the item that excludes the matter and who owns it."""
    return f"{matter}（{ref.item.title}不含此项，由{owner_name}负责）"


def _items_by_department(lists: ResponsibilityLists) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, r in enumerate(lists.items):
        out.setdefault(r.department, []).append(i)
    return out


def exclusions(lists: ResponsibilityLists) -> list[tuple[ItemRef, Exclusion]]:
    """The items' exclusions whose owner has items of its own (an outside body's matters are not indexed), in the
    order of the index's exclusion rows."""
    owned = {r.department for r in lists.items}
    return [(r, e) for r in lists.items for e in r.item.exclusions if e.owner in owned]


def item_lexical_doc(ref: ItemRef) -> str:
    it = ref.item
    # Keywords twice: they are the terms the department's staff chose as decisive.
    return " ".join([it.title, it.duties, " ".join(it.keywords) * 2, " ".join(it.phrasings)])


@dataclass
class ItemHit:
    ref: ItemRef
    score: float  # fused score in [0, 1]-ish
    dense: float  # best cosine similarity
    lexical: float  # BM25 normalised by the query's best
    matched_text: str  # the passage or phrasing that matched best (an exclusion: its note)


@dataclass
class PhrasingOverlap:
    """A phrasing of ``item`` nearer to a matter the item excludes than to the item's other phrasings."""
    item: str
    phrasing: str
    matter: str  # the excluded matter it reads like
    owner: str  # who owns that matter
    similarity: float  # cosine to the matter
    own: float  # best cosine to another phrasing of the item (an item with one phrasing is not judged)


def _encode(texts: list[str], kind: str, encode, known: dict, dim: int, batch_size: int) -> np.ndarray:
    vecs = np.zeros((len(texts), dim), np.float32)
    missing = []
    for i, t in enumerate(texts):
        v = known.get((kind, t))
        if v is None:
            missing.append(i)
        else:
            vecs[i] = v
    if missing:
        vecs[missing] = encode([texts[i] for i in missing], batch_size=batch_size)
    return vecs


class ListIndex:
    def __init__(self, lists: ResponsibilityLists, encoder, vectors: faiss.Index, owners: np.ndarray, texts: list[str]):
        self.lists = lists
        self.encoder = encoder
        self.index = vectors
        self.owners = owners  # row -> item position
        self.texts = texts  # row -> text that was embedded
        self.refs = lists.items
        self._other: dict[str, np.ndarray] = {}  # query vectors of list texts that are not items' (phrasing_vectors)
        # an exclusion row is shown as its note (who excludes the matter, who owns it); build_vectors puts them last
        excl, names = exclusions(lists), lists.names
        first = len(texts) - len(excl)
        self.exclusion_rows_of = [(first + j, r, e) for j, (r, e) in enumerate(excl)]  # (row, excluding item, exclusion)
        self.notes = {row: exclusion_note(r, e.matter, names.get(e.owner, e.owner)) for row, r, e in self.exclusion_rows_of}
        # an excluded matter's words count for the owner's item its row belongs to, as its vector does: else a ticket
        # about it finds the owner by meaning and loses it again on the excluding item's words (二次供水 under 供水)
        excluded: dict[int, list[str]] = {}
        for row, _, e in self.exclusion_rows_of:
            excluded.setdefault(int(owners[row]), []).append(e.matter)
        self.lexical = LexicalIndex([" ".join([item_lexical_doc(r), *excluded.get(i, [])]) for i, r in enumerate(self.refs)])

    # ------------------------------------------------------------------ build / persist / load
    @staticmethod
    def folder_for(index_dir: Path, encoder_name: str, lists_version: str) -> Path:
        return Path(index_dir) / f"lists-{_slug(encoder_name)}-{lists_version}"

    @classmethod
    def build_vectors(cls, lists: ResponsibilityLists, encoder, batch_size: int = 32,
                      reuse: "ListIndex | None" = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The rows to index: one passage per item, then its phrasings (as queries), then the items' exclusions'
        matters (:meth:`exclusion_rows`). With ``reuse`` (an index on the
        same encoder: the lists before an edit) only texts it does not hold are encoded."""
        known = reuse.known_vectors() if reuse is not None and reuse.encoder is encoder else {}
        passages = [item_passage(r) for r in lists.items]
        p_vecs = _encode(passages, "passage", encoder.encode_passages, known, encoder.dim, batch_size)
        phr_texts, phr_owner = [], []
        for i, r in enumerate(lists.items):
            for p in r.item.phrasings:
                phr_texts.append(p)
                phr_owner.append(i)
        q_vecs = _encode(phr_texts, "query", encoder.encode_queries, known, encoder.dim, batch_size)
        e_vecs, e_owner, e_texts = cls.exclusion_rows(lists, encoder, p_vecs, known, batch_size)
        vecs = np.vstack([p_vecs, q_vecs, e_vecs]).astype(np.float32)
        owners = np.concatenate([np.arange(len(passages)), np.asarray(phr_owner, dtype=np.int64), e_owner])
        return vecs, owners, passages + phr_texts + e_texts

    @staticmethod
    def exclusion_rows(lists: ResponsibilityLists, encoder, p_vecs: np.ndarray, known: dict,
                       batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """One row per exclusion whose owner has items (:func:`exclusions`): the matter's vector (``query:`` side),
        owned by the owner's item whose passage is nearest to it."""
        by_dept, excl = _items_by_department(lists), exclusions(lists)
        matters = [e.matter for _, e in excl]
        vecs = _encode(matters, "query", encoder.encode_queries, known, encoder.dim, batch_size)
        owner = [by_dept[e.owner][int(np.argmax(p_vecs[by_dept[e.owner]] @ vecs[j]))] for j, (_, e) in enumerate(excl)]
        return vecs, np.asarray(owner, dtype=np.int64), matters

    def excluded_phrasings(self, margin: float = 0.0) -> list["PhrasingOverlap"]:
        """Phrasings worded like a matter their own item excludes: nearer (cosine, both ``query:`` side) to one of the
        item's exclusions' matters than to every other phrasing of the item (so an item needs two), by more than
        ``margin``. Such a phrasing
        teaches the index, and the synthetic history written from it, that the excluding department owns the matter
        (废品站拆电瓶酸水横流 under 再生资源回收, which excludes 废电瓶污染 for 生态环境). Most pairs are merely near
        (a matter next to the item's own); read each and move the phrasing to the owner's item or reword it. Closest
        first."""
        vecs = self.index.reconstruct_n(0, self.index.ntotal)
        first = len(self.texts) - len(self.exclusion_rows_of)  # build_vectors: passages, phrasings, exclusion rows
        position = {r.item.id: i for i, r in enumerate(self.refs)}
        phrasing_rows: dict[int, list[int]] = {}
        for row in range(len(self.refs), first):
            phrasing_rows.setdefault(int(self.owners[row]), []).append(row)
        excluded_by: dict[int, list[tuple[int, Exclusion]]] = {}
        for row, ref, e in self.exclusion_rows_of:
            excluded_by.setdefault(position[ref.item.id], []).append((row, e))
        out = []
        for i, matters in excluded_by.items():
            rows = phrasing_rows.get(i, [])
            if len(rows) < 2:  # nothing of its own to compare a lone phrasing with
                continue
            for row in rows:
                own = max(float(vecs[o] @ vecs[row]) for o in rows if o != row)
                sim, e = max(((float(vecs[m] @ vecs[row]), e) for m, e in matters), key=lambda x: x[0])
                if sim > own + margin:
                    out.append(PhrasingOverlap(self.refs[i].item.id, self.texts[row], e.matter, e.owner, sim, own))
        return sorted(out, key=lambda o: o.own - o.similarity)

    def known_vectors(self) -> dict[tuple[str, str], np.ndarray]:
        """(kind, text) -> the vector this index holds for it; kind is ``passage`` (an item's text) or ``query`` (a
        phrasing or an exclusion's matter)."""
        vecs = self.index.reconstruct_n(0, self.index.ntotal)
        n_passages = len(self.refs)  # build_vectors puts one passage per item first
        return {("passage" if row < n_passages else "query", t): vecs[row] for row, t in enumerate(self.texts)}

    @classmethod
    def load_or_build(cls, lists: ResponsibilityLists, encoder, index_dir: Path,
                      reuse: "ListIndex | None" = None) -> "ListIndex":
        """The index saved for these lists and this encoder, else built (and saved); ``reuse``: see
        :meth:`build_vectors` (after an edit of the lists, only the changed texts are encoded)."""
        folder = cls.folder_for(index_dir, encoder.fingerprint, lists.version)
        meta_path = folder / "meta.json"
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                ids = [r.item.id for r in lists.items]
                if meta.get("format") == INDEX_FORMAT and meta.get("item_ids") == ids:
                    vectors = faiss.read_index(str(folder / "vectors.faiss"))
                    if vectors.ntotal == len(meta["owners"]):
                        return cls(lists, encoder, vectors, np.asarray(meta["owners"]), meta["texts"])._inherit(reuse)
            except (OSError, ValueError, RuntimeError, KeyError):
                pass  # unreadable or partial: rebuild below
        vecs, owners, texts = cls.build_vectors(lists, encoder, reuse=reuse)
        vectors = faiss.IndexFlatIP(vecs.shape[1])
        vectors.add(vecs)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
        try:
            faiss.write_index(vectors, str(tmp / "vectors.faiss"))
            meta = {
                "format": INDEX_FORMAT,
                "encoder": encoder.name,
                "lists_version": lists.version,
                "item_ids": [r.item.id for r in lists.items],
                "owners": owners.tolist(),
                "texts": texts,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls(lists, encoder, vectors, owners, texts)._inherit(reuse)

    def _inherit(self, reuse: "ListIndex | None") -> "ListIndex":
        """Take over ``reuse``'s vectors of other list texts (same encoder): an edit re-encodes only what changed."""
        if reuse is not None and reuse.encoder is self.encoder:
            self._other.update(reuse._other)
        return self

    def phrasing_vectors(self, texts: list[str]) -> np.ndarray:
        """Query vectors of list texts that are not items' (the phrasings of the bodies outside the roster), each
        encoded once for this index and handed on to the index built after an edit of the lists."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._other]
        if missing:
            self._other.update(zip(missing, self.encoder.encode_queries(missing)))
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack([self._other[t] for t in texts])

    # ------------------------------------------------------------------------------ search
    def dense_scores(self, query_vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best cosine per item and the row that gave it."""
        sims, rows = self.index.search(query_vec.reshape(1, -1).astype(np.float32), self.index.ntotal)
        best = np.full(len(self.refs), -1.0, dtype=np.float32)
        best_row = np.zeros(len(self.refs), dtype=np.int64)
        owners = self.owners[rows[0]]
        # rows come sorted by similarity: the first occurrence of each owner is its best
        _, first = np.unique(owners, return_index=True)
        best[owners[first]] = sims[0][first]
        best_row[owners[first]] = rows[0][first]
        return best, best_row

    def score_items(self, text: str, query_vec: np.ndarray | None = None, *, lexical_weight: float = 0.35,
                    dense_window: float = 0.12, lexical_floor: float = 8.0) -> list[ItemHit]:
        if query_vec is None:
            query_vec = self.encoder.encode_queries([text])[0]
        dense, best_row = self.dense_scores(query_vec)
        lex = self.lexical.scores(text)
        # Normalise by the best match, but never by less than ``lexical_floor``: one stray shared token
        # ("12345") must not count as a full lexical match.
        lex_n = lex / max(float(lex.max()), lexical_floor)
        # e5 cosines live in a narrow band: rescale against this query's spread before fusing.
        top = float(dense.max())
        dense_n = np.clip((dense - (top - dense_window)) / dense_window, 0.0, 1.0)
        fused = (1 - lexical_weight) * dense_n + lexical_weight * lex_n
        order = np.argsort(-fused)
        return [
            ItemHit(self.refs[i], float(fused[i]), float(dense[i]), float(lex_n[i]),
                   self.notes.get(int(best_row[i]), self.texts[best_row[i]]))
            for i in order
        ]

    def search(self, text: str, k: int = 10) -> list[ItemHit]:
        return self.score_items(text)[:k]
