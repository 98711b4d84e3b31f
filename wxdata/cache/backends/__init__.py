"""Cache backends: in-process memory, Redis, and the two-tier combination with cross-process invalidation."""

from wxdata.cache.backends.base import MISS, CacheManager, Miss, SingleFlight
from wxdata.cache.backends.memory import MemoryCache
from wxdata.cache.backends.redis import CircuitBreaker, RedisCache, make_client
from wxdata.cache.backends.tiered import TieredCache

__all__ = [
    "MISS",
    "CacheManager",
    "CircuitBreaker",
    "MemoryCache",
    "Miss",
    "RedisCache",
    "SingleFlight",
    "TieredCache",
    "make_client",
]
