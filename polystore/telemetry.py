"""OpenTelemetry traces and metrics of every store call, when ``opentelemetry-api`` is there.

polystore instruments itself the way natively instrumented libraries do: it depends on the
OpenTelemetry *API* only (the ``polystore-sdk[otel]`` extra), and its spans and metrics go
nowhere until the application installs an SDK tracer or meter provider. Then each route's
store is wrapped in a :class:`TelemetryStore`, outermost (around the breaker, retries,
sharding or replication), which gives every call:

- one ``CLIENT`` span named ``"{operation} {route}"`` with the database semantic
  conventions' attributes: ``db.system.name`` (``redis``, ``postgresql``, ``mongodb``,
  ``sqlite``, ...; also as the older ``db.system``), ``db.operation.name`` (``get``,
  ``save_many``, ...), ``db.namespace`` (the store, ``backend/namespace``),
  ``db.collection.name`` (the namespace), ``polystore.route`` and, for batches,
  ``db.operation.batch.size``. Keys and values are never recorded (keys may be personal
  data); a failed call sets ``error.type`` (the error's class) and the span's status,
  without the message (it names the key);
- the ``db.client.operation.duration`` histogram (seconds) with the same attributes but the
  batch size, and ``error.type`` on failures;
- the ``polystore.client.operation.errors`` counter, per route, operation and
  ``error.type``.

Circuit breaker state changes and retries are log records (loggers ``polystore.breaker``
and ``polystore.retry``) and events on the span of the call in which they happen
(:func:`add_event`).

Cost: with no SDK provider installed (the API's proxy providers), routes are not wrapped
at all, so an application that does not collect telemetry pays nothing; install the
provider before opening :class:`~polystore.Polystore`. ``[telemetry] enabled = false``
(or ``POLYSTORE_TELEMETRY__ENABLED=false``) turns it off whatever is installed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from polystore.protocol import DataStore
from polystore.wrapper import StoreWrapper

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider, SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - the otel extra is not installed
    trace = None  # type: ignore[assignment]
    metrics = None  # type: ignore[assignment]

__all__ = [
    "DB_SYSTEMS",
    "Instruments",
    "TelemetrySettings",
    "TelemetryStore",
    "add_event",
    "available",
    "collecting",
    "instrument",
    "instruments_for",
]

T = TypeVar("T")

INSTRUMENTATION = "polystore"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DB_SYSTEMS: Mapping[str, str] = {
    "redis": "redis",
    "postgres": "postgresql",
    "mongodb": "mongodb",
    "sqlite": "sqlite",
}
"""``db.system.name`` of each plugin; other plugins are reported under their own name."""

_BATCHES = frozenset({"get_many", "save_many", "delete_many"})


class TelemetrySettings(BaseModel):
    """The ``[telemetry]`` table of the settings.

    Attributes:
        enabled: Instrument the routes when ``opentelemetry`` is importable and an SDK
            provider is installed; ``False`` never does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True


def available() -> bool:
    """Whether the OpenTelemetry API can be imported."""
    return trace is not None


def collecting() -> bool:
    """Whether an SDK tracer or meter provider is installed (not the API's proxies)."""
    if trace is None:
        return False
    tracer_provider = trace.get_tracer_provider()
    meter_provider = metrics.get_meter_provider()
    idle_tracer = isinstance(tracer_provider, (trace.ProxyTracerProvider, NoOpTracerProvider))
    idle_meter = type(meter_provider).__name__ == "_ProxyMeterProvider" or isinstance(
        meter_provider, NoOpMeterProvider
    )
    return not (idle_tracer and idle_meter)


def add_event(name: str, attributes: Mapping[str, str | int | float | bool]) -> None:
    """Add an event to the current span, if OpenTelemetry is there and a span records."""
    if trace is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, dict(attributes))


class Instruments:
    """The tracer and instruments, made once per router."""

    def __init__(self) -> None:
        from polystore import __version__

        self.tracer = trace.get_tracer(INSTRUMENTATION, __version__)
        meter = metrics.get_meter(INSTRUMENTATION, __version__)
        self.duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.errors = meter.create_counter(
            "polystore.client.operation.errors",
            unit="{error}",
            description="Store calls that raised, by route, operation and error.type.",
        )


