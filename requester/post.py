"""Plan a job against the wallet, then approve and post it.

``plan_job`` reads the contract's limits and the wallet at one pinned block and refuses, before
any transaction, a bounty the wallet cannot cover or a wallet with no gas money. ``post_planned``
then calls :meth:`protocol.chain.market.Market.post_job`, which approves the market if needed and
splits the rows into batches and ``postJob`` transactions (:func:`protocol.chain.market.plan_posts`).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market, PostedJob, plan_posts
from protocol.chain.models import JobParams
from protocol.chain.rpc import BlockRef
from protocol.chain.sender import TxSender
from protocol.operator.amounts import TokenUnits
from requester.errors import FundsError, InputError
from requester.rows import Dataset


@dataclass(frozen=True)
class JobPlan:
    """What a post will do: ``posts`` row ranges (one ``postJob`` each), batches, the escrow."""

    params: JobParams
    dataset: Dataset
    posts: tuple[range, ...]
    batches: int
    escrow: int
    """``bounty_per_task * rows`` in base units."""
    balance: int
    allowance: int

    @property
    def transactions(self) -> int:
        """``postJob`` transactions, plus one approval when the allowance is short."""
        return len(self.posts) + (1 if self.allowance < self.escrow else 0)


def check_params(chain: SynodContracts, params: JobParams, block: BlockRef) -> None:
    """Refuse, before any transaction, parameters ``TaskMarket._checkParams`` would revert on.

    The ranges are the contract's public constants and ``minPhaseDuration()`` read at ``block`` (so
    a deployment with other limits is judged by its own); the checks follow ``_checkParams`` in
    contracts/TaskMarket.sol in the same order. Without this, ``post_job``'s approval would be mined
    before the post's simulation reverts. Raises :class:`InputError` naming the flag and its range.
    """
    fns = chain.market.functions

    def const(name: str) -> int:
        return int(chain.read(getattr(fns, name)(), block))

    if params.bounty_per_task == 0:
        raise InputError("--bounty-per-task must be above 0")
    max_batch = const("MAX_BATCH_SIZE")
    if not 1 <= params.batch_size <= max_batch:
        raise InputError(f"--batch-size {params.batch_size} is outside 1..{max_batch}")
    max_k, max_m = const("MAX_RESULTS"), const("MAX_COMMITTEE")
    if not 1 <= params.k <= max_k:
        raise InputError(f"--k {params.k} (node seats per batch) is outside 1..{max_k}")
    if not 1 <= params.m <= max_m:
        raise InputError(f"--m {params.m} (committee size) is outside 1..{max_m}")
    cells, max_cells = params.batch_size * params.k * params.m, const("MAX_SCORE_CELLS")
    if cells > max_cells:
        raise InputError(
            f"--batch-size x --k x --m = {params.batch_size} x {params.k} x {params.m} = {cells} scores per "
            f"batch, over the contract's {max_cells}: lower --batch-size"
        )
    max_score = const("MAX_SCORE")
    for flag, value in (("--threshold", params.threshold), ("--tolerance", params.tolerance)):
        if value > max_score:
            raise InputError(f"{flag} {value} is outside 0..{max_score}")
    if params.junk_floor > params.threshold:
        raise InputError(f"--junk-floor {params.junk_floor} must not exceed --threshold {params.threshold}")
    bps = const("BPS")
    if params.validator_share_bps > bps:
        raise InputError(f"--validator-share-bps {params.validator_share_bps} is outside 0..{bps}")
    low, high = const("minPhaseDuration"), const("MAX_PHASE_DURATION")
    phases = ("commit", "reveal", "score-commit", "score-reveal")
    durations = (
        params.commit_duration,
        params.reveal_duration,
        params.score_commit_duration,
        params.score_reveal_duration,
    )
    for phase, seconds in zip(phases, durations, strict=True):
        if not low <= seconds <= high:
            raise InputError(
                f"--durations: the {phase} phase of {seconds} s is outside {low}..{high} s on this market"
            )


def plan_job(
    chain: SynodContracts, sender: TxSender, params: JobParams, dataset: Dataset, units: TokenUnits
) -> JobPlan:
    """The plan of posting ``dataset`` with ``params`` from ``sender``'s wallet.

    Raises :class:`InputError` for parameters the contract would refuse (:func:`check_params`),
    :class:`FundsError` when the token balance is below the escrow (saying how much is missing) or
    the account has no native balance for gas."""
    market = Market(chain)
    block = chain.head(0)
    limits = market.limits(block)
    check_params(chain, params, block)
    posts = plan_posts(list(dataset.sizes), params.batch_size, limits)
    rows = len(dataset.rows)
    escrow = params.bounty_per_task * rows
    token = chain.token.functions
    balance = int(chain.read(token.balanceOf(sender.address), block))
    allowance = int(chain.read(token.allowance(sender.address, chain.market.address), block))
    if balance < escrow:
        raise FundsError(
            f"the bounty needs {units.format(escrow)} ({units.format(params.bounty_per_task)} x {rows} rows) "
            f"but {sender.address} holds {units.format(balance)}: fund the wallet with "
            f"{units.format(escrow - balance)} more, or lower --bounty-per-task"
        )
    gas = int(chain.w3.eth.get_balance(sender.address, block_identifier=block.block_identifier))
    if gas == 0:
        raise FundsError(f"{sender.address} has no native balance to pay gas: fund it first")
    batches = sum((len(p) + params.batch_size - 1) // params.batch_size for p in posts)
    return JobPlan(params, dataset, tuple(posts), batches, escrow, balance, allowance)


def post_planned(chain: SynodContracts, sender: TxSender, plan: JobPlan) -> PostedJob:
    """Approve (if needed) and post every row; see :meth:`Market.post_job` for the errors."""
    return Market(chain).post_job(sender, plan.params, plan.dataset.spec, list(plan.dataset.rows))
