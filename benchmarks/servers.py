"""Where the benchmark's servers come from: a URL, or a private server started here.

For each server the URL is taken from ``--<name>-url``, else ``POLYSTORE_BENCH_<NAME>_URL``,
else a private server is started with the launchers of :mod:`polystore.testing.services`
(PostgreSQL with ``pg_stat_statements`` preloaded, for the command counters).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import ExitStack

from polystore.testing import LocalRedisServer
from polystore.testing.services import ServiceEndpoint, ServiceUnavailable, resolve_service

SERVER_NAMES = ("redis", "postgres", "mongodb")
EXTRA_ARGS = {"postgres": ("-c", "shared_preload_libraries=pg_stat_statements")}


def start_redis_servers(servers: ExitStack, count: int, role: str) -> list[str]:
    """Start ``count`` private Redis servers without AOF (the figures are about the client
    and the spreading, not fsync); ``servers`` stops them. Returns their URLs."""
    urls = []
    for i in range(count):
        server = LocalRedisServer(extra_args=("--appendonly", "no"), name=f"{role}-{i}")
        servers.callback(server.close)
        server.start()
        urls.append(server.url)
    return urls


def bench_env(name: str) -> str:
    """``POLYSTORE_BENCH_<NAME>_URL``."""
    return f"POLYSTORE_BENCH_{name.upper()}_URL"


class Servers:
    """Resolves server URLs lazily and stops the private servers it started.

    Args:
        urls: Explicit URLs by server name (None entries are ignored).
    """

    def __init__(self, urls: Mapping[str, str | None] | None = None) -> None:
        self._given = {name: url for name, url in (urls or {}).items() if url}
        self._urls: dict[str, str | None] = {}
        self.problems: dict[str, str] = {}
        self.providers: dict[str, str] = {}
        self._endpoints: list[ServiceEndpoint] = []

    def url(self, name: str) -> str | None:
        """The URL of server ``name``, or None (with the reason in :attr:`problems`)."""
        if name in self._urls:
            return self._urls[name]
        url = self._given.get(name) or os.environ.get(bench_env(name), "").strip() or None
        self.providers[name] = "given" if url else "private"
        if url is None:
            try:
                endpoint = resolve_service(
                    name, allow_skip=False, extra_args=EXTRA_ARGS.get(name, ())
                )
            except ServiceUnavailable as exc:
                self.problems[name] = str(exc).splitlines()[0]
            else:
                self._endpoints.append(endpoint)
                self.providers[name] = endpoint.provider
                url = endpoint.url
        self._urls[name] = url
        return url

    def close(self) -> None:
        """Stop every server started here."""
        for endpoint in self._endpoints:
            endpoint.close()
        self._endpoints.clear()

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
