"""Web search backends. None is enabled by default; :mod:`workflow.tools.registry` builds them from
:class:`ToolSettings` when a workflow names them.

- :class:`SearxngSearch`: a SearXNG instance's JSON API, ``GET {base}/search?q=..&format=json``
  (the instance must allow the ``json`` format in its ``search.formats`` setting). Results are
  ``results[].{title,url,content}``.
- :class:`SerperSearch`: the hosted Serper.dev Google Search API, ``POST {base}/search`` with the key
  in ``X-API-KEY`` and ``{"q", "num", "gl", "hl", "page"}``; results are ``organic[].{title,link,snippet}``.

Both take ``{"query": str, "n_results": int?}`` (the argument names of the original Ollama
Workflows search tool) and return the results as text, one ``title / url / snippet`` block per
hit, with the raw API answer as the source (its URL and keccak256 digest).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr

from workflow.errors import FetchError, ToolError
from workflow.providers.base import ToolSpec
from workflow.tools.base import Source, ToolResult
from workflow.tools.http import JSON_TYPES, Fetcher

MAX_RESULTS = 10


@dataclass(frozen=True)
class SearchHit:
    """One search result."""

    title: str
    url: str
    snippet: str


def format_hits(hits: tuple[SearchHit, ...]) -> str:
    """Results as the text a model reads: title, URL and snippet per hit, blank-line separated."""
    return "\n\n".join(f"{h.title}\n{h.url}\n{h.snippet}".strip() for h in hits)


def _search_spec(name: str, description: str) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "The search query"},
                "n_results": {"type": "integer", "description": "The number of results to return"},
            },
            "required": ["query"],
        },
    )


def _query_args(name: str, arguments: Mapping[str, Any], default_n: int) -> tuple[str, int]:
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ToolError(f"{name}: argument 'query' must be a non-empty string, got {query!r}")
    raw_n = arguments.get("n_results", default_n)
    try:
        n = int(raw_n)
    except (TypeError, ValueError) as exc:
        raise ToolError(f"{name}: argument 'n_results' must be an integer, got {raw_n!r}") from exc
    return query.strip(), max(1, min(n, MAX_RESULTS))


def _str(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


class WebSearchTool(ABC):
    """Base of the search backends: ``search()`` gives structured hits, ``call()`` the tool result."""

    def __init__(self, fetcher: Fetcher, spec: ToolSpec, default_results: int) -> None:
        self._fetcher = fetcher
        self._spec = spec
        self._default_results = default_results

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    @abstractmethod
    async def search(self, query: str, n_results: int | None = None) -> tuple[tuple[SearchHit, ...], Source]:
        """Query the backend; the hits and the provenance of the answer."""

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        query, n = _query_args(self._spec.name, arguments, self._default_results)
        hits, source = await self.search(query, n)
        content = format_hits(hits) if hits else f"No results for {query!r}."
        return ToolResult(content=content, sources=(source,))

    def _json(self, body: bytes, url: str) -> dict[str, Any]:
        import json

        try:
            data = json.loads(body)
        except ValueError as exc:
            raise FetchError(f"{self._spec.name}: {url} answered with invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise FetchError(
                f"{self._spec.name}: {url} answered with a JSON {type(data).__name__}, not an object"
            )
        return data


class SearxngSearch(WebSearchTool):
    """Search through a SearXNG instance's JSON API."""

    def __init__(
        self, fetcher: Fetcher, base_url: str, *, name: str = "searxng", default_results: int = 5
    ) -> None:
        super().__init__(
            fetcher,
            _search_spec(name, "Search the web (SearXNG) and return titles, URLs and snippets."),
            default_results,
        )
        self._base = base_url.rstrip("/")

    async def search(self, query: str, n_results: int | None = None) -> tuple[tuple[SearchHit, ...], Source]:
        n = n_results or self._default_results
        url = f"{self._base}/search?{urlencode({'q': query, 'format': 'json'})}"
        fetched = await self._fetcher.fetch(url, accept=JSON_TYPES, robots=False)
        data = self._json(fetched.body, url)
        results = data.get("results")
        if not isinstance(results, list):
            raise FetchError(f"{self._spec.name}: {url} answer has no 'results' list")
        hits = tuple(
            SearchHit(title=_str(r.get("title")), url=str(r["url"]), snippet=_str(r.get("content")))
            for r in results
            if isinstance(r, dict) and isinstance(r.get("url"), str)
        )[:n]
        return hits, fetched.source


class SerperSearch(WebSearchTool):
    """Search through the hosted Serper.dev API (Google results), authenticated by API key."""

    def __init__(
        self,
        fetcher: Fetcher,
        api_key: SecretStr,
        *,
        base_url: str = "https://google.serper.dev",
        name: str = "serper",
        default_results: int = 5,
        lang: str = "en",
    ) -> None:
        super().__init__(
            fetcher,
            _search_spec(name, "Search Google (Serper) and return titles, URLs and snippets."),
            default_results,
        )
        self._key = api_key
        self._base = base_url.rstrip("/")
        self._lang = lang

    async def search(self, query: str, n_results: int | None = None) -> tuple[tuple[SearchHit, ...], Source]:
        n = n_results or self._default_results
        url = f"{self._base}/search"
        payload = {
            "q": query,
            "num": n,
            "gl": "us" if self._lang == "en" else self._lang,
            "hl": self._lang,
            "page": 1,
        }
        fetched = await self._fetcher.fetch(
            url,
            method="POST",
            accept=JSON_TYPES,
            headers={"X-API-KEY": self._key.get_secret_value(), "Content-Type": "application/json"},
            json_body=payload,
            robots=False,
        )
        data = self._json(fetched.body, url)
        organic = data.get("organic")
        if not isinstance(organic, list):
            raise FetchError(f"{self._spec.name}: {url} answer has no 'organic' list")
        hits = tuple(
            SearchHit(title=_str(r.get("title")), url=str(r["link"]), snippet=_str(r.get("snippet")))
            for r in organic
            if isinstance(r, dict) and isinstance(r.get("link"), str)
        )[:n]
        return hits, fetched.source
