"""Step conditions and the return value's post-processing, as the original evaluates them.

Numeric comparisons parse both sides as floats after trimming whitespace; where the original
panics on a value that is not a number, a condition here is simply false (the program goes to
``target_if_not``): garbage from the model is the workflow's business, never a crash.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from workflow.model import Expression, PostProcessType, TaskPostProcess


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return None if math.isnan(value) else value


def compare(expression: Expression, value: str, expected: str) -> bool:
    """Evaluate every expression but ``HaveSimilar`` (which needs the file system)."""
    if expression is Expression.EQUAL:
        return value == expected
    if expression is Expression.NOT_EQUAL:
        return value != expected
    if expression is Expression.CONTAINS:
        return expected in value
    if expression is Expression.NOT_CONTAINS:
        return expected not in value
    left, right = _number(value), _number(expected)
    if left is None or right is None:
        return False
    if expression is Expression.GREATER_THAN:
        return left > right
    if expression is Expression.LESS_THAN:
        return left < right
    if expression is Expression.GREATER_THAN_OR_EQUAL:
        return left >= right
    if expression is Expression.LESS_THAN_OR_EQUAL:
        return left <= right
    raise ValueError(f"{expression.value} is not a plain comparison")


def normalise_for_check(text: str) -> str:
    """The ``check`` operator's normalisation: trim, drop newlines, lower-case (as the original)."""
    return text.strip().replace("\n", "").lower()


def post_process(text: str, steps: Sequence[TaskPostProcess]) -> str:
    """Apply the return value's post-processing in order.

    As in the original, ``replace`` needs ``lhs`` and ``rhs``, ``append`` takes ``rhs`` and
    ``prepend`` takes ``lhs``; a step missing its operand is skipped.
    """
    for step in steps:
        kind = step.process_type
        if kind is PostProcessType.REPLACE:
            if step.lhs is not None and step.rhs is not None:
                text = text.replace(step.lhs, step.rhs)
        elif kind is PostProcessType.APPEND:
            if step.rhs is not None:
                text = text + step.rhs
        elif kind is PostProcessType.PREPEND:
            if step.lhs is not None:
                text = step.lhs + text
        elif kind is PostProcessType.TRIM:
            text = text.strip()
        elif kind is PostProcessType.TRIM_START:
            text = text.lstrip()
        elif kind is PostProcessType.TRIM_END:
            text = text.rstrip()
        elif kind is PostProcessType.TO_LOWER:
            text = text.lower()
        elif kind is PostProcessType.TO_UPPER:
            text = text.upper()
    return text
