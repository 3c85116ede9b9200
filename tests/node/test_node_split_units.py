"""The work split's pure parts (node/split.py) and its settings: the rotation every node computes
alike, owners vs backups at the exact k boundary, the backup's start time, the exact spread over
consecutive batches, and the ``[run.split]`` validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from node.config import NodeRunSettings
from node.split import backup_start, plan, rank_of, split_seed
from protocol.canonical import keccak256
from protocol.chain.signer import anvil_dev_signer

pytestmark = pytest.mark.unit

NODES = [anvil_dev_signer(i, 31337).address for i in (1, 2, 3, 8)]


SEED = split_seed(1, keccak256(b"workflow"))


def test_the_rank_rotates_over_the_roster_in_the_jobs_order() -> None:
    ordered = sorted((a.lower() for a in NODES), key=lambda a: keccak256(SEED + bytes.fromhex(a[2:])))
    for batch in range(0, 9):
        for position, node in enumerate(ordered):
            assert rank_of(batch, node, NODES, SEED) == ((position - batch) % 4, 4)
    assert rank_of(5, NODES[0].upper().replace("0X", "0x"), NODES, SEED) == rank_of(5, NODES[0], NODES, SEED)
    # another job (id or workflow) draws another order for the same roster
    orders = {
        tuple(sorted(NODES, key=lambda n: rank_of(0, n, NODES, split_seed(j, keccak256(b"workflow")))[0]))
        for j in range(1, 30)
    }
    assert len(orders) > 5
    assert split_seed(1, keccak256(b"workflow")) != split_seed(1, keccak256(b"workflow2"))


def test_every_node_computes_the_same_ranking() -> None:
    for batch in range(1, 50):
        ranks = sorted(rank_of(batch, n, NODES, SEED) for n in NODES)
        assert ranks == [(0, 4), (1, 4), (2, 4), (3, 4)], "a permutation: one node per rank"
        # a node missing from the roster (e.g. registered after the roster was read) ranks itself in
        assert rank_of(batch, NODES[0], NODES[1:], SEED)[1] == 4


def test_owners_are_the_k_lowest_ranks_and_backups_get_a_start_time() -> None:
    batch = 7
    by_rank = sorted(NODES, key=lambda n: rank_of(batch, n, NODES, SEED)[0])
    common = {
        "commit_deadline": 1000.0,
        "commit_duration": 400.0,
        "delay_fraction": 0.5,
        "estimated_s": 10.0,
        "safety": 2.0,
        "margin_s": 5.0,
    }
    third = plan(batch, by_rank[2], NODES, SEED, 3, **common)
    fourth = plan(batch, by_rank[3], NODES, SEED, 3, **common)
    assert third.owner and third.rank == 2 and third.start_at == 0.0
    assert not fourth.owner and fourth.rank == 3 and fourth.size == 4
    assert fourth.start_at == 600.0 + 0.5 * 400.0
    assert plan(batch, by_rank[3], NODES, SEED, 4, **common).owner


def test_a_backup_starts_at_the_fraction_or_when_its_estimate_barely_fits() -> None:
    # window 600..1000: the fraction says 800; an estimate of 50 s x 2 + 5 s says 895 -> 800
    assert backup_start(1000, 400, 0.5, 50.0, 2.0, 5.0) == 800.0
    # an estimate of 150 s x 2 + 5 s fits only if started by 695: earlier than the fraction
    assert backup_start(1000, 400, 0.5, 150.0, 2.0, 5.0) == 695.0
    # at the exact crossing both agree
    assert backup_start(1000, 400, 0.5, 97.5, 2.0, 5.0) == 800.0
    assert backup_start(1000, 400, 0.0, 1.0, 1.0, 0.0) == 600.0, "delay 0: at once"


def test_four_nodes_own_exactly_three_of_every_four_consecutive_batches() -> None:
    for first in (1, 2, 7, 1000):
        owned = dict.fromkeys(NODES, 0)
        for batch in range(first, first + 4):
            for node in NODES:
                owned[node] += rank_of(batch, node, NODES, SEED)[0] < 3
        assert sorted(owned.values()) == [3, 3, 3, 3]
    # the demo's 6 batches: every node owns 4 or 5 of them (18 owner seats)
    six = [sum(rank_of(b, n, NODES, SEED)[0] < 3 for b in range(1, 7)) for n in NODES]
    assert sum(six) == 18 and set(six) <= {4, 5}


def test_the_split_settings_are_validated() -> None:
    settings = NodeRunSettings.model_validate({})
    assert settings.split.enabled and settings.split.backup_delay == 0.5 and settings.split.safety == 2.0
    assert settings.workflow_process
    with pytest.raises(ValidationError, match=r"split\.backup_delay"):
        NodeRunSettings.model_validate({"split": {"backup_delay": 1.01}})
    with pytest.raises(ValidationError, match=r"split\.safety"):
        NodeRunSettings.model_validate({"split": {"safety": 0.99}})
    with pytest.raises(ValidationError, match=r"split\.delay"):
        NodeRunSettings.model_validate({"split": {"delay": 0.5}})
    assert NodeRunSettings.model_validate({"split": {"backup_delay": 1.0}}).split.backup_delay == 1.0


def test_a_sybil_cannot_grind_addresses_to_own_every_seat_of_a_batch() -> None:
    """Review (rev5): the rotation made a batch's k owners k *consecutive* addresses in sort
    order, so k registrations ground to sort together (here 0x00..01-03: a 2-byte prefix is
    65,536 tries) owned all k seats of one batch in every n, certainly: honest nodes wait as
    backups, the Sybil commits k agreeing results at once and the backups skip (seats filled),
    defeating the agreement among independent nodes that validation relies on. With the order
    drawn per job (keccak of the job id, its workflow hash and the address) the same addresses
    are adjacent only by chance: about n * k! (n-k)! / n! of the jobs (1 in 7 for n = 8, k = 3)."""
    honest = [anvil_dev_signer(i, 31337).address for i in range(1, 6)]
    sybil = ["0x" + "0" * 39 + str(i) for i in (1, 2, 3)]
    roster = honest + sybil
    captured = batches = 0
    for job in range(1, 201):
        seed = split_seed(job, keccak256(f"workflow {job % 3}".encode()))
        for batch in range(job * 8, job * 8 + 8):  # one job of 8 batches
            owners = {a.lower() for a in roster if rank_of(batch, a, roster, seed)[0] < 3}
            captured += owners == {a.lower() for a in sybil}
            batches += 1
    assert batches == 1600
    # before: exactly 1 of every 8 batches (200); a per-job order: about 1/7 of that (~29)
    assert captured < 60, f"the Sybil owned every seat of {captured} of {batches} batches"
    # and each node still owns exactly k of a job's n consecutive batches
    seed = split_seed(7, keccak256(b"w"))
    for first in (56, 57, 60):
        owned = [sum(rank_of(b, n, roster, seed)[0] < 3 for b in range(first, first + 8)) for n in roster]
        assert owned == [3] * 8
