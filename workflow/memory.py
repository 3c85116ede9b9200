"""Program memory: a key-value cache, stacks, and a file system searched by meaning.

Values are :class:`Entry` objects: the original's ``Entry::String`` / ``Entry::Json``. Text that
parses as JSON becomes a JSON entry (``Entry.parse``), as the original's ``try_value_or_str``.
A JSON entry renders as compact JSON, so ``"42"`` stays ``42`` and ``"\\"hi\\""`` stays quoted.

A read of several entries (``get_all``, or a list ``return_value``) renders as the original's
``MemoryReturnType`` does: each entry's text followed by ``" \\n"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workflow.embeddings import Embedder, FileSystem

_JSON_START = frozenset('{["-0123456789tfn')
SEPARATOR = " \n"
"""What follows each entry of a multi-entry read when it is rendered as text (the original's)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored value: a string, or a JSON value when ``is_json``."""

    value: Any
    is_json: bool = False

    @staticmethod
    def parse(text: str) -> Entry:
        """A JSON entry if ``text`` is a JSON document, else a string entry."""
        stripped = text.strip()
        if stripped and stripped[0] in _JSON_START:
            try:
                return Entry(json.loads(text, parse_constant=_reject_constant), True)
            except (ValueError, RecursionError):
                pass
        return Entry(text, False)

    @staticmethod
    def of(value: Any) -> Entry:
        """An entry holding a Python value given by the caller (str stays a string)."""
        if isinstance(value, str):
            return Entry(value, False)
        return Entry(value, True)

    def text(self) -> str:
        """The original's ``Display``: strings as is, JSON compact."""
        if self.is_json:
            return json.dumps(self.value, ensure_ascii=False, separators=(",", ":"))
        return str(self.value)

    def to_json_value(self) -> Any:
        """The entry as a JSON value (a string entry becomes a JSON string)."""
        return self.value


@dataclass(frozen=True, slots=True)
class Value:
    """What a memory read returns: one entry, a list of entries, several reads, or nothing.

    ``kind`` is ``"entry"`` (``entry`` may be None), ``"list"`` (``entries`` may be None) or
    ``"multiple"`` (``parts``), as the original's ``MemoryReturnType``.
    """

    kind: str
    entry: Entry | None = None
    entries: tuple[Entry, ...] | None = None
    parts: tuple[Value, ...] = ()

    @staticmethod
    def one(entry: Entry | None) -> Value:
        return Value("entry", entry=entry)

    @staticmethod
    def many(entries: Sequence[Entry] | None) -> Value:
        return Value("list", entries=None if entries is None else tuple(entries))

    def is_none(self) -> bool:
        if self.kind == "entry":
            return self.entry is None
        if self.kind == "list":
            return self.entries is None
        return False

    def text(self) -> str:
        """Rendered for a prompt: each entry of a list (each read of a multiple) followed by
        :data:`SEPARATOR`, as the original's ``Display``."""
        if self.kind == "entry":
            return "" if self.entry is None else self.entry.text()
        if self.kind == "list":
            return "".join(e.text() + SEPARATOR for e in self.entries or ())
        return "".join(p.text() + SEPARATOR for p in self.parts)

    def original_json(self) -> list[str] | None:
        """``to_json`` as the original computes it: a list read -> its entries' texts, several
        reads -> each read's text; one entry (or a missing list) -> ``None`` (the caller falls back
        to the text, post-processed)."""
        if self.kind == "list":
            return None if self.entries is None else [e.text() for e in self.entries]
        if self.kind == "multiple":
            return [p.text() for p in self.parts]
        return None

    def to_json_value(self) -> Any:
        """The value as JSON, structure kept (``return_value.structured``)."""
        if self.kind == "entry":
            return None if self.entry is None else self.entry.to_json_value()
        if self.kind == "list":
            return None if self.entries is None else [e.to_json_value() for e in self.entries]
        return [p.to_json_value() for p in self.parts]


class ProgramMemory:
    """The memory of one run. Not shared between runs."""

    def __init__(self, file_system: FileSystem) -> None:
        self._cache: dict[str, Entry] = {}
        self._stacks: dict[str, list[Entry]] = {}
        self.file_system = file_system

    @classmethod
    def with_embedder(cls, embedder: Embedder) -> ProgramMemory:
        return cls(FileSystem(embedder))

    # cache
    def read(self, key: str) -> Entry | None:
        return self._cache.get(key)

    def write(self, key: str, entry: Entry) -> None:
        self._cache[key] = entry

    # stacks
    def push(self, key: str, entry: Entry) -> None:
        self._stacks.setdefault(key, []).append(entry)

    def pop(self, key: str) -> Entry | None:
        page = self._stacks.get(key)
        return page.pop() if page else None

    def peek(self, key: str, index: int) -> Entry | None:
        """The ``index``-th entry from the bottom (0 is the first pushed), as the original."""
        page = self._stacks.get(key)
        if page is None or index >= len(page):
            return None
        return page[index]

    def get_all(self, key: str) -> list[Entry] | None:
        page = self._stacks.get(key)
        return None if page is None else list(page)

    def size(self, key: str) -> int:
        return len(self._stacks.get(key, ()))

    def load_external(self, external: Mapping[str, Any]) -> None:
        """``external_memory`` as the original loads it: a list becomes a stack of its entries
        (``pop``, ``peek``, ``get_all``, ``size``, ``sample``), anything else one cache entry
        (``read``)."""
        for key, value in external.items():
            if isinstance(value, list):
                self._stacks[key] = [Entry.of(v) for v in value]
            else:
                self._cache[key] = Entry.of(value)

    def snapshot(self) -> dict[str, Any]:
        """The cache and stacks as JSON values (for debugging and tests)."""
        return {
            "cache": {k: v.to_json_value() for k, v in self._cache.items()},
            "stacks": {k: [e.to_json_value() for e in v] for k, v in self._stacks.items()},
            "files": len(self.file_system),
        }
