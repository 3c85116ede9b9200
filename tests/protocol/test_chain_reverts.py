"""Contract custom errors come back as the right Python exception, with the right argument values,
before any gas is spent (the sender simulates first); and the Python splitter keeps jobs inside the
contract's gas-safe size."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.canonical import canonical_bytes, digest
from protocol.chain.contracts import SynodContracts
from protocol.chain.errors import ChainError, ContractRevert
from protocol.chain.market import Market, PartialPostError, model_id
from protocol.chain.models import CommitteeDrawn, JobParams, Phase
from protocol.chain.registry import Registry
from protocol.chain.signer import anvil_dev_signer
from protocol.commitments import MAX_BATCH_SIZE, MAX_RESULTS, encode_scores, new_salt, result_commitment
from protocol.errors import SynodError
from protocol.types import BatchId
from scripts.devnet import DEMO_MODEL, Actors, advance_past, fund_and_register, mine_to

pytestmark = pytest.mark.integration

TOKEN = 10**18
WORKFLOW = {"w": 1}


def params(**changes: Any) -> JobParams:
    base = JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=10 * TOKEN,
        batch_size=2,
        k=2,
        m=3,
        threshold=50,
        tolerance=20,
        junk_floor=10,
        validator_share_bps=1000,
        commit_duration=120,
        reveal_duration=120,
        score_commit_duration=120,
        score_reveal_duration=120,
    )
    return base.model_copy(update=changes)


@pytest.fixture
def actors(fresh_chain: SynodContracts) -> Actors:
    return fund_and_register(fresh_chain)[0]


def _nonce_and_eth(chain: SynodContracts, address: str) -> tuple[int, int]:
    return chain.w3.eth.get_transaction_count(address), chain.w3.eth.get_balance(address)  # type: ignore[arg-type]


def _constant(chain: SynodContracts, name: str) -> int:
    return int(chain.read(chain.market.functions[name](), chain.head(0)))


def test_python_limits_are_the_contracts(chain: SynodContracts) -> None:
    assert _constant(chain, "MAX_BATCH_SIZE") == MAX_BATCH_SIZE
    assert _constant(chain, "MAX_RESULTS") == MAX_RESULTS
    limits = Market(chain).limits(chain.head(0))
    assert (limits.max_rows, limits.max_batches) == (1024, 128)  # docs/contracts.md, "Gas-safe post"


def test_zero_bounty_raises_before_sending(fresh_chain: SynodContracts, actors: Actors) -> None:
    chain, requester = fresh_chain, actors.requester
    before = _nonce_and_eth(chain, requester.address)
    with pytest.raises(chain.errors.JobZeroBounty) as info:
        Market(chain).post_job(requester, params(bounty_per_task=0), WORKFLOW, [{"row": 1}])
    exc = info.value
    assert isinstance(exc, ContractRevert) and isinstance(exc, ChainError) and isinstance(exc, SynodError)
    assert exc.name == "JobZeroBounty" and exc.args == {}
    assert exc.function == "postJob"
    assert _nonce_and_eth(chain, requester.address) == before  # nothing sent, no gas spent


@pytest.mark.parametrize(
    ("change", "error", "expected"),
    [
        ({"batch_size": 0}, "JobBatchSizeOutOfRange", {"batchSize": 0, "maximum": "MAX_BATCH_SIZE"}),
        ({"batch_size": 257}, "JobBatchSizeOutOfRange", {"batchSize": 257, "maximum": "MAX_BATCH_SIZE"}),
        ({"k": 0}, "JobResultCountOutOfRange", {"k": 0, "maximum": "MAX_RESULTS"}),
        ({"k": 17}, "JobResultCountOutOfRange", {"k": 17, "maximum": "MAX_RESULTS"}),
        ({"m": 0}, "JobCommitteeSizeOutOfRange", {"m": 0, "maximum": "MAX_COMMITTEE"}),
        ({"m": 17}, "JobCommitteeSizeOutOfRange", {"m": 17, "maximum": "MAX_COMMITTEE"}),
        (
            {"batch_size": 256, "k": 4, "m": 5},
            "JobBatchTooLarge",
            {"cells": 256 * 4 * 5, "maximum": "MAX_SCORE_CELLS"},
        ),
        ({"threshold": 101}, "JobParamOutOfRange", {"value": 101, "maximum": 100}),
        ({"tolerance": 101}, "JobParamOutOfRange", {"value": 101, "maximum": 100}),
        ({"junk_floor": 51}, "JobParamOutOfRange", {"value": 51, "maximum": 50}),  # above threshold 50
        ({"validator_share_bps": 10_001}, "JobParamOutOfRange", {"value": 10_001, "maximum": 10_000}),
        (
            {"commit_duration": 29},
            "JobDurationOutOfRange",
            {"duration": 29, "minimum": "minPhaseDuration", "maximum": "MAX_PHASE_DURATION"},
        ),
        (
            {"score_reveal_duration": 30 * 86_400 + 1},
            "JobDurationOutOfRange",
            {"duration": 30 * 86_400 + 1, "minimum": "minPhaseDuration", "maximum": "MAX_PHASE_DURATION"},
        ),
        ({"model": b"\x00" * 32}, "JobZeroModel", {}),
    ],
)
def test_out_of_range_params(
    fresh_chain: SynodContracts,
    actors: Actors,
    change: dict[str, Any],
    error: str,
    expected: dict[str, int | str],
) -> None:
    """Each bad parameter reverts with its error; limits named by string are read from the contract."""
    want = {key: _constant(fresh_chain, v) if isinstance(v, str) else v for key, v in expected.items()}
    with pytest.raises(fresh_chain.errors[error]) as info:
        Market(fresh_chain).post_job(actors.requester, params(**change), WORKFLOW, [{"row": 1}])
    assert info.value.args == want


def test_minimum_phase_is_accepted_at_the_exact_bound(fresh_chain: SynodContracts, actors: Actors) -> None:
    minimum = _constant(fresh_chain, "minPhaseDuration")
    assert minimum == 30  # the deployer's default
    posted = Market(fresh_chain).post_job(
        actors.requester, params(commit_duration=minimum), WORKFLOW, [{"r": 1}]
    )
    assert len(posted.batches) == 1


def test_a_job_too_large_for_one_post_is_refused_and_split_by_python(
    fresh_chain: SynodContracts, actors: Actors
) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    job = params(batch_size=256, bounty_per_task=1)
    rows = [{"n": n} for n in range(1025)]
    raw = [canonical_bytes(r) for r in rows]
    with pytest.raises(chain.errors.JobTooLarge) as info:  # posted as one call, bypassing the splitter
        actors.requester.transact(chain.market.functions.postJob(job.to_abi(), b"{}", raw))
    assert info.value.args == {"rows": 1025, "batches": 5, "maxRows": 1024, "maxBatches": 128}
    posted = market.post_job(actors.requester, job, WORKFLOW, rows)
    assert [j.row_count for j in posted.jobs] == [1024, 1]
    assert [b.rows for b in posted.batches] == [256, 256, 256, 256, 1]
    assert [b.dataset_row for b in posted.batches] == [0, 256, 512, 768, 1024]
    assert len(set(posted.job_ids)) == 2 and len(posted.receipts) == 2  # allowance was already there
    assert posted.task(1024).batch_id == posted.batches[-1].batch_id
    with pytest.raises(chain.errors.JobNoRows):
        market.post_job(actors.requester, job, WORKFLOW, [])


def test_node_phase_errors(fresh_chain: SynodContracts, actors: Actors) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    (batch,) = market.post_job(actors.requester, params(), WORKFLOW, [{"row": 2}, {"row": 3}]).batches
    batch_id = batch.batch_id
    node1, node2, node3 = actors.nodes
    digests, salt = [digest({"a": 1}), digest({"a": 2})], new_salt()

    with pytest.raises(chain.errors.BatchWrongPhase) as phase_info:  # revealing while Committing
        market.reveal_result(node1, batch_id, 0, digests, salt)
    assert phase_info.value.args == {
        "batchId": batch_id,
        "expected": Phase.REVEALING,
        "actual": Phase.COMMITTING,
    }
    with pytest.raises(chain.errors.BatchNotFound) as missing:
        market.commit_result(node1, BatchId(batch_id + 1), digests, salt)
    assert missing.value.args == {"batchId": batch_id + 1}

    seat, _ = market.commit_result(node1, batch_id, digests, salt)
    assert seat == 0
    with pytest.raises(chain.errors.BatchAlreadyCommitted) as dup:
        market.commit_result(node1, batch_id, digests, salt)
    assert dup.value.args == {"batchId": batch_id, "node": node1.address}
    market.commit_result(node2, batch_id, digests, new_salt())  # k = 2: commits close
    with pytest.raises(chain.errors.BatchSeatsFull) as full:
        market.commit_result(node3, batch_id, digests, new_salt())
    assert full.value.args == {"batchId": batch_id, "k": 2}

    with pytest.raises(chain.errors.BatchDigestCountMismatch) as count:
        market.reveal_result(node1, batch_id, seat, digests[:1], salt)
    assert count.value.args == {"batchId": batch_id, "expected": 2, "actual": 1}
    with pytest.raises(chain.errors.BatchNotNodeSeat) as not_seat:
        market.reveal_result(node1, batch_id, 2, digests, salt)
    assert not_seat.value.args == {"batchId": batch_id, "seat": 2, "caller": node1.address}
    swapped = digests[::-1]
    with pytest.raises(chain.errors.BatchCommitmentMismatch) as mismatch:
        market.reveal_result(node1, batch_id, seat, swapped, salt)
    args = mismatch.value.args
    low224 = (1 << 224) - 1
    assert args["batchId"] == batch_id
    assert args["revealed"] == result_commitment(batch_id, node1.address, swapped, salt)
    assert (
        int.from_bytes(args["committed"], "big")
        == int.from_bytes(result_commitment(batch_id, node1.address, digests, salt), "big") & low224
    )  # the market keeps the low 224 bits (the node id sits above them)
    with pytest.raises(chain.errors.BatchCommitmentMismatch):  # node2 cannot reveal node1's seat
        market.reveal_result(node2, batch_id, seat, digests, salt)
    market.reveal_result(node1, batch_id, seat, digests, salt)
    with pytest.raises(chain.errors.BatchAlreadyRevealed) as again:
        market.reveal_result(node1, batch_id, seat, digests, salt)
    assert again.value.args == {"batchId": batch_id, "seat": seat}


def _to_committee(chain: SynodContracts, actors: Actors, rows: int = 2) -> tuple[BatchId, CommitteeDrawn]:
    """Post one batch, let two nodes commit and reveal, draw the committee."""
    market = Market(chain)
    (batch,) = market.post_job(actors.requester, params(), WORKFLOW, [{"r": i} for i in range(rows)]).batches
    digests = [digest({"row": i}) for i in range(rows)]
    salts = [new_salt(), new_salt()]
    for node, salt in zip(actors.nodes[:2], salts, strict=True):
        market.commit_result(node, batch.batch_id, digests, salt)
    for seat, (node, salt) in enumerate(zip(actors.nodes[:2], salts, strict=True)):
        market.reveal_result(node, batch.batch_id, seat, digests, salt)
    view = market.batch(batch.batch_id, chain.head(0))
    assert view.phase is Phase.DRAWING and view.seed_block > chain.head(0).number
    with pytest.raises(chain.errors.BatchSeedNotReady) as early:
        market.draw_committee(actors.requester, batch.batch_id)
    assert early.value.args == {
        "batchId": batch.batch_id,
        "seedBlock": view.seed_block,
        "blockNumber": chain.head(0).number + 1,
    }
    assert not market.draw_ready(view, chain.head(0))
    mine_to(chain, view.seed_block + 1)
    assert market.draw_ready(view, chain.head(0))
    drawn, _ = market.draw_committee(actors.requester, batch.batch_id)
    assert drawn is not None
    return batch.batch_id, drawn


def test_committee_errors(fresh_chain: SynodContracts, actors: Actors) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    batch_id, drawn = _to_committee(chain, actors)
    seated = {v.address: v for v in actors.validators}
    first = seated[drawn.validators[0]]
    good = encode_scores([[80, 70], [60, 50]], 2)
    salt = new_salt()
    with pytest.raises(chain.errors.BatchNotCommitteeSeat) as wrong_seat:
        market.commit_scores(actors.nodes[0], batch_id, 0, good, salt)
    assert wrong_seat.value.args == {"batchId": batch_id, "seat": 0, "caller": actors.nodes[0].address}
    with pytest.raises(chain.errors.BatchWrongPhase):  # no reveal before the commits close
        market.reveal_scores(first, batch_id, 0, good, salt)
    market.commit_scores(first, batch_id, 0, good, salt)
    with pytest.raises(chain.errors.BatchScoresAlreadyCommitted) as twice:
        market.commit_scores(first, batch_id, 0, good, salt)
    assert twice.value.args == {"batchId": batch_id, "seat": 0}

    assert len(drawn.validators) == 3  # m = 3, three active validators
    third = seated[drawn.validators[2]]
    vectors = {0: good, 2: encode_scores([[81, 71], [61, 51]], 2)}
    market.commit_scores(third, batch_id, 2, vectors[2], salt)  # seat 1 never commits
    advance_past(chain, market.phase(batch_id, chain.head(0)).deadline)
    with pytest.raises(chain.errors.BatchScoreCountMismatch) as short:
        market.reveal_scores(first, batch_id, 0, good[:3], salt)
    assert short.value.args == {"batchId": batch_id, "expected": 4, "actual": 3}
    with pytest.raises(chain.errors.BatchScoreOutOfRange) as high:
        market.reveal_scores(first, batch_id, 0, bytes([80, 101, 0, 0]), salt)
    assert high.value.args == {"batchId": batch_id, "position": 1, "score": 101}
    with pytest.raises(chain.errors.BatchScoresNotCommitted) as never:
        market.reveal_scores(seated[drawn.validators[1]], batch_id, 1, good, salt)
    assert never.value.args == {"batchId": batch_id, "seat": 1}
    market.reveal_scores(first, batch_id, 0, good, salt)
    with pytest.raises(chain.errors.BatchScoresAlreadyRevealed):
        market.reveal_scores(first, batch_id, 0, good, salt)
    market.reveal_scores(third, batch_id, 2, vectors[2], salt)

    revealed = market.revealed_score_vectors(batch_id, 0, chain.head(0))
    assert revealed == vectors
    ordered = market.settle_vectors(batch_id, revealed, chain.head(0))
    assert ordered == [vectors[s] for s in sorted(vectors)]
    with pytest.raises(ChainError, match="does not match its seal"):
        market.settle_vectors(batch_id, {**revealed, 0: bytes([1, 2, 3, 4])}, chain.head(0))
    tampered = [bytes([1, 2, 3, 4]), *ordered[1:]]
    with pytest.raises(chain.errors.BatchScoreVectorMismatch) as bad_vector:
        actors.requester.transact(chain.market.functions.settle(batch_id, tampered))
    assert bad_vector.value.args["seat"] == 0
    with pytest.raises(chain.errors.BatchScoreVectorCountMismatch) as bad_count:
        actors.requester.transact(chain.market.functions.settle(batch_id, ordered[:-1]))
    assert bad_count.value.args == {"batchId": batch_id, "expected": len(ordered), "actual": len(ordered) - 1}


def test_registry_errors_bubble_up_decoded(fresh_chain: SynodContracts, actors: Actors) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    (batch,) = market.post_job(actors.requester, params(), WORKFLOW, [{"row": 3}]).batches
    stranger = chain.sender(anvil_dev_signer(9, chain.chain_id))
    with pytest.raises(chain.errors.RegistryNotRegistered) as info:
        market.commit_result(stranger, batch.batch_id, [digest("x")], new_salt())
    assert info.value.args == {"account": stranger.address}


def test_token_and_claim_errors(fresh_chain: SynodContracts, actors: Actors) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    stranger = chain.sender(anvil_dev_signer(9, chain.chain_id))
    with pytest.raises(chain.errors.MarketNothingToClaim) as nothing:
        market.claim(stranger)
    assert nothing.value.args == {"account": stranger.address}
    # no tokens and no allowance: the ERC-20's own custom error, decoded from the token's ABI
    post = chain.market.functions.postJob(params().to_abi(), b"{}", [b"{}"])
    with pytest.raises(ContractRevert) as info:
        stranger.transact(post)
    assert info.value.name in {"ERC20InsufficientAllowance", "ERC20InsufficientBalance"}
    assert info.value.args["spender" if "Allowance" in info.value.name else "sender"] in {
        chain.market.address,
        stranger.address,
    }


def test_a_split_job_that_fails_midway_reports_what_was_posted(
    fresh_chain: SynodContracts, actors: Actors
) -> None:
    chain, market = fresh_chain, Market(fresh_chain)
    poor = chain.sender(anvil_dev_signer(9, chain.chain_id))
    Registry(chain).mint(poor, poor.address, 1024)  # enough for the first post only
    job = params(batch_size=256, bounty_per_task=1)
    with pytest.raises(PartialPostError) as info:
        market.post_job(poor, job, WORKFLOW, [{"n": n} for n in range(1025)])
    posted = info.value.posted
    assert [b.rows for b in posted.batches] == [256] * 4 and len(posted.jobs) == 1
    assert [r.label for r in posted.receipts] == ["approve", "postJob[1/2]"]
    cause = info.value.__cause__
    assert isinstance(cause, ContractRevert) and cause.name == "ERC20InsufficientBalance"
    block = chain.head(0)
    assert all(market.phase(b, block).phase is Phase.COMMITTING for b in posted.batch_ids)
    assert Registry(chain).token_balance(poor.address, block) == 0
