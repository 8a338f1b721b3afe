"""The test kit's Docker path, run where a Docker engine answers.

Each server comes up in a container through testcontainers' public classes, answers on
its URL, and keeps what was written across a stop and a start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from polystore import Polystore
from polystore.testing._docker import DockerEndpoint
from polystore.testing.services import docker_available
from polystore.types import JSONValue

pytestmark = pytest.mark.skipif(
    not docker_available(),
    reason="no Docker engine answers here (DOCKER_HOST or /var/run/docker.sock); "
    "the Docker path runs where one does",
)


@pytest.fixture(scope="module", params=["redis", "postgres", "mongodb"])
def container(request: pytest.FixtureRequest) -> Iterator[DockerEndpoint]:
    endpoint = DockerEndpoint(request.param)
    yield endpoint
    endpoint.close()


async def through_polystore(endpoint: DockerEndpoint, write: JSONValue | None) -> JSONValue:
    config = {
        "backends": {"b": {"plugin": endpoint.name, "url": endpoint.url}},
        "routes": {"r": {"backend": "b"}},
    }
    async with Polystore.from_config(config) as ps:
        store = ps.route("r")
        if write is not None:
            await store.save("k", write)
        return await store.get("k")


def test_a_container_server_answers_and_keeps_data_across_a_restart(
    container: DockerEndpoint,
) -> None:
    assert container.provider == "docker"
    assert asyncio.run(through_polystore(container, {"kept": True})) == {"kept": True}
    container.stop()
    container.start()
    assert asyncio.run(through_polystore(container, None)) == {"kept": True}
