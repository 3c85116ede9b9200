"""``synod oracle score``: the real command in a subprocess, its errors, and the ``synod`` wiring."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.oracle_score_cmd import register_score, run_score
from oracle.scoring.cli import main

ROOT = Path(__file__).resolve().parents[2]

SKY = "Explain in two or three sentences why the sky is blue on a clear day."
GOOD = (
    "Air molecules scatter the short blue wavelengths of sunlight much more than the red ones, so blue "
    "light reaches us from all over the sky."
)


def write(tmp_path: Path, data: Any, name: str = "score.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")  # ASCII: a lone surrogate is a \u escape
    return path


def score_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "oracle.scoring.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
        check=False,
    )


@pytest.mark.integration
def test_scores_a_file_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "task": SKY,
            "results": [GOOD, SKY, "ok \udc80 not utf-8", {"not": "a string"}],
            "language": "en",
        },
    )
    done = score_process(str(path))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [r["index"] for r in out] == [0, 1, 2, 3]
    assert [r["accepted"] for r in out] == [True, False, False, False]
    assert out[0]["score"] >= 50 and out[1]["score"] == 0
    assert out[1]["components"]["prompt_copy"] == 1.0
    assert out[2]["components"]["invalid_reason"] == "not UTF-8 (character 3 is a lone surrogate)"
    assert "result_invalid" in done.stderr  # the reason is logged too
    for r in out:
        assert set(r) == {"index", "score", "accepted", "components"}
        assert 0 <= r["score"] <= 100


@pytest.mark.unit
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON: Expecting property name"),
        (b"\xff\xfe{}", "not UTF-8 (byte 0)"),
        (b"[" * 10_000 + b"]" * 10_000, "JSON nested 10000 levels deep (limit 64)"),
        (b'["task", "results"]', "expected a JSON object with 'task' and 'results'"),
        (b'{"results": ["a"]}', "task: Field required"),
        (b'{"task": "t", "results": "a"}', "results: Input should be a valid tuple"),
        (b'{"task": "", "results": []}', "task: String should have at least 1 character"),
        (b'{"task": "t", "results": [], "language": "French"}', "language: String should match pattern"),
        (b'{"task": "t", "results": [], "colour": 1}', "colour: Extra inputs are not permitted"),
        (
            b'{"task": "t", "results": [], "schema": {"type": 5}}',
            "schema: Value error, malformed JSON Schema",
        ),
        (b'{"task": "t", "results": [], "sources": [1]}', "sources.0: Input should be a valid string"),
        (b'{"task": "t", "results": [1' + b"0" * 100 + b"]}", "integer of 101 digits (limit 64)"),
    ],
)
def test_a_malformed_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"synod oracle score: {path}: ")
    assert message in lines[0]


@pytest.mark.unit
def test_a_missing_file_and_a_bad_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.json")]) == 2
    assert (
        capsys.readouterr().err
        == f"synod oracle score: {tmp_path / 'nope.json'}: No such file or directory\n"
    )
    path = write(tmp_path, {"task": "t", "results": []})
    assert main([str(path), "--threshold", "101"]) == 2
    assert capsys.readouterr().err == "synod oracle score: --threshold must be within 0..100\n"


@pytest.mark.integration
def test_synod_wiring_and_the_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What ``cli/oracle_cmd.py`` does with :func:`register_score` and :func:`run_score`."""
    parser = argparse.ArgumentParser(prog="synod oracle")
    sub = parser.add_subparsers(dest="role_command", required=True)
    register_score(sub)
    path = write(tmp_path, {"task": SKY, "results": [GOOD, SKY]})
    assert run_score(parser.parse_args(["score", str(path)])) == 0
    default = json.loads(capsys.readouterr().out)
    assert [r["accepted"] for r in default] == [True, False]
    assert default[1]["score"] == 0
    assert run_score(parser.parse_args(["score", str(path), "--threshold", "0"])) == 0
    lenient = json.loads(capsys.readouterr().out)
    assert [(r["score"], r["accepted"]) for r in lenient] == [(default[0]["score"], True), (0, True)]
