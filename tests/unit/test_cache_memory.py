"""Memory backend: true LRU, per-entry TTL, tags, guarded fills, immutability, thread safety."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from tests.cache_support import keys, memory
from wxdata.cache.backends import memory as memory_module
from wxdata.cache.backends.base import MISS, CacheManager, Miss, SingleFlight
from wxdata.cache.backends.memory import MemoryCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_is_a_cache_manager() -> None:
    assert isinstance(memory(), CacheManager)


def test_lru_evicts_least_recently_used_not_first_inserted() -> None:
    """The original's "LRU" was FIFO: re-reading an entry did not protect it."""
    c = memory(max_size=3)
    for k in ("a", "b", "c"):
        c.set(k, k.upper())
    assert c.get("a") == "A"  # a is now the most recently used
    c.set("d", "D")
    assert c.get("b") is MISS and c.get("a") == "A" and c.get("c") == "C" and c.get("d") == "D"
    assert c.stats().total.evictions == 1
    c.set("c", "C2")  # re-setting refreshes recency too
    c.set("e", "E")
    assert c.get("a") is MISS and c.get("c") == "C2"


def test_per_entry_ttl() -> None:
    clock = Clock()
    c = MemoryCache(keys(), max_size=10, timer=clock)
    c.set("short", 1, ttl=10)
    c.set("long", 2, ttl=100)
    clock.now += 50
    assert c.get("short") is MISS and c.get("long") == 2 and not c.exists("short")
    clock.now += 51
    assert c.get("long") is MISS
    assert len(c) == 0 and c.stats().total.expirations == 2


def test_tags_invalidate_only_their_entries() -> None:
    c = memory()
    a, b = c.keys.tag_id("entity:Student"), c.keys.tag_id("row:Student:1")
    c.set("k1", 1, tags=[a])
    c.set("k2", 2, tags=[a, b])
    c.set("k3", 3, tags=[b])
    c.set("k4", 4)
    assert c.invalidate([b]) == 2
    assert c.get("k1") == 1 and c.get("k2") is MISS and c.get("k3") is MISS and c.get("k4") == 4
    assert c.delete_tag("entity:Student") == 1 and c.get("k1") is MISS
    c.clear()
    assert c.get("k4") is MISS


def test_fill_refused_when_a_tag_was_invalidated_after_the_miss() -> None:
    """The reader read the old row before the commit; the writer invalidated; the fill must lose."""
    c = memory()
    tag = c.keys.tag_id("row:Student:1")
    miss = c.lookup("k", "Student", True)
    assert isinstance(miss, Miss)
    c.invalidate([tag])  # the writer's commit and invalidation happen here
    assert not c.fill("k", "old", ttl=60, tag_ids=[tag], token=miss.token, entity="Student",
                      sensitive=True)
    assert c.get("k") is MISS
    assert c.stats().entities["Student"].stale_fills_refused == 1
    other = c.keys.tag_id("row:Student:2")
    assert c.fill("k", "fine", ttl=60, tag_ids=[other], token=miss.token, entity="Student",
                  sensitive=True)  # an unrelated invalidation does not block it
    fresh = c.lookup("k2", "Student", True)
    assert c.fill("k2", "new", ttl=60, tag_ids=[tag], token=fresh.token, entity="Student",
                  sensitive=True)
    c.clear()
    assert not c.fill("k3", "x", ttl=60, tag_ids=[], token=fresh.token, entity="Student",
                      sensitive=True)


def test_forgotten_tag_records_raise_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_module, "MAX_TAG_RECORDS", 3)
    c = memory()
    token = c.lookup("k", "_", False).token
    c.invalidate([c.keys.tag_id("row:X:1")])
    for i in range(2, 6):  # pushes the record of row:X:1 out
        c.invalidate([c.keys.tag_id(f"row:X:{i}")])
    assert not c.fill("k", 1, ttl=60, tag_ids=[c.keys.tag_id("row:X:1")], token=token,
                      entity="_", sensitive=False)


def test_values_are_immutable_or_copied() -> None:
    c = memory()
    frozen = (1, "a", (2,))
    c.set("f", frozen)
    assert c.get("f") is frozen
    mutable: dict[str, Any] = {"list": [1, 2], "n": 1}
    c.set("m", mutable)
    mutable["list"].append(3)  # the caller keeps mutating its object
    got = c.get("m")
    assert got == {"list": [1, 2], "n": 1}
    got["list"].append(99)  # and a reader mutates what it got
    assert c.get("m") == {"list": [1, 2], "n": 1}
    assert c.get("m") is not c.get("m")


