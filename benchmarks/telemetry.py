"""``python -m benchmarks.telemetry``: what instrumenting a route costs per call.

Runs ``get`` on the in-process memory backend (no I/O, so the figure is the wrapper's own
CPU), interleaved round by round in one process: the bare store, the store behind a
:class:`~polystore.CircuitBreakerStore` (the :class:`~polystore.StoreWrapper` every route
has), the store in a :class:`~polystore.telemetry.TelemetryStore` while no SDK is
installed (the API's no-op proxies), and the same with the OpenTelemetry SDK's tracer and
meter providers installed
(spans sampled and exported to memory, metrics aggregated). Prints the median microseconds
per call and the difference to the bare store.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence

from polystore import CircuitBreaker, CircuitBreakerStore, DataStore
from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.telemetry import Instruments, TelemetryStore


async def _per_call(store: DataStore, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await store.get("k")
    return (time.perf_counter() - start) / calls * 1e6


def _install_sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    class Discarding(InMemorySpanExporter):
        def export(self, spans: Sequence[object]) -> object:  # type: ignore[override]
            return super().export(spans[:0])  # type: ignore[arg-type]

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(Discarding()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


async def run(rounds: int, calls: int) -> dict[str, float]:
    backend = MemoryBackend(MemorySettings())
    async with backend:
        bare = backend.namespace("bench")
        await bare.save("k", {"n": 1})
        noop = TelemetryStore(
            bare, route="bench", system="memory", namespace="bench", instruments=Instruments()
        )
        breaker = CircuitBreakerStore(bare, CircuitBreaker("bench"))
        results: dict[str, list[float]] = {"bare": [], "breaker": [], "no-op API": []}
        for _ in range(rounds):
            results["bare"].append(await _per_call(bare, calls))
            results["breaker"].append(await _per_call(breaker, calls))
            results["no-op API"].append(await _per_call(noop, calls))
        _install_sdk()
        sdk = TelemetryStore(
            bare, route="bench", system="memory", namespace="bench", instruments=Instruments()
        )
        results["SDK"] = []
        for _ in range(rounds):
            results["bare"].append(await _per_call(bare, calls))
            results["SDK"].append(await _per_call(sdk, calls))
    return {name: statistics.median(values) for name, values in results.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.telemetry")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)
    medians = asyncio.run(run(args.rounds, args.calls))
    bare = medians["bare"]
    for name, value in medians.items():
        print(f"{name:>10}: {value:6.2f} µs/call  (+{value - bare:5.2f} µs)")


if __name__ == "__main__":
    main()
