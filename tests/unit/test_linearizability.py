"""The history checker behind the concurrency conformance tests."""

from __future__ import annotations

from polystore.errors import ConflictError
from polystore.testing.linearizability import Op, check_key, linearizable
from polystore.types import Entry, Version


def _save(start: float, end: float, value: int, version: str) -> Op:
    return Op("save", "k", start, end, value=value, result=version)


def _get(start: float, end: float, found: tuple[int, str] | None) -> Op:
    result = None if found is None else Entry("k", found[0], Version(found[1]), None)
    return Op("get", "k", start, end, result=result)


def test_a_sequential_history_that_follows_the_model_is_accepted() -> None:
    history = [_save(0, 1, 1, "v1"), _get(2, 3, (1, "v1")), _save(4, 5, 2, "v2")]
    assert check_key(history)


def test_a_read_of_an_overwritten_value_after_the_overwrite_returned_is_refused() -> None:
    history = [_save(0, 1, 1, "v1"), _save(2, 3, 2, "v2"), _get(4, 5, (1, "v1"))]
    assert not check_key(history)


def test_overlapping_calls_may_take_effect_in_either_order() -> None:
    history = [_save(0, 5, 1, "v1"), _save(1, 4, 2, "v2"), _get(6, 7, (1, "v1"))]
    assert check_key(history)


def test_two_winning_compare_and_sets_on_one_version_are_refused() -> None:
    cas_a = Op("cas", "k", 2, 4, value=2, if_version=Version("v1"), result="v2")
    cas_b = Op("cas", "k", 2, 4, value=3, if_version=Version("v1"), result="v3")
    assert not check_key([_save(0, 1, 1, "v1"), cas_a, cas_b])


def test_a_conflict_when_the_version_matched_is_refused() -> None:
    conflict = ConflictError("version mismatch")
    cas = Op("cas", "k", 2, 3, value=2, if_version=Version("v1"), result=conflict)
    assert not check_key([_save(0, 1, 1, "v1"), cas])


def test_a_delete_that_reports_a_missing_key_after_a_save_is_refused() -> None:
    delete = Op("delete", "k", 2, 3, result=False)
    assert not check_key([_save(0, 1, 1, "v1"), delete])


def test_only_the_keys_whose_history_breaks_the_model_are_named() -> None:
    good = _save(0, 1, 1, "v1")
    bad = Op("get", "other", 0, 1, result=Entry("other", 9, Version("vx"), None))
    assert linearizable([good, bad]) == ["other"]