def test_delete_pattern_is_an_anchored_glob() -> None:
    """The original built an unescaped, unanchored regex: '.' matched anything, prefixes leaked."""
    c = memory()
    for k in ("white-cross:a.b:1", "white-cross:aXb:1", "x-white-cross:a.b:1", "white-cross:a.b"):
        c.set(k, 1)
    assert c.delete_pattern("white-cross:a.b:*") == 1
    assert c.exists("white-cross:aXb:1") and c.exists("x-white-cross:a.b:1")
    assert c.exists("white-cross:a.b")
    assert c.delete_pattern("a.b") == 0


def test_stats_hit_rate_is_a_fraction() -> None:
    c = memory()
    assert c.stats().hit_rate == 0.0
    c.set("k", 1, entity="School")
    c.lookup("k", "School", False)
    c.lookup("k", "School", False)
    c.lookup("nope", "School", False)
    s = c.stats()
    assert s.hits == 2 and s.misses == 1 and s.hit_rate == pytest.approx(2 / 3)
    assert s.entities["School"].keys == 1 and s.memory_bytes > 0
    assert 0.0 <= s.to_dict()["total"]["hit_rate"] <= 1.0


def test_mget_mset_exists_delete() -> None:
    c = memory()
    c.mset([("a", 1, None), ("b", 2, 5.0)])
    assert c.mget(["a", "b", "c"]) == [1, 2, MISS]
    assert c.exists("a") and c.delete("a") and not c.delete("a") and not c.exists("a")


def test_concurrent_use_keeps_the_cache_consistent() -> None:
    c = memory(max_size=50)
    tags = [c.keys.tag_id(f"t{i}") for i in range(5)]
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(2000):
                k = f"k{rnd.randrange(100)}"
                op = rnd.random()
                if op < 0.5:
                    got = c.lookup(k, "_", False)
                    if isinstance(got, Miss):
                        c.fill(k, (k,), ttl=60, tag_ids=[rnd.choice(tags)], token=got.token,
                               entity="_", sensitive=False)
                    else:
                        assert got.unwrap() == (k,)
                elif op < 0.6:
                    c.invalidate([rnd.choice(tags)])
                else:
                    c.delete(k)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(c) <= 50
    count, _, _, _ = c.facts()
    assert count == len(c)


def test_single_flight_join() -> None:
    flights = SingleFlight()
    flight, leader = flights.join("k")
    assert flight is not None and leader
    assert flights.join("k") == (None, False)  # the leader itself re-entering: no deadlock
    seen: list[Any] = []
    joined = threading.Event()

    def follower() -> None:
        f, lead = flights.join("k")
        joined.set()
        assert f is not None and not lead
        f.event.wait(5)
        seen.append((f.ok, f.value))

    t = threading.Thread(target=follower)
    t.start()
    assert joined.wait(5)
    flights.land("k", flight, "value", True)
    t.join()
    assert seen == [(True, "value")] and flights.in_flight() == 0


def test_unknown_types_are_not_cached_in_memory() -> None:
    class Bag:
        def __init__(self) -> None:
            self.items: list[int] = []

    c = memory()
    assert not c.set("k", Bag())
    assert not c.set("k2", [Bag()])
    assert c.get("k") is MISS and c.stats().total.not_cacheable == 2


def test_buffered_reads_keep_exact_lru_order() -> None:
    """Hits take no lock; their order is replayed (last read wins) before any eviction."""
    c = memory(max_size=3)
    for k in ("a", "b", "c"):
        c.set(k, k)
    for k in ("b", "a", "b"):
        assert c.get(k) == k
    c.set("d", "d")  # c was never read: it goes first
    assert not c.exists("c") and c.exists("a") and c.exists("b")
    c.set("e", "e")  # a was last read before b
    assert not c.exists("a") and c.exists("b")
    for _ in range(memory_module.DRAIN_AT * 3):  # the buffer drains by itself and counts hits
        c.lookup("b", "_", False)
    assert c.stats().total.hits == 3 + memory_module.DRAIN_AT * 3
