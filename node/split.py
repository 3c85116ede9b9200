"""The work split: n nodes serving a model do about k/n of its batches each, not all of them.

Every node serving a batch's model sees every batch, and only the first k commits get seats: when
all n nodes compute every batch, (n - k) / n of the network's model time is wasted (a quarter with
4 nodes and k = 3, the demo). The split ranks the nodes eligible for a batch by rotation: the
roster (:func:`load_roster`: registered nodes, not unbonding, staked at least the minimum, serving
the model) in an order drawn per job (:func:`split_seed`: ``keccak256(seed || address)``; sorted
by address, k registrations ground to sort together owned every seat of one batch in n), and node
``p`` of ``n`` in that order has rank ``(p - batchId) mod n``. Every node computes the same
ranking from the chain alone, so they agree without talking to each other, and over any n
consecutive batches of a job each node owns exactly k of them (a keccak ranking per (batch,
node), tried first, gave one of the demo's 4 nodes all 6 of its batches: the busiest node is the
demo's critical path):

* a node ranked below k (one of the batch's k "owners") computes it at once;
* any other node is a **backup**: it waits until :func:`backup_start` (a fraction of the commit
  window, or the last moment at which its own estimate of the batch still fits, whichever is
  earlier), re-reading the batch's seats while it waits; when the owners filled the k seats it
  skips the batch without running a single row (``node_batch_skipped reason=closed``, detail
  ``work split: ...``); otherwise it computes the batch like an owner.

So a batch never lacks k commits because of the split while k honest nodes are alive: an owner
that is down, slow or full is replaced by the backups at :func:`backup_start`, and a node that is
the only one left still starts early enough for its own estimate of the batch to fit. Its cost is
that delay on the batches whose owners are not all alive (plus, on a very large network, the
roster's chain reads, cached ``run.split.roster_refresh_s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol.canonical import keccak256
from protocol.chain.contracts import SynodContracts
from protocol.chain.models import Role
from protocol.chain.registry import Registry
from protocol.chain.rpc import BlockRef
from protocol.types import Address, address_of

ROSTER_PAGE = 64
"""Registration ids read per ``accountsOf`` call while enumerating the registry."""


def split_seed(job_id: int, workflow_hash: bytes) -> bytes:
    """The 32-byte seed of a job's roster order: ``keccak256(jobId as uint256 || workflow_hash)``.

    Every node has both from the job's ``JobPosted`` event. The workflow (chosen by the requester
    when posting) makes the order unknown to anyone registering nodes before the job exists, so
    addresses cannot be ground in advance to sit together in it."""
    return bytes(keccak256(job_id.to_bytes(32, "big") + bytes(workflow_hash)))


def _order_key(seed: bytes, node: str) -> tuple[bytes, str]:
    return bytes(keccak256(seed + bytes.fromhex(node[2:]))), node


def rank_of(batch_id: int, node: str, roster: Sequence[str], seed: bytes) -> tuple[int, int]:
    """``(rank, size)``: ``node``'s 0-based rank for the batch among ``roster`` (itself added if
    missing), ``(position - batch_id) mod size``, and the roster's size. ``position`` is the
    node's place in the roster ordered by ``keccak256(seed || address)`` (``seed``:
    :func:`split_seed` of the batch's job), not by address: ordered by address, a batch's k owners
    were k neighbours in address order, so k registrations ground to sort together (a shared
    2-byte prefix) owned every seat of one batch in n, with the honest nodes waiting as backups."""
    ordered = sorted({a.lower() for a in roster} | {node.lower()}, key=lambda a: _order_key(seed, a))
    return (ordered.index(node.lower()) - batch_id) % len(ordered), len(ordered)


def backup_start(
    commit_deadline: float,
    commit_duration: float,
    delay_fraction: float,
    estimated_s: float,
    safety: float,
    margin_s: float,
) -> float:
    """When a backup node starts a batch (chain time, seconds): ``delay_fraction`` of the commit
    window after it opened, or the last moment at which ``safety`` times the batch's estimated
    run time (``estimated_s``) plus ``margin_s`` still fits before ``commit_deadline``: the
    earlier of the two."""
    opened = commit_deadline - commit_duration
    by_fraction = opened + delay_fraction * commit_duration
    latest_safe = commit_deadline - margin_s - safety * estimated_s
    return min(by_fraction, latest_safe)


@dataclass(frozen=True)
class SplitPlan:
    """A node's place for one batch: ``rank`` of ``size`` eligible nodes, whether it owns the
    batch (``rank < k`` or fewer than k+1 nodes), and when it may start (chain time, seconds;
    ``start_at`` is 0 for an owner)."""

    rank: int
    size: int
    k: int
    start_at: float

    @property
    def owner(self) -> bool:
        return self.rank < self.k


def plan(
    batch_id: int,
    node: str,
    roster: Sequence[str],
    seed: bytes,
    k: int,
    commit_deadline: float,
    commit_duration: float,
    delay_fraction: float,
    estimated_s: float,
    safety: float,
    margin_s: float,
) -> SplitPlan:
    """The node's :class:`SplitPlan` for the batch (pure: see the module docstring)."""
    rank, size = rank_of(batch_id, node, roster, seed)
    if rank < k:
        return SplitPlan(rank, size, k, 0.0)
    start = backup_start(commit_deadline, commit_duration, delay_fraction, estimated_s, safety, margin_s)
    return SplitPlan(rank, size, k, start)


def load_roster(chain: SynodContracts, model: bytes, block: BlockRef) -> tuple[Address, ...]:
    """The nodes eligible for batches of ``model`` at ``block`` (synchronous: run it in a thread):
    every registration id from 1 up to the first unused one (``accountsOf`` pages of
    :data:`ROSTER_PAGE`), kept if registered as a node, not unbonding, staked at least
    ``minNodeStake`` and serving ``model``. Raises the chain's errors."""
    registry = Registry(chain)
    functions = chain.registry.functions
    minimum = registry.min_stake(Role.NODE, block)
    found: list[Address] = []
    first = 1
    while True:
        ids = list(range(first, first + ROSTER_PAGE))
        accounts = [str(a) for a in chain.read(functions.accountsOf(ids), block)]
        live = [a for a in accounts if int(a, 16) != 0]
        for account in live:
            record = registry.participant(account, block)
            if record.role is not Role.NODE or record.unbonding_end != 0 or record.stake < minimum:
                continue
            if bool(chain.read(functions.serves(account, bytes(model)), block)):
                found.append(address_of(account))
        if len(live) < len(accounts):
            return tuple(found)
        first += ROSTER_PAGE
