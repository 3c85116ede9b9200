"""The workflow format of Ollama Workflows, as frozen pydantic models.

Field names follow the original's serde names exactly (``type`` for the value and output kinds,
``target_if_not``, ``process_type``, ...). The models forbid unknown fields; :mod:`workflow.validate`
drops them with a warning (the original's serde ignores them), or rejects them under ``strict``.
An explicit ``null`` for a field with a default (as Dria's SDK writes them) means the default.

Synod extensions (ignored by the original engine, so a workflow using them still loads there):
``config.stop`` (stop sequences for every generation), ``config.seed`` (the seed of the
``sample`` operator and of the model) and ``return_value.structured`` (``to_json`` keeps JSON
values and lists nested).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflow.tools.custom import CustomToolTemplate

R_INPUT = "__input"
"""Cache key of the entry input (the original's reserved name)."""
R_OUTPUT = "__result"
"""Output value meaning "the task's result"."""
R_END = "__end"
"""The reserved id of the end task."""
R_EXPECTED = "__expected"
R_OUTPUTS = "__output"
"""Input names the ``check`` operator compares (the original's reserved names)."""

JsonValue = Any


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _null_or(value: Any, default: Any) -> Any:
    """``default`` for an explicit JSON ``null`` (Dria's SDK writes them), else ``value``."""
    return default if value is None else value


class InputValueType(StrEnum):
    """Where an input's value comes from (``value.type``)."""

    INPUT = "input"
    READ = "read"
    POP = "pop"
    PEEK = "peek"
    GET_ALL = "get_all"
    SIZE = "size"
    STRING = "string"
    SEARCH = "search"


class OutputType(StrEnum):
    """What an output does with the task's result (``type``)."""

    WRITE = "write"
    INSERT = "insert"
    PUSH = "push"


class Operator(StrEnum):
    """What a task does."""

    GENERATION = "generation"
    FUNCTION_CALLING = "function_calling"
    FUNCTION_CALLING_RAW = "function_calling_raw"
    CHECK = "check"
    SEARCH = "search"
    SAMPLE = "sample"
    END = "end"
    TEXT = "text"
    """Synod extension: a deterministic text function named by the prompt (:mod:`workflow.textops`)."""


class Expression(StrEnum):
    """Comparison of a step's condition (PascalCase, as the original's serde names)."""

    EQUAL = "Equal"
    NOT_EQUAL = "NotEqual"
    CONTAINS = "Contains"
    NOT_CONTAINS = "NotContains"
    GREATER_THAN = "GreaterThan"
    LESS_THAN = "LessThan"
    GREATER_THAN_OR_EQUAL = "GreaterThanOrEqual"
    LESS_THAN_OR_EQUAL = "LessThanOrEqual"
    HAVE_SIMILAR = "HaveSimilar"


class PostProcessType(StrEnum):
    """A transformation of the return value."""

    REPLACE = "replace"
    APPEND = "append"
    PREPEND = "prepend"
    TRIM = "trim"
    TRIM_START = "trim_start"
    TRIM_END = "trim_end"
    TO_LOWER = "to_lower"
    TO_UPPER = "to_upper"


class SearchQuery(_Frozen):
    """The query of a ``search`` input: itself a memory read (``type`` + ``key``)."""

    type: InputValueType
    key: str


class InputValue(_Frozen):
    """A memory read: ``type``, ``key``, and ``index`` (peek) or ``search_query`` (search)."""

    type: InputValueType
    key: str
    index: int | None = Field(default=None, ge=0)
    search_query: SearchQuery | None = None


class Input(_Frozen):
    """A named prompt variable and where its value comes from."""

    name: str = Field(min_length=1)
    value: InputValue
    required: bool = False
    """Required in the original's format; a missing one is taken as false."""


class Output(_Frozen):
    """A memory write after the task: ``value`` is ``__result`` or a literal."""

    type: OutputType
    key: str
    value: str


class MessageInput(_Frozen):
    """One chat message of a task (the later versions' ``messages`` instead of ``prompt``)."""

    role: str
    """``system``, ``user`` or ``assistant``; any other role is sent as ``user`` (as the original)."""
    content: str

    @property
    def chat_role(self) -> Literal["system", "user", "assistant"]:
        """The role sent to the provider."""
        if self.role == "system":
            return "system"
        if self.role == "assistant":
            return "assistant"
        return "user"


class Task(_Frozen):
    """One node of the program."""

    id: str = Field(min_length=1)
    name: str = ""
    description: str = ""
    prompt: str | None = None
    messages: tuple[MessageInput, ...] | None = None
    inputs: tuple[Input, ...] = ()
    operator: Operator
    outputs: tuple[Output, ...] = ()
    schema_: str | None = Field(default=None, alias="schema")
    """Structured output (the original's ``schema``): a JSON schema, raw or base64, or base64 of a
    format constraint; see :mod:`workflow.schema`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("name", "description", mode="before")
    @classmethod
    def _text_default(cls, value: Any) -> Any:
        return _null_or(value, "")

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _list_default(cls, value: Any) -> Any:
        return _null_or(value, ())


class Condition(_Frozen):
    """Go to the step's ``target`` when ``expression(input, expected)`` holds, else ``target_if_not``."""

    input: InputValue
    expected: str
    expression: Expression
    target_if_not: str


class Edge(_Frozen):
    """A step: after ``source`` runs, go to ``target`` (or ``fallback`` if the task failed)."""

    source: str
    target: str
    condition: Condition | None = None
    fallback: str | None = None


class TaskPostProcess(_Frozen):
    """One post-processing step of the return value."""

    process_type: PostProcessType
    lhs: str | None = None
    rhs: str | None = None


class TaskOutput(_Frozen):
    """What the program returns: one memory read or several, optionally as JSON."""

    input: InputValue | tuple[InputValue, ...]
    to_json: bool | None = None
    post_process: tuple[TaskPostProcess, ...] | None = None
    structured: bool = False
    """Synod extension: with ``to_json``, JSON entries stay JSON values and ``get_all`` reads stay
    lists (the original turns every entry into its text)."""


class Config(_Frozen):
    """Limits, tools and generation settings."""

    max_steps: int = Field(ge=1, le=100_000)
    max_time: float = Field(gt=0, le=86_400)
    tools: tuple[str, ...] = ()
    custom_tools: tuple[CustomToolTemplate, ...] | None = None
    """Custom tools (``http_request`` or ``custom`` mode), as :mod:`workflow.tools.custom` defines them."""
    custom_tool: CustomToolTemplate | None = None
    """The early versions' single custom tool."""
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_k: int | None = Field(default=None, ge=0)
    logits: bool | None = None
    stop: tuple[str, ...] = ()
    """Synod extension: stop sequences for every generation."""
    seed: int = 0
    """Synod extension: seed of the model and of the ``sample`` operator."""

    @field_validator("tools", "stop", mode="before")
    @classmethod
    def _list_default(cls, value: Any) -> Any:
        return _null_or(value, ())

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_default(cls, value: Any) -> Any:
        return _null_or(value, 0)


class Workflow(_Frozen):
    """A whole program."""

    name: str = ""
    description: str = ""
    config: Config
    external_memory: dict[str, JsonValue] | None = None
    tasks: tuple[Task, ...] = Field(min_length=1)
    steps: tuple[Edge, ...] = Field(min_length=1)
    return_value: TaskOutput

    @field_validator("name", "description", mode="before")
    @classmethod
    def _text_default(cls, value: Any) -> Any:
        return _null_or(value, "")

    def custom_templates(self) -> tuple[CustomToolTemplate, ...]:
        """``config.custom_tools`` plus the early ``config.custom_tool``; nameless ones left out."""
        single = (self.config.custom_tool,) if self.config.custom_tool is not None else ()
        return tuple(t for t in (*(self.config.custom_tools or ()), *single) if t.name.strip())
