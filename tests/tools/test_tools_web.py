"""The fetcher, scraper, search backends and custom HTTP tools against the real fixture web site."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio
from pydantic import SecretStr

from protocol.canonical import keccak256
from tests.webfixtures import PNG_BYTES, SERPER_KEY, FixtureSite, page_html, web_site
from workflow.errors import FetchError, RobotsDisallowedError, ToolError, ToolNotFoundError
from workflow.tools.base import Source, Tool, ToolResult
from workflow.tools.custom import CustomHttpTool, CustomToolTemplate
from workflow.tools.http import JSON_TYPES, Fetcher, FetchLimits, FetchResult
from workflow.tools.registry import ToolSettings, build_tools, find_search_tool, open_tools
from workflow.tools.scraper import ScrapeTool, extract
from workflow.tools.search import SearxngSearch, SerperSearch

pytestmark = pytest.mark.integration

__all__ = ["web_site"]  # the module-scoped pytest fixture, imported for the tests below

T = TypeVar("T")


def run_with(limits: FetchLimits, body: Callable[[Fetcher], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Fetcher(limits) as fetcher:
            return await body(fetcher)

    return trio.run(main)


def assert_source(source: Source, url: str, body: bytes) -> None:
    assert source.url == url
    assert source.digest == "0x" + keccak256(body).hex()
    assert source.size == len(body)
    assert source.digest.startswith("0x") and len(source.digest) == 66


def test_fetch_html_returns_body_and_source(web_site: FixtureSite) -> None:
    url = web_site.url("/owls/habitat.html")
    result: FetchResult = run_with(FetchLimits(), lambda f: f.fetch(url))
    assert result.body == page_html("/owls/habitat.html").encode()
    assert_source(result.source, url, result.body)
    assert result.source.content_type == "text/html"
    assert result.source.status == 200
    assert "reed towers" in result.text


def test_scraper_extracts_main_text_and_absolute_links(web_site: FixtureSite) -> None:
    url = web_site.url("/owls/")

    async def scrape(fetcher: Fetcher) -> Any:
        return await ScrapeTool(fetcher).scrape(url)

    page, result = run_with(FetchLimits(), scrape)
    assert page.title == "Glass owls: overview"
    assert "ninety grams" in page.text and "scatter moonlight" in page.text
    for boilerplate in ("SHOULD-NOT-APPEAR", "COOKIE-BANNER-TEXT", "all rights reserved", "font-family"):
        assert boilerplate not in page.text
    assert web_site.url("/owls/habitat.html") in page.links
    assert web_site.url("/owls/diet.html") in page.links  # fragment dropped, relative resolved
    assert "https://example.org/elsewhere" in page.links
    assert all(link.startswith("http") for link in page.links)
    assert len(page.links) == len(set(page.links))
    assert isinstance(result, ToolResult) and "ninety grams" in result.content
    assert_source(result.sources[0], url, page_html("/owls/").encode())


def test_scrape_tool_call_protocol(web_site: FixtureSite) -> None:
    async def call(fetcher: Fetcher) -> ToolResult:
        tool = ScrapeTool(fetcher)
        assert isinstance(tool, Tool)
        assert tool.spec.name == "scraper" and tool.spec.parameters["required"] == ["url"]
        return await tool.call({"url": web_site.url("/owls/diet.html")})

    result = run_with(FetchLimits(), call)
    assert "lantern moths" in result.content
    assert result.sources[0].url == web_site.url("/owls/diet.html")


def test_extract_caps_text() -> None:
    html = "<html><body><main>" + "<p>owl words here</p>" * 500 + "</main></body></html>"
    page = extract(html.encode(), "http://127.0.0.1/", max_chars=100)
    assert len(page.text) == 100 and page.truncated


def test_robots_txt_disallow_is_respected_and_cached(web_site: FixtureSite) -> None:
    url = web_site.url("/private/notes.html")
    with pytest.raises(RobotsDisallowedError, match=r"private/notes\.html"):
        run_with(FetchLimits(), lambda f: f.fetch(url))

    async def twice(fetcher: Fetcher) -> None:
        await fetcher.fetch(web_site.url("/owls/"))
        await fetcher.fetch(web_site.url("/owls/diet.html"))

    before = web_site.requests.count(("GET", "/robots.txt"))
    run_with(FetchLimits(), twice)
    assert web_site.requests.count(("GET", "/robots.txt")) == before + 1
    # with robots disabled the same page is fetched
    result = run_with(FetchLimits(respect_robots=False), lambda f: f.fetch(url))
    assert b"ROBOTS-SHOULD-BLOCK-THIS" in result.body


def test_content_type_rejected(web_site: FixtureSite) -> None:
    with pytest.raises(FetchError, match="image/png"):
        run_with(FetchLimits(), lambda f: f.fetch(web_site.url("/data/owl.png")))
    result = run_with(FetchLimits(), lambda f: f.fetch(web_site.url("/data/owl.png"), accept=("image/png",)))
    assert result.body == PNG_BYTES


def test_size_cap_stops_reading(web_site: FixtureSite) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="over the cap of 65536 bytes"):
        run_with(FetchLimits(max_bytes=65536), lambda f: f.fetch(web_site.url("/large.html")))
    assert time.monotonic() - started < 5


def test_slow_page_times_out(web_site: FixtureSite) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"1\.0s"):
        run_with(FetchLimits(timeout_s=1.0), lambda f: f.fetch(web_site.url("/slow.html")))
    assert time.monotonic() - started < 4


def test_redirects_followed_and_bounded(web_site: FixtureSite) -> None:
    result = run_with(FetchLimits(), lambda f: f.fetch(web_site.url("/redirect")))
    assert result.source.url == web_site.url("/owls/habitat.html")
    assert "Lake Ombra" in result.text
    with pytest.raises(FetchError, match="more than 3 redirects"):
        run_with(FetchLimits(max_redirects=3), lambda f: f.fetch(web_site.url("/redirect-loop")))


def test_http_error_status_and_down_server(web_site: FixtureSite) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        run_with(FetchLimits(), lambda f: f.fetch(web_site.url("/nowhere.html")))
    with pytest.raises(FetchError, match="HTTP 503"):
        run_with(FetchLimits(), lambda f: f.fetch(web_site.url("/api/status/503"), accept=(), robots=False))
    with FixtureSite() as gone:
        dead = gone.url("/owls/")
    with pytest.raises(FetchError, match=r"127\.0\.0\.1"):
        run_with(FetchLimits(respect_robots=False), lambda f: f.fetch(dead))
    for bad in ("file:///etc/passwd", "http://", "http://[::1"):

        async def fetch_bad(fetcher: Fetcher, url: str = bad) -> FetchResult:
            return await fetcher.fetch(url)

        with pytest.raises(FetchError, match="URL"):
            run_with(FetchLimits(), fetch_bad)


def test_searxng_search(web_site: FixtureSite) -> None:
    async def search(fetcher: Fetcher) -> ToolResult:
        return await SearxngSearch(fetcher, web_site.searxng_url).call({"query": "lantern moths"})

    result = run_with(FetchLimits(), search)
    assert web_site.url("/owls/diet.html") in result.content
    assert "Glass owls: diet" in result.content
    (source,) = result.sources
    assert source.url.startswith(web_site.url("/search?q=lantern+moths&format=json"))
    assert source.content_type in JSON_TYPES
    assert source.digest.startswith("0x") and len(source.digest) == 66


def test_searxng_structured_hits_and_errors(web_site: FixtureSite) -> None:
    async def search(fetcher: Fetcher) -> Any:
        return await SearxngSearch(fetcher, web_site.searxng_url).search("glass owls", 2)

    hits, _source = run_with(FetchLimits(), search)
    assert len(hits) == 2
    assert all(h.url.startswith(web_site.base_url) and h.title and h.snippet for h in hits)

    async def nothing(fetcher: Fetcher) -> ToolResult:
        return await SearxngSearch(fetcher, web_site.searxng_url).call({"query": "zebra unicorn"})

    empty = run_with(FetchLimits(), nothing)
    assert empty.content == "No results for 'zebra unicorn'." and empty.sources[0].digest.startswith("0x")

    async def bad_query(fetcher: Fetcher) -> ToolResult:
        return await SearxngSearch(fetcher, web_site.searxng_url).call({"query": "  "})

    with pytest.raises(ToolError, match="query"):
        run_with(FetchLimits(), bad_query)


def test_serper_search_in_its_real_format(web_site: FixtureSite) -> None:
    async def search(fetcher: Fetcher, key: str) -> ToolResult:
        tool = SerperSearch(fetcher, SecretStr(key), base_url=web_site.serper_url)
        return await tool.call({"query": "Ilse Marrow", "n_results": 3})

    result = run_with(FetchLimits(), lambda f: search(f, SERPER_KEY))
    assert web_site.url("/owls/history.html") in result.content and "1887" in result.content
    assert result.sources[0].url == web_site.serper_url + "/search"
    assert result.sources[0].digest.startswith("0x")
    with pytest.raises(FetchError, match="HTTP 403"):
        run_with(FetchLimits(), lambda f: search(f, "wrong-key"))


def test_custom_http_tool_post_and_get(web_site: FixtureSite) -> None:
    post = CustomToolTemplate.model_validate(
        {
            "name": "EchoPost",
            "description": "Echo a JSON body",
            "mode": "http_request",
            "url": web_site.url("/api/echo"),
            "method": "POST",
            "headers": {"X-Fixture": "yes"},
            "body": {"city": "", "unit": "celsius"},
        }
    )
    legacy_get = CustomToolTemplate.model_validate(
        {"name": "Census", "description": "Owl census", "url": web_site.url("/api/echo"), "method": "GET"}
    )
    assert legacy_get.mode == "http_request"
    assert post.tool_spec().parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The value for city"},
            "unit": {"type": "string", "description": "The value for unit"},
        },
        "required": ["city", "unit"],
    }

    async def calls(fetcher: Fetcher) -> tuple[ToolResult, ToolResult]:
        tool = CustomHttpTool(post, fetcher, api_key=SecretStr("k-123"))
        assert isinstance(tool, Tool)
        first = await tool.call({"city": "Vellmore"})
        second = await CustomHttpTool(legacy_get, fetcher).call({"q": "owls"})
        return first, second

    first, second = run_with(FetchLimits(), calls)
    echoed = json.loads(first.content)
    assert echoed["method"] == "POST"
    assert echoed["json"] == {"city": "Vellmore", "unit": "celsius"}
    assert echoed["headers"]["x-fixture"] == "yes"
    assert echoed["headers"]["authorization"] == "Bearer k-123"
    assert_source(first.sources[0], web_site.url("/api/echo"), first.content.encode())
    echoed_get = json.loads(second.content)
    assert echoed_get["method"] == "GET" and echoed_get["query"] == {"q": "owls"}
    assert "authorization" not in echoed_get["headers"]


def test_custom_tool_template_validation() -> None:
    custom = CustomToolTemplate.model_validate(
        {
            "name": "pick",
            "description": "Pick a colour",
            "mode": "custom",
            "parameters": {"type": "object", "properties": {"colour": {"type": "string"}}},
        }
    )
    assert custom.tool_spec().parameters["properties"] == {"colour": {"type": "string"}}
    bad = [
        {"name": "x", "description": "d", "mode": "http_request", "method": "GET"},
        {"name": "x", "description": "d", "mode": "custom"},
        {"name": "x", "description": "d", "url": "http://a", "method": "PATCH"},
        {"name": "x", "description": "d", "url": "http://a", "method": "GET", "extra": 1},
        {"name": "x", "description": "d", "mode": "custom", "parameters": {}, "url": "http://a"},
    ]
    for raw in bad:
        with pytest.raises(ValueError):
            CustomToolTemplate.model_validate(raw)
    # a placeholder url loads, as in the original (the validator warns; a call to it fails)
    placeholder = {"name": "x", "description": "d", "url": "ftp://a", "method": "GET"}
    assert CustomToolTemplate.model_validate(placeholder).url == "ftp://a"
    with pytest.raises(ToolError, match="custom"):
        CustomHttpTool(custom, Fetcher())


def test_registry_builds_named_tools(web_site: FixtureSite) -> None:
    settings = ToolSettings(
        searxng_url=web_site.searxng_url, serper_api_key=SecretStr(SERPER_KEY), serper_url=web_site.serper_url
    )
    echo = CustomToolTemplate(
        name="Echo", description="echo", url=web_site.url("/api/echo"), method="POST", body={"a": ""}
    )

    async def main() -> list[str]:
        async with open_tools(["ALL"], [echo], settings) as tools:
            names = sorted(tools)
            search = find_search_tool(tools)
            assert search is not None
            result = await search.call({"query": "reed towers"})
            assert web_site.url("/owls/habitat.html") in result.content
            scraped = await tools["scraper"].call({"url": web_site.url("/owls/history.html")})
            assert "Ilse Marrow" in scraped.content
            return names

    assert trio.run(main) == ["Echo", "scraper", "searxng", "serper"]

    async def named(names: list[str], s: ToolSettings) -> list[str]:
        async with Fetcher() as fetcher:
            return sorted(build_tools(names, [], s, fetcher))

    assert trio.run(named, ["duckduckgo", "jina", "scraper"], settings) == ["duckduckgo", "jina", "scraper"]
    empty = ToolSettings()
    assert trio.run(named, ["ALL"], empty) == ["scraper"]
    for name, match in [
        ("serper", "serper_api_key"),
        ("duckduckgo", "searxng_url"),
        ("stock", "not available here"),
        ("bing", "unknown tool"),
    ]:
        with pytest.raises(ToolNotFoundError, match=match):
            trio.run(named, [name], empty)
