"""Tool settings and the function that builds the tools a workflow names.

``config.tools`` uses the tool names of the original Ollama Workflows engine
(``browserless``, ``jina``, ``serper``, ``duckduckgo``, ``stock``, ``scraper``) or ``"ALL"``:

================  =============================================================================
name              Synod tool
================  =============================================================================
``scraper``       :class:`ScrapeTool` (lxml; robots.txt respected). Always available.
``jina``,         the original's hosted/headless scrapers; served by the same :class:`ScrapeTool`
``browserless``   (registered under their own names).
``serper``        :class:`SerperSearch`; needs ``serper_api_key``.
``duckduckgo``    the original's key-less web search; served by :class:`SearxngSearch`; needs
                  ``searxng_url``.
``searxng``       :class:`SearxngSearch` under its own name (Synod addition); needs ``searxng_url``.
``stock``         not provided: :class:`ToolNotFoundError`.
``ALL``           every tool above whose backend is configured.
================  =============================================================================

Naming a tool whose backend is not configured raises :class:`ToolNotFoundError` naming the
setting to add. Custom tools (``config.custom_tools``) of mode ``http_request`` become
:class:`CustomHttpTool`; ``custom`` mode tools have no executor and are not returned (the engine
offers their :meth:`CustomToolTemplate.tool_spec` to the model and returns the call raw).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from workflow.errors import ToolNotFoundError
from workflow.tools.base import Tool
from workflow.tools.custom import CustomHttpTool, CustomToolTemplate
from workflow.tools.http import Fetcher, FetchLimits
from workflow.tools.scraper import ScrapeTool
from workflow.tools.search import SearxngSearch, SerperSearch, WebSearchTool

ORIGINAL_TOOL_NAMES: tuple[str, ...] = ("browserless", "jina", "serper", "duckduckgo", "stock", "scraper")
SYNOD_TOOL_NAMES: tuple[str, ...] = ("searxng",)
ALL = "ALL"


class ToolSettings(BaseModel):
    """Where the tools reach the web. Nothing external is enabled by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    searxng_url: str | None = None
    """A SearXNG instance with the JSON format enabled, e.g. ``http://127.0.0.1:8888``."""
    serper_api_key: SecretStr | None = None
    serper_url: str = "https://google.serper.dev"
    custom_tool_api_key: SecretStr | None = None
    """Sent as ``Authorization: Bearer`` by custom HTTP tools (the original's ``$API_KEY``)."""
    user_agent: str = "SynodBot/0.1 (+https://github.com/synod)"
    timeout_s: float = Field(default=15.0, gt=0)
    max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    respect_robots: bool = True
    max_text_chars: int = Field(default=20_000, ge=100)
    search_results: int = Field(default=5, ge=1, le=10)

    def fetch_limits(self) -> FetchLimits:
        return FetchLimits(
            user_agent=self.user_agent,
            timeout_s=self.timeout_s,
            max_bytes=self.max_bytes,
            max_redirects=self.max_redirects,
            respect_robots=self.respect_robots,
        )


def _build_one(name: str, settings: ToolSettings, fetcher: Fetcher) -> Tool:
    if name in ("scraper", "jina", "browserless"):
        return ScrapeTool(fetcher, name=name, max_chars=settings.max_text_chars)
    if name == "serper":
        if settings.serper_api_key is None:
            raise ToolNotFoundError("tool 'serper' needs ToolSettings.serper_api_key (a Serper.dev API key)")
        return SerperSearch(
            fetcher,
            settings.serper_api_key,
            base_url=settings.serper_url,
            default_results=settings.search_results,
        )
    if name in ("duckduckgo", "searxng"):
        if settings.searxng_url is None:
            raise ToolNotFoundError(f"tool {name!r} needs ToolSettings.searxng_url (a SearXNG instance)")
        return SearxngSearch(
            fetcher, settings.searxng_url, name=name, default_results=settings.search_results
        )
    if name == "stock":
        raise ToolNotFoundError("tool 'stock' is not provided by Synod")
    known = [*ORIGINAL_TOOL_NAMES, *SYNOD_TOOL_NAMES, ALL]
    raise ToolNotFoundError(f"unknown tool {name!r} (known: {known})")


def _available(settings: ToolSettings) -> list[str]:
    names = ["scraper"]
    if settings.serper_api_key is not None:
        names.append("serper")
    if settings.searxng_url is not None:
        names.append("searxng")
    return names


def build_tools(
    names: Sequence[str],
    custom_tools: Sequence[CustomToolTemplate],
    settings: ToolSettings,
    fetcher: Fetcher,
) -> dict[str, Tool]:
    """The tools a workflow names, keyed by the name the model sees, sharing ``fetcher``.

    Raises :class:`ToolNotFoundError` for an unknown name, an unconfigured backend, or two tools
    with the same name.
    """
    wanted: list[str] = []
    for name in names:
        for resolved in _available(settings) if name == ALL else [name]:
            if resolved not in wanted:
                wanted.append(resolved)
    tools: dict[str, Tool] = {}
    for name in wanted:
        tool = _build_one(name, settings, fetcher)
        tools[tool.spec.name] = tool
    for template in custom_tools:
        if template.mode != "http_request":
            continue
        if template.name in tools:
            raise ToolNotFoundError(f"custom tool {template.name!r} clashes with a tool of the same name")
        tools[template.name] = CustomHttpTool(template, fetcher, api_key=settings.custom_tool_api_key)
    return tools


def find_search_tool(tools: dict[str, Tool]) -> WebSearchTool | None:
    """The first configured web search backend among ``tools`` (for the ``search`` operator)."""
    for tool in tools.values():
        if isinstance(tool, WebSearchTool):
            return tool
    return None


@asynccontextmanager
async def open_tools(
    names: Sequence[str],
    custom_tools: Sequence[CustomToolTemplate],
    settings: ToolSettings,
) -> AsyncIterator[dict[str, Tool]]:
    """``build_tools`` with a fetcher owned by the block (closed on exit)."""
    async with Fetcher(settings.fetch_limits()) as fetcher:
        yield build_tools(names, custom_tools, settings, fetcher)
