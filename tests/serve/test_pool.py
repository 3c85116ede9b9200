"""The model pool in-process: deadlines, a full queue, parallel slots, a slot reused after a cancellation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from workflow.providers.local import default_model_path
from workflow.serve.pool import (
    BadRequestError,
    DeadlineError,
    Generation,
    ModelPool,
    QueueFullError,
    Sampling,
)

pytestmark = pytest.mark.model

LONG = Sampling(prompt="1, 2, 3, 4, 5, 6, 7, 8,", max_tokens=1000, temperature=0.0)
SHORT = Sampling(prompt="The sea is", max_tokens=6, temperature=0.0)


@pytest.fixture(scope="module")
def pool() -> Iterator[ModelPool]:
    pool = ModelPool(default_model_path(), parallel=1, threads=2, n_ctx=1024, max_queue=0)
    trio.run(pool.load)
    yield pool
    trio.run(pool.aclose)


def test_a_deadline_stops_the_generation_and_frees_the_slot(pool: ModelPool) -> None:
    async def main() -> tuple[float, Generation]:
        started = trio.current_time()
        with pytest.raises(DeadlineError, match=r"deadline of 0\.3s"):
            await pool.generate(LONG, deadline_s=0.3)
        stopped_after = trio.current_time() - started
        return stopped_after, await pool.generate(SHORT, deadline_s=300)

    stopped_after, after = trio.run(main)
    assert stopped_after < 5.0  # stopped at the next token, not after 1000 (~25 s when idle)
    assert after.completion_tokens == 6 and after.text
    assert pool.busy == 0 and pool.waiting == 0


def test_a_full_queue_is_refused_at_once(pool: ModelPool) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: pool.generate(LONG, deadline_s=300))
            while pool.busy == 0:  # noqa: ASYNC110 (polls the pool's counter; there is no event for it)
                await trio.sleep(0.01)
            with pytest.raises(QueueFullError, match="--max-queue 0"):
                await pool.generate(SHORT, deadline_s=300)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert pool.busy == 0
    assert trio.run(lambda: pool.generate(SHORT, deadline_s=300)).completion_tokens == 6


def test_a_prompt_longer_than_the_context_is_a_bad_request(pool: ModelPool) -> None:
    with pytest.raises(BadRequestError, match="context holds 1024"):
        trio.run(lambda: pool.generate(Sampling(prompt="owl " * 1500, max_tokens=4), deadline_s=300))
    with pytest.raises(BadRequestError, match="900 to generate exceed the context of 1024"):
        trio.run(lambda: pool.generate(Sampling(prompt="owl " * 200, max_tokens=900), deadline_s=300))


def test_a_smaller_request_window_bounds_prompt_and_answer(pool: ModelPool) -> None:
    # Ollama's num_ctx below the server's context: the request gets that window, not the pool's
    async def main() -> tuple[Generation, Generation]:
        full = await pool.generate(LONG.model_copy(update={"max_tokens": 8}), deadline_s=300)
        window = full.prompt_tokens + 3
        bounded = await pool.generate(
            LONG.model_copy(update={"max_tokens": None, "n_ctx": window}), deadline_s=300
        )
        with pytest.raises(
            BadRequestError, match=rf"context holds {full.prompt_tokens - 1} \(raise num_ctx\)"
        ):
            await pool.generate(LONG.model_copy(update={"n_ctx": full.prompt_tokens - 1}), deadline_s=300)
        with pytest.raises(BadRequestError, match=rf"exceed the context of {window} tokens"):
            await pool.generate(LONG.model_copy(update={"max_tokens": 4, "n_ctx": window}), deadline_s=300)
        return full, bounded

    full, bounded = trio.run(main)
    assert full.completion_tokens == 8
    assert bounded.completion_tokens == 3 and bounded.finish_reason == "length"
    assert bounded.text == full.text[: len(bounded.text)]  # greedy: the same first tokens


def test_pieces_add_up_to_the_text(pool: ModelPool) -> None:
    pieces: list[str] = []

    async def collect(piece: str) -> None:
        pieces.append(piece)

    streamed = trio.run(
        lambda: pool.generate(SHORT.model_copy(update={"max_tokens": 20}), collect, deadline_s=300)
    )
    whole = trio.run(lambda: pool.generate(SHORT.model_copy(update={"max_tokens": 20}), deadline_s=300))
    assert "".join(pieces) == streamed.text == whole.text
    assert len(pieces) > 1


def test_two_slots_generate_at_once() -> None:
    pool = ModelPool(default_model_path(), parallel=2, threads=2, n_ctx=512, max_queue=4)

    async def main() -> list[Generation]:
        await pool.load()
        results: list[Generation] = []
        peak = 0

        async def one() -> None:
            results.append(await pool.generate(SHORT.model_copy(update={"max_tokens": 30}), deadline_s=300))

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(one)
                nursery.start_soon(one)
                while len(results) < 2:
                    peak = max(peak, pool.busy)
                    await trio.sleep(0.005)
        finally:
            await pool.aclose()
        assert peak == 2
        return results

    first, second = trio.run(main)
    assert first.text == second.text and first.completion_tokens == 30
