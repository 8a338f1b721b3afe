"""One forwarding base for stores that wrap another store: :class:`StoreWrapper`.

A wrapper (circuit breaker, telemetry, a ``polystore_wrap_store`` plugin) is a
:class:`~polystore.protocol.DataStore` that passes every call to the store it wraps and
does something around it. :class:`StoreWrapper` forwards the whole protocol once, so a
wrapper overrides two methods instead of twelve:

- :meth:`StoreWrapper._call` runs every awaited call (``get``, ``save``, ``get_many``,
  ``find``, ...): it receives the operation's name, a zero-argument callable that makes
  the call on the wrapped store, and the number of keys involved; it returns what the call
  returns (or raises what it raises).
- :meth:`StoreWrapper._guard` surrounds the calls that are not one await: the whole
  iteration of a ``scan`` and the whole body of a ``transaction()``. It is an async context
  manager; the default does nothing.

``health()`` goes straight to the wrapped store, and attributes the wrapped store has
beyond the protocol are read through, so backend-specific extras stay reachable::

    class CountingStore(StoreWrapper):
        def __init__(self, store: DataStore) -> None:
            super().__init__(store)
            self.calls: Counter[str] = Counter()

        async def _call(self, operation, call, *, keys=1):
            self.calls[operation] += 1
            return await call()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence, Sized
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar

from polystore.protocol import DataStore, DataStoreTransaction
from polystore.types import TTL, Capabilities, Entry, Health, JSONInput, JSONValue, Scalar, Version

__all__ = ["StoreWrapper"]

T = TypeVar("T")

_NOTHING: AbstractAsyncContextManager[None] = nullcontext()


class StoreWrapper:
    """A :class:`~polystore.protocol.DataStore` that forwards every call to ``store``.

    Subclasses override :meth:`_call` (every awaited call) and, when they need to see
    ``scan`` and ``transaction()`` too, :meth:`_guard`.

    Args:
        store: The store to wrap (any ``DataStore``, another wrapper included).

    Attributes:
        store: The wrapped store.
        name: The wrapped store's name.
    """

    def __init__(self, store: DataStore) -> None:
        self.store = store
        self.name: str = store.name

    @property
    def capabilities(self) -> Capabilities:
        """The wrapped store's capabilities, read through (a backend may learn more of them
        when it opens)."""
        return self.store.capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self.store.capabilities = value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.store!r}>"

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class lacks; "store" is guarded so a half-built
        # wrapper (e.g. while unpickling or copying) cannot recurse forever.
        if name == "store":
            raise AttributeError(name)
        return getattr(self.store, name)

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]], *, keys: int = 1) -> T:
        """Run one awaited call of the wrapped store.

        Args:
            operation: The protocol method's name (``"get"``, ``"save_many"``, ...).
            call: Makes the call on the wrapped store when called.
            keys: How many keys the call involves (the batch size for ``*_many``, 0 for
                ``find``).

        Returns:
            What ``call()`` returns; errors propagate.
        """
        return await call()

    def _guard(self, operation: str) -> AbstractAsyncContextManager[None]:
        """The context around a whole ``scan`` iteration or ``transaction()`` body.

        Args:
            operation: ``"scan"`` or ``"transaction"``.

        Returns:
            An async context manager; errors raised inside it go through its exit.
        """
        return _NOTHING

    async def get(self, key: str) -> JSONValue | None:
        return await self._call("get", lambda: self.store.get(key))

    async def get_entry(self, key: str) -> Entry | None:
        return await self._call("get_entry", lambda: self.store.get_entry(key))

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        return await self._call(
            "save",
            lambda: self.store.save(
                key, value, ttl=ttl, if_version=if_version, if_absent=if_absent
            ),
        )

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        return await self._call("delete", lambda: self.store.delete(key, if_version=if_version))

    async def exists(self, key: str) -> bool:
        return await self._call("exists", lambda: self.store.exists(key))

    async def get_many(self, keys: Sequence[str]) -> list[JSONValue | None]:
        return await self._call("get_many", lambda: self.store.get_many(keys), keys=len(keys))

    async def save_many(
        self,
        items: Mapping[str, JSONInput] | Iterable[tuple[str, JSONInput]],
        *,
        ttl: TTL | None = None,
    ) -> list[Version]:
        if not isinstance(items, Sized):  # a generator: counted once, passed on as a list
            items = list(items)
        return await self._call(
            "save_many", lambda: self.store.save_many(items, ttl=ttl), keys=len(items)
        )

    async def delete_many(self, keys: Sequence[str]) -> int:
        return await self._call("delete_many", lambda: self.store.delete_many(keys), keys=len(keys))

    async def find(self, where: Mapping[str, Scalar], *, limit: int | None = None) -> list[Entry]:
        return await self._call("find", lambda: self.store.find(where, limit=limit), keys=0)

    def scan(self, *, prefix: str = "", batch_size: int = 500) -> AsyncIterator[str]:
        keys = self.store.scan(prefix=prefix, batch_size=batch_size)  # checks its arguments
        return self._scan(keys)

    async def _scan(self, keys: AsyncIterator[str]) -> AsyncIterator[str]:
        async with self._guard("scan"):
            async for key in keys:
                yield key

    def transaction(self) -> AbstractAsyncContextManager[DataStoreTransaction]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[DataStoreTransaction]:
        async with self._guard("transaction"), self.store.transaction() as tx:
            yield tx

    async def health(self) -> Health:
        return await self.store.health()
