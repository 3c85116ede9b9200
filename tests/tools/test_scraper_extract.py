"""The scraper's HTML extraction on fixed documents, and never crashing on arbitrary input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.errors import ToolError
from workflow.tools.http import make_source
from workflow.tools.scraper import extract

pytestmark = pytest.mark.unit

DOC = b"""<html><head><title> Owl  facts </title><script>alert("x")</script></head>
<body><header>Site header</header><nav><a href="/nav">Nav</a></nav>
<div id="sidebar-menu">Sidebar links</div>
<article><h1>Owls</h1><p>Owls hunt at night.</p><p>They   have <b>silent</b> wings.</p>
<a href="other.html?x=1#top">other</a> <a href="mailto:a@b.c">mail</a> <a href="javascript:void(0)">js</a>
<a href="https://example.org/a">ext</a><a href="https://example.org/a#again">dup</a></article>
<footer>Copyright</footer></body></html>"""


def test_article_text_without_boilerplate() -> None:
    page = extract(DOC, "http://site.test/owls/index.html")
    assert page.title == "Owl facts"
    assert page.text.splitlines()[:3] == ["Owls", "Owls hunt at night.", "They have silent wings."]
    for noise in ("Site header", "Nav", "Sidebar links", "Copyright", "alert"):
        assert noise not in page.text
    assert page.links == (
        "http://site.test/nav",
        "http://site.test/owls/other.html?x=1",
        "https://example.org/a",
    )
    assert not page.truncated


def test_body_is_used_without_main_or_article() -> None:
    page = extract("<html><body><p>Just a body.</p><footer>f</footer></body></html>", "http://x.test/")
    assert page.text == "Just a body."


def test_empty_document() -> None:
    assert extract(b"   ", "http://x.test/").text == ""


def test_source_digest_is_keccak_of_bytes() -> None:
    source = make_source("http://x.test/", b"", "text/html", 200)
    assert source.digest == "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert source.size == 0 and source.status == 200


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=400)))
def test_extract_never_crashes(document: str | bytes) -> None:
    try:
        page = extract(document, "http://x.test/base/", max_chars=200)
    except ToolError:
        return
    assert len(page.text) <= 200
    assert all(link.startswith(("http://", "https://")) for link in page.links)
