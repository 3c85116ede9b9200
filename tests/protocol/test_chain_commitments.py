"""Python's commitments and digests equal the contract's, on random inputs (real Anvil, real TaskMarket)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.chain.contracts import SynodContracts
from protocol.commitments import result_commitment, score_commitment

pytestmark = pytest.mark.integration

task_ids = st.integers(min_value=1, max_value=2**256 - 1)
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
words = st.binary(min_size=32, max_size=32)
score_vectors = st.lists(st.integers(min_value=0, max_value=100), max_size=16)
chain_examples = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@chain_examples
@given(task_id=task_ids, node=addresses, result_digest=words, salt=words)
def test_result_commitment_matches_contract(
    chain: SynodContracts, task_id: int, node: str, result_digest: bytes, salt: bytes
) -> None:
    block = chain.head()
    fn = chain.market.functions.resultCommitment(
        task_id, chain.w3.to_checksum_address(node), result_digest, salt
    )
    assert bytes(chain.read(fn, block)) == result_commitment(task_id, node, result_digest, salt)


@chain_examples
@given(task_id=task_ids, validator=addresses, scores=score_vectors, salt=words)
def test_score_commitment_matches_contract(
    chain: SynodContracts, task_id: int, validator: str, scores: list[int], salt: bytes
) -> None:
    block = chain.head()
    checksummed = chain.w3.to_checksum_address(validator)
    fn = chain.market.functions.scoreCommitment(task_id, checksummed, scores, salt)
    assert bytes(chain.read(fn, block)) == score_commitment(task_id, validator, scores, salt)
