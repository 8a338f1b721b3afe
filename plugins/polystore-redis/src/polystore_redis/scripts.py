"""The stored value format and the server-side Lua scripts.

A stored value is one Redis string: the 16 hex characters of its version followed by
the encoded data, so ``string.sub(value, 1, 16)`` is the current version. Each
conditional operation is one atomic ``EVALSHA``. Scripts are registered once per client
(``register_script``): redis-py sends ``EVALSHA`` and loads the script again after a
``NOSCRIPT`` reply (e.g. after a server restart).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "CAS_DELETE",
    "CAS_SAVE",
    "COMMIT",
    "GET_ENTRIES",
    "GET_ENTRY",
    "VERSION_LENGTH",
    "Scripts",
    "ttl_to_ms",
]

VERSION_LENGTH = 16
"""Characters of the version token at the start of every stored value."""


def ttl_to_ms(ttl: float) -> int:
    """A ttl in seconds as whole milliseconds for ``PX`` (rounded up, at least 1)."""
    return max(1, math.ceil(ttl * 1000))


CAS_SAVE = """
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, 16) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""
"""Compare-and-set. KEYS: key. ARGV: expected version, new value, ttl in ms or ''."""

CAS_DELETE = """
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, 16) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""
"""Delete if the version matches. KEYS: key. ARGV: expected version. Returns 1 or 0."""

GET_ENTRY = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
return {value, redis.call('PTTL', KEYS[1])}
"""
"""Value and remaining ttl (ms, -1 for none) in one atomic read, or nil."""

GET_ENTRIES = """
local out = {}
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value then
    out[2 * i - 1] = value
    out[2 * i] = redis.call('PTTL', KEYS[i])
  else
    out[2 * i - 1] = false
    out[2 * i] = -2
  end
end
return out
"""
"""Value and remaining ttl of each key, in one atomic read: a flat list of pairs
(``nil, -2`` for an absent key)."""

COMMIT = """
for i = 1, #KEYS do
  local cond = ARGV[4 * i - 3]
  if cond == 'v' then
    local cur = redis.call('GET', KEYS[i])
    if not cur or string.sub(cur, 1, 16) ~= ARGV[4 * i - 2] then return i end
  elseif cond == 'a' then
    if redis.call('EXISTS', KEYS[i]) == 1 then return -i end
  end
end
for i = 1, #KEYS do
  local value, px = ARGV[4 * i - 1], ARGV[4 * i]
  if value == '' then
    redis.call('DEL', KEYS[i])
  elseif px == '' then
    redis.call('SET', KEYS[i], value)
  else
    redis.call('SET', KEYS[i], value, 'PX', px)
  end
end
return 0
"""
"""Check every condition, then apply every write; all or nothing.

KEYS: the keys written. ARGV, four per key: condition (``''``, ``'v'`` version matches,
``'a'`` absent), expected version, new value (``''`` deletes), ttl in ms or ``''``.
Returns 0 on success, ``i`` if key ``i``'s version did not match, ``-i`` if key ``i``
exists but had to be absent.
"""


class Scripts:
    """The scripts registered on one client.

    Args:
        client: A ``redis.asyncio.Redis`` or ``RedisCluster``.
    """

    __slots__ = ("cas_delete", "cas_save", "commit", "get_entries", "get_entry")

    def __init__(self, client: Any) -> None:
        self.cas_save: Any = client.register_script(CAS_SAVE)
        self.cas_delete: Any = client.register_script(CAS_DELETE)
        self.get_entry: Any = client.register_script(GET_ENTRY)
        self.get_entries: Any = client.register_script(GET_ENTRIES)
        self.commit: Any = client.register_script(COMMIT)
