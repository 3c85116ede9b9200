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
from protocol.chain.sender import TxSender
from protocol.operator.amounts import TokenUnits
from requester.errors import FundsError
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


def plan_job(
    chain: SynodContracts, sender: TxSender, params: JobParams, dataset: Dataset, units: TokenUnits
) -> JobPlan:
    """The plan of posting ``dataset`` with ``params`` from ``sender``'s wallet.

    Raises :class:`FundsError` when the token balance is below the escrow (saying how much is
    missing) or the account has no native balance for gas; ``ValueError`` from
    :func:`plan_posts` for a batch size the contract cannot take."""
    market = Market(chain)
    block = chain.head(0)
    limits = market.limits(block)
    if not 1 <= params.batch_size <= limits.max_rows:
        raise ValueError(f"--batch-size {params.batch_size} is outside 1..{limits.max_rows}")
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
