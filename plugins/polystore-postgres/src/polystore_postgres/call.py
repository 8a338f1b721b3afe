"""One pooled connection for one call, within the call's timeout."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from polystore import PolystoreError
from polystore.spi import step_deadline
from polystore_postgres.errors import DRIVER_ERRORS, connection_suspect

if TYPE_CHECKING:
    from polystore_postgres.store import PostgreSQLStore

__all__ = ["Call"]


class Call:
    """One pooled connection for one call: acquire within the deadline, release after,
    translate driver errors (a write's outcome is unknown once it was sent)."""

    __slots__ = ("conn", "deadline", "key", "operation", "store", "write")

    def __init__(self, store: PostgreSQLStore, operation: str, key: str | None, write: bool):
        self.store = store
        self.operation = operation
        self.key = key
        self.write = write
        self.conn: Any = None
        self.deadline = 0.0

    def remaining(self) -> float:
        """Seconds left of the call's timeout (never zero: asyncpg treats 0 as none)."""
        return max(self.deadline - time.monotonic(), 0.001)

    async def __aenter__(self) -> Call:
        store = self.store
        # Within a store call, its deadline (retries and earlier steps spent part of it).
        self.deadline = step_deadline(store.timeout)
        try:
            self.conn = await store.backend.acquire(self.remaining())
        except DRIVER_ERRORS as exc:
            raise store.error(exc, self.operation, self.key) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.write and exc is None:
            standbys = self.store.backend.standbys
            if standbys is not None:
                await standbys.note_write(self.conn, self.remaining())
        await self.store.backend.release(self.conn, discard=connection_suspect(exc))
        if isinstance(exc, DRIVER_ERRORS) and not isinstance(exc, PolystoreError):
            raise self.store.error(exc, self.operation, self.key, write=self.write) from exc
