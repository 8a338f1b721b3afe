"""The public API of polystore_mongodb is pinned."""

from __future__ import annotations

import polystore_mongodb


def test_the_public_names_are_pinned_and_sorted() -> None:
    assert polystore_mongodb.__all__ == [
        "MongoBackend",
        "MongoDBStore",
        "MongoSettings",
        "MongoTransaction",
    ]
    assert sorted(polystore_mongodb.__all__) == polystore_mongodb.__all__
    for name in polystore_mongodb.__all__:
        assert getattr(polystore_mongodb, name).__module__.startswith("polystore_mongodb.")


def test_the_store_class_keeps_the_name_of_the_reference_design() -> None:
    assert polystore_mongodb.MongoDBStore.__name__ == "MongoDBStore"
