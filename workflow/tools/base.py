"""The interface every tool implements, and the provenance record of what it fetched."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from workflow.providers.base import ToolSpec


class Source(BaseModel):
    """One fetched resource, kept in the trace for provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    digest: str
    """0x-hex keccak256 of the bytes received (protocol.canonical.keccak256)."""
    content_type: str = ""
    size: int = 0
    status: int = 200


class ToolResult(BaseModel):
    """The text a tool hands back to the program or the model, and the sources behind it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    content: str
    sources: tuple[Source, ...] = ()


@runtime_checkable
class Tool(Protocol):
    """A callable tool. ``spec`` is what the model sees when function calling."""

    @property
    def spec(self) -> ToolSpec: ...

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Run the tool; raise :class:`workflow.errors.ToolError` on failure."""
        ...
