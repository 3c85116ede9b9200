"""Dishonest nodes (issue 9, section 5) against three real validator daemons (``synod oracle run``).

Each case: two honest nodes and one adversary in a batch of two rows, the committee the three daemons
(tests/adversary/scenario.py has the shared checks: settlement by the rules, slashes, conservation
over every account, honest participants paid in full).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.chain.models import SlashReason
from tests.adversary.scenario import (
    PARAMS,
    H,
    Network,
    V,
    daemon_logs,
    make_world,
    open_network,
    play,
    settle_and_check,
)

pytestmark = [pytest.mark.adversary, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with open_network(tmp_path_factory.mktemp("node-adversaries"), daemon_indices=(4, 5, 6)) as running:
        yield running


HONEST_COMMITTEE = (V.DAEMON, V.DAEMON, V.DAEMON)


def test_node_copying_a_commitment_cannot_reveal_it(net: Network, tmp_path: Path) -> None:
    world = make_world(net, (H.HONEST, H.HONEST, H.COPY_COMMITMENT), HONEST_COMMITTEE)
    run = play(world, tmp_path)
    copier = next(n for n in run.nodes if n.behaviour is H.COPY_COMMITMENT)
    victim = run.nodes[0]
    assert copier.seat is not None and not copier.revealed
    # it did hold a seat with the very same commitment, and revealed the victim's digests and salt
    refused = copier.reveal_refused
    assert refused is not None and refused.name == "BatchCommitmentMismatch"
    assert refused.args["batchId"] == run.batch_id
    assert refused.args["revealed"] != refused.args["committed"]  # the commitment binds the committer
    assert victim.revealed
    settle_and_check(world, run)


def test_garbage_reveal_is_scored_zero_and_not_paid(net: Network, tmp_path: Path) -> None:
    world = make_world(net, (H.HONEST, H.HONEST, H.GARBAGE), HONEST_COMMITTEE)
    run = play(world, tmp_path)
    seat = next(s for s, n in enumerate(run.nodes) if n.behaviour is H.GARBAGE)
    # every daemon refused the bytes after fetching them (they hash right but are no envelope)
    for log in daemon_logs(net):
        assert log.count(f"result_refused batch={run.batch_id} seat={seat}") == len(run.rows)
    want = settle_and_check(world, run)
    assert want.node_paid[seat] == 0 and seat in want.junk


def test_reveal_without_serving_scores_zero_and_validators_are_not_punished(
    net: Network, tmp_path: Path
) -> None:
    world = make_world(net, (H.HONEST, H.NO_SERVE, H.HONEST), HONEST_COMMITTEE)
    run = play(world, tmp_path)
    seat = next(s for s, n in enumerate(run.nodes) if n.behaviour is H.NO_SERVE)
    assert run.nodes[seat].revealed
    # every daemon asked for the bytes and got nothing
    for log in daemon_logs(net):
        assert log.count(f"fetch_failed batch={run.batch_id} seat={seat}") == len(run.rows)
    want = settle_and_check(world, run)
    assert want.node_paid[seat] == 0
    assert want.agreed_mask == 0b111  # every member scored it 0 and was paid


def test_node_that_never_reveals_is_slashed(net: Network, tmp_path: Path) -> None:
    world = make_world(net, (H.NO_REVEAL, H.HONEST, H.HONEST), HONEST_COMMITTEE)
    run = play(world, tmp_path)
    silent = next(n for n in run.nodes if n.behaviour is H.NO_REVEAL)
    want = settle_and_check(world, run)
    assert (silent.sender.address, SlashReason.NO_REVEAL, world.min_node_stake // 10) in {
        (e.account, e.reason, e.amount) for e in run.settlement.slashed
    }
    assert want.node_paid[run.nodes.index(silent)] == 0


def test_off_topic_answers_are_rejected_by_the_pipeline_and_not_paid(net: Network, tmp_path: Path) -> None:
    world = make_world(net, (H.HONEST, H.OFF_TOPIC, H.HONEST), HONEST_COMMITTEE)
    run = play(world, tmp_path)
    seat = next(s for s, n in enumerate(run.nodes) if n.behaviour is H.OFF_TOPIC)
    want = settle_and_check(world, run)
    rows = len(run.rows)
    assert want.node_paid[seat] == 0
    assert max(want.medians[seat * rows : (seat + 1) * rows]) < PARAMS.threshold
