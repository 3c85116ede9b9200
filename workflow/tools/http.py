"""The HTTP fetcher behind the scraper, the search backends and custom HTTP tools.

Every fetch has a deadline (httpx timeouts plus ``trio.fail_after`` over the whole exchange, so a
server that trickles bytes cannot hold a task), a size cap enforced while streaming (reading stops
past the cap), a content-type allow-list, a bounded number of redirects (each hop checked again),
and, for crawling fetches, robots.txt (fetched once per origin and cached on the fetcher; RFC 9309
semantics: 4xx means no rules, 5xx or an unreachable robots.txt means disallow everything).

What comes back is the body and a :class:`Source`: final URL, 0x keccak256 of the bytes, content
type, size and status, which the workflow trace keeps for provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx
import trio
from pydantic import BaseModel, ConfigDict, Field

from protocol.canonical import keccak256
from protocol.log import get_logger
from workflow.errors import FetchError, RobotsDisallowedError
from workflow.tools.base import Source

log = get_logger(__name__)

HTML_TYPES: tuple[str, ...] = ("text/html", "application/xhtml+xml")
TEXT_TYPES: tuple[str, ...] = (*HTML_TYPES, "text/plain")
JSON_TYPES: tuple[str, ...] = ("application/json",)
ROBOTS_MAX_BYTES = 512 * 1024


class FetchLimits(BaseModel):
    """The caps every fetch obeys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_agent: str = "SynodBot/0.1 (+https://github.com/synod)"
    timeout_s: float = Field(default=15.0, gt=0)
    max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    respect_robots: bool = True


@dataclass(frozen=True)
class FetchResult:
    """A fetched body and its provenance record."""

    body: bytes
    source: Source
    charset: str | None = None

    @property
    def text(self) -> str:
        """The body decoded with the declared charset (UTF-8 otherwise), undecodable bytes replaced."""
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def make_source(url: str, body: bytes, content_type: str, status: int) -> Source:
    """The provenance record of ``body`` fetched from ``url``."""
    return Source(
        url=url,
        digest="0x" + keccak256(body).hex(),
        content_type=content_type,
        size=len(body),
        status=status,
    )


def _media_type(header: str) -> tuple[str, str | None]:
    parts = [p.strip() for p in header.split(";")]
    charset = None
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value:
            charset = value.strip().strip('"')
    return parts[0].lower(), charset


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Fetcher:
    """An httpx client with the caps of :class:`FetchLimits`. Use as ``async with`` or call aclose()."""

    def __init__(
        self, limits: FetchLimits | None = None, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.limits = limits or FetchLimits()
        self._client = httpx.AsyncClient(
            headers={"User-Agent": self.limits.user_agent},
            timeout=httpx.Timeout(self.limits.timeout_s),
            follow_redirects=False,
            transport=transport,
        )
        self._robots: dict[str, RobotFileParser] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _read_capped(self, response: httpx.Response, url: str, cap: int) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise FetchError(f"{url}: content-length {declared} is over the cap of {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        # Stopping early must not leave httpx's nested async generators suspended (trio warns when
        # they are garbage collected): cancel the scope instead, so the next read raises Cancelled
        # inside the innermost generator and unwinds every one of them.
        with trio.CancelScope() as scope:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    scope.cancel()
                else:
                    chunks.append(chunk)
        if size > cap:
            raise FetchError(f"{url}: body is over the cap of {cap} bytes (stopped reading at {size})")
        return b"".join(chunks)

    async def _robots_for(self, url: str) -> RobotFileParser:
        origin = _origin(url)
        cached = self._robots.get(origin)
        if cached is not None:
            return cached
        parser = RobotFileParser(f"{origin}/robots.txt")
        robots_url = f"{origin}/robots.txt"
        try:
            async with self._client.stream("GET", robots_url) as response:
                status = response.status_code
                body = (
                    await self._read_capped(response, robots_url, ROBOTS_MAX_BYTES) if status < 300 else b""
                )
        except FetchError:
            status, body = 500, b""
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FetchError(f"{robots_url}: cannot fetch robots.txt: {exc!r}") from exc
        if status >= 500 or 300 <= status < 400:
            parser.parse(["User-agent: *", "Disallow: /"])
        elif status >= 400:
            parser.parse([])
        else:
            parser.parse(body.decode("utf-8", errors="replace").splitlines())
        self._robots[origin] = parser
        log.debug("robots_loaded", origin=origin, status=status)
        return parser

    async def check_robots(self, url: str) -> None:
        """Raise :class:`RobotsDisallowedError` if robots.txt forbids ``url`` for our user agent."""
        parser = await self._robots_for(url)
        if not parser.can_fetch(self.limits.user_agent, url):
            raise RobotsDisallowedError(
                f"{url}: disallowed by {_origin(url)}/robots.txt for {self.limits.user_agent}"
            )

    async def fetch(
        self,
        url: str,
        *,
        accept: tuple[str, ...] = TEXT_TYPES,
        method: str = "GET",
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        robots: bool | None = None,
        max_bytes: int | None = None,
    ) -> FetchResult:
        """Fetch ``url`` within the limits; ``robots=None`` means ``limits.respect_robots``.

        ``accept`` lists the media types allowed in the answer (empty: any). Raises
        :class:`FetchError` (status, content type, size, time, transport) or
        :class:`RobotsDisallowedError`.
        """
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise FetchError(f"{url!r}: not a URL ({exc})") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"{url!r}: only http and https URLs with a host can be fetched")
        check_robots = self.limits.respect_robots if robots is None else robots
        cap = max_bytes or self.limits.max_bytes
        try:
            with trio.fail_after(self.limits.timeout_s):
                return await self._fetch(url, accept, method, params, headers, json_body, check_robots, cap)
        except trio.TooSlowError as exc:
            raise FetchError(f"{url}: no complete answer within {self.limits.timeout_s}s") from exc

    async def _fetch(
        self,
        url: str,
        accept: tuple[str, ...],
        method: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        json_body: Any,
        check_robots: bool,
        cap: int,
    ) -> FetchResult:
        current = url
        for _hop in range(self.limits.max_redirects + 1):
            if check_robots:
                await self.check_robots(current)
            try:
                async with self._client.stream(
                    method, current, params=params, headers=headers, json=json_body
                ) as response:
                    status = response.status_code
                    if status in (301, 302, 303, 307, 308) and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        if status == 303 or (status in (301, 302) and method == "POST"):
                            method, json_body = "GET", None
                        params = None
                        continue
                    if status >= 400:
                        raise FetchError(f"{current}: HTTP {status}")
                    content_type, charset = _media_type(response.headers.get("content-type", ""))
                    if accept and content_type not in accept:
                        shown = content_type or "<none>"
                        raise FetchError(f"{current}: content type {shown!r} is not one of {list(accept)}")
                    body = await self._read_capped(response, current, cap)
                    final_url = str(response.url)
            except httpx.TimeoutException as exc:
                raise FetchError(f"{current}: timed out after {self.limits.timeout_s}s ({exc!r})") from exc
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise FetchError(f"{current}: {exc!r}") from exc
            log.debug("fetched", url=final_url, status=status, size=len(body))
            return FetchResult(
                body=body, source=make_source(final_url, body, content_type, status), charset=charset
            )
        raise FetchError(f"{url}: more than {self.limits.max_redirects} redirects")
