"""What each operator does to one task: fill the prompt, call the model / tools / file system.

An operator either returns a :class:`TaskRun` (its result and what it cost) or raises
:class:`TaskFailed`, which the engine turns into the step's ``fallback`` or a failed run. Provider
and tool errors propagate as they are and are handled the same way.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workflow import textops
from workflow.calls import parse_text_calls
from workflow.conditions import normalise_for_check
from workflow.errors import ToolNotFoundError, WorkflowRuntimeError
from workflow.eval.language import LanguageIdentifier
from workflow.memory import Entry, ProgramMemory, Value
from workflow.model import (
    R_EXPECTED,
    R_OUTPUT,
    R_OUTPUTS,
    Config,
    InputValueType,
    Operator,
    OutputType,
    Task,
)
from workflow.prompt import fill
from workflow.providers.base import Completion, GenerationOptions, LLMProvider, Message, ToolCall
from workflow.reads import EntryInput, resolve
from workflow.schema import JsonSchema, TextConstraint, decode_schema
from workflow.tools.base import Source, Tool
from workflow.tools.custom import CustomToolTemplate
from workflow.tools.registry import known_tool_name, resolve_call, tool_key, unavailable_reason
from workflow.trace import prompt_digest

DEFAULT_MAX_TOKENS = 250
"""Tokens per generation when ``config.max_tokens`` is absent (the original's default)."""


class TaskFailed(WorkflowRuntimeError):
    """A task that did not complete (a missing required input, a failed check, ...)."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(f"task {task_id!r} failed: {reason}")
        self.task_id = task_id
        self.reason = reason


@dataclass
class TaskRun:
    """The outcome of one task: its result and its costs, for the trace."""

    result: Entry | None = None
    prompt_digest: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_duration_s: float = 0.0
    tool_calls: list[ToolCall] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)

    def add(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.model_duration_s += completion.duration_s


__all__ = ["Context", "TaskFailed", "TaskRun", "apply_outputs", "execute", "tool_key"]


@dataclass
class Context:
    """Everything a task may use. One per run."""

    provider: LLMProvider
    memory: ProgramMemory
    entry: EntryInput
    config: Config
    tools: Mapping[str, Tool]
    raw_tools: Mapping[str, CustomToolTemplate]
    """``custom`` mode tools: offered to the model, their calls returned rather than run."""
    web_search: Tool | None
    rng: random.Random
    options: GenerationOptions
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """Tool names the workflow gave that could not be built -> why (reported when a task needs them)."""
    language: LanguageIdentifier = field(default_factory=LanguageIdentifier)
    """For the ``text`` operator's language checks (its model is loaded on first use)."""

    @staticmethod
    def options_for(config: Config) -> GenerationOptions:
        return GenerationOptions(
            max_tokens=config.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=config.temperature if config.temperature is not None else 0.0,
            seed=config.seed,
            stop=config.stop,
        )


async def _gather_inputs(task: Task, ctx: Context) -> dict[str, Value]:
    values: dict[str, Value] = {}
    for inp in task.inputs:
        value = await resolve(inp.value, ctx.memory, ctx.entry)
        if inp.required and value.is_none():
            raise TaskFailed(
                task.id,
                f"required input {inp.name!r} ({inp.value.type.value} {inp.value.key!r}) has no value",
            )
        values[inp.name] = value
    return values


def _messages(task: Task, texts: Mapping[str, str]) -> list[Message]:
    if task.messages is not None:
        return [Message(role=m.chat_role, content=fill(m.content, texts)) for m in task.messages]
    return [Message(role="user", content=fill(task.prompt or "", texts))]


def _digest_messages(messages: Sequence[Message]) -> str:
    payload = json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return prompt_digest(payload)


ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}
"""The constraint sent with a text format constraint: JSON output (the original's ``format: json``)."""


async def _generation(task: Task, ctx: Context, texts: Mapping[str, str], run: TaskRun) -> Entry:
    options = ctx.options
    lead: list[Message] = []
    if task.schema_ is not None:
        constraint: JsonSchema | TextConstraint = decode_schema(task.schema_)
        if isinstance(constraint, JsonSchema):
            options = options.model_copy(update={"json_schema": constraint.schema})
        else:
            # As the original's Ollama path: the decoded text leads the chat as an assistant
            # message, and JSON output is requested.
            options = options.model_copy(update={"json_schema": ANY_JSON_OBJECT})
            lead = [Message(role="assistant", content=constraint.text)]
    if task.messages is not None or lead:
        messages = lead + _messages(task, texts)
        run.prompt_digest = _digest_messages(messages)
        completion = await ctx.provider.chat(messages, options)
    else:
        prompt = fill(task.prompt or "", texts)
        run.prompt_digest = prompt_digest(prompt)
        completion = await ctx.provider.generate(prompt, options)
    run.add(completion)
    return Entry.parse(completion.text)


