"""``synod oracle explain BATCH``: every score of a batch, who gave it, the medians, and why.

From the chain (events of the batch, ``deployBlock`` .. the confirmed head): each round's committee
(``CommitteeDrawn``: validators and stake weights), each revealed score vector (``ScoresRevealed``
after that round's draw), the revealed node seats (``ResultRevealed``) and, once settled, the
contract's medians (``BatchSettled``). The medians are recomputed here the way the contract does it
(:func:`weighted_median`) and compared with the settled ones. From this validator's journal, when
given: every component of every score it gave (:class:`oracle.daemon.work.Cell`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from oracle.daemon.journal import OracleJournal, entry_key
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market
from protocol.chain.models import BatchSettled, CommitteeDrawn, ResultRevealed, ScoresRevealed
from protocol.chain.rpc import translated


def weighted_median(scores: Sequence[int], weights: Sequence[int]) -> int:
    """The contract's stake-weighted median: the lowest score whose cumulative weight of scores
    ``<=`` it reaches half the total weight (``2 * below >= total``). ``scores`` non-empty."""
    if not scores or len(scores) != len(weights):
        raise ValueError("need as many weights as scores, at least one")
    total = sum(weights)
    for candidate in sorted(set(scores)):
        below = sum(w for s, w in zip(scores, weights, strict=True) if s <= candidate)
        if 2 * below >= total:
            return candidate
    return max(scores)


class VoterView(BaseModel):
    """One committee seat of a round: its validator, stake weight and revealed vector (or None)."""

    model_config = ConfigDict(frozen=True)

    seat: int
    validator: str
    weight: int
    scores: list[int] | None
    within_tolerance: bool | None
    """Every score it gave to a revealed node seat is within the job's tolerance of the median."""


class RoundView(BaseModel):
    model_config = ConfigDict(frozen=True)

    round: int
    voters: list[VoterView]
    medians: list[int] | None
    """Recomputed per cell (``seat * rows + row``) over the revealed vectors; None without any."""


class Explanation(BaseModel):
    """What ``explain`` prints (``--json`` prints this)."""

    model_config = ConfigDict(frozen=True)

    batch: int
    rows: int
    phase: str
    threshold: int
    tolerance: int
    node_seats: dict[int, str]
    """Revealed node seats -> node address."""
    rounds: list[RoundView]
    settled_medians: list[int] | None
    medians_match: bool | None
    mine: str | None
    my_cells: list[dict[str, Any]]
    """This validator's journaled cells of the last round it scored (every component)."""


def explain(
    chain: SynodContracts, batch_id: int, journal: OracleJournal | None, me: str | None
) -> Explanation:
    """Build the :class:`Explanation` of ``batch_id`` at the confirmed head (synchronous)."""
    market = Market(chain)
    head = chain.head()
    view = market.batch(batch_id, head)
    job = market.job(view.job_id, head)
    phase = market.phase(batch_id, head)
    ranges = {
        "from_block": chain.deployment.deploy_block,
        "to_block": head.number,
        "argument_filters": {"batchId": batch_id},
    }
    events = chain.market.events
    with translated(chain.errors, "eth_getLogs"):
        drawn = list(events.CommitteeDrawn.get_logs(**ranges))
        revealed = list(events.ScoresRevealed.get_logs(**ranges))
        results = list(events.ResultRevealed.get_logs(**ranges))
        settled = list(events.BatchSettled.get_logs(**ranges))

    def pos(entry: Any) -> tuple[int, int]:
        return int(entry["blockNumber"]), int(entry["logIndex"])

    node_seats = {
        ResultRevealed.from_abi(e["args"]).seat: ResultRevealed.from_abi(e["args"]).node for e in results
    }
    rows = view.rows
    tolerance = job.params.tolerance
    rounds: list[RoundView] = []
    draws = sorted(drawn, key=pos)
    for i, entry in enumerate(draws):
        draw = CommitteeDrawn.from_abi(entry["args"])
        end = pos(draws[i + 1]) if i + 1 < len(draws) else (10**18, 0)
        vectors: dict[int, bytes] = {}
        for r in sorted(revealed, key=pos):
            if pos(entry) < pos(r) < end:
                event = ScoresRevealed.from_abi(r["args"])
                vectors[event.seat] = bytes(event.scores)
        medians: list[int] | None = None
        if vectors:
            seats = sorted(vectors)
            weights = [draw.weights[s] for s in seats]
            medians = [
                weighted_median([vectors[s][c] for s in seats], weights)
                for c in range(len(vectors[seats[0]]))
            ]
        voters = []
        for seat, (validator, weight) in enumerate(zip(draw.validators, draw.weights, strict=True)):
            vector = vectors.get(seat)
            within = None
            if vector is not None and medians is not None:
                cells = [s * rows + r for s in node_seats for r in range(rows)]
                within = all(abs(vector[c] - medians[c]) <= tolerance for c in cells)
            voters.append(
                VoterView(
                    seat=seat,
                    validator=validator,
                    weight=weight,
                    scores=None if vector is None else list(vector),
                    within_tolerance=within,
                )
            )
        rounds.append(RoundView(round=draw.round, voters=voters, medians=medians))
    settled_medians = list(BatchSettled.from_abi(settled[-1]["args"]).medians) if settled else None
    match = None
    if settled_medians is not None and rounds and rounds[-1].medians is not None:
        cells = [s * rows + r for s in node_seats for r in range(rows)]
        match = all(settled_medians[c] == rounds[-1].medians[c] for c in cells)
    my_cells: list[dict[str, Any]] = []
    if journal is not None:
        for round_ in sorted({r.round for r in rounds}, reverse=True):
            record = journal.get_sync(entry_key(f"scored_r{round_}", batch_id))
            if record is not None:
                my_cells = list(record["cells"])
                break
    return Explanation(
        batch=batch_id,
        rows=rows,
        phase=phase.phase.name,
        threshold=job.params.threshold,
        tolerance=tolerance,
        node_seats=dict(sorted(node_seats.items())),
        rounds=rounds,
        settled_medians=settled_medians,
        medians_match=match,
        mine=me,
        my_cells=my_cells,
    )
