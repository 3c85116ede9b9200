"""Typed events and views from forge's ABIs: one frozen pydantic model per event, decoded logs.

:class:`EventCatalog` builds a :class:`ChainEvent` subclass for every event of a set of ABIs
(the same idea as :class:`~protocol.chain.errors.RevertCatalog` for errors: never a topic or a
type written by hand) and decodes raw logs into them. A module that wants static types declares
the model itself and hands it to the catalog, which checks it field by field against the ABI::

    class Transfer(ChainEvent):
        __event_signature__ = "Transfer(address,address,uint256)"
        from_: Address = Field(alias="from")
        to: Address
        value: int

    catalog = EventCatalog({"DevnetToken": abi}, declared=[Transfer])
    event = catalog.decode(raw_log)          # -> Transfer(...), block/log position included

ABI -> Python types: ``uintN``/``intN`` -> ``int``, ``address`` -> checksummed
:data:`~protocol.types.Address`, ``bool``, ``bytesN``/``bytes`` -> ``bytes``, ``string`` -> ``str``,
arrays -> ``tuple``, structs -> a nested frozen model. An *indexed* dynamic value (string, bytes,
array, struct) is only its keccak hash in the topic: it decodes to ``bytes`` (32).
Parameter names that clash with Python keywords or the base fields get a trailing ``_`` and keep
the ABI name as their alias (``from`` -> ``from_``). :class:`ViewDecoder` does the same for the
outputs of view functions.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, ClassVar

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import (
    abi_to_signature,
    event_abi_to_log_topic,
    function_signature_to_4byte_selector,
)
from eth_utils.address import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from protocol.chain.errors import ChainError, DeploymentError
from protocol.chain.wire import RawLog, construct_checked
from protocol.types import Address


class EventDecodeError(ChainError):
    """A log whose topic is known but whose topics/data do not decode against the ABI."""


class ChainEvent(BaseModel):
    """Base of every typed event: the log's position plus the event's arguments (subclass fields).

    Events order by :attr:`position` ``(block_number, log_index)``, the chain's order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    event_name: ClassVar[str] = ""
    signature: ClassVar[str] = ""
    topic: ClassVar[bytes] = b""

    address: Address
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    log_index: int

    @property
    def position(self) -> tuple[int, int]:
        """``(block_number, log_index)``."""
        return (self.block_number, self.log_index)

    def args(self) -> dict[str, Any]:
        """The event's own arguments by their ABI names."""
        base = set(ChainEvent.model_fields)
        return {
            (info.alias or name): getattr(self, name)
            for name, info in type(self).model_fields.items()
            if name not in base
        }


_BASE_FIELDS = frozenset(ChainEvent.model_fields) | {"position", "args", "topic", "signature"}


def _field_name(name: str, index: int, taken: frozenset[str]) -> str:
    name = name or f"arg{index}"
    if keyword.iskeyword(name) or name in taken or name.startswith("_") or name.startswith("model_"):
        name = name.lstrip("_") + "_"
        if name.startswith("model_"):
            name = "m_" + name
    return name


def _abi_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type string, structs expanded to ``(t1,t2)``."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param.get("components", []))
        return f"({inner}){kind[5:]}"
    return kind


def _python_type(param: Mapping[str, Any], owner: str, models: dict[str, type[BaseModel]]) -> Any:
    kind = str(param["type"])
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return tuple[_python_type(element, owner, models), ...]  # type: ignore[misc]
    if kind == "tuple":
        return _struct_model(param, owner, models)
    if kind == "address":
        return Address
    if kind == "bool":
        return bool
    if kind == "string":
        return str
    if kind.startswith("bytes"):
        return bytes
    if kind.startswith(("uint", "int")):
        return int
    raise DeploymentError(f"unsupported ABI type {kind} in {owner}")


def _struct_model(
    param: Mapping[str, Any], owner: str, models: dict[str, type[BaseModel]]
) -> type[BaseModel]:
    name = str(param.get("internalType", "")).removeprefix("struct ").split(".")[-1].rstrip("[]") or (
        f"{owner}_{param.get('name', 'struct')}"
    )
    if name in models:
        return models[name]
    fields: dict[str, Any] = {}
    for i, component in enumerate(param.get("components", [])):
        field = _field_name(str(component.get("name", "")), i, frozenset())
        fields[field] = (_python_type(component, owner, models), Field(alias=component.get("name") or field))
    model = create_model(
        name, __config__=ConfigDict(frozen=True, extra="forbid", populate_by_name=True), **fields
    )
    models[name] = model
    return model


