"""Caching for wxdata reads: the ``cached`` decorator, keys, backends, PHI policy and stats.

``@cached(entity=...)`` caches the ``Success`` values of any ``(conn, ctx, ...) -> Result`` read in
the process cache built from settings (memory, Redis, or memory in front of Redis); committed writes
invalidate it after COMMIT through write events; PHI never appears in keys in clear, is encrypted in
Redis, and every cache hit on it is audited. See the README, "Caching".

``async def`` reads use :func:`wxdata.cache.aio.cached` (same rules and keys, decided by the same
code: :mod:`wxdata.cache.core`) with the async backends of :mod:`wxdata.cache.backends.aio`.
"""

from wxdata.cache.backends import (
    MISS,
    CacheManager,
    CircuitBreaker,
    MemoryCache,
    RedisCache,
    TieredCache,
    make_client,
)
from wxdata.cache.crypto import Envelope
from wxdata.cache.decorator import cached
from wxdata.cache.factory import (
    build_cache,
    configure_cache,
    default_cache,
    init_cache,
    reset_default,
    using_cache,
)
from wxdata.cache.invalidation import invalidate_tags, subscribe, tags_for, unsubscribe
from wxdata.cache.keys import (
    KeyBuilder,
    KeyShape,
    by_id,
    by_id_tags,
    entity_tag,
    listing,
    row_tag,
    search,
    student_tag,
    summary,
)
from wxdata.cache.policy import PHI_TTL_CEILING, CachePolicyError, is_sensitive, ttl_for
from wxdata.cache.serde import register_value_type
from wxdata.cache.stats import CacheStats, EntityStats
from wxdata.cache.totals import cache_totals, totals_cached, uncache_totals

__all__ = [
    "MISS",
    "PHI_TTL_CEILING",
    "CacheManager",
    "CachePolicyError",
    "CacheStats",
    "CircuitBreaker",
    "EntityStats",
    "Envelope",
    "KeyBuilder",
    "KeyShape",
    "MemoryCache",
    "RedisCache",
    "TieredCache",
    "build_cache",
    "by_id",
    "by_id_tags",
    "cache_totals",
    "cached",
    "configure_cache",
    "default_cache",
    "entity_tag",
    "init_cache",
    "invalidate_tags",
    "is_sensitive",
    "listing",
    "make_client",
    "register_value_type",
    "reset_default",
    "row_tag",
    "search",
    "student_tag",
    "subscribe",
    "summary",
    "tags_for",
    "totals_cached",
    "ttl_for",
    "uncache_totals",
    "unsubscribe",
    "using_cache",
]
