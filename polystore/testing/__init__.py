"""polystore's test kit: the conformance suite and real-server fixtures.

Enable the fixtures in a test suite with ``pytest_plugins = ["polystore.testing"]``.
"""

from polystore.testing.conformance import StoreConformance, eventually, requires

__all__ = ["StoreConformance", "eventually", "requires"]
