"""``synod model serve`` refusing to start: each failure is one stderr line naming the failing value."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.serve.server import ROOT, serve_command, serve_env
from workflow.providers.local import default_model_path

pytestmark = [pytest.mark.integration, pytest.mark.model]


def serve_fails(*args: str) -> list[str]:
    result = subprocess.run(
        serve_command("--port", "0", *args),
        cwd=ROOT,
        env=serve_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stderr.splitlines()
    assert result.stdout == "", result.stdout
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("synod model serve: ")
    assert result.returncode in (2, 3)
    return [lines[0], str(result.returncode)]


def test_missing_gguf(tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    line, code = serve_fails("--gguf", str(missing))
    assert code == "3" and f"GGUF file {missing} does not exist" in line


def test_truncated_gguf(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    with default_model_path().open("rb") as source:
        truncated.write_bytes(source.read(4 * 1024 * 1024))
    line, code = serve_fails("--gguf", str(truncated))
    assert code == "3" and f"cannot load {truncated}" in line


def test_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("shopping list: owls, glass\n", encoding="utf-8")
    line, code = serve_fails("--gguf", str(bogus))
    assert code == "3" and f"cannot load {bogus}" in line


def test_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            serve_command("--port", str(port)),
            cwd=ROOT,
            env=serve_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"synod model serve: 127.0.0.1:{port} is already in use (another server? pick one with --port)"
    ]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--parallel", "0"), "parallel"),
        (("--ctx", "16"), "ctx"),
        (("--request-timeout", "-1"), "request-timeout"),
    ],
)
def test_absurd_settings(args: tuple[str, ...], fragment: str) -> None:
    line, code = serve_fails(*args)
    assert code == "2" and fragment in line
