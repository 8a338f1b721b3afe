"""The conformance suite every backend runs: subclass :class:`StoreConformance`.

A backend's test file provides a ``store`` fixture (a fresh, isolated namespace per
test) and, to run the namespace-isolation tests, a ``sibling_store`` fixture (another
namespace of the same backend)::

    import pytest_asyncio
    from polystore.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest_asyncio.fixture
        async def store(self):
            async with MyBackend(MySettings()) as backend:
                yield backend.namespace(f"t{uuid.uuid4().hex}")

Tests are gated on the capabilities the store declares, never on backend names: a store
that declares ``CAS`` must pass every CAS test; one that does not must refuse CAS calls
with :class:`~polystore.errors.UnsupportedOperationError`.
"""

from __future__ import annotations

import pytest

from polystore.protocol import DataStore
from polystore.testing.conformance._support import eventually, lacks, requires
from polystore.testing.conformance.concurrency import ConcurrencyTests
from polystore.testing.conformance.conditions import ConditionTests
from polystore.testing.conformance.isolation import IsolationTests
from polystore.testing.conformance.queries import QueryTests
from polystore.testing.conformance.records import RecordTests
from polystore.testing.conformance.values import ValueTests

__all__ = ["StoreConformance", "eventually", "lacks", "requires"]


@pytest.mark.asyncio
class StoreConformance(
    ValueTests, ConditionTests, QueryTests, IsolationTests, RecordTests, ConcurrencyTests
):
    """Behaviour every :class:`~polystore.protocol.DataStore` must show.

    Subclasses provide the ``store`` fixture, and ``sibling_store`` for isolation tests.
    """

    @pytest.fixture
    def sibling_store(self) -> DataStore:
        """Another namespace of the same backend; override to run isolation tests."""
        pytest.skip("override the sibling_store fixture to run namespace-isolation tests")