async def _function_calling(
    task: Task, ctx: Context, texts: Mapping[str, str], run: TaskRun, raw: bool
) -> Entry:
    """The original's function calling: offer the tools, run the model's call(s).

    The call is the provider's native tool call or, failing that, one written as JSON in the reply
    (the original's Ollama path, :func:`workflow.calls.parse_text_calls`). Not raw: a reply with no
    call fails the task (so its ``fallback`` runs, as the original's parser error does); results
    of several calls are joined by newlines. Raw: the calls as ``{"name", "arguments"}`` JSON joined
    by blank lines, or the reply text when it holds none (the original's Ollama raw mode).
    """
    unknown = [name for name in ctx.config.tools if not known_tool_name(name)]
    if unknown:
        raise ToolNotFoundError(
            f"task {task.id!r} calls tools, but config.tools names unknown tool(s) "
            f"{', '.join(repr(n) for n in unknown)} (the original fails here too)"
        )
    messages = _messages(task, texts)
    chat = task.messages is not None
    run.prompt_digest = _digest_messages(messages) if chat else prompt_digest(messages[0].content)
    specs = [tool.spec for tool in ctx.tools.values()]
    specs += [t.tool_spec() for t in ctx.raw_tools.values()]
    if not specs:
        reasons = "; ".join(ctx.unavailable.values()) or "config.tools and config.custom_tools are empty"
        raise TaskFailed(task.id, f"no tool to offer the model: {reasons}")
    completion = await ctx.provider.chat(messages, ctx.options, specs)
    run.add(completion)
    calls = completion.tool_calls or parse_text_calls(completion.text)
    run.tool_calls.extend(calls)
    if raw:
        if not calls:
            return Entry.parse(completion.text)
        return Entry.parse("\n\n".join(_call_json(c) for c in calls))
    if not calls:
        raise TaskFailed(task.id, f"the model's reply holds no tool call: {completion.text[:120]!r}")
    results: list[str] = []
    for call in calls:
        if tool_key(call.name) in ctx.raw_tools:
            # a ``custom`` mode tool has no executor: its call is the result (as the original)
            results.append(_call_json(call))
            continue
        tool = resolve_call(call.name, ctx.tools)
        if tool is None:
            reason = unavailable_reason(call.name, ctx.unavailable)
            raise ToolNotFoundError(
                f"the model called {call.name!r}: {reason} (offered: {', '.join(s.name for s in specs)})"
            )
        outcome = await tool.call(call.arguments)
        run.sources.extend(outcome.sources)
        results.append(outcome.content)
    return Entry.parse("\n".join(results))


def _call_json(call: ToolCall) -> str:
    return json.dumps(
        {"name": call.name, "arguments": call.arguments}, ensure_ascii=False, separators=(",", ":")
    )


def _web_query(template: str, texts: Mapping[str, str]) -> tuple[str, dict[str, Any] | None]:
    """The filled prompt, and the web search request if the prompt is one.

    The later versions' web form is a JSON object with a ``query``. When the template itself is
    such an object, placeholders are filled inside its strings (so a value with quotes cannot break
    the JSON); otherwise a filled prompt that parses as such an object is one too.
    """
    stripped = template.strip()
    if stripped.startswith("{"):
        try:
            shape = json.loads(stripped)
        except ValueError:
            shape = None
        if isinstance(shape, dict) and isinstance(shape.get("query"), str):
            params = {k: fill(v, texts) if isinstance(v, str) else v for k, v in shape.items()}
            return json.dumps(params, ensure_ascii=False), params
    prompt = fill(template, texts)
    if prompt.strip().startswith("{"):
        try:
            params = json.loads(prompt)
        except ValueError:
            return prompt, None
        if isinstance(params, dict) and isinstance(params.get("query"), str):
            return prompt, params
    return prompt, None


