"""``make bench`` (gas part): the gas of one task's whole lifecycle at k=3, m=3, measured on Anvil.

Prints exactly two ``name=value`` lines on stdout (logs go to stderr):

- ``gas_per_task_k3_m3``: the sum of ``gasUsed`` of every transaction of one task: post, 3 result
  commits, 3 reveals (the last draws the committee), the committee's score commits and reveals
  (the last finalizes), and every claim (3 nodes, the validators, the requester's refund).
- ``gas_per_task_job100_k3_m3``: a job of 100 tasks posted in one transaction, every task carried
  through the same lifecycle, then one claim per account; every transaction summed, divided by 100.

Both are steady-state figures, as on a network in use: one warm-up task runs first (its figure, the
"first ever" with every storage slot still empty, goes to the log on stderr), while another
requester's task stays open so the market's escrow is never empty. Set-up transactions (minting,
registering, the requester's one-time token approval) are not counted: they are not part of any
task. Salts are derived from a fixed seed so runs repeat.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from protocol.chain.contracts import SynodContracts
from protocol.chain.market import JobParams, Market, model_id
from protocol.chain.registry import Registry
from protocol.chain.signer import anvil_dev_signer
from protocol.errors import SynodError
from protocol.log import configure, get_logger
from scripts.devnet import DEMO_MODEL, ROOT, Actors, fund_and_register, local_devnet, run_task

log = get_logger("scripts.bench_gas")

JOB_SIZE = 100
OTHER_REQUESTER = 8
PARAMS = JobParams(
    model=model_id(DEMO_MODEL),
    bounty_per_task=3 * 10**18,  # divides evenly among 3 nodes and 3 validators: no dust refund
    k=3,
    m=3,
    threshold=50,
    tolerance=20,
    validator_share_bps=2000,
    commit_duration=3600,
    reveal_duration=3600,
    score_commit_duration=3600,
    score_reveal_duration=3600,
)
WORKFLOW = {"config": {"max_steps": 3, "max_time": 60}, "name": "bench"}


def _results(task: int) -> list[Any]:
    return [{"task": task, "node": i, "text": f"result {i} of task {task}"} for i in range(3)]


def _score(seat: int, revealed: Sequence[Any]) -> list[int]:
    return [80 + seat for _ in revealed]


def single_task(chain: SynodContracts, actors: Actors, round_: int) -> int:
    market = Market(chain)
    posted = market.post_task(actors.requester, PARAMS, WORKFLOW, {"row": round_})
    seed = b"bench-single-%d" % round_
    report = run_task(chain, actors, posted.task_ids[0], _results(round_), _score, salt_seed=seed)
    gas = posted.receipts[-1].gas_used + report.gas
    for step in (None, *report.steps):
        receipt = posted.receipts[-1] if step is None else step.receipt
        log.info(
            "tx",
            round=round_,
            label=receipt.label,
            actor=step.actor if step else "requester",
            gas=receipt.gas_used,
        )
    log.info("single_task", round=round_, task_id=report.task_id, transactions=1 + len(report.steps), gas=gas)
    return gas


def job_of_tasks(chain: SynodContracts, actors: Actors, size: int) -> int:
    market = Market(chain)
    posted = market.post_job(actors.requester, PARAMS, WORKFLOW, [{"row": i} for i in range(size)])
    gas = posted.receipts[-1].gas_used
    count = 1
    for n, task_id in enumerate(posted.task_ids):
        report = run_task(chain, actors, task_id, _results(n), _score, claim=False, salt_seed=b"bench-job")
        gas += report.gas
        count += len(report.steps)
    block = chain.head(0)
    for actor in (*actors.nodes, *actors.validators, actors.requester):
        if market.balance_of(actor.address, block) > 0:
            gas += market.claim(actor)[1].gas_used
            count += 1
    log.info("job", tasks=size, transactions=count, gas=gas)
    return gas


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
            # another requester's task stays open the whole time (the market's escrow is live)
            other = chain.sender(anvil_dev_signer(OTHER_REQUESTER, chain.chain_id))
            Registry(chain).mint(other, other.address, PARAMS.bounty_per_task)
            Market(chain).post_task(other, PARAMS, WORKFLOW, {"row": "open"})
            first = single_task(chain, actors, 0)
            single = single_task(chain, actors, 1)
            log.info("gas_first_ever", gas_per_task_k3_m3_first_ever=first)
            job = job_of_tasks(chain, actors, JOB_SIZE)
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
