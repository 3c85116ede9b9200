"""The per-step record of a run, returned to the caller (and printed by ``synod workflow run --trace``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.canonical import keccak256
from workflow.providers.base import ToolCall
from workflow.tools.base import Source


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def prompt_digest(prompt: str) -> str:
    """0x-hex keccak256 of the prompt's UTF-8 bytes.

    A lone surrogate (JSON input such as ``"\\udc00"`` decodes to one) has no UTF-8 form; it is
    hashed as its three ``surrogatepass`` bytes instead of raising, so such a prompt still gets a
    digest (one no well-formed prompt shares: those bytes never occur in valid UTF-8)."""
    return "0x" + keccak256(prompt.encode("utf-8", errors="surrogatepass")).hex()


class StepTrace(_Frozen):
    """One task execution."""

    index: int = Field(ge=0)
    task_id: str
    operator: str
    prompt_digest: str | None = None
    """keccak256 of the filled prompt (the JSON of the messages for chat tasks); None if no prompt."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_s: float = 0.0
    model_duration_s: float = 0.0
    tool_calls: tuple[ToolCall, ...] = ()
    sources: tuple[Source, ...] = ()
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None
    next: str | None = None
    """The task the program went to next (None when it ended)."""


class RunTrace(_Frozen):
    """A whole run: its steps, outcome and totals."""

    workflow: str
    status: Literal["completed", "failed"]
    steps: tuple[StepTrace, ...]
    duration_s: float
    prompt_tokens: int
    completion_tokens: int
    model: str
    provider: str
    error: str | None = None

    def sources(self) -> tuple[Source, ...]:
        """Every source fetched during the run, in order."""
        return tuple(s for step in self.steps for s in step.sources)


class RunResult(_Frozen):
    """The return value and the trace of a completed run."""

    value: str
    """The return value as text (a JSON document when ``to_json``)."""
    is_json: bool
    trace: RunTrace

    def json_value(self) -> Any:
        import json

        return json.loads(self.value) if self.is_json else self.value
