"""A store directory is bound to the chain it was written for (``protocol.store.binding``): the
first start records chain id, genesis hash and market; a later start on another chain is refused
before any journal is opened. Unit tests on the file, then a real ``synod oracle run`` process on
a real anvil with a real deployment."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.chain.contracts import SynodContracts
from protocol.operator.config import OperatorRole, new_config, render_config
from protocol.store.binding import BINDING_FILE, ChainBinding, ChainMismatch, bind_store, read_binding
from protocol.store.errors import StoreError
from scripts.devnet import ROOT, Devnet, local_devnet
from tests.node.helpers import node_env, node_home, register_node
from tests.operator.fixtures import PASSWORD, cli_env, dev_keystore

GENESIS = "0x" + "ab" * 32
MARKET = "0x" + "C0FFEE" * 6 + "beef"


def _live(**change: object) -> ChainBinding:
    fields: dict[str, object] = {"chain_id": 31337, "genesis_hash": GENESIS, "market": MARKET}
    return ChainBinding.model_validate({**fields, **change})


@pytest.mark.unit
def test_first_start_records_the_chain_and_a_matching_start_passes(tmp_path: Path) -> None:
    store = tmp_path / "fresh" / "store"
    assert read_binding(store) is None
    assert bind_store(store, _live()) is True
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    recorded = json.loads((store / BINDING_FILE).read_text(encoding="utf-8"))
    assert recorded == {"chain_id": 31337, "genesis_hash": GENESIS, "market": MARKET.lower()}
    assert sorted(p.name for p in store.iterdir()) == [BINDING_FILE], "no temporary file is left"
    # the same chain again (market spelled in another case): accepted, nothing rewritten
    before = (store / BINDING_FILE).stat().st_mtime_ns
    assert bind_store(store, _live(market=MARKET.upper().replace("0X", "0x"))) is False
    assert (store / BINDING_FILE).stat().st_mtime_ns == before


@pytest.mark.unit
@pytest.mark.parametrize(
    ("field", "value"),
    [("chain_id", 1), ("genesis_hash", "0x" + "ab" * 31 + "ac"), ("market", "0x" + "11" * 20)],
)
def test_another_chain_is_refused_naming_the_field_and_both_values(
    tmp_path: Path, field: str, value: object
) -> None:
    bind_store(tmp_path, _live())
    with pytest.raises(ChainMismatch) as caught:
        bind_store(tmp_path, _live(**{field: value}))
    error = caught.value
    assert (error.field, error.live) == (field, value)
    assert error.recorded == getattr(_live(), field)
    text = str(error)
    assert f"with {field} {error.recorded}" in text and f"serves {field} {value}" in text
    assert str(tmp_path) in text and "store_dir" in text
    # the refusal changed nothing: the original binding still stands
    assert read_binding(tmp_path) == _live()


@pytest.mark.unit
@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        '{"chain_id": 31337}',
        json.dumps({"chain_id": 0, "genesis_hash": GENESIS, "market": MARKET}),
    ],
)
def test_a_damaged_binding_file_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    (tmp_path / BINDING_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(StoreError, match=f"{tmp_path / BINDING_FILE} is not a chain binding") as caught:
        bind_store(tmp_path, _live())
    assert not isinstance(caught.value, ChainMismatch)


@pytest.mark.unit
def test_a_binding_written_by_a_newer_synod_says_so_and_does_not_advise_deleting_the_journal(
    tmp_path: Path,
) -> None:
    """Review (rev5): a binding with a field this version does not know (a newer format, then a
    downgrade) was reported as damaged, with the advice to delete the store directory: the
    journal of a running network. It must name the unknown field and say to upgrade."""
    newer = {"chain_id": 31337, "genesis_hash": GENESIS, "market": MARKET, "format": 2}
    (tmp_path / BINDING_FILE).write_text(json.dumps(newer), encoding="utf-8")
    with pytest.raises(StoreError) as caught:
        bind_store(tmp_path, _live())
    message = str(caught.value)
    assert "written by a newer Synod" in message and "'format'" in message
    assert "delete" not in message
    assert json.loads((tmp_path / BINDING_FILE).read_text(encoding="utf-8")) == newer, "left as found"


@pytest.mark.unit
def test_a_symlinked_store_is_bound_once_and_an_unwritable_one_is_a_store_error(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    assert bind_store(tmp_path / "link", _live()) is True
    assert read_binding(real) == _live() and bind_store(real, _live()) is False
    with pytest.raises(ChainMismatch):
        bind_store(real, _live(market="0x" + "11" * 20))
    # a store_dir under a file (an OSError; tests run as root here, so no chmod case): one sentence
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(StoreError, match=f"cannot read {blocker / 'store' / BINDING_FILE}: Not a directory"):
        bind_store(blocker / "store", _live())
    assert sorted(p.name for p in real.iterdir()) == [BINDING_FILE]


@pytest.mark.unit
def test_two_first_starts_at_once_on_different_chains_cannot_both_bind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review (rev5): the first start read "no binding" and then replaced the file, so a second
    start on another chain that wrote in between was silently overwritten: both passed the check
    (the lock, taken after, lets one of them run, possibly under the other's binding, and its next
    start is refused on its own journal). The second writer must see the first one's binding."""
    import protocol.store.binding as binding

    store = tmp_path / "store"
    real_read = binding.read_binding
    raced: list[Path] = []

    def racing_read(directory: Path) -> ChainBinding | None:
        found = real_read(directory)
        if found is None and not raced:  # the other start (another chain) binds right after
            raced.append(directory)
            assert bind_store(directory, _live(chain_id=1)) is True
        return found

    monkeypatch.setattr(binding, "read_binding", racing_read)
    with pytest.raises(ChainMismatch) as refused:
        bind_store(store, _live())
    assert (refused.value.field, refused.value.recorded, refused.value.live) == ("chain_id", 1, 31337)
    monkeypatch.setattr(binding, "read_binding", real_read)
    assert read_binding(store) == _live(chain_id=1), "the first binding stays"
    assert sorted(p.name for p in store.iterdir()) == [BINDING_FILE], "no temporary file left"
    # the same chain racing is no error: whoever wrote first, the other matches
    other = tmp_path / "other"

    def same_chain_read(directory: Path) -> ChainBinding | None:
        found = real_read(directory)
        if found is None and directory not in raced:
            raced.append(directory)
            assert bind_store(directory, _live()) is True
        return found

    monkeypatch.setattr(binding, "read_binding", same_chain_read)
    assert bind_store(other, _live()) is False
    monkeypatch.setattr(binding, "read_binding", real_read)
    assert read_binding(other) == _live()


