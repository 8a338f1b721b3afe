"""Pure logic of replication: hybrid logical clocks, vector clocks, envelopes, resolvers."""

from __future__ import annotations

import logging

import pytest

from polystore.errors import (
    ConfigurationError,
    QuorumError,
    QuorumUnavailableError,
    QuorumUnknownOutcomeError,
    SerializationError,
    StoreUnavailableError,
    UnknownOutcomeError,
)
from polystore.replication import HybridLogicalClock, LastWriteWins, Timestamp, VectorClock
from polystore.replication.envelope import (
    Sibling,
    clock_join,
    decode,
    descends,
    encode,
    parse_context,
    render_context,
)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- hybrid logical clock ---------------------------------------------------------------------


def test_hlc_never_runs_backwards_when_the_wall_clock_does() -> None:
    wall = FakeClock(1000.0)
    hlc = HybridLogicalClock("a", clock=wall)
    first = hlc.now()
    wall.now = 990.0
    second = hlc.now()
    assert second > first
    assert second.physical_ms == first.physical_ms
    assert second.logical == first.logical + 1


def test_hlc_follows_the_wall_clock_when_it_moves_on() -> None:
    wall = FakeClock(1000.0)
    hlc = HybridLogicalClock("a", clock=wall)
    hlc.now()
    wall.now = 1001.0
    later = hlc.now()
    assert (later.physical_ms, later.logical) == (1_001_000, 0)


def test_hlc_writes_after_an_observed_timestamp_from_a_clock_ahead() -> None:
    fast = HybridLogicalClock("fast", clock=FakeClock(1030.0))
    slow = HybridLogicalClock("slow", clock=FakeClock(1000.0))
    seen = fast.now()
    assert slow.observe(seen)
    assert slow.now() > seen


def test_hlc_refuses_a_timestamp_beyond_max_drift_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    far = HybridLogicalClock("far", clock=FakeClock(1100.0)).now()
    hlc = HybridLogicalClock("a", clock=FakeClock(1000.0), max_drift=30)
    with caplog.at_level(logging.WARNING, logger="polystore.replication"):
        assert not hlc.observe(far)
    assert hlc.now() < far
    assert hlc.refused == 1
    assert "100.0 s ahead" in caplog.text


def test_ties_between_equal_times_go_to_the_larger_node_id() -> None:
    assert Timestamp(5, "b") > Timestamp(5, "a")
    assert Timestamp(6, "a") > Timestamp(5, "b")


@pytest.mark.parametrize("node_id", ["", "a.b", "a$", "x" * 65, 7, None])
def test_bad_node_ids_are_refused(node_id: object) -> None:
    with pytest.raises(ConfigurationError):
        HybridLogicalClock(node_id)  # type: ignore[arg-type]


def test_version_tokens_sort_like_timestamps() -> None:
    stamps = [Timestamp(1 << 20, "b"), Timestamp(1 << 40, "a"), Timestamp(1 << 20, "a")]
    assert sorted(s.token() for s in stamps) == [s.token() for s in sorted(stamps)]


# -- vector clocks ----------------------------------------------------------------------------


def test_a_clock_descends_from_every_clock_it_covers() -> None:
    assert descends({"a": 2, "b": 1}, {"a": 1})
    assert not descends({"a": 1}, {"a": 1, "b": 1})
    assert descends({}, {})


def test_join_takes_the_largest_entry_of_every_node() -> None:
    assert clock_join([{"a": 2, "b": 1}, {"b": 3, "c": 1}]) == {"a": 2, "b": 3, "c": 1}


def test_context_tokens_round_trip() -> None:
    clock = {"node-b": 7, "node-a": 1 << 50}
    assert parse_context(render_context(clock)) == clock
    with pytest.raises(ValueError, match="context"):
        parse_context("0123abcd")


# -- envelopes --------------------------------------------------------------------------------


