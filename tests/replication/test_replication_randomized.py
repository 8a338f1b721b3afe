"""A seeded random workload: 3 nodes over 3 Redis replicas, servers killed and restarted.

After the workload and one repair every replica holds the same thing, and each key reads
as the acknowledged write with the latest stamp, unless a write whose outcome was unknown
(it may have landed) came later still.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from polystore_redis import RedisBackend, RedisSettings

from polystore.errors import QuorumUnavailableError, UnknownOutcomeError
from polystore.replication import ReplicatedStore
from polystore.testing import LocalRedisServer
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceUnavailable
from polystore.types import JSONValue

pytestmark = pytest.mark.asyncio

SEED = 20261201
OPERATIONS = 600
KEYS = [f"k{i:02d}" for i in range(25)]
TIMEOUT = 0.5
DELETED = "<deleted>"


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> Iterator[list[LocalRedisServer]]:
    started: list[LocalRedisServer] = []
    try:
        for number in range(3):
            server = LocalRedisServer(name=f"redis-random{number}")
            started.append(server)
            server.start()
    except ServiceUnavailable as exc:
        for server in started:
            server.close()
        if skip_allowed(request.config):
            pytest.skip(str(exc))
        raise
    yield started
    for server in started:
        server.close()


@pytest_asyncio.fixture
async def nodes(servers: list[LocalRedisServer]) -> AsyncIterator[list[ReplicatedStore]]:
    async with AsyncExitStack() as stack:
        made: list[ReplicatedStore] = []
        # gamma waits for every replica: with one down its writes have unknown outcomes.
        for node, write_quorum in (("alpha", 2), ("beta", 2), ("gamma", 3)):
            replicas = {}
            for number, server in enumerate(servers):
                # Coalescing on (the default), as users run it.
                settings = RedisSettings(url=server.url, timeout=TIMEOUT)
                backend = await stack.enter_async_context(RedisBackend(settings))
                replicas[f"r{number}"] = backend.namespace("random")
            made.append(ReplicatedStore(replicas, node_id=node, write_quorum=write_quorum))
        yield made
        for store in made:
            await store.aclose()


@dataclass
class History:
    """What the workload was told: per key, acknowledged writes and uncertain ones."""

    acknowledged: dict[str, list[tuple[str, JSONValue]]] = field(default_factory=dict)
    uncertain: dict[str, list[JSONValue]] = field(default_factory=dict)
    refused: int = 0

    def ack(self, key: str, version: str, value: JSONValue) -> None:
        self.acknowledged.setdefault(key, []).append((version, value))

    def maybe(self, key: str, value: JSONValue) -> None:
        self.uncertain.setdefault(key, []).append(value)


async def test_random_workload_with_kills_converges_and_loses_no_acknowledged_write(
    servers: list[LocalRedisServer], nodes: list[ReplicatedStore]
) -> None:
    rng = random.Random(SEED)
    history = History()
    down: int | None = None
    for number in range(OPERATIONS):
        if number % 60 == 30:
            if down is None:
                down = rng.randrange(3)
                servers[down].kill()
            else:
                await asyncio.to_thread(servers[down].start)
                down = None
        node = rng.choice(nodes)
        key = rng.choice(KEYS)
        if rng.random() < 0.2:
            await _delete(node, key, history)
        elif rng.random() < 0.3:
            await node.get(key)  # reads move clocks and repair replicas
        else:
            await _save(node, key, f"{node.node_id}-{number}", history)
    if down is not None:
        await asyncio.to_thread(servers[down].start)
    for node in nodes:
        await node.aclose()

    report = await nodes[0].repair()

    assert report.done
    assert history.uncertain  # the unknown-outcome path was taken
    assert sum(len(w) for w in history.acknowledged.values()) >= OPERATIONS // 2
    replicas = list(nodes[0].replicas.values())
    for key in KEYS:
        held = [await replica.get(key) for replica in replicas]
        assert held[0] == held[1] == held[2], key
        value = await nodes[1].get(key)
        if key not in history.acknowledged:
            assert value is None or value in history.uncertain.get(key, [])
            continue
        _, latest = max(history.acknowledged[key])  # versions sort like stamps
        expected = None if latest == DELETED else latest
        assert value == expected or value in history.uncertain.get(key, []), key


async def _save(node: ReplicatedStore, key: str, value: str, history: History) -> None:
    try:
        version = await node.save(key, value)
    except QuorumUnavailableError:
        history.refused += 1
    except UnknownOutcomeError:
        history.maybe(key, value)
    else:
        history.ack(key, version, value)


async def _delete(node: ReplicatedStore, key: str, history: History) -> None:
    try:
        await node.delete(key)
    except QuorumUnavailableError:
        history.refused += 1
    except UnknownOutcomeError:
        history.maybe(key, None)
    else:
        # Nothing moves the node's clock between stamping the tombstone and returning
        # (the workload runs one call at a time), so its latest stamp is the tombstone's.
        history.ack(key, node.hlc.last.token(), DELETED)
