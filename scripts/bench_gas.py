"""``make bench`` (gas part): what a task costs on chain under protocol v2, measured from Anvil receipts.

Prints exactly two ``name=value`` lines on stdout (logs go to stderr):

- ``gas_per_task_job100_k3_m3``: a job of 100 tasks (rows of 200 canonical-JSON bytes) posted as one
  batch (B = 100) with k=3 node seats and m=3 committee seats: the sum of ``gasUsed`` of every
  transaction (the post, 3 result commits, 3 reveals (the last arms the committee seed), 3 score
  commits (the first one draws the committee: no separate draw transaction), 3 score reveals (the
  last one settles, ``revealScoresAndSettle``: no separate settle transaction), and every
  participant's claim), divided by 100.
- ``gas_per_task_k3_m3``: one task alone (a job of one row, a batch of one), the same transactions.

Both are steady-state figures, as on a network in use: one warm-up job of each kind runs first (their
"first ever" figures, with storage slots still empty, go to the log on stderr), while another
requester's batch stays open so the market's escrow is never empty. Set-up transactions (minting,
registering, the requester's one-time approval and account) are not counted: no task causes them.
Salts come from a fixed seed so runs repeat; the figure still moves by a few hundred gas between runs
(which rows' scores tie, the seed block's hash).
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from protocol.canonical import canonical_bytes
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, model_id
from protocol.chain.models import JobParams
from protocol.chain.registry import Registry
from protocol.chain.signer import anvil_dev_signer
from protocol.errors import SynodError
from protocol.log import configure, get_logger
from scripts.devnet import DEMO_MODEL, ROOT, Actors, fund_and_register, local_devnet, run_batch

log = get_logger("scripts.bench_gas")

JOB_SIZE = 100
ROW_BYTES = 200
OTHER_REQUESTER = 8
PARAMS = JobParams(
    model=model_id(DEMO_MODEL),
    bounty_per_task=3 * 10**18,  # divides evenly among 3 nodes and 3 validators: no dust refund
    batch_size=JOB_SIZE,
    k=3,
    m=3,
    threshold=50,
    tolerance=20,
    junk_floor=10,
    validator_share_bps=2000,
    commit_duration=3600,
    reveal_duration=3600,
    score_commit_duration=3600,
    score_reveal_duration=3600,
)
WORKFLOW = {"config": {"max_steps": 3, "max_time": 60}, "name": "bench"}


def row(n: int, size: int = ROW_BYTES) -> dict[str, Any]:
    """Input row ``n`` whose canonical JSON is exactly ``size`` bytes."""
    base = {"row": n, "text": ""}
    pad = size - len(canonical_bytes(base))
    if pad < 0:
        raise ValueError(f"a row of {size} bytes cannot hold index {n}")
    return {"row": n, "text": "x" * pad}


def _results(first: int, rows: int) -> list[list[Any]]:
    return [
        [{"row": first + r, "node": i, "text": f"result {i} of row {first + r}"} for r in range(rows)]
        for i in range(3)
    ]


def _score(round_: int, seat: int, by_seat: Sequence[Sequence[Any] | None]) -> list[list[int]]:
    rows = len(next(r for r in by_seat if r is not None))
    return [[80 + seat] * rows for _ in by_seat]


def job_gas(chain: SynodContracts, actors: Actors, tasks: int, tag: str) -> tuple[int, int]:
    """Post ``tasks`` rows as one job at the bench parameters and carry every batch to its claims.

    Returns (total gas of every transaction, transaction count).
    """
    market = Market(chain)
    params = PARAMS.model_copy(update={"batch_size": min(tasks, PARAMS.batch_size)})
    posted = market.post_job(actors.requester, params, WORKFLOW, [row(n) for n in range(tasks)])
    posts = [r for r in posted.receipts if r.label.startswith("postJob")]
    gas = sum(r.gas_used for r in posts)
    count = len(posts)
    for batch in posted.batches:
        results = _results(batch.dataset_row, batch.rows)
        seed = f"bench-{tag}-{batch.batch_id}".encode()
        report = run_batch(chain, actors, batch.batch_id, results, _score, claim=True, salt_seed=seed)
        if report.settled is None or report.slashed:
            raise SynodError(f"bench batch {batch.batch_id} did not settle cleanly: {report}")
        for step in report.steps:
            log.info("tx", job=tag, label=step.receipt.label, actor=step.actor, gas=step.receipt.gas_used)
        gas += report.gas
        count += len(report.steps)
    log.info("job", job=tag, tasks=tasks, transactions=count, gas=gas, gas_per_task=gas // tasks)
    return gas, count


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the devnet's finally: Anvil is stopped


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    configure("INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        with local_devnet(ROOT) as net:
            chain = SynodContracts.connect(net.settings, ROOT)
            actors, _ = fund_and_register(chain)
            # another requester's batch stays open the whole time (the market's escrow is live)
            other = chain.sender(anvil_dev_signer(OTHER_REQUESTER, chain.chain_id))
            Registry(chain).mint(other, other.address, PARAMS.bounty_per_task)
            Market(chain).post_job(other, PARAMS.model_copy(update={"batch_size": 1}), WORKFLOW, [row(0)])
            first_single, _ = job_gas(chain, actors, 1, "single-warmup")
            single, _ = job_gas(chain, actors, 1, "single")
            first_job, _ = job_gas(chain, actors, JOB_SIZE, "job100-warmup")
            job, _ = job_gas(chain, actors, JOB_SIZE, "job100")
            log.info(
                "gas_first_ever", gas_per_task_k3_m3=first_single, gas_per_task_job100=first_job // JOB_SIZE
            )
    except KeyboardInterrupt:
        return 130
    except SynodError as exc:
        log.error("bench_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    print(f"gas_per_task_k3_m3={single}")
    print(f"gas_per_task_job100_k3_m3={job // JOB_SIZE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