def test_an_envelope_round_trips_value_stamp_clock_tombstone_and_expiry() -> None:
    live = Sibling(Timestamp(10, "a"), {"x": [1, None]}, expires_ms=99, clock={"a": 10})
    dead = Sibling(Timestamp(11, "b"), deleted=True, clock={"b": 11})
    assert decode(encode((live, dead))) == (live, dead)


def test_a_value_stored_without_envelope_reads_as_the_oldest_write() -> None:
    (sibling,) = decode({"name": "legacy"})
    assert sibling.value == {"name": "legacy"}
    assert sibling.stamp < Timestamp(1, "")


def test_a_malformed_envelope_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError):
        decode({"~polystore": 1, "s": [{"t": "x"}]}, where="r1", key="k")


# -- resolvers --------------------------------------------------------------------------------


def _at(packed: int, node: str, value: object = None, **kw: object) -> Sibling:
    return Sibling(Timestamp(packed, node), value, **kw)  # type: ignore[arg-type]


def test_last_write_wins_keeps_the_latest_stamp_and_ignores_arrival_order() -> None:
    lww = LastWriteWins()
    old, new = (_at(1, "a", "old"),), (_at(2, "a", "new"),)
    assert lww.join([old, new]) == lww.join([new, old]) == new
    assert lww.resolve(new, 0).value == "new"


def test_last_write_wins_tombstone_hides_older_values_only() -> None:
    lww = LastWriteWins()
    tomb = (_at(2, "a", deleted=True),)
    assert not lww.resolve(lww.join([(_at(1, "a", "v"),), tomb]), 0).live
    assert lww.resolve(lww.join([(_at(3, "a", "v"),), tomb]), 0).value == "v"


def test_expired_values_do_not_resolve_as_live() -> None:
    state = (_at(1, "a", "v", expires_ms=500),)
    assert LastWriteWins().resolve(state, 499).live
    assert not LastWriteWins().resolve(state, 500).live


def test_vector_clock_keeps_concurrent_writes_and_merges_them() -> None:
    resolver = VectorClock(merge=lambda values: sorted(v for vs in values for v in vs))
    left = (_at(1, "a", ["x"], clock={"a": 1}),)
    right = (_at(2, "b", ["y"], clock={"b": 2}),)
    joined = resolver.join([left, right])
    assert len(joined) == 2
    resolution = resolver.resolve(joined, 0)
    assert resolution.merged
    assert resolution.value == ["x", "y"]


def test_vector_clock_drops_what_a_later_write_saw() -> None:
    resolver = VectorClock(merge=lambda values: values[0])
    seen = (_at(1, "a", "old", clock={"a": 1}),)
    later = (_at(2, "b", "new", clock={"a": 1, "b": 2}),)
    assert resolver.join([seen, later]) == later
    assert resolver.join([later, seen, later]) == later


def test_vector_clock_delete_concurrent_with_a_write_keeps_the_write() -> None:
    resolver = VectorClock(merge=lambda values: values[0])
    joined = resolver.join(
        [(_at(1, "a", "v", clock={"a": 1}),), (_at(2, "b", deleted=True, clock={"b": 2}),)]
    )
    assert resolver.resolve(joined, 0).value == "v"


def test_vector_clock_needs_a_callable_merge() -> None:
    with pytest.raises(ConfigurationError):
        VectorClock(merge="first")  # type: ignore[arg-type]


# -- errors -----------------------------------------------------------------------------------


def test_quorum_errors_keep_both_except_clauses_true() -> None:
    nothing = QuorumUnavailableError("x", required=2, acknowledged=0)
    some = QuorumUnknownOutcomeError("x", required=2, acknowledged=1)
    assert isinstance(nothing, QuorumError)
    assert isinstance(nothing, StoreUnavailableError)
    assert isinstance(some, QuorumError)
    assert isinstance(some, UnknownOutcomeError)
    assert not isinstance(some, StoreUnavailableError)