@lru_cache(maxsize=4096)
def _checksum(value: str) -> Address:
    return Address(to_checksum_address(value))


def _normalise(param: Mapping[str, Any], value: Any) -> Any:
    """eth_abi's decoded value -> the shape the model validates (addresses checksummed, structs
    as dicts by field name, arrays as tuples)."""
    kind = str(param["type"])
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return tuple(_normalise(element, v) for v in value)
    if kind == "tuple":
        return {
            (c.get("name") or f"arg{i}"): _normalise(c, v)
            for i, (c, v) in enumerate(zip(param.get("components", []), value, strict=True))
        }
    if kind == "address":
        return _checksum(value)
    return value


def _static_word_decoder(kind: str) -> Callable[[bytes], Any] | None:
    """A strict decoder of one 32-byte ABI word of static ``kind`` (``None`` if not a one-word
    static type): eth_abi costs tens of microseconds per value, this about one. Like eth_abi's
    strict mode it refuses (``ValueError``) padding that is not zero and out-of-range values."""
    if kind.endswith("]") or kind.startswith("("):
        return None
    if kind.startswith("uint"):
        bits = int(kind[4:] or 256)
        return lambda word: _bounded(int.from_bytes(word, "big"), 0, 2**bits - 1, kind)
    if kind.startswith("int"):
        bits = int(kind[3:] or 256)
        return lambda word: _bounded(
            int.from_bytes(word, "big", signed=True), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, kind
        )
    if kind == "address":
        return lambda word: _checksum("0x" + _padded(word, 12, 32, kind).hex())
    if kind == "bool":
        return lambda word: bool(_bounded(int.from_bytes(word, "big"), 0, 1, kind))
    if kind.startswith("bytes") and kind[5:].isdigit():
        size = int(kind[5:])
        return lambda word: _padded(word, 0, size, kind)
    return None


def _bounded(value: int, low: int, high: int, kind: str) -> int:
    if low <= value <= high:
        return value
    raise ValueError(f"{value} out of range for {kind}")


def _padded(word: bytes, start: int, end: int, kind: str) -> bytes:
    if len(word) != 32 or any(word[:start]) or any(word[end:]):
        raise ValueError(f"{kind} word with non-zero padding: 0x{word.hex()}")
    return word[start:end]