class TelemetryStore(StoreWrapper):
    """A store whose every call makes a span and a duration measurement.

    Args:
        store: The route's store.
        route: The route's name.
        system: ``db.system.name`` (see :data:`DB_SYSTEMS`).
        namespace: The route's namespace in its backend.
        instruments: Shared tracer and instruments (one per router).
    """

    def __init__(
        self,
        store: DataStore,
        *,
        route: str,
        system: str,
        namespace: str,
        instruments: Instruments,
    ) -> None:
        super().__init__(store)
        self.route = route
        self._tracer = instruments.tracer
        self._duration = instruments.duration
        self._errors = instruments.errors
        base = {
            "db.system.name": system,
            "db.system": system,
            "db.namespace": store.name,
            "db.collection.name": namespace,
            "polystore.route": route,
        }
        self._base = base
        self._attributes: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"<TelemetryStore {self.route!r} {self.store!r}>"

    def _for(self, operation: str) -> dict[str, Any]:
        attributes = self._attributes.get(operation)
        if attributes is None:
            attributes = self._attributes[operation] = {
                **self._base,
                "db.operation.name": operation,
            }
        return attributes

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]], *, keys: int = 1) -> T:
        attributes = self._for(operation)
        span_attributes = attributes
        if operation in _BATCHES:
            span_attributes = {**attributes, "db.operation.batch.size": keys}
        start = time.perf_counter()
        with self._tracer.start_as_current_span(
            f"{operation} {self.route}",
            kind=SpanKind.CLIENT,
            attributes=span_attributes,
            record_exception=False,  # the message names the key
            set_status_on_exception=False,
        ) as span:
            try:
                result = await call()
            except Exception as exc:
                self._failed(span, attributes, start, exc)
                raise
        self._duration.record(time.perf_counter() - start, attributes)
        return result

    @asynccontextmanager
    async def _guard(self, operation: str) -> AsyncIterator[None]:
        # A transaction's span is the current one, so the driver's spans nest under it. A
        # scan's is not: an async generator may be finished from another context (closed
        # by the event loop), where the context it attached could not be detached.
        attributes = self._for(operation)
        name = f"{operation} {self.route}"
        start = time.perf_counter()
        scope: AbstractContextManager[trace.Span]
        if operation == "transaction":
            scope = self._tracer.start_as_current_span(
                name,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            )
        else:
            span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
            scope = _Unattached(span)
        with scope as span:
            try:
                yield
            except Exception as exc:
                self._failed(span, attributes, start, exc)
                raise
        self._duration.record(time.perf_counter() - start, attributes)

    def _failed(
        self, span: trace.Span, attributes: dict[str, Any], start: float, exc: Exception
    ) -> None:
        error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR))
        failed = {**attributes, "error.type": error_type}
        self._duration.record(time.perf_counter() - start, failed)
        self._errors.add(1, failed)


class _Unattached:
    """A span ended on exit without ever becoming the current span."""

    __slots__ = ("span",)

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def __enter__(self) -> trace.Span:
        return self.span

    def __exit__(self, *exc_info: object) -> None:
        self.span.end()


def instrument(
    store: DataStore,
    *,
    route: str,
    plugins: list[str],
    namespace: str,
    instruments: Instruments | None,
) -> DataStore:
    """``store`` wrapped in a :class:`TelemetryStore`, or itself when ``instruments`` is
    ``None`` (telemetry off or not collected)."""
    if instruments is None:
        return store
    systems = {DB_SYSTEMS.get(plugin, plugin) for plugin in plugins}
    system = systems.pop() if len(systems) == 1 else "polystore"
    return TelemetryStore(
        store, route=route, system=system, namespace=namespace, instruments=instruments
    )


def instruments_for(settings: TelemetrySettings) -> Instruments | None:
    """The router's instruments, or ``None`` when it should not instrument its routes."""
    if not settings.enabled or not collecting():
        return None
    return Instruments()
