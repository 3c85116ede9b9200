"""Prompt placeholders: ``{name}`` (early docs) and ``{{name}}`` (later versions).

Only names made of letters, digits and underscores are placeholders, so JSON in a prompt
(``{"a": 1}``) is left alone. Filling is a single pass: a value that itself contains ``{x}`` is
not filled again (the original replaces input by input, so its result depended on map order).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> list[str]:
    """The placeholder names in ``template``, in order of appearance (with repeats)."""
    return [m.group(1) or m.group(2) for m in _PLACEHOLDER.finditer(template)]


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder whose name is in ``values``; leave the others as written."""
    if "{" not in template:
        return template

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        value = values.get(name)
        return match.group(0) if value is None else value

    return _PLACEHOLDER.sub(sub, template)
