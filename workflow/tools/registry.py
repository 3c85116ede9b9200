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

The model-facing names of the original's tools (``website_scraper``, ``jina_web_scraper``,
``browserless_web_scraper``, ``ddg_searcher``, ``google_search_tool``, ``stock_scraper``) resolve to
the same Synod tools when a model calls them (:func:`resolve_call`); a scraper name is served by
any configured scraper and a search name by any configured search backend.

:func:`build_tools` raises :class:`ToolNotFoundError` for a tool it cannot build (naming the
setting to add); :func:`build_toolset` builds what it can and keeps the reason for the rest, so a
workflow naming an unknown or unavailable tool still runs until a tool-calling task needs it (as
the original, which resolves tools only then). Custom tools (``config.custom_tools``) of mode
``http_request`` become
:class:`CustomHttpTool`; ``custom`` mode tools have no executor and are not returned (the engine
offers their :meth:`CustomToolTemplate.tool_spec` to the model and returns the call raw).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

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

ORIGINAL_CALL_NAMES: dict[str, str] = {
    "website_scraper": "scraper",
    "jina_web_scraper": "jina",
    "browserless_web_scraper": "browserless",
    "ddg_searcher": "duckduckgo",
    "google_search_tool": "serper",
    "stock_scraper": "stock",
}
"""The names the original's tools show the model -> their ``config.tools`` names."""
_SCRAPERS = ("scraper", "jina", "browserless")
_SEARCHERS = ("searxng", "duckduckgo", "serper")


def tool_key(name: str) -> str:
    """How tool names are matched (the original lower-cases and replaces spaces)."""
    return name.strip().lower().replace(" ", "_")


def known_tool_name(name: str) -> bool:
    """Whether ``name`` is a ``config.tools`` name Synod resolves (available here or not)."""
    return name in (*ORIGINAL_TOOL_NAMES, *SYNOD_TOOL_NAMES, ALL)


def resolve_call(name: str, tools: Mapping[str, Tool]) -> Tool | None:
    """The tool a model's call names: by its key, else through the original's names and
    equivalents (any configured scraper for a scraper name, any search backend for a search name)."""
    key = tool_key(name)
    if key in tools:
        return tools[key]
    canonical = ORIGINAL_CALL_NAMES.get(key, key)
    if canonical in tools:
        return tools[canonical]
    group = _SCRAPERS if canonical in _SCRAPERS else _SEARCHERS if canonical in _SEARCHERS else ()
    for member in group:
        if member in tools:
            return tools[member]
    return None


def unavailable_reason(name: str, recorded: Mapping[str, str]) -> str:
    """Why a called tool is not here: the reason recorded at build time, or "not available"."""
    key = tool_key(name)
    canonical = ORIGINAL_CALL_NAMES.get(key, key)
    if canonical in recorded:
        return recorded[canonical]
    if canonical == "stock":
        return "tool 'stock' (the original's stock_scraper) is not available here"
    return f"tool {name!r} is not available here"


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
        raise ToolNotFoundError(
            "tool 'stock' (the original's stock_scraper, which reads a live quote site) is not available here"
        )
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


@dataclass
class ToolSet:
    """The tools of one run: ``tools`` (by the name the model sees), ``unavailable`` (a name the
    workflow gave -> why it could not be built) and ``web_search`` (the ``search`` operator's
    backend: SearXNG if configured, else Serper if it has a key, whatever ``config.tools`` says, as
    the original's search operator uses its own search regardless of the tool list)."""

    tools: dict[str, Tool] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    web_search: WebSearchTool | None = None


def _web_search(settings: ToolSettings, fetcher: Fetcher) -> WebSearchTool | None:
    if settings.searxng_url is not None:
        return SearxngSearch(fetcher, settings.searxng_url, default_results=settings.search_results)
    if settings.serper_api_key is not None:
        return SerperSearch(
            fetcher,
            settings.serper_api_key,
            base_url=settings.serper_url,
            default_results=settings.search_results,
        )
    return None


def build_toolset(
    names: Sequence[str],
    custom_tools: Sequence[CustomToolTemplate],
    settings: ToolSettings,
    fetcher: Fetcher,
) -> ToolSet:
    """Like :func:`build_tools`, but a name that cannot be built is recorded in ``unavailable``
    instead of raising (an empty or unknown name included)."""
    out = ToolSet(web_search=_web_search(settings, fetcher))
    wanted: list[str] = []
    for name in names:
        for resolved in _available(settings) if name == ALL else [name]:
            if resolved not in wanted:
                wanted.append(resolved)
    for name in wanted:
        try:
            tool = _build_one(name, settings, fetcher)
        except ToolNotFoundError as exc:
            out.unavailable[name] = str(exc)
            continue
        out.tools[tool.spec.name] = tool
    for template in custom_tools:
        if template.mode != "http_request":
            continue
        if template.name in out.tools:
            out.unavailable[template.name] = (
                f"custom tool {template.name!r} clashes with a tool of the same name"
            )
            continue
        out.tools[template.name] = CustomHttpTool(template, fetcher, api_key=settings.custom_tool_api_key)
    return out


@asynccontextmanager
async def open_toolset(
    names: Sequence[str],
    custom_tools: Sequence[CustomToolTemplate],
    settings: ToolSettings,
) -> AsyncIterator[ToolSet]:
    """``build_toolset`` with a fetcher owned by the block (closed on exit)."""
    async with Fetcher(settings.fetch_limits()) as fetcher:
        yield build_toolset(names, custom_tools, settings, fetcher)


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