async def _search(task: Task, ctx: Context, texts: Mapping[str, str], run: TaskRun) -> Entry:
    template = (
        task.prompt if task.prompt is not None else (task.messages[-1].content if task.messages else "")
    )
    prompt, params = _web_query(template, texts)
    run.prompt_digest = prompt_digest(prompt)
    if params is not None:
        if ctx.web_search is None:
            raise ToolNotFoundError(
                f"task {task.id!r} searches the web but no search backend is configured "
                "(searxng_url: --searxng-url or SYNOD_SEARXNG_URL; or a Serper key: SERPER_API_KEY)"
            )
        arguments: dict[str, Any] = {"query": params["query"]}
        n_results = params.get("n_results")
        if isinstance(n_results, str) and n_results.strip().isdigit():
            n_results = int(n_results)
        if isinstance(n_results, int) and not isinstance(n_results, bool):
            arguments["n_results"] = n_results
        run.tool_calls.append(ToolCall(name=ctx.web_search.spec.name, arguments=arguments))
        outcome = await ctx.web_search.call(arguments)
        run.sources.extend(outcome.sources)
        return Entry.parse(outcome.content)
    passages = await ctx.memory.file_system.search(prompt)
    return Entry.parse(Value.many([Entry(p, False) for p in passages]).text())


def _last_prompt(task: Task, texts: Mapping[str, str]) -> str:
    """The prompt, or the last message's content ("" for no messages), filled."""
    if task.prompt is not None:
        return fill(task.prompt, texts)
    return fill(task.messages[-1].content, texts) if task.messages else ""


def _sample(task: Task, ctx: Context, values: Mapping[str, Value], texts: Mapping[str, str]) -> Entry:
    prompt = _last_prompt(task, texts)
    for inp in task.inputs:
        if inp.value.type is InputValueType.GET_ALL:
            raise TaskFailed(
                task.id, f"sample: input {inp.name!r} is a get_all; a sample input names a stack"
            )
        stack = values[inp.name].text()
        entries = ctx.memory.get_all(stack)
        if not entries:
            raise TaskFailed(task.id, f"sample: stack {stack!r} (input {inp.name!r}) is empty or missing")
        prompt += f": {ctx.rng.choice(entries).text()}"
    return Entry.parse(prompt)


async def execute(task: Task, ctx: Context, run: TaskRun) -> None:
    """Run one task and apply its outputs, recording costs in ``run`` as they happen (so a task
    that fails part-way still shows its model call and tool calls); raise :class:`TaskFailed` (or a
    provider/tool error)."""
    if task.operator is Operator.END:
        return
    values = await _gather_inputs(task, ctx)
    texts = {name: value.text() for name, value in values.items()}
    op = task.operator
    if op is Operator.CHECK:
        got, want = normalise_for_check(texts[R_OUTPUTS]), normalise_for_check(texts[R_EXPECTED])
        if got != want:
            raise TaskFailed(task.id, f"check: {got[:80]!r} != {want[:80]!r}")
        return
    if op is Operator.TEXT:
        try:
            result = textops.run(task, values, ctx.language)
        except textops.TextCheckFailed as exc:
            raise TaskFailed(task.id, exc.reason) from None
        run.result = result
        await apply_outputs(task, result, ctx.memory)
        return
    started = time.perf_counter()
    if op is Operator.GENERATION:
        result = await _generation(task, ctx, texts, run)
    elif op in (Operator.FUNCTION_CALLING, Operator.FUNCTION_CALLING_RAW):
        result = await _function_calling(task, ctx, texts, run, raw=op is Operator.FUNCTION_CALLING_RAW)
    elif op is Operator.SEARCH:
        try:
            result = await _search(task, ctx, texts, run)
        finally:
            run.model_duration_s = time.perf_counter() - started
    else:
        result = _sample(task, ctx, values, texts)
    run.result = result
    await apply_outputs(task, result, ctx.memory)


async def apply_outputs(task: Task, result: Entry, memory: ProgramMemory) -> None:
    """Write / push / insert the result (or an output's literal value)."""
    for out in task.outputs:
        data = result if out.value == R_OUTPUT else Entry.parse(out.value)
        if out.type is OutputType.WRITE:
            memory.write(out.key, data)
        elif out.type is OutputType.PUSH:
            memory.push(out.key, data)
        else:
            await memory.file_system.insert(data.text())
