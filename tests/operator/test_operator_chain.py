"""The operator's account operations on a real Anvil with the real contracts: connect refusals,
the idempotent register plan, unbond / withdraw, and rewards read from a real v2 batch's events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from protocol.canonical import digest
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import JobParams, Market, model_id
from protocol.chain.models import SlashReason
from protocol.chain.signer import anvil_dev_signer
from protocol.commitments import new_salt
from protocol.operator.account import OperatorAccount
from protocol.operator.config import OperatorRole, load_config
from protocol.operator.connect import OperatorChain, connect
from protocol.operator.errors import AccountStateError, StartRefused
from protocol.operator.keys import unlock
from protocol.operator.rewards import rewards_report
from scripts.devnet import DEMO_MODEL, Devnet, fund_and_register, run_batch
from tests.operator.fixtures import (
    NODE_INDEX,
    PASSWORD,
    TOKEN,
    VALIDATOR_INDEX,
    advance_time,
    chain,
    dev_keystore,
    devnet,
    fresh_chain,
    mint,
    write_config,
)

__all__ = ["chain", "devnet", "fresh_chain"]  # fixtures

pytestmark = pytest.mark.integration

P2P = "/ip4/127.0.0.1/tcp/4101"


def account_for(
    tmp_path: Path, devnet: Devnet, role: OperatorRole, index: int, **chain: object
) -> tuple[OperatorAccount, OperatorChain]:
    keystore = dev_keystore(tmp_path, index)
    models = ["gemma3:270m"] if role is OperatorRole.NODE else None
    path = write_config(tmp_path, devnet, role, keystore, models=models, **chain)
    op = connect(load_config(path, role, {}))
    address = anvil_dev_signer(index, 31337).address
    return OperatorAccount(op, address), op


def sender_for(op: OperatorChain, index: int, tmp_path: Path):  # type: ignore[no-untyped-def]
    return op.chain.sender(unlock(tmp_path / "keys" / f"{index}.json", SecretStr(PASSWORD)))


def test_connect_reads_the_token_unit(fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path) -> None:
    _, op = account_for(tmp_path, devnet, OperatorRole.NODE, NODE_INDEX)
    assert (op.units.decimals, op.units.symbol) == (18, "SYNDEV")
    assert op.deployment_path == devnet.deployments_file


def test_refuses_a_deployment_of_another_chain(devnet: Devnet, tmp_path: Path) -> None:
    raw = json.loads(devnet.deployments_file.read_text())
    other = tmp_path / "other-chain.json"
    other.write_text(json.dumps({**raw, "chainId": 5}))
    with pytest.raises(StartRefused) as info:
        account_for(tmp_path, devnet, OperatorRole.NODE, NODE_INDEX, deployment=other)
    message = str(info.value)
    assert "is for chain 5" in message and "serves chain 31337" in message and "\n" not in message


def test_refuses_an_unexpected_chain_id(devnet: Devnet, tmp_path: Path) -> None:
    with pytest.raises(StartRefused, match="serves chain 31337, but this config expects chain 1 "):
        account_for(tmp_path, devnet, OperatorRole.NODE, NODE_INDEX, chain_id=1)


def test_refuses_addresses_without_code(devnet: Devnet, tmp_path: Path) -> None:
    raw = json.loads(devnet.deployments_file.read_text())
    empty = "0x00000000000000000000000000000000000c0De0"  # checksummed
    raw["contracts"]["StakeRegistry"]["address"] = empty
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(raw))
    with pytest.raises(StartRefused, match=f"no contract code for StakeRegistry at {empty}"):
        account_for(tmp_path, devnet, OperatorRole.NODE, NODE_INDEX, deployment=stale)


def test_refuses_missing_abis(devnet: Devnet, tmp_path: Path) -> None:
    with pytest.raises(StartRefused, match=r"no ABI for DevnetToken.*chain\.artifacts_dir"):
        account_for(tmp_path, devnet, OperatorRole.NODE, NODE_INDEX, artifacts_dir=tmp_path / "empty")


def test_register_is_idempotent_and_sends_only_what_differs(
    fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path
) -> None:
    account, op = account_for(tmp_path, devnet, OperatorRole.NODE, NODE_INDEX)
    mint(fresh_chain, NODE_INDEX, 1_000 * TOKEN)
    sender = sender_for(op, NODE_INDEX, tmp_path)
    minimum = account.status().min_stake
    assert minimum == 100 * TOKEN

    with pytest.raises(
        AccountStateError,
        match=r"stakes at least 100 SYNDEV: --stake 99.999999999999999999 is "
        r"0.000000000000000001 SYNDEV short",
    ):
        account.plan_register(minimum - 1, ["gemma3:270m"], P2P)
    with pytest.raises(
        AccountStateError, match=r"holds 1000 SYNDEV, 0\.5 SYNDEV short of the 1000\.5 SYNDEV stake"
    ):
        account.plan_register(1_000 * TOKEN + TOKEN // 2, ["gemma3:270m"], P2P)

    plan = account.plan_register(minimum, ["gemma3:270m"], P2P)  # exactly the minimum
    assert [s.label for s in plan.steps] == ["approve", "register"]
    account.execute(plan, sender)
    st = account.status()
    assert (st.registered_as, st.stake, st.p2p_address) == ("node", minimum, P2P)
    assert [(m.name, m.id) for m in st.models] == [("gemma3:270m", "0x" + model_id(DEMO_MODEL).hex())]
    assert st.allowance == 0  # approved exactly the stake
    assert st.token_balance == 900 * TOKEN

    assert account.plan_register(minimum, ["gemma3:270m"], P2P).noop

    plan = account.plan_register(150 * TOKEN, ["gemma3:270m"], P2P)
    assert [s.label for s in plan.steps] == ["approve", "addStake"]
    account.execute(plan, sender)
    st = account.status()
    assert (st.stake, st.allowance, st.token_balance) == (150 * TOKEN, 0, 850 * TOKEN)

    # an allowance already large enough: no approve
    sender.transact(
        fresh_chain.token.functions.approve(fresh_chain.registry.address, 10 * TOKEN), label="approve"
    )
    plan = account.plan_register(160 * TOKEN, ["gemma3:270m", "qwen3:4b"], "/ip4/10.0.0.1/tcp/4101")
    assert [s.label for s in plan.steps] == ["addStake", "setModels", "setP2pAddress"]
    account.execute(plan, sender)
    st = account.status()
    assert st.stake == 160 * TOKEN and st.allowance == 0
    assert {m.name for m in st.models} == {"gemma3:270m", None}  # the config names only one of them
    assert len(st.models) == 2 and st.p2p_address == "/ip4/10.0.0.1/tcp/4101"
    assert account.plan_register(160 * TOKEN, ["qwen3:4b", "gemma3:270m"], "/ip4/10.0.0.1/tcp/4101").noop

    with pytest.raises(AccountStateError, match=r"stakes only grow on chain.*`synod node unbond`"):
        account.plan_register(159 * TOKEN, ["gemma3:270m"], P2P)


def test_one_role_per_address(fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path) -> None:
    node, op = account_for(tmp_path, devnet, OperatorRole.NODE, NODE_INDEX)
    mint(fresh_chain, NODE_INDEX, 200 * TOKEN)
    node.execute(node.plan_register(100 * TOKEN, ["gemma3:270m"], P2P), sender_for(op, NODE_INDEX, tmp_path))
    config = write_config(tmp_path, devnet, OperatorRole.VALIDATOR, tmp_path / "keys" / f"{NODE_INDEX}.json")
    validator = OperatorAccount(connect(load_config(config, OperatorRole.VALIDATOR, {})), node.address)
    with pytest.raises(
        AccountStateError, match=r"registered as a node; an address holds one role.*`synod node`"
    ):
        validator.plan_register(100 * TOKEN, [], P2P)
    with pytest.raises(AccountStateError, match="a validator serves no models"):
        validator.plan_register(100 * TOKEN, ["x"], P2P)


def test_unbond_then_withdraw_after_the_delay(
    fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path
) -> None:
    account, op = account_for(tmp_path, devnet, OperatorRole.VALIDATOR, VALIDATOR_INDEX)
    mint(fresh_chain, VALIDATOR_INDEX, 120 * TOKEN)
    sender = sender_for(op, VALIDATOR_INDEX, tmp_path)
    with pytest.raises(
        AccountStateError, match="is not registered as a validator: run `synod oracle register"
    ):
        account.unbond(sender)
    account.execute(account.plan_register(120 * TOKEN, [], P2P), sender)
    with pytest.raises(AccountStateError, match="is not unbonding: run `synod oracle unbond` first"):
        account.withdraw(sender)
    delay = int(fresh_chain.read(fresh_chain.registry.functions.unbondingDelay(), fresh_chain.head(0)))
    end, receipt = account.unbond(sender)
    started = int(fresh_chain.w3.eth.get_block(receipt.block_number)["timestamp"])
    assert end == started + delay
    st = account.status()
    assert st.unbonding and st.unbonding_end == end and not st.withdrawable
    with pytest.raises(AccountStateError, match=r"is unbonding .* run `synod oracle withdraw` then"):
        account.plan_register(130 * TOKEN, [], P2P)
    with pytest.raises(AccountStateError, match="already unbonding"):
        account.unbond(sender)
    with pytest.raises(AccountStateError, match=r"the unbonding delay ends at .* \(in (7d 0h|6d 23h)\)"):
        account.withdraw(sender)
    advance_time(fresh_chain, delay)
    assert account.status().withdrawable
    amount, _ = account.withdraw(sender)
    assert amount == 120 * TOKEN
    st = account.status()
    assert not st.registered and st.token_balance == 120 * TOKEN and st.stake == 0


def test_rewards_from_a_real_task(fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path) -> None:
    chain = fresh_chain
    actors, _ = fund_and_register(chain)
    params = JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=100 * TOKEN,
        batch_size=1,
        k=3,
        m=3,
        threshold=60,
        tolerance=10,
        junk_floor=0,
        validator_share_bps=2000,
        commit_duration=300,
        reveal_duration=300,
        score_commit_duration=300,
        score_reveal_duration=300,
    )
    posted = Market(chain).post_job(actors.requester, params, {"w": 1}, [{"row": 1}])
    (batch_id,) = posted.batch_ids

    # node 1 (seat 0) scores 90, node 2 (seat 1) scores 20 (rejected); node 3 withholds its reveal and is
    # slashed; the validator at committee seat 2 scores far from the others and gets no validator reward
    def score(_round: int, seat: int, _by_seat: object) -> list[list[int]]:
        return [[90], [20], [0]] if seat < 2 else [[0], [100], [0]]

    report = run_batch(
        chain,
        actors,
        batch_id,
        [[{"a": 1}], [{"a": 2}], [{"a": 3}]],
        score=score,
        withhold=frozenset({2}),
        claim=False,
    )
    fin = report.settled
    assert fin is not None and fin.scored
    assert report.seats == ("node1", "node2", "node3")
    decimals, symbol = 18, "SYNDEV"

    def rows(index: int, role: OperatorRole) -> list[tuple[str, int | None, int]]:
        address = anvil_dev_signer(index, 31337).address
        got = rewards_report(chain, address, role, decimals, symbol, log_range=7)  # many small getLogs ranges
        assert got.from_block == devnet_deploy_block(chain)
        return [(r.kind, r.batch, r.amount) for r in got.entries]

    assert fin.node_paid[0] > 0 and fin.node_paid[1] == 0
    assert rows(1, OperatorRole.NODE) == [("payout", batch_id, fin.node_paid[0])]
    assert rows(2, OperatorRole.NODE) == [("unpaid", batch_id, 0)]
    ((who, why, slash),) = report.slashed
    assert (who, why) == ("node3", SlashReason.NO_REVEAL) and slash > 0
    assert rows(3, OperatorRole.NODE) == [("slash", batch_id, slash)]

    # the slashed node is under-staked by exactly the slash; register at the minimum tops it up
    slashed, op = account_for(tmp_path, devnet, OperatorRole.NODE, 3)
    st = slashed.status()
    assert (st.stake, st.under_staked_by) == (st.min_stake - slash, slash)
    p2p = st.p2p_address
    assert p2p is not None
    plan = slashed.plan_register(st.min_stake, ["gemma3:270m"], p2p)
    assert [(s.label, s.detail) for s in plan.steps] == [
        ("approve", "let the registry pull 10 SYNDEV"),
        ("addStake", "add 10 SYNDEV (stake 100 SYNDEV)"),
    ]
    slashed.execute(plan, sender_for(op, 3, tmp_path))
    assert slashed.status().under_staked_by == 0
    seat_of = {name: seat for seat, name in enumerate(report.committees[-1])}
    agreed = fin.agreed_mask
    for i, index in enumerate((4, 5, 6), 1):
        seat = seat_of[f"validator{i}"]
        paid = (agreed >> seat) & 1
        expected = ("payout", batch_id, fin.validator_reward) if paid else ("unpaid", batch_id, 0)
        assert rows(index, OperatorRole.VALIDATOR) == [expected]
    assert sum((agreed >> s) & 1 for s in range(3)) == 2  # the outlier seat is the unpaid one

    # payouts reconcile with the claimable balance, and a claim shows up as a row
    node1 = actors.nodes[0]
    market = Market(chain)
    assert market.balance_of(node1.address, chain.head(0)) == fin.node_paid[0]
    claimed, _ = market.claim(node1)
    after = rewards_report(chain, node1.address, OperatorRole.NODE, decimals, symbol, log_range=5_000)
    assert [(r.kind, r.amount) for r in after.entries] == [("payout", claimed), ("claim", claimed)]
    assert (
        after.total("payout") - after.total("claim") == market.balance_of(node1.address, chain.head(0)) == 0
    )


def devnet_deploy_block(chain: SynodContracts) -> int:
    return chain.deployment.deploy_block


def test_withdraw_with_an_open_seat_says_why(
    fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path
) -> None:
    """A node holding a seat in an unsettled batch is told, in words, why it cannot withdraw yet
    (RegistrySeatsOpen), and withdraws once the batch has ended."""
    chain = fresh_chain
    actors, _ = fund_and_register(chain)
    market = Market(chain)
    params = JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=10 * TOKEN,
        batch_size=1,
        k=3,
        m=3,
        threshold=60,
        tolerance=10,
        junk_floor=0,
        validator_share_bps=2000,
        commit_duration=300,
        reveal_duration=300,
        score_commit_duration=300,
        score_reveal_duration=300,
    )
    (batch_id,) = market.post_job(actors.requester, params, {"w": 1}, [{"row": 1}]).batch_ids
    market.commit_result(actors.nodes[0], batch_id, [digest("never revealed")], new_salt())
    account, op = account_for(tmp_path, devnet, OperatorRole.NODE, 1)  # node1 of the devnet actors
    assert account.address == actors.nodes[0].address
    sender = sender_for(op, 1, tmp_path)
    account.unbond(sender)
    delay = int(chain.read(chain.registry.functions.unbondingDelay(), chain.head(0)))
    advance_time(chain, delay)
    assert account.status().withdrawable
    with pytest.raises(AccountStateError) as refused:
        account.withdraw(sender)
    assert str(refused.value) == (
        f"cannot withdraw yet: {account.address} holds 1 seat(s) in batches that are not settled (the stake "
        "stays locked until they settle or are refunded, so a missed reveal can still be slashed); run "
        "`synod node withdraw` again after they end"
    )
    # the batch ends (no reveal: refunded, the node slashed); then the rest of the stake comes out
    stake = account.status().stake
    outcome = market.settle(actors.requester, batch_id)
    assert outcome.refunded is not None
    ((who, why, slash),) = [(e.account, e.reason, e.amount) for e in outcome.slashed]
    assert (who, why) == (account.address, SlashReason.NO_REVEAL) and slash > 0
    amount, _ = account.withdraw(sender)
    assert amount == stake - slash
    assert not account.status().registered
