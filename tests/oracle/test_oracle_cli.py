"""``synod oracle init|run`` as the operator sees them: the written ``[run]`` table and the one-line
failures of ``run`` before it touches the chain (real CLI subprocesses, no chain needed)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from oracle.daemon.config import OracleRunSettings, load_run_settings
from tests.operator.fixtures import PASSWORD, cli_env, dev_keystore, synod

pytestmark = pytest.mark.integration


def test_init_writes_the_default_run_table_and_run_refuses_bad_settings(tmp_path: Path) -> None:
    keystore = dev_keystore(tmp_path, 9, "validator")
    config = tmp_path / "validator.toml"
    done = synod(tmp_path, "oracle", "init", "--config", str(config), "--keystore", str(keystore))
    assert done.returncode == 0, done.stderr
    table = tomllib.loads(config.read_text(encoding="utf-8"))["run"]
    assert load_run_settings(table, config) == OracleRunSettings().resolved(tmp_path)

    # a bad [run] field: exit 2, one line naming run.<field> and its env variable
    env = cli_env(tmp_path, SYNOD_KEYSTORE_PASSWORD=PASSWORD, SYNOD_RUN__P2P__FETCH_TIMEOUT="-1")
    bad = synod(tmp_path, "oracle", "run", "--config", str(config), env=env)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert (
        "run.p2p.fetch_timeout (SYNOD_RUN__P2P__FETCH_TIMEOUT): Input should be greater than 0" in bad.stderr
    )

    # an unknown crash point, and no password source: exit 2 before anything else
    env = cli_env(tmp_path, SYNOD_KEYSTORE_PASSWORD=PASSWORD, SYNOD_HALT_AT="after_lunch")
    halt = synod(tmp_path, "oracle", "run", "--config", str(config), env=env)
    assert halt.returncode == 2 and "SYNOD_HALT_AT=after_lunch is not one of after_fetch" in halt.stderr
    nopass = synod(tmp_path, "oracle", "run", "--config", str(config))
    assert nopass.returncode == 2 and "password" in nopass.stderr
