"""Structured logging: ``event key=value ...`` lines through the standard library.

Call :func:`configure` once at an entry point; libraries only call :func:`get_logger`.
Never pass key material as a field: :func:`get_logger` loggers redact fields named like secrets.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

_SECRET_WORDS = ("private", "secret", "password", "mnemonic", "api_key", "apikey")


def _render(value: Any) -> str:
    if isinstance(value, str) and value and all(c.isalnum() or c in "._-:/0x" for c in value):
        return value
    if isinstance(value, bytes):
        return "0x" + value.hex()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


class StructuredLogger:
    """A thin wrapper that logs an event name with keyword fields."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, fields: Mapping[str, Any]) -> None:
        if not self._logger.isEnabledFor(level):
            return
        parts = [event]
        for key, value in fields.items():
            shown = "[redacted]" if any(w in key.lower() for w in _SECRET_WORDS) else _render(value)
            parts.append(f"{key}={shown}")
        self._logger.log(level, " ".join(parts), stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)


def get_logger(name: str) -> StructuredLogger:
    """Return the structured logger for a module (``get_logger(__name__)``)."""
    return StructuredLogger(logging.getLogger(name))


def configure(level: str = "INFO") -> None:
    """Send log lines to stderr as ``time level logger event k=v``; call once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
