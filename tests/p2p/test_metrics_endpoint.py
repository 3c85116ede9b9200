"""The Prometheus endpoint helper, scraped over real HTTP on 127.0.0.1 from inside a trio nursery."""

from __future__ import annotations

import httpx
import pytest
import trio
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from protocol.metrics import MetricsEndpoint, MetricsSettings, new_registry, serve_metrics

pytestmark = pytest.mark.integration


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_each_service_has_its_own_registry_served_on_its_own_port() -> None:
    node, oracle = new_registry("node"), new_registry("oracle")
    fetched = Counter("synod_p2p_fetches", "results fetched", ["outcome"], registry=node)
    Gauge("synod_committee_seats", "seats held", registry=oracle).set(3)
    fetched.labels(outcome="ok").inc(41)
    fetched.labels(outcome="ok").inc()
    fetched.labels(outcome="not_found").inc()

    async def main() -> tuple[str, str, str]:
        async with trio.open_nursery() as nursery:
            a: MetricsEndpoint = await nursery.start(serve_metrics, node, MetricsSettings())
            b: MetricsEndpoint = await nursery.start(serve_metrics, oracle, MetricsSettings())
            assert a.port != b.port and a.url == f"http://127.0.0.1:{a.port}/metrics"
            async with httpx.AsyncClient(timeout=5) as client:
                first = await client.get(a.url)
                assert first.status_code == 200
                assert first.headers["content-type"].startswith("text/plain; version=")
                fetched.labels(outcome="ok").inc()  # a later scrape sees the new value
                second, other = await client.get(a.url), await client.get(b.url)
            nursery.cancel_scope.cancel()
        return first.text, second.text, other.text

    first, second, other = trio.run(main)
    assert _samples(first)[("synod_p2p_fetches_total", (("outcome", "ok"),))] == 42
    assert _samples(second)[("synod_p2p_fetches_total", (("outcome", "ok"),))] == 43
    assert _samples(second)[("synod_p2p_fetches_total", (("outcome", "not_found"),))] == 1
    assert _samples(first)[("synod_service_info", (("service", "node"),))] == 1
    assert _samples(other)[("synod_committee_seats", ())] == 3
    assert "synod_p2p_fetches" not in other and "synod_committee_seats" not in second
    # nothing leaked into prometheus_client's global default registry
    assert REGISTRY.get_sample_value("synod_p2p_fetches_total", {"outcome": "ok"}) is None


def test_wrong_paths_methods_garbage_and_silent_clients_are_refused() -> None:
    settings = MetricsSettings(request_timeout=0.5)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            endpoint: MetricsEndpoint = await nursery.start(serve_metrics, new_registry("x"), settings)
            async with httpx.AsyncClient(timeout=5) as client:
                assert (await client.get(endpoint.url.replace("/metrics", "/"))).status_code == 404
                assert (await client.post(endpoint.url, content=b"x")).status_code == 405
                assert (await client.get(endpoint.url + "?name[]=x")).status_code == 200
            garbage = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            await garbage.send_all(b"\x00\x01 not http at all\r\n\r\n")
            with trio.fail_after(5):
                answer = await garbage.receive_some(4096)
            assert answer.startswith(b"HTTP/1.1 400 ")
            await garbage.aclose()
            silent = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            with trio.fail_after(settings.request_timeout + 2):
                assert await silent.receive_some(4096) == b""  # closed after the request deadline
            await silent.aclose()
            async with httpx.AsyncClient(timeout=5) as client:
                assert (await client.get(endpoint.url)).status_code == 200  # still serving
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_taken_port_fails_loudly() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            endpoint: MetricsEndpoint = await nursery.start(serve_metrics, new_registry("a"))
            with pytest.raises(OSError):
                await nursery.start(serve_metrics, new_registry("b"), MetricsSettings(port=endpoint.port))
            nursery.cancel_scope.cancel()

    trio.run(main)
