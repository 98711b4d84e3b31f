"""Where the Redis backend keeps each key, so that every script touches one hash slot.

On one server (or Sentinel) the layout is the flat one documented in
:mod:`wxdata.cache.backends.redis`. In a Redis Cluster a Lua script may only touch keys of one
hash slot, and a fill must check, in one script, the invalidation records of every tag of the
entry. Tags cut across entities (``student:<id>`` covers rows of many entities), so no grouping by
entity or tag keeps an entry and all its tags' records together. The namespace is therefore split
into :data:`SHARDS` *shards*, each one hash slot (hash tag ``{<prefix>:<n>}``) holding its own copy
of everything a script needs::

    <entry key>:{<prefix>:<n>}              an entry; n = crc32(entry key) mod SHARDS
    <prefix>:_:{<prefix>:<n>}:seq           the shard's invalidation sequence
    <prefix>:_:{<prefix>:<n>}:ts:<tag id>   ... at which the tag was last invalidated, in this shard
    <prefix>:_:{<prefix>:<n>}:tag:<tag id>  SET of this shard's entries carrying the tag

A lookup reads the entry (and on a miss its shard's sequence, same slot); a fill checks and
writes in its shard only; an invalidation runs once per shard (it cannot know in which shards a
tag has entries). Bus channels share one more slot (``{<prefix>:bus}``) so one connection carries
the messages and the PINGs that bound the memory tiers' leases.

A prefix that carries its own hash tag (``{white-cross}``) puts the whole namespace in one slot:
the flat layout then works unchanged in a cluster, on one node.
"""

from __future__ import annotations

import zlib

SHARDS = 8


def has_hash_tag(prefix: str) -> bool:
    """Whether the prefix fixes the hash slot itself (``{...}`` with something inside)."""
    start = prefix.find("{")
    return start >= 0 and prefix.find("}", start + 2) > start


class Layout:
    """Key names for one namespace: flat (one slot or one server) or sharded (cluster)."""

    __slots__ = ("_tags", "bus_base", "meta", "prefix", "shards")

    def __init__(self, prefix: str, sharded: bool) -> None:
        self.prefix = prefix
        self.shards = SHARDS if sharded else 1
        self.meta = f"{prefix}:_:"
        if sharded:
            self._tags = tuple(f"{prefix}:_:{{{prefix}:{n}}}" for n in range(SHARDS))
            self.bus_base = f"{prefix}:_:{{{prefix}:bus}}"
        else:
            self._tags = (f"{prefix}:_",)
            self.bus_base = f"{prefix}:_"

    @property
    def sharded(self) -> bool:
        """Whether keys carry a shard hash tag."""
        return self.shards > 1

    def shard(self, key: str) -> int:
        """The shard of an entry key (stable across processes)."""
        return zlib.crc32(key.encode()) % self.shards if self.shards > 1 else 0

    def entry(self, key: str) -> str:
        """The Redis key of an entry."""
        if self.shards == 1:
            return key
        return f"{key}:{{{self.prefix}:{self.shard(key)}}}"

    def pattern(self, pattern: str) -> str:
        """A SCAN pattern matching the Redis keys of entries whose key matches ``pattern``."""
        return pattern if self.shards == 1 else f"{pattern}:{{{self.prefix}:*}}"

    def seq(self, shard: int) -> str:
        """The shard's invalidation sequence."""
        return f"{self._tags[shard]}:seq"

    def any(self, shard: int) -> str:
        """The shard's record of the pseudo-tag every fill checks."""
        return f"{self._tags[shard]}:ts:any"

    def ts(self, shard: int, tag_id: str) -> str:
        """The shard's record of a tag's last invalidation."""
        return f"{self._tags[shard]}:ts:{tag_id}"

    def tagset(self, shard: int, tag_id: str) -> str:
        """The shard's SET of entries carrying a tag."""
        return f"{self._tags[shard]}:tag:{tag_id}"

    def tagset_pattern(self) -> str:
        """A SCAN pattern for every tag set of the namespace."""
        if self.shards == 1:
            return f"{self.prefix}:_:tag:*"
        return f"{self.prefix}:_:{{{self.prefix}:*}}:tag:*"
