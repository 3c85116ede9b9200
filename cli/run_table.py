"""What ``synod node`` and ``synod oracle`` share around a daemon's config file: where it is, and
the default ``[run]`` table that ``init`` appends to it."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from protocol.operator.config import OperatorRole


def config_path(args: argparse.Namespace, role: OperatorRole) -> Path:
    """``--config`` (``~`` expanded), else the role's default config path."""
    from protocol.operator.config import default_config_path

    path: Path | None = args.config
    return path.expanduser() if path is not None else default_config_path(role)


def append_run_table(
    path: Path, comment: str, defaults: Callable[[Mapping[str, Any]], Mapping[str, Any]]
) -> bool:
    """Append a ``[run]`` table (``comment`` first, then ``defaults(document)``'s keys in order) to
    the TOML config at ``path``, keeping the rest of the file as written. Returns ``False`` and
    changes nothing when the file already has one. Raises ``OSError`` when the file cannot be read
    or written, ``tomlkit`` parse errors when it is not TOML."""
    import tomlkit

    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    if "run" in doc:
        return False
    table = tomlkit.table()
    table.add(tomlkit.comment(comment))
    for key, value in defaults(doc).items():
        table.add(key, value)
    doc.add(tomlkit.nl())
    doc.add("run", table)
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return True
