"""Python's batch commitments and hashes equal TaskMarket's views on random inputs (real Anvil, real
TaskMarket): random batch ids, nodes and validators, digest lists of any batch length, salts, score
vectors and rows."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.chain.contracts import SynodContracts
from protocol.commitments import encode_scores, result_commitment, rows_hash, score_commitment

pytestmark = pytest.mark.integration

batch_ids = st.integers(min_value=1, max_value=2**256 - 1)
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
words = st.binary(min_size=32, max_size=32)
digest_lists = st.lists(words, min_size=0, max_size=256)
chain_examples = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def score_vectors(draw: st.DrawFn) -> bytes:
    """A well-formed vector (seats x rows, each 0..100) or, one time in four, arbitrary bytes."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=600))
    rows = draw(st.integers(1, 40))
    seats = draw(st.integers(1, 16))
    matrix = draw(
        st.lists(st.lists(st.integers(0, 100), min_size=rows, max_size=rows), min_size=seats, max_size=seats)
    )
    return encode_scores(matrix, rows)


@chain_examples
@given(batch_id=batch_ids, node=addresses, digests=digest_lists, salt=words)
def test_result_commitment_matches_contract(
    chain: SynodContracts, batch_id: int, node: str, digests: list[bytes], salt: bytes
) -> None:
    fn = chain.market.functions.resultCommitment(batch_id, chain.w3.to_checksum_address(node), digests, salt)
    assert bytes(chain.read(fn, chain.head())) == result_commitment(batch_id, node, digests, salt)


@chain_examples
@given(batch_id=batch_ids, validator=addresses, scores=score_vectors(), salt=words)
def test_score_commitment_matches_contract(
    chain: SynodContracts, batch_id: int, validator: str, scores: bytes, salt: bytes
) -> None:
    checksummed = chain.w3.to_checksum_address(validator)
    fn = chain.market.functions.scoreCommitment(batch_id, checksummed, scores, salt)
    assert bytes(chain.read(fn, chain.head())) == score_commitment(batch_id, validator, scores, salt)


@chain_examples
@given(rows=st.lists(st.binary(max_size=300), min_size=0, max_size=64))
def test_rows_hash_matches_contract(chain: SynodContracts, rows: list[bytes]) -> None:
    fn = chain.market.functions.rowsHash(rows)
    assert bytes(chain.read(fn, chain.head())) == rows_hash(rows)
