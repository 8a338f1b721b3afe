"""Writes that count only once replicas have them: ``wait_replicas``.

Redis replicates asynchronously, so a write the primary acknowledged can be lost when a
replica is promoted before it got the write. With ``wait_replicas = N`` every write is
sent in one pipeline with ``WAIT N timeout`` on the same connection (``WAIT`` concerns
the writes of its own connection): the call returns once ``N`` replicas hold the write,
and raises :class:`~polystore.UnknownOutcomeError` when fewer confirmed it within half of
the backend's timeout (the primary has applied it; a failover may lose it). With as many
replicas as ``wait_replicas``, losing one makes every write fail this way until it is
back. Still one round trip, plus the replicas' acknowledgement.

:class:`AcknowledgedClient` wraps the backend's client: reads pass through unchanged;
single writes and non-transactional pipelines (batches) get the ``WAIT``. ``WAIT``
inside ``MULTI`` does not wait, so a backend with ``wait_replicas`` offers no
transactions.
"""

from __future__ import annotations

from typing import Any

from polystore import UnknownOutcomeError

__all__ = ["WRITE_COMMANDS", "AcknowledgedClient"]

WRITE_COMMANDS = frozenset({"SET", "DEL", "UNLINK", "MSET", "EVALSHA", "EVAL", "PEXPIRE"})
"""Commands followed by ``WAIT`` (scripts included: polystore's change keys, or read)."""


def _not_confirmed(name: str, wanted: int, got: int, timeout_ms: int) -> UnknownOutcomeError:
    return UnknownOutcomeError(
        f"the primary applied the write but only {got} of {wanted} replicas confirmed it "
        f"within {timeout_ms} ms: a failover before they get it would lose it",
        backend=name,
    )


class AcknowledgedClient:
    """A ``redis.asyncio.Redis`` whose writes wait for ``replicas`` replicas.

    Args:
        client: The client to wrap (it stays the owner of the connections).
        replicas: Replicas that must confirm each write.
        timeout: Seconds to wait for them.
        name: The backend's name, for errors.
    """

    def __init__(self, client: Any, replicas: int, timeout: float, name: str) -> None:
        self._client = client
        self._replicas = replicas
        self._timeout_ms = max(1, round(timeout * 1000))
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._client, attribute)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command; a write is pipelined with ``WAIT`` and checked."""
        if str(args[0]).upper() not in WRITE_COMMANDS:
            return await self._client.execute_command(*args, **options)
        pipe = self._client.pipeline(transaction=False)
        pipe.execute_command(*args, **options)
        pipe.execute_command("WAIT", self._replicas, self._timeout_ms)
        reply, confirmed = await pipe.execute()
        self._check(int(confirmed))
        return reply

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """``EVALSHA`` (what registered scripts call), followed by ``WAIT``."""
        return await self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def register_script(self, script: str) -> Any:
        """A script whose calls go through this client."""
        from redis.commands.core import AsyncScript

        return AsyncScript(self, script)  # type: ignore[arg-type]  # duck-typed client

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        """A pipeline; a non-transactional one ends with ``WAIT`` when it holds a write."""
        pipe = self._client.pipeline(transaction=transaction, shard_hint=shard_hint)
        if transaction:
            return pipe
        return _AcknowledgedPipeline(pipe, self)

    def _check(self, confirmed: int) -> None:
        if confirmed < self._replicas:
            raise _not_confirmed(self._name, self._replicas, confirmed, self._timeout_ms)


class _AcknowledgedPipeline:
    """A non-transactional pipeline that ends with ``WAIT`` when it holds a write."""

    def __init__(self, pipe: Any, owner: AcknowledgedClient) -> None:
        self._pipe = pipe
        self._owner = owner
        self._writes = False

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._pipe, attribute)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Queue one command."""
        self._writes = self._writes or str(args[0]).upper() in WRITE_COMMANDS
        return self._pipe.execute_command(*args, **options)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands (and ``WAIT``); the replies of the queued ones."""
        owner = self._owner
        if not self._writes:
            replies: list[Any] = await self._pipe.execute(raise_on_error=raise_on_error)
            return replies
        self._pipe.execute_command("WAIT", owner._replicas, owner._timeout_ms)
        replies = await self._pipe.execute(raise_on_error=raise_on_error)
        self._writes = False
        confirmed = replies.pop()
        if isinstance(confirmed, Exception):  # with raise_on_error=False
            raise confirmed
        owner._check(int(confirmed))
        return replies
