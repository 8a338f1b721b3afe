"""The test kit's PostgreSQL primary with a streaming standby."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from polystore.testing import LocalPostgresReplicaSet, ServiceUnavailable


@pytest.fixture(scope="module")
def replica_set() -> Iterator[LocalPostgresReplicaSet]:
    servers = LocalPostgresReplicaSet(name="kit-replicas")
    try:
        servers.start()
    except ServiceUnavailable:
        servers.close()
        raise
    yield servers
    servers.close()


def test_the_standby_is_in_recovery_and_the_primary_is_not(
    replica_set: LocalPostgresReplicaSet,
) -> None:
    assert replica_set.standby.query("SELECT pg_is_in_recovery()") == "t"
    assert (
        replica_set.standby.query("SELECT pg_is_in_recovery()", port=replica_set.primary.port)
        == "f"
    )


def test_a_write_on_the_primary_streams_to_the_standby(
    replica_set: LocalPostgresReplicaSet,
) -> None:
    replica_set.standby.query(
        "CREATE TABLE streamed AS SELECT 42 AS answer", port=replica_set.primary.port
    )

    replica_set.wait_caught_up()

    assert replica_set.standby.query("SELECT answer FROM streamed") == "42"


def test_the_standby_refuses_writes(replica_set: LocalPostgresReplicaSet) -> None:
    with pytest.raises(ServiceUnavailable, match="read-only transaction"):
        replica_set.standby.query("CREATE TABLE refused (x int)")


def test_a_killed_standby_starts_again_and_catches_up(replica_set: LocalPostgresReplicaSet) -> None:
    replica_set.standby.kill()
    replica_set.standby.query("CREATE TABLE while_down (x int)", port=replica_set.primary.port)

    replica_set.standby.start()
    replica_set.wait_caught_up()

    assert replica_set.standby.query("SELECT count(*) FROM while_down") == "0"


def test_a_paused_standby_lags_until_resumed(replica_set: LocalPostgresReplicaSet) -> None:
    replica_set.standby.pause()
    try:
        replica_set.standby.query(
            "CREATE TABLE while_paused AS SELECT 1 AS x", port=replica_set.primary.port
        )
        behind = replica_set.standby.query(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 0 FROM pg_stat_replication",
            port=replica_set.primary.port,
        )
    finally:
        replica_set.standby.resume()

    assert behind == "t"
    replica_set.wait_caught_up()
    assert replica_set.standby.query("SELECT x FROM while_paused") == "1"


def test_a_promoted_standby_accepts_writes_and_the_multi_host_url_names_both() -> None:
    servers = LocalPostgresReplicaSet(name="kit-promote")
    try:
        servers.start()
        servers.primary.kill()

        servers.standby.promote()

        assert servers.standby.query("SELECT pg_is_in_recovery()") == "f"
        servers.standby.query("CREATE TABLE after_promotion (x int)")
        assert (
            f":{servers.primary.port},127.0.0.1:{servers.standby.port}/" in servers.multi_host_url
        )
    finally:
        servers.close()