class _EventCodec:
    """How one event's log decodes: which params come from topics, which from data."""

    def __init__(self, entry: Mapping[str, Any], model: type[ChainEvent]) -> None:
        self.model = model
        inputs: list[Mapping[str, Any]] = list(entry.get("inputs", []))
        self.names = [_field_name(str(p.get("name", "")), i, _BASE_FIELDS) for i, p in enumerate(inputs)]
        self.indexed = [(n, p) for n, p in zip(self.names, inputs, strict=True) if p.get("indexed")]
        self.plain = [(n, p) for n, p in zip(self.names, inputs, strict=True) if not p.get("indexed")]
        self.plain_types = [_abi_type(p) for _, p in self.plain]
        # fast paths: every indexed value / every data value a single static word
        self.topic_words = [_static_word_decoder(_abi_type(p)) for _, p in self.indexed]
        words = [_static_word_decoder(t) for t in self.plain_types]
        self.data_words = words if all(w is not None for w in words) else None
        self.trusted = self.data_words is not None and all(w is not None for w in self.topic_words)
        self.topic_plan = [
            (name, param, _abi_type(param), fast)
            for (name, param), fast in zip(self.indexed, self.topic_words, strict=True)
        ]
        self.data_plan = (
            None
            if self.data_words is None
            else [
                (name, 32 * i, fast)
                for i, ((name, _), fast) in enumerate(zip(self.plain, self.data_words, strict=True))
            ]
        )

    def decode(self, log: RawLog) -> ChainEvent:
        if len(log.topics) != 1 + len(self.indexed):
            raise EventDecodeError(
                f"{self.model.signature}: {len(log.topics)} topics, expected {1 + len(self.indexed)} "
                f"(block {log.block_number} log {log.log_index})"
            )
        values: dict[str, Any] = {}
        try:
            for (name, param, kind, fast), topic in zip(self.topic_plan, log.topics[1:], strict=True):
                if fast is not None:
                    values[name] = fast(topic)
                elif kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
                    values[name] = topic  # only the hash of a dynamic indexed value is logged
                else:
                    values[name] = _normalise(param, abi_decode([kind], topic)[0])
            if self.data_plan is not None:
                data = log.data
                if len(data) != 32 * len(self.data_plan):
                    raise ValueError(f"{len(data)} bytes of data for {len(self.data_plan)} words")
                for name, offset, fast in self.data_plan:
                    values[name] = fast(data[offset : offset + 32])  # type: ignore[misc]
            else:
                decoded = abi_decode(self.plain_types, log.data) if self.plain_types else ()
                for (name, param), value in zip(self.plain, decoded, strict=True):
                    values[name] = _normalise(param, value)
        except Exception as exc:  # eth_abi raises several unrelated types for malformed input
            raise EventDecodeError(
                f"{self.model.signature}: undecodable log (block {log.block_number} log "
                f"{log.log_index}): {type(exc).__name__}: {exc}"
            ) from None
        fields = {
            "address": log.address,
            "block_number": log.block_number,
            "block_hash": log.block_hash,
            "transaction_hash": log.transaction_hash,
            "log_index": log.log_index,
            **values,
        }
        if self.trusted:
            # every value was just decoded to its field's exact type (the fast paths above, from
            # a validated RawLog): skip pydantic's second pass, the watcher's hot spot
            return construct_checked(self.model, fields)
        try:
            return self.model.model_validate(fields)
        except ValidationError as exc:
            raise EventDecodeError(f"{self.model.signature}: {exc}") from None


class EventCatalog:
    """A typed model for every (non-anonymous) event of a set of ABIs, and the log decoder.

    ``abis`` maps contract name -> forge ABI. ``declared`` are hand-written :class:`ChainEvent`
    subclasses (each with ``__event_signature__``) to use instead of generated ones; each is
    checked against the ABI (same parameter names in order, same Python types) and a mismatch
    raises :class:`DeploymentError`, as do two different events sharing one name.
    """

    def __init__(
        self, abis: Mapping[str, Iterable[Mapping[str, Any]]], declared: Iterable[type[ChainEvent]] = ()
    ) -> None:
        wanted = {getattr(cls, "__event_signature__", ""): cls for cls in declared}
        self._by_topic: dict[bytes, _EventCodec] = {}
        self._by_name: dict[str, type[ChainEvent]] = {}
        self._structs: dict[str, type[BaseModel]] = {}
        for contract, abi in abis.items():
            for entry in abi:
                if entry.get("type") != "event" or entry.get("anonymous", False):
                    continue
                topic = bytes(event_abi_to_log_topic(entry))  # type: ignore[arg-type]
                if topic in self._by_topic:
                    continue
                signature = abi_to_signature(entry)  # type: ignore[arg-type]
                name = str(entry["name"])
                if name in self._by_name:
                    raise DeploymentError(
                        f"event name {name} has two signatures: {self._by_name[name].signature} and "
                        f"{signature} ({contract})"
                    )
                generated = self._generate(entry, contract, signature, topic)
                model = generated
                if signature in wanted:
                    model = wanted.pop(signature)
                    _check_declared(model, generated)
                    model.event_name, model.signature, model.topic = name, signature, topic
                self._by_topic[topic] = _EventCodec(entry, model)
                self._by_name[name] = model
        if wanted:
            raise DeploymentError(f"declared events not in the ABIs: {sorted(wanted)}")

    def _generate(
        self, entry: Mapping[str, Any], contract: str, signature: str, topic: bytes
    ) -> type[ChainEvent]:
        fields: dict[str, Any] = {}
        for i, param in enumerate(entry.get("inputs", [])):
            field = _field_name(str(param.get("name", "")), i, _BASE_FIELDS)
            kind = _abi_type(param)
            dynamic = kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("(")
            py = (
                bytes
                if param.get("indexed") and dynamic
                else _python_type(param, str(entry["name"]), self._structs)
            )
            fields[field] = (py, Field(alias=param.get("name") or field))
        name = str(entry["name"])
        model: type[ChainEvent] = create_model(
            name,
            __base__=ChainEvent,
            __doc__=f"Event ``{signature}`` of {contract} (generated from its forge ABI).",
            **fields,
        )
        model.event_name, model.signature, model.topic = name, signature, topic
        return model

    @property
    def names(self) -> frozenset[str]:
        """Every event's name."""
        return frozenset(self._by_name)

    @property
    def topics(self) -> tuple[bytes, ...]:
        """Every event's topic 0 (for an ``eth_getLogs`` filter)."""
        return tuple(self._by_topic)

    def __getitem__(self, name: str) -> type[ChainEvent]:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no event named {name!r} in the ABIs") from None

    def decode(self, log: RawLog) -> ChainEvent | None:
        """The typed event of ``log``; ``None`` for a topic not in the ABIs (or no topic);
        :class:`EventDecodeError` for a known topic that does not decode."""
        if not log.topics:
            return None
        codec = self._by_topic.get(log.topics[0])
        return None if codec is None else codec.decode(log)


