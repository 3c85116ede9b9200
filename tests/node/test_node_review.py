"""Break-it review (rev2): hostile rows through the real engine and Ollama provider (scripted
server on 127.0.0.1) never raise out of :func:`node.work.run_task`."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from devnet.scripted_model import ScriptedModelServer, hashed_reply
from node.work import parse_row, run_task
from protocol.envelope import ResultEnvelope
from tests.node.helpers import WORKFLOW
from tests.node.test_node_units import MODEL, _task
from workflow.engine import Engine
from workflow.providers.base import ProviderSettings
from workflow.providers.ollama import OllamaProvider
from workflow.validate import parse_workflow


@pytest.mark.integration
def test_a_row_spelling_a_lone_surrogate_fails_its_task_instead_of_crashing_the_node() -> None:
    # plain ASCII, valid JSON: json.loads turns the escape into a string with no UTF-8 form
    hostile = b'{"topic": "\\udc00"}'
    nested = b'{"topic": "ok", "more": [{"\\ud800": 1}]}'  # in a key, deeper down
    paired = b'{"topic": "\\ud83d\\ude00"}'  # a surrogate PAIR is one real character
    with ScriptedModelServer(models=[MODEL], answer=hashed_reply) as server:
        envelope, error = _task(server, hostile)
        assert (
            error == envelope.error == "malformed row: a string with no UTF-8 form (a lone surrogate escape)"
        )
        envelope, error = _task(server, nested)
        assert error == "malformed row: a string with no UTF-8 form (a lone surrogate escape)"
        assert server.requests == 0, "a malformed row never reaches the model"
        envelope, error = _task(server, paired)
        assert error is None and envelope.ok and server.requests == 1


@pytest.mark.unit
def test_parse_row_walks_any_nesting_json_accepts() -> None:
    deep = b'{"topic": ' + b"[" * 3000 + b'"\\udfff"' + b"]" * 3000 + b"}"
    with pytest.raises(ValueError, match="no UTF-8 form"):
        parse_row(deep)
    fine = b'{"topic": ' + b"[" * 3000 + b'"x"' + b"]" * 3000 + b"}"
    assert list(parse_row(fine)) == ["topic"]


TWO_STEPS: dict[str, Any] = {
    **WORKFLOW,
    "tasks": [
        WORKFLOW["tasks"][0],
        {
            "id": "B",
            "name": "again",
            "description": "generate from the first answer",
            "prompt": "Say more about {{out}}:",
            "inputs": [{"name": "out", "value": {"type": "read", "key": "out"}, "required": True}],
            "operator": "generation",
            "outputs": [{"type": "write", "key": "out2", "value": "__result"}],
        },
        WORKFLOW["tasks"][1],
    ],
    "steps": [{"source": "A", "target": "B"}, {"source": "B", "target": "__end"}],
    "return_value": {"input": {"type": "read", "key": "out2"}},
}


@pytest.mark.integration
def test_an_unexpected_engine_exception_fails_the_task_not_the_node() -> None:
    """A model answering a lone surrogate (legal in JSON on the wire): the next prompt built from it
    cannot be hashed and the engine raised ``UnicodeEncodeError``; the task fails with the reason."""

    async def run(url: str) -> tuple[str | None, bytes]:
        provider = OllamaProvider(ProviderSettings(kind="ollama", model=MODEL, base_url=url, max_retries=0))
        try:
            outcome = await run_task(
                Engine(provider), parse_workflow(TWO_STEPS), b"\x07" * 32, b'{"topic": "tide"}', MODEL, 10.0
            )
        finally:
            await provider.aclose()
        return outcome.error, outcome.data

    with ScriptedModelServer(models=[MODEL], answer=lambda prompt: "\udc00") as server:
        error, data = trio.run(run, server.url)
    assert error is not None and error.startswith("engine error: UnicodeEncodeError"), error
    assert not ResultEnvelope.from_bytes(data).ok
