"""Test-suite-wide configuration: polystore's own fixtures for real servers."""

pytest_plugins = ["polystore.testing"]