@pytest.mark.unit
def test_the_binding_model_refuses_malformed_identities() -> None:
    with pytest.raises(ValueError):
        _live(genesis_hash="0x1234")
    with pytest.raises(ValueError):
        _live(market="0x12")
    with pytest.raises(ValueError):
        _live(chain_id=0)
    assert _live(genesis_hash=GENESIS.upper().replace("0X", "0x")).genesis_hash == GENESIS


# ---------------------------------------------------------------------- a real daemon, real chain


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    with local_devnet(ROOT) as net:
        yield net


def _validator_config(tmp_path: Path, devnet: Devnet) -> Path:
    keystore = dev_keystore(tmp_path, 5, "validator")
    chain = {
        "rpc_url": devnet.rpc_url,
        "deployment": devnet.deployments_file,
        "artifacts_dir": ROOT / "out",
        "confirmations": 0,
    }
    config = new_config(OperatorRole.VALIDATOR, keystore=keystore, chain=chain)
    run = '\n[run]\nstore_dir = "state"\n\n[run.p2p]\nlisten_port = 0\n\n[run.metrics]\nport = 0\n'
    path = tmp_path / "validator.toml"
    path.write_text(render_config(config) + run, encoding="utf-8")
    return path


def _oracle(tmp_path: Path, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "oracle", "run", "--config", str(config)],
        cwd=tmp_path,
        env=cli_env(tmp_path, SYNOD_KEYSTORE_PASSWORD=PASSWORD),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.integration
