"""Shard strategies: shares, movement on topology changes, ranges, stability across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from polystore.errors import ConfigurationError, ValidationError
from polystore.sharding import HashShardStrategy, RangeShardStrategy, strategy_from_spec

KEYS = [f"user:{i}" for i in range(10_000)]


def shares(strategy: HashShardStrategy) -> Counter[str]:
    return Counter(strategy.shard_for(key) for key in KEYS)


@pytest.mark.parametrize("count", [2, 3, 4, 5])
def test_hash_shares_are_within_five_percent_of_equal(count: int) -> None:
    strategy = HashShardStrategy([f"s{i}" for i in range(count)])
    counted = shares(strategy)
    expected = len(KEYS) / count
    assert set(counted) == set(strategy.shard_ids)
    for shard_id, got in counted.items():
        assert abs(got - expected) <= 0.05 * expected, (shard_id, got, expected)


def test_adding_a_fourth_shard_moves_a_quarter_of_keys_all_to_it() -> None:
    before = HashShardStrategy(["a", "b", "c"])
    after = before.with_shards(["a", "b", "c", "d"])
    moved = [k for k in KEYS if before.shard_for(k) != after.shard_for(k)]
    assert 0.20 * len(KEYS) <= len(moved) <= 0.30 * len(KEYS)
    assert {after.shard_for(k) for k in moved} == {"d"}


def test_removing_a_shard_moves_only_its_keys() -> None:
    before = HashShardStrategy(["a", "b", "c", "d"])
    after = before.with_shards(["a", "b", "d"])
    moved = [k for k in KEYS if before.shard_for(k) != after.shard_for(k)]
    assert {before.shard_for(k) for k in moved} == {"c"}
    assert len(moved) == sum(1 for k in KEYS if before.shard_for(k) == "c")


def test_weights_give_proportional_shares() -> None:
    strategy = HashShardStrategy(["big", "small"], weights={"big": 3.0, "small": 1.0})
    counted = shares(strategy)
    assert abs(counted["big"] / len(KEYS) - 0.75) <= 0.05 * 0.75


def test_num_shards_form_names_shards_by_number() -> None:
    strategy = HashShardStrategy(3)
    assert strategy.shard_ids == ("0", "1", "2")
    assert strategy.get_shard_id("k") == strategy.shard_for("k")


def test_hash_tags_put_related_keys_on_one_shard() -> None:
    strategy = HashShardStrategy(["a", "b", "c", "d"])
    owners = {strategy.shard_for(f"order:{{cust-42}}:{i}") for i in range(50)}
    assert len(owners) == 1


def test_bad_hash_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        HashShardStrategy(["a", "a"])
    with pytest.raises(ConfigurationError):
        HashShardStrategy(["a"], weights={"a": 0})
    with pytest.raises(ConfigurationError):
        HashShardStrategy(0)


def test_ranges_are_half_open() -> None:
    strategy = RangeShardStrategy([("a", "m", "one"), ("m", None, "two"), (None, "a", "zero")])
    assert strategy.shard_for("A") == "zero"
    assert strategy.shard_for("a") == "one"
    assert strategy.shard_for("lzzz") == "one"
    assert strategy.shard_for("m") == "two"
    assert strategy.shard_for("zzz") == "two"


def test_a_key_outside_every_range_is_a_validation_error() -> None:
    strategy = RangeShardStrategy([("b", "d", "one"), ("f", "h", "two")])
    for key in ["a", "d", "e", "h", "z"]:
        with pytest.raises(ValidationError):
            strategy.shard_for(key)
    assert strategy.shard_for("c") == "one"


def test_overlapping_or_empty_ranges_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        RangeShardStrategy([("a", "m", "one"), ("k", "z", "two")])
    with pytest.raises(ConfigurationError):
        RangeShardStrategy([("m", "a", "one")])
    with pytest.raises(ConfigurationError):
        RangeShardStrategy([(None, "m", "one"), (None, "z", "two")])


def test_range_strategy_refuses_to_drop_a_shard_that_owns_a_range() -> None:
    strategy = RangeShardStrategy([("a", "m", "one"), ("m", None, "two")])
    with pytest.raises(ConfigurationError):
        strategy.with_shards(["one"])


def test_specs_round_trip() -> None:
    for strategy in (
        HashShardStrategy(["a", "b"], weights={"a": 2.0}),
        RangeShardStrategy([("a", "m", "one"), ("m", None, "two")]),
    ):
        assert strategy_from_spec(strategy.to_spec()) == strategy


PROGRAM = """
from polystore.sharding import HashShardStrategy
s = HashShardStrategy(["a", "b", "c", "d"])
print(",".join(s.shard_for(f"user:{i}") for i in range(500)))
"""


def test_the_shard_of_a_key_is_the_same_in_processes_with_different_hash_seeds() -> None:
    outputs = set()
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(done.stdout.strip())
    local = ",".join(
        HashShardStrategy(["a", "b", "c", "d"]).shard_for(f"user:{i}") for i in range(500)
    )
    assert outputs == {local}
