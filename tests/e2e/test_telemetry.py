"""OpenTelemetry spans, metrics and events of routed calls, on real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import _internal as metrics_api
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from polystore import ConflictError, Polystore, StoreUnavailableError, Version
from polystore.telemetry import collecting
from polystore.testing import LocalRedisServer, ServiceEndpoint


@dataclass
class Collected:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def route_spans(self, route: str) -> list[ReadableSpan]:
        return [
            span
            for span in self.spans.get_finished_spans()
            if (span.attributes or {}).get("polystore.route") == route
        ]

    def points(self, metric: str, route: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
            if (point.attributes or {}).get("polystore.route") == route
        ]


@pytest.fixture
def collected(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collected]:
    """SDK providers installed as the global ones for one test, and the API's proxies back
    afterwards (the API sets a global provider once per process, so the test swaps the
    variables behind it, as OpenTelemetry's own test utilities do)."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracer_provider)
    monkeypatch.setattr(metrics_api, "_METER_PROVIDER", meter_provider)
    yield Collected(spans, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _route() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


def _config(plugin: str, url: str, route: str, **backend: Any) -> dict[str, Any]:
    return {
        "backends": {"main": {"plugin": plugin, "url": url, **backend}},
        "routes": {route: {"backend": "main"}},
    }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("plugin", "service", "system"),
    [("redis", "redis_service", "redis"), ("postgres", "postgres_service", "postgresql")],
)
async def test_a_save_a_get_many_and_a_failing_call_are_traced_and_measured(
    plugin: str, service: str, system: str, collected: Collected, request: pytest.FixtureRequest
) -> None:
    endpoint: ServiceEndpoint = request.getfixturevalue(service)
    route = _route()
    async with Polystore.from_config(_config(plugin, endpoint.url, route)) as ps:
        store = ps.route(route)
        first = await store.save("secret-key-1", {"card": "4111-1111"})
        await store.save("secret-key-1", {"card": "4111-2222"})
        assert await store.get_many(["secret-key-1", "k2", "k3"]) == [
            {"card": "4111-2222"},
            None,
            None,
        ]
        with pytest.raises(ConflictError):
            await store.save("secret-key-1", {"card": "x"}, if_version=first)

    spans = collected.route_spans(route)
    assert [span.name for span in spans] == [
        f"save {route}",
        f"save {route}",
        f"get_many {route}",
        f"save {route}",
    ]
    save, _, get_many, failed = spans
    assert save.kind is SpanKind.CLIENT
    assert dict(save.attributes or {}) == {
        "db.system.name": system,
        "db.system": system,
        "db.operation.name": "save",
        "db.namespace": f"main/{route}",
        "db.collection.name": route,
        "polystore.route": route,
    }
    assert (get_many.attributes or {})["db.operation.batch.size"] == 3
    assert (get_many.attributes or {})["db.operation.name"] == "get_many"
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "polystore.errors.ConflictError"
    assert failed.events == ()  # no exception event: its message would name the key
    for span in spans:  # neither keys nor values are recorded
        recorded = repr(dict(span.attributes or {})) + repr(span.status.description)
        assert "secret-key" not in recorded
        assert "4111" not in recorded

    durations = collected.points("db.client.operation.duration", route)
    by_call = {
        (p.attributes["db.operation.name"], p.attributes.get("error.type")): p for p in durations
    }
    assert set(by_call) == {
        ("save", None),
        ("get_many", None),
        ("save", "polystore.errors.ConflictError"),
    }
    ok_saves = by_call[("save", None)]
    assert isinstance(ok_saves, HistogramDataPoint)
    assert ok_saves.count == 2
    assert 0 < ok_saves.min <= ok_saves.max < 10  # seconds, not milliseconds
    assert (ok_saves.attributes or {})["db.system.name"] == system
    assert "db.operation.batch.size" not in by_call[("get_many", None)].attributes
    errors = collected.points("polystore.client.operation.errors", route)
    assert [(p.attributes["error.type"], p.value) for p in errors] == [
        ("polystore.errors.ConflictError", 1)
    ]


@pytest.mark.asyncio
async def test_retries_and_breaker_state_changes_are_span_events_and_log_records(
    collected: Collected, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="polystore")
    route = _route()
    server = LocalRedisServer(name="telemetry-breaker")
    server.start()
    try:
        config = _config("redis", server.url, route, timeout=1.0)
        config["backends"]["main"]["circuit_breaker"] = {"failures": 1, "reset_after": 0.5}
        config["backends"]["main"]["retry"] = {"attempts": 2, "base_delay": 0.01}
        async with Polystore.from_config(config) as ps:
            store = ps.route(route)
            await store.save("k", 1)
            server.stop()
            with pytest.raises(StoreUnavailableError):
                await store.get("k")
            server.start()
            await asyncio.sleep(0.6)
            assert await store.get("k") == 1
    finally:
        server.close()

    events = [
        (span.name, event.name, dict(event.attributes or {}))
        for span in collected.route_spans(route)
        for event in span.events
    ]
    assert [(name, event) for name, event, _ in events] == [
        (f"get {route}", "polystore.retry"),
        (f"get {route}", "polystore.circuit_breaker.opened"),
        (f"get {route}", "polystore.circuit_breaker.closed"),
    ]
    assert events[0][2]["polystore.retry.number"] == 1
    assert events[1][2]["polystore.backend"] == "main"
    logged = [(r.name, r.getMessage()) for r in caplog.records if r.name != "polystore"]
    assert [name for name, _ in logged] == [
        "polystore.retry",
        "polystore.breaker",
        "polystore.breaker",
    ]
    assert "retrying get" in logged[0][1]
    assert "opened" in logged[1][1]
    assert "closed" in logged[2][1]
    assert all("'k'" not in message for _, message in logged)


def test_routes_are_not_wrapped_when_telemetry_is_turned_off(collected: Collected) -> None:
    assert collecting()
    config = {"telemetry": {"enabled": False}, "backends": {"m": {"plugin": "memory"}}}
    config["routes"] = {"notes": {"backend": "m"}}

    async def main() -> str:
        async with Polystore.from_config(config) as ps:
            return type(ps.route("notes")).__name__

    assert asyncio.run(main()) == "CircuitBreakerStore"


def test_routes_are_not_wrapped_while_no_sdk_provider_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)  # whatever ran before: the proxies
    monkeypatch.setattr(metrics_api, "_METER_PROVIDER", None)
    assert not collecting()
    config = {"backends": {"m": {"plugin": "memory"}}, "routes": {"notes": {"backend": "m"}}}

    async def main() -> str:
        async with Polystore.from_config(config) as ps:
            return type(ps.route("notes")).__name__

    assert asyncio.run(main()) == "CircuitBreakerStore"


