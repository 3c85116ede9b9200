"""Memory reads: what an input, a condition or the return value asks for (``InputValue``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow.memory import Entry, ProgramMemory, Value
from workflow.model import InputValue, InputValueType


class EntryInput:
    """The run's entry input: named values (``--input KEY=VALUE``) plus ``external_memory``.

    ``{"type": "input", "key": ""}`` reads the whole entry input: the single value when exactly
    one was given, else all of them as a JSON object. ``{"type": "input", "key": "k"}`` reads the
    value named ``k``, falling back to the ``external_memory`` entry ``k``.
    """

    def __init__(self, values: Mapping[str, Any], external: Mapping[str, Any] | None) -> None:
        self._values = dict(values)
        self._external = dict(external or {})

    def whole(self) -> Entry | None:
        if not self._values:
            return None
        if len(self._values) == 1:
            return Entry.of(next(iter(self._values.values())))
        return Entry(self._values, True)

    def has(self, key: str) -> bool:
        if not key:
            return bool(self._values)
        return key in self._values or key in self._external

    def get(self, key: str) -> Value:
        if not key:
            return Value.one(self.whole())
        if key in self._values:
            return Value.one(Entry.of(self._values[key]))
        if key in self._external:
            item = self._external[key]
            if isinstance(item, list):
                return Value.many([Entry.of(v) for v in item])
            return Value.one(Entry.of(item))
        return Value.one(None)


async def resolve(value: InputValue, memory: ProgramMemory, entry: EntryInput) -> Value:
    """Perform one memory read (``pop`` removes the entry it returns)."""
    kind = value.type
    if kind is InputValueType.INPUT:
        return entry.get(value.key)
    if kind is InputValueType.READ:
        return Value.one(memory.read(value.key))
    if kind is InputValueType.PEEK:
        return Value.one(memory.peek(value.key, value.index or 0))
    if kind is InputValueType.GET_ALL:
        return Value.many(memory.get_all(value.key))
    if kind is InputValueType.POP:
        return Value.one(memory.pop(value.key))
    if kind is InputValueType.STRING:
        return Value.one(Entry.parse(value.key))
    if kind is InputValueType.SIZE:
        return Value.one(Entry(memory.size(value.key), True))
    # search: the query is itself a read (or the key, taken literally)
    if value.search_query is not None:
        inner = InputValue(type=value.search_query.type, key=value.search_query.key)
        query = (await resolve(inner, memory, entry)).text()
    else:
        query = value.key
    passages = await memory.file_system.search(query)
    return Value.many([Entry(p, False) for p in passages])
