"""Whether to take a batch, and whether to commit what was computed: pure functions, no I/O.

:func:`decide` takes a batch only if every check passes, in this order (the first failing one is
the recorded skip reason, counted in ``synod_node_batches_skipped_total{reason}``):

1. ``unknown_job``: its ``JobPosted`` was never seen (it is always in the same or an earlier block);
2. ``malformed_workflow``: the job's workflow bytes do not parse as a Synod workflow;
3. ``model``: the job's model is not one this node serves;
4. ``bounty``: ``bountyPerTask`` is below ``run.min_bounty_per_task``;
5. ``capacity``: ``run.max_open_batches`` batches are already open;
6. ``deadline``: the commit window left (chain time) minus ``run.deadline_margin_s`` is shorter
   than the estimated run time of the batch: ``ceil(rows / concurrency)`` waves of the
   workflow's moving-average task time (``run.default_task_seconds`` before a measurement).

:func:`commit_policy` is the failure policy (docs/node.md): a batch whose every row failed is
abandoned; otherwise failed rows are committed as explicit failure envelopes if the results that
did succeed, each assumed to score ``threshold``, keep the node's medians above the job's
``junkFloor`` (the junk-node slashing rule of docs/contracts.md), else the batch is abandoned
(not committing costs nothing; committing junk is slashed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from protocol.chain.models import JobParams

SkipReason = Literal["unknown_job", "malformed_workflow", "model", "bounty", "capacity", "deadline"]
SKIP_REASONS: tuple[SkipReason, ...] = (
    "unknown_job",
    "malformed_workflow",
    "model",
    "bounty",
    "capacity",
    "deadline",
)


@dataclass(frozen=True)
class BatchOffer:
    """What the decider sees of a batch: its job's parameters, its size, its commit deadline
    (unix seconds) and whether the workflow parsed (``workflow_error`` is None then)."""

    params: JobParams | None
    rows: int
    commit_deadline: int
    workflow_error: str | None = None


@dataclass(frozen=True)
class NodeCapacity:
    """The node's side: served model ids, minimum bounty, open batches and their cap, task
    concurrency, the speed estimate (seconds per task) and the deadline margin (seconds)."""

    served: frozenset[bytes]
    min_bounty_per_task: int
    open_batches: int
    max_open_batches: int
    concurrency: int
    task_seconds: float
    margin_s: float


@dataclass(frozen=True)
class Decision:
    """``take`` or not, with the skip ``reason`` and a human ``detail``."""

    take: bool
    reason: SkipReason | None = None
    detail: str = ""


def estimated_seconds(rows: int, concurrency: int, task_seconds: float) -> float:
    """Seconds to run ``rows`` tasks, ``concurrency`` at a time, ``task_seconds`` each."""
    return math.ceil(rows / max(concurrency, 1)) * task_seconds


def decide(offer: BatchOffer, node: NodeCapacity, now: int) -> Decision:
    """Take the batch or say why not (see the module docstring); ``now`` is chain time (s)."""
    params = offer.params
    if params is None:
        return Decision(False, "unknown_job", "no JobPosted seen for this batch's job")
    if offer.workflow_error is not None:
        return Decision(False, "malformed_workflow", offer.workflow_error)
    if bytes(params.model) not in node.served:
        return Decision(False, "model", f"model 0x{bytes(params.model).hex()} is not served here")
    if params.bounty_per_task < node.min_bounty_per_task:
        return Decision(
            False, "bounty", f"bounty per task {params.bounty_per_task} < minimum {node.min_bounty_per_task}"
        )
    if node.open_batches >= node.max_open_batches:
        return Decision(False, "capacity", f"{node.open_batches} batches open (max {node.max_open_batches})")
    needed = estimated_seconds(offer.rows, node.concurrency, node.task_seconds)
    window = offer.commit_deadline - now - node.margin_s
    if window < needed:
        return Decision(
            False, "deadline", f"{window:.1f}s left to commit, the batch needs about {needed:.1f}s"
        )
    return Decision(True, None, f"about {needed:.1f}s of work, {window:.1f}s left")


def commit_policy(rows: int, failed: int, params: JobParams) -> tuple[bool, str]:
    """Whether to commit a batch with ``failed`` of its ``rows`` failed (see the module docstring);
    returns ``(commit, reason)``, the reason naming the rule when the batch is abandoned."""
    ok = rows - failed
    if ok <= 0:
        return False, f"all {rows} tasks failed"
    if failed and ok * max(int(params.threshold), 1) < int(params.junk_floor) * rows:
        return False, (
            f"{failed} of {rows} tasks failed: committing would risk the junk slash "
            f"({ok} x threshold {params.threshold} < junkFloor {params.junk_floor} x {rows})"
        )
    return True, ""
