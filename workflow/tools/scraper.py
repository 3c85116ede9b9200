"""The scraper: a page's main text and its links, with lxml.

Extraction prefers ``<main>``, then ``<article>``, then ``[role=main]``, then ``<body>``; it drops
scripts, styles, navigation, headers, footers, asides, forms and elements whose id/class mark them
as boilerplate (cookie banners, menus, sidebars, ads). Text is whitespace-normalised, one block per
line, and capped. Links are absolute http(s) URLs, de-duplicated in page order, fragments removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin

import lxml.html
from lxml import etree

from workflow.errors import FetchError, ToolError
from workflow.providers.base import ToolSpec
from workflow.tools.base import ToolResult
from workflow.tools.http import HTML_TYPES, TEXT_TYPES, Fetcher

DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "svg",
    "iframe",
)
BOILERPLATE = re.compile(
    r"(^|[\s_-])(cookie|banner|menu|navbar|sidebar|footer|header|advert|ads|promo|share)([\s_-]|$)"
)
BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "pre", "blockquote", "table", "tr", "td", "th", "dd", "dt", "br", "figcaption",
}  # fmt: skip


@dataclass(frozen=True)
class Page:
    """What the scraper extracts from one HTML document."""

    title: str
    text: str
    links: tuple[str, ...]
    truncated: bool = False


def _is_boilerplate(element: Any) -> bool:
    marker = f"{element.get('id', '')} {element.get('class', '')}".lower()
    return bool(marker.strip()) and BOILERPLATE.search(marker) is not None


def _main_element(root: Any) -> Any:
    for xpath in ("//main", "//article", "//*[@role='main']", "//body"):
        found = root.xpath(xpath)
        if found:
            return found[0]
    return root


def _text_blocks(element: Any) -> list[str]:
    """Text in document order, a new block at each block-level element."""
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        line = " ".join(" ".join(current).split())
        if line:
            blocks.append(line)
        current.clear()

    def walk(node: Any) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        block = tag.lower() in BLOCK_TAGS
        if block:
            flush()
        if node.text:
            current.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                current.append(child.tail)
        if block:
            flush()

    walk(element)
    flush()
    return blocks


def extract(html: bytes | str, base_url: str, *, max_chars: int = 20_000, max_links: int = 200) -> Page:
    """Main text (capped at ``max_chars``) and absolute links of an HTML document."""
    if not html.strip():
        return Page(title="", text="", links=())
    try:
        root = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError) as exc:
        raise ToolError(f"{base_url}: not parseable as HTML: {exc}") from exc
    title_el = root.find(".//title")
    title = " ".join((title_el.text_content() if title_el is not None else "").split())
    links: list[str] = []
    seen: set[str] = set()
    for anchor in root.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href or href.startswith(("javascript:", "mailto:", "tel:", "#")):
            continue
        absolute, _ = urldefrag(urljoin(base_url, href))
        if absolute.startswith(("http://", "https://")) and absolute not in seen:
            seen.add(absolute)
            links.append(absolute)
            if len(links) >= max_links:
                break
    for element in list(root.iter(*DROP_TAGS)):
        element.drop_tree()
    for element in [e for e in root.iter() if isinstance(e.tag, str) and _is_boilerplate(e)]:
        if element.getparent() is not None and element.tag not in ("body", "html", "main", "article"):
            element.drop_tree()
    text = "\n".join(_text_blocks(_main_element(root)))
    truncated = len(text) > max_chars
    return Page(title=title, text=text[:max_chars], links=tuple(links), truncated=truncated)


class ScrapeTool:
    """Fetch a URL (robots.txt respected) and return its main text, with the page as the source."""

    def __init__(self, fetcher: Fetcher, *, name: str = "scraper", max_chars: int = 20_000) -> None:
        self._fetcher = fetcher
        self._max_chars = max_chars
        self._spec = ToolSpec(
            name=name,
            description="Fetch a web page and return its main text and links.",
            parameters={
                "type": "object",
                "properties": {"url": {"type": "string", "description": "The http(s) URL of the page"}},
                "required": ["url"],
            },
        )

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    async def scrape(self, url: str) -> tuple[Page, ToolResult]:
        """Fetch and extract ``url``; the page and the tool result (text + source)."""
        fetched = await self._fetcher.fetch(url, accept=TEXT_TYPES)
        if fetched.source.content_type in HTML_TYPES:
            page = extract(fetched.body, fetched.source.url, max_chars=self._max_chars)
        else:
            text = fetched.text
            page = Page(
                title="", text=text[: self._max_chars], links=(), truncated=len(text) > self._max_chars
            )
        header = f"{page.title}\n\n" if page.title else ""
        return page, ToolResult(content=header + page.text, sources=(fetched.source,))

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        url = arguments.get("url")
        if not isinstance(url, str) or not url.strip():
            raise FetchError(f"{self._spec.name}: argument 'url' must be a non-empty string, got {url!r}")
        _, result = await self.scrape(url.strip())
        return result
