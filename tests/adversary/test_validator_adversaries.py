"""Dishonest committee members (issue 9, section 5) beside two real validator daemons.

Validator accounts 4 and 5 are real ``synod oracle run`` processes; account 6 is the scripted
adversary. Each batch holds two honest nodes and a garbage node, so that scoring everything 100
shows. Shared checks in tests/adversary/scenario.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.chain.models import Phase, SlashReason
from tests.adversary.actors import ValidatorBehaviour
from tests.adversary.scenario import (
    H,
    Network,
    V,
    make_world,
    open_network,
    play,
    settle_and_check,
)

pytestmark = [pytest.mark.adversary, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with open_network(tmp_path_factory.mktemp("validator-adversaries"), daemon_indices=(4, 5)) as running:
        yield running


# validator cases: two honest nodes and a garbage node, so that scoring everything 100 shows
GARBAGE_BATCH = (H.HONEST, H.HONEST, H.GARBAGE)


def test_validator_scoring_everything_100_is_outside_tolerance_and_unpaid(
    net: Network, tmp_path: Path
) -> None:
    world = make_world(net, GARBAGE_BATCH, (V.DAEMON, V.DAEMON, V.ALL_100))
    run = play(world, tmp_path)
    want = settle_and_check(world, run)
    seat = next(s for s, m in enumerate(run.committee) if m.behaviour is V.ALL_100)
    assert not want.agreed_mask >> seat & 1
    assert want.validator_reward > 0


@pytest.mark.parametrize("copy", [V.COPY_REVEALED, V.COPY_COMMITMENT], ids=["after-reveal", "commitment"])
def test_validator_copying_a_score_vector_is_prevented(
    net: Network, tmp_path: Path, copy: ValidatorBehaviour
) -> None:
    world = make_world(net, GARBAGE_BATCH, (V.DAEMON, V.DAEMON, copy))
    run = play(world, tmp_path)
    copier = next(m for m in run.committee if m.behaviour is copy)
    assert copier.seen_at_commit == 0  # no score vector is public while commits are open
    assert not copier.revealed
    (refused,) = copier.refused
    if copy is V.COPY_REVEALED:
        # the first vector became public only once the commit window had closed (by then the
        # daemons, having revealed every committed seat, may even have settled the batch)
        assert refused.name == "BatchWrongPhase"
        assert refused.args["expected"] == Phase.SCORE_COMMITTING
        assert refused.args["actual"] in (Phase.SCORE_REVEALING, Phase.SETTLED)
    else:
        # the copied commitment binds the member that made it: its vector and salt do not open it
        assert refused.name == "BatchCommitmentMismatch"
    settle_and_check(world, run)


def test_validator_that_never_reveals_is_slashed(net: Network, tmp_path: Path) -> None:
    world = make_world(net, GARBAGE_BATCH, (V.DAEMON, V.DAEMON, V.NO_REVEAL))
    run = play(world, tmp_path)
    silent = next(m for m in run.committee if m.behaviour is V.NO_REVEAL)
    assert silent.vector is not None and not silent.revealed
    settle_and_check(world, run)
    assert (silent.sender.address, SlashReason.NO_SCORE_REVEAL, world.min_validator_stake // 10) in {
        (e.account, e.reason, e.amount) for e in run.settlement.slashed
    }
