"""A new ``devnet up`` never reuses an earlier run's operator state (a new chain each time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devnet.network import clear_previous_run

pytestmark = pytest.mark.unit


def test_an_earlier_runs_homes_logs_and_deployment_go_and_nothing_else(tmp_path: Path) -> None:
    # a second `make demo` reused demo-out/devnet/node*/store: the nodes' watchers waited for
    # block 360 of the old chain on a new one at block 83, then saw a 128-block "reorg"
    for name in ("node1", "node12", "validator3", "logs"):
        (tmp_path / name / "store").mkdir(parents=True)
        (tmp_path / name / "store" / "journal.sqlite").write_bytes(b"old")
    (tmp_path / "deployment.json").write_text("{}")
    keep_dirs = ("nodes", "node", "validator1-backup", "my-node1")
    for name in keep_dirs:
        (tmp_path / name).mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "node2").write_text("a file named like a home is not a home")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    (tmp_path / "node7").symlink_to(outside, target_is_directory=True)

    gone = clear_previous_run(tmp_path)

    assert gone == ["deployment.json", "logs", "node1", "node12", "validator3"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*keep_dirs, "notes.txt", "node2", "node7"])
    assert (outside / "precious").read_text() == "x"  # a symlinked home is not followed
    assert clear_previous_run(tmp_path) == []
    assert clear_previous_run(tmp_path / "missing") == []
