"""Replica-set options from the URL and the settings, on the SecantusDB test server.

The test server advertises itself as the primary of a one-node replica set named
``secantus``, so a driver connects to it as to a replica set (not ``directConnection``):
what can be checked here is that the options reach the driver and every call works with
them. Reads from real secondaries, elections and retried writes after a failover need a
replica set of several members, which this server does not offer.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from polystore_mongodb import MongoBackend, MongoSettings
from pymongo import ReadPreference

from polystore.testing.services import ServiceEndpoint


def _replica_set_url(service: ServiceEndpoint, options: str) -> str:
    port = urlsplit(service.url).port
    return f"mongodb://127.0.0.1:{port}/?replicaSet=secantus&{options}"


@pytest.mark.asyncio
async def test_url_options_choose_read_preference_and_concerns_and_every_call_works(
    mongodb_service: ServiceEndpoint,
) -> None:
    url = _replica_set_url(
        mongodb_service,
        "readPreference=secondaryPreferred&readConcernLevel=majority&w=majority&retryWrites=true",
    )
    async with MongoBackend(MongoSettings(url=url)) as backend:
        store = backend.namespace(f"rs{uuid.uuid4().hex[:10]}")
        version = await store.save("k", {"n": 1})
        await store.save("k", {"n": 2}, if_version=version)
        async with store.transaction() as tx:
            await tx.save("t", {"n": 3})

        database = await backend.database()
        assert database.read_preference == ReadPreference.SECONDARY_PREFERRED
        assert backend.client.topology_description.topology_type_name == "ReplicaSetWithPrimary"
        assert await store.get("k") == {"n": 2}
        assert await store.get("t") == {"n": 3}


@pytest.mark.asyncio
async def test_the_read_preference_setting_wins_over_the_url(
    mongodb_service: ServiceEndpoint,
) -> None:
    url = _replica_set_url(mongodb_service, "readPreference=secondary")
    settings = MongoSettings(url=url, read_preference="nearest", read_concern="majority")
    async with MongoBackend(settings) as backend:
        store = backend.namespace(f"rs{uuid.uuid4().hex[:10]}")
        await store.save("k", 1)

        database = await backend.database()
        assert database.read_preference == ReadPreference.NEAREST
        assert database.read_concern.level == "majority"
        assert await store.get("k") == 1


def test_an_unknown_read_preference_is_refused() -> None:
    with pytest.raises(ValueError, match="read_preference"):
        MongoSettings(read_preference="secondaries")  # type: ignore[arg-type]
