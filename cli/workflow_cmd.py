"""``synod workflow``: validate and run Ollama-Workflows-compatible programs locally.

::

    synod workflow validate FILE [--strict]
    synod workflow run FILE [--input KEY=VALUE ...] [--input-file F.json] [--strict]
                            [--provider local|ollama|openai] [--model NAME] [--base-url URL]
                            [--num-ctx N] [--stall-timeout S]
                            [--searxng-url URL] [--trace] [--trace-format json|table]

``run`` prints the return value on stdout (a JSON document when the workflow's ``to_json`` is
set). ``--trace`` prints the per-step trace on stderr. Errors are one line on stderr, no traceback.
``validate`` prints what the original engine accepts but is probably a mistake (unknown fields,
steps to no task, unbound placeholders, ...) as warnings on stderr; ``--strict`` makes them errors.

Exit codes: 0 success; 2 usage or validation (bad arguments, invalid workflow, missing input);
3 runtime (a task failed, e.g. a tool-calling task whose tool is not available here, with no
fallback; max_steps / max_time reached; the provider failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_RUNTIME = 3

SEARXNG_ENV = "SYNOD_SEARXNG_URL"
SERPER_ENV = "SERPER_API_KEY"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
CUSTOM_TOOL_KEY_ENV = "SYNOD_CUSTOM_TOOL_API_KEY"
CLOSE_GRACE_S = 2.0


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``validate`` and ``run`` subcommands to ``synod workflow``."""
    sub = parser.add_subparsers(dest="workflow_command", metavar="SUBCOMMAND", required=True)
    strict_help = "reject what is only a warning otherwise (unknown fields, steps to no task, ...)"
    check = sub.add_parser("validate", help="check a workflow file without running it")
    check.add_argument("file", metavar="FILE", help="workflow JSON file")
    check.add_argument("--strict", action="store_true", help=strict_help)
    run_p = sub.add_parser("run", help="run a workflow and print its return value")
    run_p.add_argument("file", metavar="FILE", help="workflow JSON file")
    run_p.add_argument("--strict", action="store_true", help=strict_help)
    run_p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an entry input (repeatable); read by inputs of type 'input' with that key",
    )
    run_p.add_argument("--input-file", metavar="F.json", help="a JSON object of entry inputs")
    run_p.add_argument("--provider", choices=("local", "ollama", "openai"), default="local")
    run_p.add_argument("--model", help="model name (default: gemma3-270m for local; required otherwise)")
    run_p.add_argument("--base-url", help="server URL (ollama: $OLLAMA_HOST or :11434; openai: required)")
    run_p.add_argument(
        "--num-ctx", type=int, help="context window in tokens (ollama: sent as num_ctx; local: n_ctx)"
    )
    run_p.add_argument(
        "--stall-timeout",
        type=float,
        help="ollama: abandon a streamed answer after this many seconds without a byte (default 30)",
    )
    run_p.add_argument(
        "--searxng-url",
        default=os.environ.get(SEARXNG_ENV),
        help=f"SearXNG instance for web search (${SEARXNG_ENV})",
    )
    run_p.add_argument("--trace", action="store_true", help="print the per-step trace on stderr")
    run_p.add_argument(
        "--trace-format", choices=("json", "table"), default="json", help="trace format (json)"
    )


def _fail(message: str, code: int) -> int:
    print(f"synod workflow: {message}", file=sys.stderr)
    return code


