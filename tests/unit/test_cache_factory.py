"""The process cache (and the async shell's) put in place for a block and put back exactly: another
cache, caching off, or no cache built yet (the next use builds one from the settings)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wxdata.cache import (
    CacheManager,
    KeyBuilder,
    MemoryCache,
    configure_cache,
    default_cache,
    reset_default,
    using_cache,
)
from wxdata.cache import aio as acache
from wxdata.cache.backends.aio import AsyncMemoryCache
from wxdata.cache.invalidation import subscribe, subscribed

pytestmark = pytest.mark.unit


def _cache() -> MemoryCache:
    return MemoryCache(KeyBuilder(b"k" * 32, prefix="wx-factory"), max_size=10)


@pytest.fixture(autouse=True)
def _unbuilt() -> Iterator[None]:
    """Every test starts and ends with no process cache built, in either shell."""
    reset_default(close_previous=False)
    acache.reset_async_cache()
    yield
    reset_default(close_previous=False)
    acache.reset_async_cache()


def _given(state: str) -> CacheManager | None:
    if state == "cache":
        mine = _cache()
        configure_cache(mine, close_previous=False)
        return mine
    if state == "off":
        configure_cache(None, close_previous=False)
    return None


@pytest.mark.parametrize("before", ["unbuilt", "off", "cache"])
def test_the_cache_before_the_block_is_back_after_it(before: str) -> None:
    previous = _given(before)
    mine = _cache()
    with using_cache(mine) as inside:
        assert inside is mine and default_cache() is mine and mine in subscribed()
    assert mine not in subscribed()
    after = default_cache()  # builds one from the settings when none was built before
    if before == "unbuilt":
        assert isinstance(after, MemoryCache) and after is not mine and after in subscribed()
    elif before == "off":
        assert after is None
    else:
        assert after is previous and previous in subscribed()


def test_caching_off_inside_the_block_only() -> None:
    previous = _given("cache")
    with using_cache(None):
        assert default_cache() is None and previous not in subscribed()
    assert default_cache() is previous and previous in subscribed()


def test_the_block_s_cache_is_closed_only_when_asked() -> None:
    closed: list[Any] = []

    class Closing(MemoryCache):
        def close(self) -> None:
            closed.append(self)

    kept, dropped = Closing(KeyBuilder(b"k" * 32), max_size=10), Closing(KeyBuilder(b"k" * 32),
                                                                       max_size=10)
    with using_cache(kept):
        pass
    with using_cache(dropped, close=True):
        pass
    assert closed == [dropped]


def test_the_block_s_cache_stops_receiving_writes_even_when_replaced_inside() -> None:
    previous = _given("cache")
    mine, other = _cache(), _cache()
    with using_cache(mine):
        configure_cache(other, close_previous=False)  # the block installs yet another cache
        subscribe(mine)  # and has its own cache invalidated again
    assert mine not in subscribed() and other not in subscribed()
    assert default_cache() is previous
    afaces = AsyncMemoryCache(_cache())
    with acache.using_async_cache(afaces):
        acache.configure_async_cache(AsyncMemoryCache(_cache()))
    assert afaces not in acache.async_faces()


def test_an_error_in_the_block_still_puts_the_cache_back() -> None:
    previous = _given("cache")
    with pytest.raises(RuntimeError), using_cache(_cache()):
        raise RuntimeError("inside")
    assert default_cache() is previous


@given(st.lists(st.sampled_from(["cache", "off"]), min_size=1, max_size=5),
       st.sampled_from(["unbuilt", "off", "cache"]))
def test_nested_blocks_each_put_back_what_they_found(levels: list[str], before: str) -> None:
    reset_default(close_previous=False)
    outer = _given(before)
    made: list[CacheManager] = []

    def nest(depth: int, enclosing: CacheManager | None) -> None:
        chosen = _cache() if levels[depth] == "cache" else None
        if chosen is not None:
            made.append(chosen)
        with using_cache(chosen):
            assert default_cache() is chosen
            if depth + 1 < len(levels):
                nest(depth + 1, chosen)
        if depth > 0:  # the enclosing block's cache (or caching off) again
            assert default_cache() is enclosing
            assert chosen is None or chosen is enclosing or chosen not in subscribed()

    nest(0, None)
    assert not [c for c in made if c in subscribed() and c is not outer]
    after = default_cache()  # builds one from the settings when none was built before
    if before == "unbuilt":
        assert isinstance(after, MemoryCache) and after not in made
    elif before == "off":
        assert after is None
    else:
        assert after is outer and outer in subscribed()
    reset_default(close_previous=False)


@pytest.mark.parametrize("before", ["unbuilt", "off", "cache"])
def test_the_async_cache_before_the_block_is_back_after_it(before: str) -> None:
    previous = AsyncMemoryCache(_cache()) if before == "cache" else None
    if before != "unbuilt":
        acache.configure_async_cache(previous)
    mine = AsyncMemoryCache(_cache())
    with acache.using_async_cache(mine) as inside:
        assert inside is mine and acache.default_async_cache() is mine
        assert mine in acache.async_faces()
    assert mine not in acache.async_faces()
    after = acache.default_async_cache()  # built from the settings when none was built before
    if before == "unbuilt":
        assert isinstance(after, AsyncMemoryCache) and after is not mine
    elif before == "off":
        assert after is None
    else:
        assert after is previous and previous in acache.async_faces()