def test_a_validator_binds_its_store_and_refuses_it_on_another_chain(tmp_path: Path, devnet: Devnet) -> None:
    chain = SynodContracts.connect(devnet.settings, ROOT)
    genesis = "0x" + bytes(chain.w3.eth.get_block(0)["hash"]).hex()
    config = _validator_config(tmp_path, devnet)
    state = tmp_path / "state"

    first = _oracle(tmp_path, config)
    try:
        deadline = time.monotonic() + 120
        while not (state / BINDING_FILE).exists():
            assert first.poll() is None, f"the daemon exited: {first.communicate(timeout=10)[1][-2000:]}"
            assert time.monotonic() < deadline, "the daemon never bound its store"
            time.sleep(0.2)
    finally:
        first.terminate()
        first.communicate(timeout=60)
    recorded = read_binding(state)
    assert recorded == ChainBinding(
        chain_id=chain.chain_id, genesis_hash=genesis, market=str(chain.market.address)
    )

    # the same directory on "another anvil": same chain id and market, another genesis block
    other = recorded.model_copy(update={"genesis_hash": "0x" + "00" * 31 + "01"})
    (state / BINDING_FILE).write_text(other.model_dump_json(), encoding="utf-8")
    journal_before = {p.name: p.stat().st_mtime_ns for p in state.iterdir()}
    second = _oracle(tmp_path, config)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2, err
    assert err.count("\n") == 1, err
    assert f"with genesis_hash {other.genesis_hash}, but the RPC serves genesis_hash {genesis}" in err
    assert {p.name: p.stat().st_mtime_ns for p in state.iterdir()} == journal_before, "nothing touched"
    assert not os.path.exists(state / f"{BINDING_FILE}.tmp")


@pytest.mark.integration
def test_a_node_refuses_a_store_written_for_another_chain(tmp_path: Path, devnet: Devnet) -> None:
    chain = SynodContracts.connect(devnet.settings, ROOT)
    register_node(chain)
    node = node_home(tmp_path, devnet, {"provider": {"kind": "ollama", "url": "http://127.0.0.1:9"}})
    genesis = "0x" + bytes(chain.w3.eth.get_block(0)["hash"]).hex()
    # a journal left by an earlier anvil with the same chain id and the same market address
    earlier = ChainBinding(chain_id=chain.chain_id, genesis_hash=GENESIS, market=str(chain.market.address))
    bind_store(node.store, earlier)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "node", "run", "--config", str(node.config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=node.home,
        env=node_env(node.home),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"with genesis_hash {GENESIS}, but the RPC serves genesis_hash {genesis}" in done.stderr
    assert sorted(p.name for p in node.store.iterdir()) == [BINDING_FILE], "no journal was opened"


@pytest.mark.integration
def test_oracle_explain_refuses_a_journal_written_for_another_chain(tmp_path: Path, devnet: Devnet) -> None:
    """Review (rev5): ``synod oracle explain`` opened the validator's journal without the binding
    check, so after a devnet restart (same chain id, same market address) it explained a batch id
    with the old chain's journal entries. It must refuse as the daemons do: one line, exit 2."""
    from oracle.daemon.journal import OracleJournal

    chain = SynodContracts.connect(devnet.settings, ROOT)
    genesis = "0x" + bytes(chain.w3.eth.get_block(0)["hash"]).hex()
    config = _validator_config(tmp_path, devnet)
    state = tmp_path / "state"
    state.mkdir()
    OracleJournal.open(state).close()  # an earlier anvil's journal
    earlier = ChainBinding(chain_id=chain.chain_id, genesis_hash=GENESIS, market=str(chain.market.address))
    bind_store(state, earlier)
    before = {p.name: p.stat().st_mtime_ns for p in state.iterdir()}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "oracle", "explain", "1", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=cli_env(tmp_path, SYNOD_KEYSTORE_PASSWORD=PASSWORD),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2, (done.returncode, done.stdout[-1000:], done.stderr[-1000:])
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"with genesis_hash {GENESIS}, but the RPC serves genesis_hash {genesis}" in done.stderr
    assert {p.name: p.stat().st_mtime_ns for p in state.iterdir()} == before, "read-only: nothing written"
