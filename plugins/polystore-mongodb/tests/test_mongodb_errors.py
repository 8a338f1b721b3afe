"""The translation of driver exceptions (pure logic: real PyMongo exception objects)."""

from __future__ import annotations

import pytest
from bson.errors import InvalidDocument
from polystore_mongodb.errors import MongoErrors
from pymongo import errors as pm

from polystore import (
    AlreadyExistsError,
    ConfigurationError,
    ConflictError,
    PolystoreError,
    SerializationError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
    ValidationError,
)


def labelled(exc: pm.PyMongoError, *labels: str) -> pm.PyMongoError:
    for label in labels:
        exc._add_error_label(label)
    return exc


CONCERN_FAILED = pm.BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64}]})
TOO_LARGE = {"index": 1, "code": 17420, "errmsg": "too large", "op": {"q": {"_id": "big"}}}
ITEM_TOO_LARGE = pm.BulkWriteError({"writeErrors": [TOO_LARGE], "writeConcernErrors": []})

CASES: list[tuple[BaseException, bool, type[PolystoreError]]] = [
    (pm.ServerSelectionTimeoutError("no server"), True, StoreTimeoutError),
    (pm.ServerSelectionTimeoutError("no server"), False, StoreTimeoutError),
    (pm.WaitQueueTimeoutError("pool full"), True, StoreTimeoutError),
    (pm.NotPrimaryError("not primary", {"code": 10107}), True, StoreUnavailableError),
    (pm.AutoReconnect("connection reset"), False, StoreUnavailableError),
    (pm.AutoReconnect("connection reset"), True, UnknownOutcomeError),
    (labelled(pm.AutoReconnect("reset"), "NoWritesPerformed"), True, StoreUnavailableError),
    (pm.NetworkTimeout("timed out"), False, StoreTimeoutError),
    (pm.NetworkTimeout("timed out"), True, UnknownOutcomeError),
    (pm.ExecutionTimeout("maxTimeMS", 50), False, StoreTimeoutError),
    (pm.ExecutionTimeout("maxTimeMS", 50), True, UnknownOutcomeError),
    (pm.WriteConcernError("waiting for replication", 64), True, UnknownOutcomeError),
    (pm.DuplicateKeyError("E11000", 11000), True, AlreadyExistsError),
    (pm.OperationFailure("WriteConflict", 112), False, ConflictError),
    (labelled(pm.OperationFailure("x", 251), "TransientTransactionError"), True, ConflictError),
    (
        labelled(pm.OperationFailure("commit", 91), "UnknownTransactionCommitResult"),
        True,
        UnknownOutcomeError,
    ),
    (pm.OperationFailure("too large", 10334), True, ValidationError),
    (pm.OperationFailure("Authentication failed.", 18), False, StoreError),
    (pm.OperationFailure("exceeded time limit", 262), False, StoreTimeoutError),
    (pm.CursorNotFound("cursor id 7 not found", 43), False, StoreUnavailableError),
    (pm.DocumentTooLarge("BSON document too large"), True, ValidationError),
    (InvalidDocument("cannot encode object"), True, ValidationError),
    (OverflowError("MongoDB can only handle up to 8-byte ints"), True, SerializationError),
    (pm.InvalidOperation("Cannot use AsyncMongoClient after close"), False, StoreUnavailableError),
    (pm.ConfigurationError("unknown option foo"), False, ConfigurationError),
    (
        pm.BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64}]}),
        True,
        UnknownOutcomeError,
    ),
    (
        pm.BulkWriteError(
            {
                "writeErrors": [
                    {"index": 1, "code": 17420, "errmsg": "too large", "op": {"q": {"_id": "big"}}}
                ],
                "writeConcernErrors": [],
            }
        ),
        True,
        ValidationError,
    ),
]


@pytest.mark.parametrize(("exc", "write", "expected"), CASES, ids=lambda c: repr(c)[:60])
def test_driver_exceptions_map_to_the_error_tree(
    exc: BaseException, write: bool, expected: type[PolystoreError]
) -> None:
    error = MongoErrors("mongodb/ns", "save", "k", write=write).translate(exc)
    assert type(error) is expected
    assert (error.backend, error.operation) == ("mongodb/ns", "save")


def test_a_failed_batch_item_names_its_key() -> None:
    exc = pm.BulkWriteError(
        {
            "writeErrors": [{"index": 0, "code": 2, "errmsg": "bad", "op": {"q": {"_id": "k7"}}}],
            "writeConcernErrors": [],
        }
    )
    error = MongoErrors("b", "save_many", write=True).translate(exc)
    assert type(error) is StoreError
    assert error.key == "k7"
    assert "the others were written" in error.message


def test_mongo_errors_chains_the_driver_exception() -> None:
    cause = pm.AutoReconnect("connection reset")
    with pytest.raises(StoreUnavailableError) as info, MongoErrors("b", "get", "k"):
        raise cause
    assert info.value.__cause__ is cause
    assert info.value.key == "k"


def test_mongo_errors_lets_other_exceptions_through() -> None:
    with pytest.raises(KeyError), MongoErrors("b", "get"):
        raise KeyError("not a driver error")


def test_messages_are_redacted() -> None:
    exc = pm.ServerSelectionTimeoutError("mongodb://u:hunter2@db:27017 password=hunter2 gone")
    error = MongoErrors("b", "get").translate(exc)
    assert "hunter2" not in str(error)
