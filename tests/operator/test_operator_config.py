"""The operator config: TOML + SYNOD_* env overrides, validated, one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.operator.config import (
    DEFAULT_NODE_MODEL,
    OperatorRole,
    default_config_path,
    load_config,
    new_config,
    render_config,
)
from protocol.operator.errors import ConfigFileError

pytestmark = pytest.mark.unit

NODE_TOML = """
role = "node"
p2p_address = "/ip4/127.0.0.1/tcp/4001"
models = ["gemma3:270m", "llama3:8b"]

[chain]
rpc_url = "http://127.0.0.1:8545"
deployment = "deployments/31337.json"
confirmations = 3

[account]
keystore = "keys/node.json"
"""


def write(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(
    path: Path, role: OperatorRole = OperatorRole.NODE, env: dict[str, str] | None = None
) -> str:
    with pytest.raises(ConfigFileError) as info:
        load_config(path, role, env or {})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_load_resolves_paths_against_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, NODE_TOML), OperatorRole.NODE, {})
    assert config.role is OperatorRole.NODE
    assert config.models == ["gemma3:270m", "llama3:8b"]
    assert config.chain.confirmations == 3
    assert config.chain.deployment == tmp_path / "deployments" / "31337.json"
    assert config.account.keystore == tmp_path / "keys" / "node.json"
    assert config.chain.artifacts_dir is None and config.account.password_file is None
    assert config.chain.rpc_timeout == 10.0  # default


def test_env_overrides_win_over_the_file(tmp_path: Path) -> None:
    env = {
        "SYNOD_CHAIN__CONFIRMATIONS": "7",
        "SYNOD_CHAIN__RPC_URL": "https://rpc.example.org",
        "SYNOD_MODELS": '["qwen3:4b"]',
        "SYNOD_P2P_ADDRESS": "/dns4/node.example.org/tcp/4001",
        # unrelated SYNOD_ variables (other tools' settings) are ignored, not "extra" fields
        "SYNOD_KEYSTORE_PASSWORD": "x",
        "SYNOD_DEPLOYMENTS_FILE": "/elsewhere.json",
    }
    config = load_config(write(tmp_path, NODE_TOML), OperatorRole.NODE, env)
    assert config.chain.confirmations == 7
    assert config.chain.rpc_url == "https://rpc.example.org"
    assert config.models == ["qwen3:4b"]
    assert config.p2p_address == "/dns4/node.example.org/tcp/4001"
    assert config.chain.deployment == tmp_path / "deployments" / "31337.json"  # the file's value kept


def test_bad_env_value_names_field_and_variable(tmp_path: Path) -> None:
    message = one_line_error(write(tmp_path, NODE_TOML), env={"SYNOD_CHAIN__CONFIRMATIONS": "300"})
    assert "chain.confirmations (SYNOD_CHAIN__CONFIRMATIONS)" in message
    assert "less than or equal to 256" in message and "'300'" in message


@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [
        (
            'rpc_url = "http://127.0.0.1:8545"',
            'rpc_url = "ws://127.0.0.1:8545"',
            ["chain.rpc_url", "http://"],
        ),
        ("confirmations = 3", "confirmations = -1", ["chain.confirmations", "greater than or equal to 0"]),
        ("confirmations = 3", "confirmations = 3\nsurprise = 1", ["chain.surprise", "Extra inputs"]),
        (
            'p2p_address = "/ip4/127.0.0.1/tcp/4001"',
            'p2p_address = "127.0.0.1:4001"',
            ["p2p_address", "multiaddr"],
        ),
        ('"llama3:8b"]', '"gemma3:270m"]', ["models", "twice"]),
        ('models = ["gemma3:270m", "llama3:8b"]', "models = []", ["models", "at least one model"]),
        ('keystore = "keys/node.json"', "", ["account.keystore", "is required"]),
    ],
)
def test_bad_file_values_are_one_line(tmp_path: Path, old: str, new: str, needles: list[str]) -> None:
    assert old in NODE_TOML
    path = write(tmp_path, NODE_TOML.replace(old, new))
    message = one_line_error(path)
    assert message.startswith(f"invalid config {path}: ")
    for needle in needles:
        assert needle in message, message


def test_validator_serves_no_models(tmp_path: Path) -> None:
    text = NODE_TOML.replace('role = "node"', 'role = "validator"')
    message = one_line_error(write(tmp_path, text, "validator.toml"), OperatorRole.VALIDATOR)
    assert "a validator serves no models" in message


def test_not_toml_missing_and_wrong_role(tmp_path: Path) -> None:
    assert "not valid TOML" in one_line_error(write(tmp_path, "role = node"))
    missing = one_line_error(tmp_path / "nope.toml")
    assert "no config at" in missing and "`synod node init`" in missing
    wrong = one_line_error(write(tmp_path, NODE_TOML), OperatorRole.VALIDATOR)
    assert "is for a node, not a validator" in wrong and "`synod node ...`" in wrong


def test_rendered_config_loads_back_identically(tmp_path: Path) -> None:
    for role in OperatorRole:
        config = new_config(
            role,
            keystore=tmp_path / "keys" / f"{role.value}.json",
            chain={"chain_id": 31337, "deployment": tmp_path / "d.json", "confirmations": 5},
            password_file=tmp_path / "pw",
        )
        path = write(tmp_path, render_config(config), f"{role.value}.toml")
        assert load_config(path, role, {}) == config
    node = new_config(OperatorRole.NODE, keystore=tmp_path / "k.json")
    assert node.models == [DEFAULT_NODE_MODEL] and node.p2p_address.endswith("/tcp/4001")
    assert new_config(OperatorRole.VALIDATOR, keystore=tmp_path / "k.json").models == []


def test_default_paths_follow_xdg(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert default_config_path(OperatorRole.NODE, env) == tmp_path / "xdg" / "synod" / "node.toml"
    no_xdg = {"HOME": str(tmp_path / "home")}
    assert (
        default_config_path(OperatorRole.VALIDATOR, no_xdg)
        == tmp_path / "home" / ".config" / "synod" / "validator.toml"
    )