def _check_declared(declared: type[ChainEvent], generated: type[ChainEvent]) -> None:
    want = [(n, f.alias or n, f.annotation) for n, f in generated.model_fields.items()]
    have = [(n, f.alias or n, f.annotation) for n, f in declared.model_fields.items()]
    if want != have:
        raise DeploymentError(
            f"declared event {declared.__name__} does not match the ABI's {generated.signature}: "
            f"fields {have} != {want}"
        )


class ViewDecoder:
    """Encode calls to a contract's functions and decode their outputs into typed models.

    ``decode(name, data)`` returns a frozen model with one field per output (a single output is
    still a model, field ``value`` when unnamed). Built from one contract's forge ABI.
    """

    def __init__(self, abi: Iterable[Mapping[str, Any]], contract: str = "contract") -> None:
        self._functions: dict[str, tuple[Mapping[str, Any], bytes, type[BaseModel]]] = {}
        structs: dict[str, type[BaseModel]] = {}
        for entry in abi:
            if entry.get("type") != "function":
                continue
            name = str(entry["name"])
            if name in self._functions:  # overloads: the first wins; call them by web3 instead
                continue
            signature = abi_to_signature(entry)  # type: ignore[arg-type]
            outputs = list(entry.get("outputs", []))
            fields: dict[str, Any] = {}
            for i, param in enumerate(outputs):
                raw_name = str(param.get("name", "")) or ("value" if len(outputs) == 1 else "")
                field = _field_name(raw_name, i, frozenset())
                fields[field] = (_python_type(param, name, structs), Field(alias=raw_name or field))
            model = create_model(
                f"{contract}_{name}",
                __config__=ConfigDict(frozen=True, extra="forbid", populate_by_name=True),
                **fields,
            )
            self._functions[name] = (entry, function_signature_to_4byte_selector(signature), model)

    def encode(self, name: str, *args: Any) -> bytes:
        """Calldata for ``name(args)``."""
        entry, selector, _ = self._function(name)
        types = [_abi_type(p) for p in entry.get("inputs", [])]
        return selector + abi_encode(types, list(args))

    def decode(self, name: str, data: bytes) -> BaseModel:
        """The outputs of ``name`` from its return ``data``; :class:`EventDecodeError` if malformed."""
        entry, _, model = self._function(name)
        outputs: Sequence[Mapping[str, Any]] = list(entry.get("outputs", []))
        try:
            values = abi_decode([_abi_type(p) for p in outputs], data)
        except Exception as exc:  # eth_abi raises several unrelated types for malformed data
            raise EventDecodeError(f"{name}: undecodable return data: {type(exc).__name__}: {exc}") from None
        fields = list(model.model_fields)
        try:
            return model.model_validate(
                {f: _normalise(p, v) for f, p, v in zip(fields, outputs, values, strict=True)}
            )
        except ValidationError as exc:
            raise EventDecodeError(f"{name}: {exc}") from None

    def _function(self, name: str) -> tuple[Mapping[str, Any], bytes, type[BaseModel]]:
        try:
            return self._functions[name]
        except KeyError:
            raise KeyError(f"no function named {name!r} in the ABI") from None
