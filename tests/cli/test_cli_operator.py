"""``synod keys``, ``synod node`` and ``synod oracle`` as an operator runs them: the real command in
a subprocess (cwd a temporary directory, never the repository), against a real Anvil with the
real contracts. Errors must be one line on stderr with the documented exit code."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from protocol.chain.contracts import SynodContracts
from protocol.chain.market import JobParams, Market, model_id
from protocol.chain.signer import anvil_dev_signer
from protocol.operator.amounts import format_amount
from protocol.operator.config import OperatorRole, load_config
from protocol.types import address_of
from scripts.devnet import DEMO_MODEL, Devnet, dev_private_key_hex, fund_and_register, run_batch
from tests.operator.fixtures import (
    FAST_SCRYPT_N,
    NODE_INDEX,
    PASSWORD,
    TOKEN,
    VALIDATOR_INDEX,
    advance_time,
    chain,
    cli_env,
    dev_keystore,
    devnet,
    fresh_chain,
    mint,
    synod,
    write_config,
)

__all__ = ["chain", "devnet", "fresh_chain"]  # fixtures


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def password_file(tmp_path: Path, text: str = PASSWORD) -> Path:
    path = tmp_path / "password"
    path.write_text(text + "\n")
    return path


@pytest.mark.unit
def test_bad_log_level_is_a_one_line_usage_error(tmp_path: Path) -> None:
    done = synod(tmp_path, "--log-level", "bogus", "keys", "show")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith("synod: error: argument --log-level: 'bogus' is not a log level (DEBUG, INFO")
    ok = synod(tmp_path, "--log-level", "debug", "node", "init", "--config", str(tmp_path / "n.toml"))
    assert ok.returncode == 0, ok.stderr
    unknown = synod(tmp_path, "node", "status", "--bogus")
    assert unknown.returncode == 2 and "unrecognized arguments: --bogus" in one_line(unknown.stderr)


@pytest.mark.unit
def test_keys_import_show_and_wrong_password(tmp_path: Path) -> None:
    key_file = tmp_path / "key.hex"
    key_file.write_text(dev_private_key_hex(NODE_INDEX) + "\n")
    pw = password_file(tmp_path)
    out = tmp_path / "keys" / "node.json"
    address = anvil_dev_signer(NODE_INDEX, 31337).address
    done = synod(
        tmp_path,
        "keys",
        "import",
        "--private-key-file",
        str(key_file),
        "--out",
        str(out),
        "--password-file",
        str(pw),
        "--scrypt-n",
        str(FAST_SCRYPT_N),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{address} {out}\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = synod(
        tmp_path,
        "keys",
        "import",
        "--private-key-file",
        str(key_file),
        "--out",
        str(out),
        "--password-file",
        str(pw),
    )
    assert again.returncode == 2 and "refusing to overwrite" in one_line(again.stderr)

    shown = synod(tmp_path, "keys", "show", "--keystore", str(out))
    assert shown.returncode == 0 and shown.stdout == address + "\n"
    checked = synod(
        tmp_path,
        "keys",
        "show",
        "--keystore",
        str(out),
        "--check",
        env=cli_env(tmp_path, SYNOD_KEYSTORE_PASSWORD=PASSWORD),
    )
    assert checked.returncode == 0 and checked.stdout == address + "\n"
    wrong = synod(
        tmp_path,
        "keys",
        "show",
        "--keystore",
        str(out),
        "--check",
        env=cli_env(tmp_path, SYNOD_KEYSTORE_PASSWORD="not it"),
    )
    assert wrong.returncode == 2
    assert one_line(wrong.stderr) == f"synod keys: wrong password for keystore {out}"
    no_source = synod(tmp_path, "keys", "show", "--keystore", str(out), "--check")  # stdin is not a terminal
    assert no_source.returncode == 2 and "SYNOD_KEYSTORE_PASSWORD" in one_line(no_source.stderr)
    no_key = synod(tmp_path, "keys", "import", "--name", "other", "--password-file", str(pw))
    assert no_key.returncode == 2 and "no private key" in one_line(no_key.stderr)
    for run in (done, again, shown, checked, wrong):
        assert PASSWORD not in run.stdout + run.stderr
        assert dev_private_key_hex(NODE_INDEX)[2:] not in run.stdout + run.stderr


@pytest.mark.unit
def test_keys_new_in_the_default_directory(tmp_path: Path) -> None:
    pw = password_file(tmp_path)
    done = synod(tmp_path, "keys", "new", "--name", "node", "--password-file", str(pw), "--scrypt-n", "16")
    assert done.returncode == 0, done.stderr
    address, path = done.stdout.split()
    assert Path(path) == tmp_path / "xdg" / "synod" / "keys" / "node.json"
    assert synod(tmp_path, "keys", "show", "--name", "node").stdout == address + "\n"


@pytest.mark.unit
def test_init_writes_defaults_and_refuses_to_overwrite(tmp_path: Path) -> None:
    done = synod(tmp_path, "oracle", "init")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "xdg" / "synod" / "validator.toml"
    assert done.stdout.startswith(f"wrote {path}\nno keystore at ")
    config = load_config(path, OperatorRole.VALIDATOR, {})
    assert config.account.keystore == tmp_path / "xdg" / "synod" / "keys" / "validator.json"
    assert config.models == [] and config.chain.confirmations == 2
    before = path.read_text()
    again = synod(tmp_path, "oracle", "init", "--rpc-url", "http://10.0.0.1:8545")
    assert again.returncode == 2 and "exists: pass --force" in one_line(again.stderr)
    assert path.read_text() == before
    forced = synod(tmp_path, "oracle", "init", "--force", "--rpc-url", "http://10.0.0.1:8545")
    assert forced.returncode == 0
    assert load_config(path, OperatorRole.VALIDATOR, {}).chain.rpc_url == "http://10.0.0.1:8545"
    bad = synod(tmp_path, "node", "init", "--p2p-address", "localhost:4001")
    assert bad.returncode == 2 and "p2p_address" in one_line(bad.stderr) and "multiaddr" in bad.stderr


@pytest.mark.unit
def test_bad_config_values_are_one_line(tmp_path: Path) -> None:
    assert synod(tmp_path, "node", "init").returncode == 0
    env = cli_env(tmp_path, SYNOD_CHAIN__CONFIRMATIONS="many")
    done = synod(tmp_path, "node", "status", env=env)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "chain.confirmations (SYNOD_CHAIN__CONFIRMATIONS)" in line and "'many'" in line
    missing = synod(tmp_path, "oracle", "status")
    assert missing.returncode == 2 and "run `synod oracle init` first" in one_line(missing.stderr)
    wrong_role = synod(
        tmp_path, "oracle", "status", "--config", str(tmp_path / "xdg" / "synod" / "node.toml")
    )
    assert wrong_role.returncode == 2 and "is for a node, not a validator" in one_line(wrong_role.stderr)


def node_setup(tmp_path: Path, devnet: Devnet, **chain: object) -> tuple[Path, Path]:
    keystore = dev_keystore(tmp_path, NODE_INDEX)
    return write_config(tmp_path, devnet, OperatorRole.NODE, keystore, **chain), password_file(tmp_path)


@pytest.mark.integration
def test_node_register_is_idempotent(fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path) -> None:
    config, pw = node_setup(tmp_path, devnet)
    mint(fresh_chain, NODE_INDEX, 500 * TOKEN)
    c, p = ["--config", str(config)], ["--password-file", str(pw)]

    unbond = synod(tmp_path, "node", "unbond", *c, *p)
    assert unbond.returncode == 3
    assert "is not registered as a node: run `synod node register --stake AMOUNT` first" in one_line(
        unbond.stderr
    )

    no_password = synod(tmp_path, "node", "register", "--stake", "150", *c)  # stdin is not a terminal
    assert no_password.returncode == 2 and "no keystore password" in one_line(no_password.stderr)
    dry = synod(tmp_path, "node", "register", "--stake", "150", "--dry-run", *c)
    assert dry.stdout.splitlines() == [
        "would send approve: let the registry pull 150 SYNDEV",
        "would send register: register as node with 150 SYNDEV",
    ]
    done = synod(tmp_path, "node", "register", "--stake", "150", *c, *p)
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["approve", "register"]
    assert "(tx 0x" in done.stdout

    again = synod(tmp_path, "node", "register", "--stake", "150", *c, *p)
    assert again.returncode == 0, again.stderr
    address = anvil_dev_signer(NODE_INDEX, 31337).address
    assert again.stdout == (
        f"nothing to change: {address} is registered as node with 150 SYNDEV, serving gemma3:270m, "
        "at /ip4/127.0.0.1/tcp/4001\n"
    )

    more = synod(tmp_path, "node", "register", "--stake", "175.5", *c, *p)
    assert [line.split(":")[0] for line in more.stdout.splitlines()] == ["approve", "addStake"]
    assert "add 25.5 SYNDEV (stake 175.5 SYNDEV)" in more.stdout

    status = synod(tmp_path, "node", "status", "--json", *c)
    data = json.loads(status.stdout)
    assert data["stake"] == 1755 * TOKEN // 10 and data["registered_as"] == "node"
    assert data["models"] == [{"id": "0x" + model_id(DEMO_MODEL).hex(), "name": "gemma3:270m"}]
    assert data["token_balance"] == 500 * TOKEN - 1755 * TOKEN // 10
    lower = synod(tmp_path, "node", "register", "--stake", "100", *c, *p)
    assert lower.returncode == 3 and "stakes only grow on chain" in one_line(lower.stderr)
    precise = synod(tmp_path, "node", "register", "--stake", "1.0000000000000000001", *c, *p)
    assert precise.returncode == 2
    assert one_line(precise.stderr) == (
        "synod node: --stake '1.0000000000000000001' has more than 18 decimal places (the token's precision)"
    )
    wrong_pw = synod(
        tmp_path,
        "node",
        "register",
        "--stake",
        "200",
        *c,
        "--password-file",
        str(password_file(tmp_path, "nope")),
    )
    assert wrong_pw.returncode == 2 and "wrong password for keystore" in one_line(wrong_pw.stderr)
    text = synod(tmp_path, "node", "status", *c).stdout  # nothing was sent with the wrong password
    assert "stake:        175.5 SYNDEV\n" in text and "claimable:    0 SYNDEV" in text


@pytest.mark.integration
def test_oracle_register_unbond_withdraw(fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path) -> None:
    keystore = dev_keystore(tmp_path, VALIDATOR_INDEX)
    config = write_config(tmp_path, devnet, OperatorRole.VALIDATOR, keystore)
    pw = password_file(tmp_path)
    mint(fresh_chain, VALIDATOR_INDEX, 100 * TOKEN)
    c, p = ["--config", str(config)], ["--password-file", str(pw)]
    short = synod(tmp_path, "oracle", "register", "--stake", "99.5", *c, *p)
    assert short.returncode == 3
    assert one_line(short.stderr) == (
        "synod oracle: a validator stakes at least 100 SYNDEV: --stake 99.5 is 0.5 SYNDEV short"
    )
    status = synod(tmp_path, "oracle", "status", *c)
    assert (
        "registered:   no (run `synod oracle register --stake AMOUNT`; minimum 100 SYNDEV)" in status.stdout
    )
    assert synod(tmp_path, "oracle", "register", "--stake", "100", *c, *p).returncode == 0
    unbond = synod(tmp_path, "oracle", "unbond", *c, *p)
    assert unbond.returncode == 0, unbond.stderr
    assert unbond.stdout.startswith("beginUnbonding: no new work; withdraw from ")
    early = synod(tmp_path, "oracle", "withdraw", *c, *p)
    assert early.returncode == 3
    assert (
        "the unbonding delay ends at " in one_line(early.stderr)
        and "run `synod oracle withdraw` then" in early.stderr
    )
    assert "unbonding:    yes (withdraw from " in synod(tmp_path, "oracle", "status", *c).stdout
    advance_time(fresh_chain, 7 * 24 * 3600)
    done = synod(tmp_path, "oracle", "withdraw", *c, *p)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("withdraw: 100 SYNDEV returned; no longer registered (tx 0x")
    data = json.loads(synod(tmp_path, "oracle", "status", "--json", *c).stdout)
    assert data["registered_as"] == "none" and data["token_balance"] == 100 * TOKEN


@pytest.mark.integration
def test_refuses_to_start_on_the_wrong_chain(
    fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path
) -> None:
    config, _ = node_setup(tmp_path, devnet, chain_id=1)
    done = synod(tmp_path, "node", "status", "--config", str(config))
    assert done.returncode == 3
    assert one_line(done.stderr).startswith(
        f"synod node: refusing to start: the RPC at {devnet.rpc_url} serves chain 31337, "
        "but this config expects chain 1"
    )
    raw = json.loads(devnet.deployments_file.read_text())
    for contract in raw["contracts"].values():
        contract["address"] = "0x" + "ab" * 20
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(raw))
    config = write_config(
        tmp_path, devnet, OperatorRole.NODE, tmp_path / "keys" / f"{NODE_INDEX}.json", deployment=stale
    )
    done = synod(tmp_path, "node", "status", "--config", str(config))
    assert done.returncode == 3
    line = one_line(done.stderr)
    assert f"refusing to start: no contract code for DevnetToken at {address_of('0x' + 'ab' * 20)}" in line
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(devnet.deployments_file.read_text()), "chainId": 10}))
    config = write_config(
        tmp_path, devnet, OperatorRole.NODE, tmp_path / "keys" / f"{NODE_INDEX}.json", deployment=other
    )
    done = synod(tmp_path, "node", "status", "--config", str(config))
    assert done.returncode == 3 and "is for chain 10, but the RPC" in one_line(done.stderr)


@pytest.mark.integration
def test_rewards_json_and_table(fresh_chain: SynodContracts, devnet: Devnet, tmp_path: Path) -> None:
    chain = fresh_chain
    actors, _ = fund_and_register(chain)
    params = JobParams(
        model=model_id(DEMO_MODEL),
        bounty_per_task=100 * TOKEN,
        batch_size=2,
        k=2,
        m=3,
        threshold=50,
        tolerance=10,
        junk_floor=0,
        validator_share_bps=2000,
        commit_duration=300,
        reveal_duration=300,
        score_commit_duration=300,
        score_reveal_duration=300,
    )
    posted = Market(chain).post_job(actors.requester, params, {"w": 1}, [{"row": 1}, {"row": 2}])
    (batch_id,) = posted.batch_ids
    lifecycle = run_batch(
        chain,
        actors,
        batch_id,
        [[{"a": 1}, {"a": 2}], [{"a": 3}, {"a": 4}]],
        score=lambda _round, _seat, _by_seat: [[80, 75], [70, 40]],
        claim=True,
    )
    assert lifecycle.settled is not None and lifecycle.settled.scored
    node_reward = lifecycle.settled.node_paid[0]
    assert node_reward > 0
    keystore = dev_keystore(tmp_path, 1)  # node1 of the devnet actors
    config = write_config(tmp_path, devnet, OperatorRole.NODE, keystore)
    done = synod(tmp_path, "node", "rewards", "--json", "--config", str(config))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["address"] == actors.nodes[0].address and report["symbol"] == "SYNDEV"
    rows = [(e["kind"], e["batch"], e["amount"]) for e in report["entries"]]
    assert rows == [("payout", batch_id, node_reward), ("claim", None, node_reward)]
    assert all(e["tx_hash"].startswith("0x") and len(e["tx_hash"]) == 66 for e in report["entries"])
    table = synod(tmp_path, "node", "rewards", "--config", str(config))
    assert table.returncode == 0, table.stderr
    assert "payout" in table.stdout and "paid for 2 row(s) (row medians 80, 75)" in table.stdout
    shown = format_amount(node_reward, 18)
    assert f"paid {shown} SYNDEV, slashed 0 SYNDEV, claimed {shown} SYNDEV" in table.stdout
