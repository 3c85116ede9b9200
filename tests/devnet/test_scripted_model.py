"""The scripted model server speaks Ollama's HTTP API well enough for the real Ollama provider and
the real ``qa_pairs`` workflow (``synod workflow run`` as a process) to produce grounded pairs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devnet.chain import ROOT
from devnet.scripted_model import ScriptedModelServer, scripted_reply

pytestmark = pytest.mark.integration


def test_reply_script() -> None:
    shots = "Sentence: It was built in 1847.\nQuestion: When?\nAnswer: in 1847\n\n"
    question = scripted_reply(shots + "Sentence: Lake Ormel is 64 metres deep.\nQuestion:")
    assert question == " What about Lake Ormel is?"
    answer = scripted_reply(shots + "Sentence: Lake Ormel is 64 metres deep.\nQuestion: x?\nAnswer:")
    assert answer == " 64 metres deep"  # the last half of the words, at most 4
    assert scripted_reply("intro\n\nFirst one. Second one.") == "First one."


def test_api_shapes_and_unknown_model() -> None:
    with (
        ScriptedModelServer(models=["gemma3:270m"]) as server,
        httpx.Client(base_url=server.url, timeout=10) as c,
    ):
        assert [m["name"] for m in c.get("/api/tags").json()["models"]] == ["gemma3:270m"]
        reply = c.post(
            "/api/chat",
            json={
                "model": "gemma3:270m",
                "stream": False,
                "messages": [{"role": "user", "content": "Hello there. More."}],
            },
        )
        assert reply.json()["message"]["content"] == "Hello there." and reply.json()["done"] is True
        streamed = c.post("/api/generate", json={"model": "gemma3:270m", "prompt": "A b."})
        lines = [json.loads(x) for x in streamed.text.splitlines()]
        assert [x["done"] for x in lines] == [False, True] and lines[0]["response"] == "A b."
        missing = c.post("/api/generate", json={"model": "other", "prompt": "x"})
        assert missing.status_code == 404 and "not found" in missing.json()["error"]
        assert server.calls == 2


def test_qa_pairs_runs_on_it_through_the_ollama_provider(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with ScriptedModelServer(models=["gemma3:270m"]) as server:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "workflow",
                "run",
                str(ROOT / "examples/workflows/qa_pairs.json"),
                "--input-file",
                str(ROOT / "examples/workflows/qa_pairs.input.json"),
                "--provider",
                "ollama",
                "--model",
                "gemma3:270m",
                "--base-url",
                server.url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    questions, answers = json.loads(run.stdout)
    assert len(questions) == len(answers) >= 1
    document = json.loads((ROOT / "examples/workflows/qa_pairs.input.json").read_text())["document"]
    assert all(a in document for a in answers)