class _UsageError(Exception):
    pass


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.input_file:
        try:
            loaded = json.loads(Path(args.input_file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise _UsageError(f"--input-file {args.input_file}: {exc.strerror}") from exc
        except ValueError as exc:
            raise _UsageError(f"--input-file {args.input_file}: not JSON ({exc})") from exc
        if not isinstance(loaded, dict):
            raise _UsageError(f"--input-file {args.input_file}: must hold a JSON object of inputs")
        values.update(loaded)
    for item in args.input:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _UsageError(f"--input {item!r}: expected KEY=VALUE")
        values[key] = value
    return values


def _validate(args: argparse.Namespace) -> int:
    from workflow.errors import WorkflowValidationError
    from workflow.validate import inspect_workflow_file

    try:
        checked = inspect_workflow_file(args.file, strict=args.strict)
    except WorkflowValidationError as exc:
        return _fail(f"invalid workflow {args.file}: {exc}", EXIT_USAGE)
    for warning in checked.warnings:
        print(f"synod workflow: warning: {args.file}: {warning}", file=sys.stderr)
    workflow = checked.workflow
    size = f"{len(workflow.tasks)} tasks, {len(workflow.steps)} steps"
    noted = f", {len(checked.warnings)} warning(s)" if checked.warnings else ""
    print(f"{args.file}: valid workflow {workflow.name!r} ({size}{noted})")
    return EXIT_OK


def _print_trace(trace: Any, fmt: str) -> None:
    if fmt == "json":
        print(trace.model_dump_json(), file=sys.stderr)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{trace.workflow}: {trace.status} in {trace.duration_s:.2f}s ({trace.provider}/{trace.model})"
    )
    for column in ("#", "task", "operator", "status", "tokens in/out", "time s", "next", "sources"):
        table.add_column(column)
    for step in trace.steps:
        table.add_row(
            str(step.index),
            step.task_id,
            step.operator,
            step.status if step.error is None else f"{step.status}: {step.error}",
            f"{step.prompt_tokens}/{step.completion_tokens}",
            f"{step.duration_s:.3f}",
            step.next or "-",
            "\n".join(s.url for s in step.sources) or "-",
        )
    Console(stderr=True).print(table)


def _run(args: argparse.Namespace) -> int:
    import trio
    from pydantic import SecretStr, ValidationError

    from workflow.engine import Engine, RunOutcome
    from workflow.errors import (
        MissingInputError,
        ProviderError,
        ToolError,
        WorkflowError,
        WorkflowValidationError,
    )
    from workflow.providers.base import ProviderSettings
    from workflow.providers.factory import build_provider
    from workflow.tools.registry import ToolSettings, open_toolset
    from workflow.validate import load_workflow

    try:
        inputs = _inputs(args)
    except _UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        workflow = load_workflow(args.file, strict=args.strict)
    except WorkflowValidationError as exc:
        return _fail(f"invalid workflow {args.file}: {exc}", EXIT_USAGE)
    if args.provider != "local" and not args.model:
        return _fail(f"--model is required with --provider {args.provider}", EXIT_USAGE)
    api_key = os.environ.get(OPENAI_KEY_ENV) if args.provider == "openai" else None
    extra: dict[str, Any] = {}
    if args.num_ctx is not None:
        extra["n_ctx"] = args.num_ctx
    if args.stall_timeout is not None:
        extra["stall_timeout_s"] = args.stall_timeout
    try:
        settings = ProviderSettings(
            kind=args.provider,
            model=args.model or "gemma3-270m",
            base_url=args.base_url,
            api_key=SecretStr(api_key) if api_key else None,
            **extra,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        return _fail(f"bad provider setting {problem['loc'][0]}: {problem['msg']}", EXIT_USAGE)
    serper = os.environ.get(SERPER_ENV)
    custom_key = os.environ.get(CUSTOM_TOOL_KEY_ENV)
    tool_settings = ToolSettings(
        searxng_url=args.searxng_url or None,
        serper_api_key=SecretStr(serper) if serper else None,
        custom_tool_api_key=SecretStr(custom_key) if custom_key else None,
    )

    async def main() -> RunOutcome:
        provider = build_provider(settings)
        try:
            # Tools are resolved leniently: one that cannot be built fails only the task that calls it.
            async with open_toolset(
                workflow.config.tools, workflow.custom_templates(), tool_settings
            ) as toolset:
                engine = Engine(
                    provider,
                    tools=list(toolset.tools.values()),
                    web_search=toolset.web_search,
                    unavailable_tools=toolset.unavailable,
                )
                return await engine.execute(workflow, inputs)
        finally:
            # A model call cancelled at max_time may still be finishing in its worker thread;
            # do not wait for it (the process exits anyway).
            with trio.move_on_after(CLOSE_GRACE_S):
                await provider.aclose()

    try:
        outcome = trio.run(main)
    except ToolError as exc:
        return _fail(f"tools: {exc}", EXIT_USAGE)
    except WorkflowError as exc:
        return _fail(str(exc), EXIT_RUNTIME)
    if args.trace:
        _print_trace(outcome.trace, args.trace_format)
    error = outcome.error
    if error is not None:
        if isinstance(error, MissingInputError):
            return _fail(f"missing input: {error}", EXIT_USAGE)
        if isinstance(error, ProviderError):
            return _fail(f"provider failed: {error}", EXIT_RUNTIME)
        return _fail(f"run failed: {type(error).__name__}: {error}", EXIT_RUNTIME)
    assert outcome.result is not None
    print(outcome.result.value)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Entry point called by :mod:`cli.main`."""
    if str(getattr(args, "log_level", "WARNING")).upper() == "WARNING":
        # At the default level, retry warnings would bury the one error line; --log-level INFO shows them.
        logging.getLogger("workflow").setLevel(logging.ERROR)
    if args.workflow_command == "validate":
        return _validate(args)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # never a traceback on stderr: one line, the details in the debug log
        logging.getLogger("workflow").debug("unexpected error", exc_info=True)
        return _fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_RUNTIME)
