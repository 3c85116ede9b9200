"""``synod job`` errors before any chain work: a bad row is named (exit 2, nothing sent) before the
RPC is even asked; an RPC that does not answer is named with the flag to fix (exit 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devnet.chain import ROOT, free_port

pytestmark = pytest.mark.integration


def _synod(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNOD_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "job", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_bad_row_named_before_the_rpc_is_asked(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"document": "x"}\n\n{"doc": "y"}\n', encoding="utf-8")
    dead = f"http://127.0.0.1:{free_port()}"
    run = _synod(
        tmp_path,
        "post",
        "--workflow",
        str(ROOT / "examples/workflows/qa_pairs.json"),
        "--rows",
        str(rows),
        "--bounty-per-task",
        "1",
        "--rpc-url",
        dead,
    )
    assert run.returncode == 2
    assert "rows.jsonl line 3: the row has no 'document'" in run.stderr and "(nothing was sent)" in run.stderr


def test_rpc_that_does_not_answer_is_named(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    run = _synod(tmp_path, "status", "1", "--rpc-url", dead)
    assert run.returncode == 3
    assert f"cannot reach the chain at {dead}" in run.stderr and "--rpc-url" in run.stderr