def test_routes_are_wrapped_once_a_provider_is_installed(collected: Collected) -> None:
    config = {"backends": {"m": {"plugin": "memory"}}, "routes": {"notes": {"backend": "m"}}}

    async def main() -> str:
        async with Polystore.from_config(config) as ps:
            return type(ps.route("notes")).__name__

    assert asyncio.run(main()) == "TelemetryStore"


@pytest.mark.asyncio
async def test_a_scan_and_a_transaction_are_one_span_each(collected: Collected) -> None:
    route = _route()
    config = {"backends": {"m": {"plugin": "memory"}}, "routes": {route: {"backend": "m"}}}
    async with Polystore.from_config(config) as ps:
        store = ps.route(route)
        async with store.transaction() as tx:
            await tx.save("a", 1)
            await tx.save("b", 2)
        assert sorted([key async for key in store.scan()]) == ["a", "b"]
        with pytest.raises(ConflictError):
            async with store.transaction() as tx:
                await tx.save("a", 3, if_version=Version("stale-version"))

    spans = collected.route_spans(route)
    assert [span.name for span in spans] == [
        f"transaction {route}",
        f"scan {route}",
        f"transaction {route}",
    ]
    assert [(s.attributes or {})["db.operation.name"] for s in spans] == [
        "transaction",
        "scan",
        "transaction",
    ]
    assert spans[2].status.status_code is StatusCode.ERROR
    assert (spans[2].attributes or {})["error.type"] == "polystore.errors.ConflictError"
    durations = collected.points("db.client.operation.duration", route)
    seen = []
    for point in durations:
        attributes = point.attributes or {}
        seen.append(
            (attributes["db.operation.name"], attributes.get("error.type", ""), point.count)
        )
    assert sorted(seen) == [
        ("scan", "", 1),
        ("transaction", "", 1),
        ("transaction", "polystore.errors.ConflictError", 1),
    ]
