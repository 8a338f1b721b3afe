"""The interfaces callers program against: :class:`DataStore` and :class:`Backend`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol, runtime_checkable

from polystore.types import TTL, Capabilities, Entry, Health, JSONInput, JSONValue, Scalar, Version

__all__ = ["Backend", "DataStore", "DataStoreTransaction"]


@runtime_checkable
class DataStoreTransaction(Protocol):
    """Writes grouped atomically within one store; invisible outside until commit."""

    async def get(self, key: str) -> JSONValue | None:
        """Read a value, seeing this transaction's own writes."""
        ...

    async def get_entry(self, key: str) -> Entry | None:
        """Read an entry, seeing this transaction's own writes."""
        ...

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        """Stage a write; conditions are checked no later than commit."""
        ...

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        """Stage a delete; returns whether the key existed when staged."""
        ...


@runtime_checkable
class DataStore(Protocol):
    """One namespace of one backend: the interface applications use."""

    name: str
    capabilities: Capabilities

    async def get(self, key: str) -> JSONValue | None:
        """Return the value stored under ``key``, or ``None``."""
        ...

    async def get_entry(self, key: str) -> Entry | None:
        """Return value, version and expiry of ``key``, or ``None``."""
        ...

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        """Store ``value`` under ``key`` and return the new version."""
        ...

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        """Delete ``key``; return whether it existed."""
        ...

    async def exists(self, key: str) -> bool:
        """Return whether ``key`` holds a live entry."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[JSONValue | None]:
        """Return the values of ``keys`` in the same order, ``None`` for missing ones."""
        ...

    async def save_many(
        self,
        items: Mapping[str, JSONInput] | Iterable[tuple[str, JSONInput]],
        *,
        ttl: TTL | None = None,
    ) -> list[Version]:
        """Store several values; return their new versions in input order."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Delete several keys; return how many existed."""
        ...

    def scan(self, *, prefix: str = "", batch_size: int = 500) -> AsyncIterator[str]:
        """Stream the keys that start with ``prefix``."""
        ...

    async def find(self, where: Mapping[str, Scalar], *, limit: int | None = None) -> list[Entry]:
        """Return entries whose top-level fields equal the filter's values, by key."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[DataStoreTransaction]:
        """Open an atomic multi-key write within this store."""
        ...

    async def health(self) -> Health:
        """Check that the store answers."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A configured connection to one server (or file); hands out namespaces."""

    name: str

    @property
    def capabilities(self) -> Capabilities:
        """What this backend's stores guarantee (known after :meth:`open`)."""
        ...

    async def open(self) -> None:
        """Connect and detect capabilities. Idempotent."""
        ...

    async def aclose(self) -> None:
        """Release what the backend owns; a client passed in by the user stays open."""
        ...

    def namespace(self, name: str) -> DataStore:
        """Return the store for namespace ``name``."""
        ...

    async def health(self) -> Health:
        """Check that the server answers."""
        ...

    async def __aenter__(self) -> Backend: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
