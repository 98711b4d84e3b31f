"""Redis hits reuse the decoding of bytes already verified, and nothing else (real Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Success

from tests.cache_support import prefix, redis_backend, wipe
from wxdata.cache.backends.base import MISS, Miss
from wxdata.cache.backends.redis import OPENED_MAX_BYTES, OpenedEntries, RedisCache

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    ns = prefix()
    yield ns
    wipe(redis_url, ns)


@pytest.fixture
def cache(redis_url: str, namespace: str) -> Iterator[RedisCache]:
    c = redis_backend(redis_url, namespace)
    yield c
    c.close()


def _fill(cache: RedisCache, key: str, value: object, *, sensitive: bool = False,
          tags: tuple[str, ...] = ()) -> None:
    miss = cache.lookup(key, "School", sensitive)
    assert isinstance(miss, Miss)
    assert cache.fill(key, value, ttl=60, tag_ids=tags, token=miss.token, entity="School",
                      sensitive=sensitive)


def test_a_repeated_hit_reuses_the_decoding_of_the_same_bytes(cache: RedisCache,
                                                              namespace: str) -> None:
    key = f"{namespace}:school:id:1"
    _fill(cache, key, ("row", 1))
    first = cache.lookup(key, "School", False)
    kept = cache.opened._by_key[key]
    second = cache.lookup(key, "School", False)
    assert first == second == Success(("row", 1))
    assert second.unwrap() is kept[1][0]  # a frozen value: the decoded object itself
    assert cache.stats().entities["School"].hits == 2


def test_changed_bytes_under_the_key_are_verified_again(cache: RedisCache, redis_url: str,
                                                       namespace: str) -> None:
    key = f"{namespace}:school:id:2"
    _fill(cache, key, "before")
    assert cache.lookup(key, "School", False) == Success("before")
    client = redis.Redis.from_url(redis_url)
    blob = client.get(key)
    assert isinstance(blob, bytes)
    forged = blob.replace(b"before", b"bafore")
    client.set(key, forged)
    assert isinstance(cache.lookup(key, "School", False), Miss)  # MAC fails: dropped, counted
    assert client.exists(key) == 0
    assert cache.stats().entities["School"].errors == 1


def test_an_invalidated_entry_is_never_answered_from_the_kept_decoding(
        cache: RedisCache, namespace: str) -> None:
    key = f"{namespace}:school:id:3"
    tag = cache.keys.tag_id("entity:School")
    _fill(cache, key, "old", tags=(tag,))
    assert cache.lookup(key, "School", False) == Success("old")
    assert cache.invalidate([tag]) == 1
    assert isinstance(cache.lookup(key, "School", False), Miss)
    _fill(cache, key, "new", tags=(tag,))
    assert cache.lookup(key, "School", False) == Success("new")


def test_mutable_values_are_private_to_each_caller(cache: RedisCache, namespace: str) -> None:
    key = f"{namespace}:school:list:4"
    _fill(cache, key, [{"n": 1}])
    one = cache.lookup(key, "School", False).unwrap()
    one.append("mine")
    one[0]["n"] = 99
    two = cache.lookup(key, "School", False).unwrap()
    three = cache.lookup(key, "School", False).unwrap()
    assert two == three == [{"n": 1}] and two is not three and two[0] is not three[0]


def test_sensitive_entries_are_never_kept(cache: RedisCache, namespace: str) -> None:
    key = f"{namespace}:student:id:{'b' * 64}"
    _fill(cache, key, "phi", sensitive=True)
    assert cache.lookup(key, "Student", True) == Success("phi")
    assert cache.lookup(key, "Student", True) == Success("phi")
    assert key not in cache.opened._by_key


def test_a_plain_entry_is_refused_where_a_sensitive_one_is_expected(
        cache: RedisCache, namespace: str) -> None:
    key = f"{namespace}:school:id:5"
    _fill(cache, key, "plain")
    assert cache.lookup(key, "School", False) == Success("plain")
    # the kept decoding never answers a sensitive read: the envelope check runs again
    assert isinstance(cache.lookup(key, "School", True), Miss)


def test_the_kept_decodings_are_bounded() -> None:
    opened = OpenedEntries(size=3)
    for i in range(5):
        opened.put(f"k{i}", b"blob%d" % i, (i, (), 0.0))
    assert list(opened._by_key) == ["k2", "k3", "k4"]
    assert opened.get("k0", b"blob0") is MISS and opened.get("k4", b"blob4") == (4, (), 0.0)
    opened.put("big", b"x" * (OPENED_MAX_BYTES + 1), ("v", (), 0.0))
    assert opened.get("big", b"x" * (OPENED_MAX_BYTES + 1)) is MISS
    opened.clear()
    assert opened.get("k4", b"blob4") is MISS


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=10_000))
def test_only_the_exact_bytes_reuse_a_decoding(noise: bytes, where: int) -> None:
    opened = OpenedEntries(size=8)
    blob = b"E\x01sealed-entry-bytes"
    opened.put("k", blob, ("value", ("t",), 1.0))
    i = where % (len(blob) + 1)
    other = blob[:i] + noise + blob[i:]
    assert opened.get("k", other) is MISS
    assert opened.get("k", blob) == ("value", ("t",), 1.0)
    assert opened.get("other-key", blob) is MISS
