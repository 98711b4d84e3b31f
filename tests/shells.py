"""Run the behavioural suites through both shells: sync (``wxdata.crud``...) and async
(``wxdata.aio``...), with the test bodies unchanged.

A suite module calls :func:`parametrise` once: every test not marked ``sync_only`` then runs
twice, ``[sync]`` and ``[async]``. Under ``[async]`` the module's names (``crud``, ``students``,
``unit_of_work``, ``transactional``, ``audited``...) are replaced for the test by facades with the
same signatures: each call maps the test's sync connection to an ``AsyncConnection`` to the same
database (opened once per sync connection, same ``prepare_threshold``) and runs the async twin on
an event loop held by a background thread. A sync function handed to ``transactional``,
``run_in_scope`` or ``audited`` runs in a worker thread (``asyncio.to_thread``) while the async
twin awaits it, so its own calls go back to the loop; context variables travel with it.

Context variables behave as under the sync shell: the calls one thread makes through the bridge
share that thread's context (a checkout or span a call left current is current for the next call
from the same thread), and a sync body run in a worker thread starts from the context of the task
awaiting it.

A replica ``Router`` opened by the test becomes an :class:`~wxdata.aio.replicas.AsyncRouter` on
the loop behind the same methods; the sync functions it is handed get a proxy of the pooled
``AsyncConnection`` (one proxy per connection, so identity holds as it does for the sync router).

A read decorated with ``cached`` (:func:`wxdata.cache.cached`) becomes the same body under
:func:`wxdata.cache.aio.cached`, on the async face of the sync backend the test built (its memory
tier, counters and bus are the sync backend's own; a Redis tier is reached with a ``redis.asyncio``
client on the URL the suite registered with :func:`redis_url_of`).

Statements a test sends itself on its sync connection (``conn.execute``) are not part of an async
unit of work: tests that need that are marked ``sync_only`` (they test the sync connection).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import threading
import types
import weakref
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import wxdata.aio as aio
import wxdata.aio.audit as aio_audit
import wxdata.aio.crud as aio_crud
import wxdata.cache as sync_cache
import wxdata.cache.aio as aio_cache
import wxdata.replicas as sync_replicas
from wxdata.aio import domains as aio_domains
from wxdata.audit import log as sync_log
from wxdata.cache.backends.aio import AsyncMemoryCache, AsyncRedisCache, AsyncTieredCache
from wxdata.cache.backends.clients import make_async_client
from wxdata.cache.backends.memory import MemoryCache
from wxdata.cache.backends.redis import RedisCache
from wxdata.cache.backends.tiered import TieredCache
from wxdata.crud import Ops

T = TypeVar("T")
SHELLS = ("sync", "async")


class Bridge:
    """An event loop in a daemon thread, and the async twin of each sync connection."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="wxdata-test-loop")
        self.thread.start()
        self.twins: dict[int, tuple[psycopg.Connection[Any], psycopg.AsyncConnection[Any]]] = {}
        self.caches: dict[int, tuple[Any, Any]] = {}  # sync backend -> its async face
        self.proxies: dict[int, tuple[Any, ConnProxy]] = {}  # pooled AsyncConnection -> proxy
        self.contexts: dict[int, contextvars.Context] = {}  # calling thread -> its context
        self.lock = threading.Lock()

    def context(self) -> contextvars.Context:
        """The context the calling thread's calls run in (a copy of its own at first use)."""
        ident = threading.get_ident()
        with self.lock:
            found = self.contexts.get(ident)
            if found is None:
                found = self.contexts[ident] = contextvars.copy_context()
            return found

    @contextlib.contextmanager
    def fresh_context(self) -> Iterator[None]:
        """Calls from this (worker) thread start from its current context, forgotten after."""
        ident = threading.get_ident()
        with self.lock:
            previous = self.contexts.get(ident)
            self.contexts[ident] = contextvars.copy_context()
        try:
            yield
        finally:
            with self.lock:
                if previous is None:
                    self.contexts.pop(ident, None)
                else:
                    self.contexts[ident] = previous

    def forget_contexts(self) -> None:
        """Drop every thread's context (the end of a test)."""
        with self.lock:
            self.contexts.clear()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop in the calling thread's context and wait for it (from any
        thread but the loop's)."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a blocking bridge call from the loop thread")
        context = self.context()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def settle(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                done.cancel()
            elif (error := task.exception()) is not None:
                done.set_exception(error)
            else:
                done.set_result(task.result())

        def start() -> None:
            try:
                task = self.loop.create_task(coro, context=context)
            except BaseException as exc:  # handed to the waiting thread
                done.set_exception(exc)
                return
            task.add_done_callback(settle)

        self.loop.call_soon_threadsafe(start)
        return done.result()

    def twin(self, conn: Any) -> Any:
        """The AsyncConnection standing for the sync connection ``conn`` (anything else as is)."""
        if isinstance(conn, ConnProxy):
            if conn.sync is None:
                return conn.native
            conn = conn.sync
        if not isinstance(conn, psycopg.Connection):
            return conn
        with self.lock:
            found = self.twins.get(id(conn))
            if found is not None and found[0] is conn and not found[1].closed:
                return found[1]
        info = conn.info
        url = make_conninfo(info.dsn, password=info.password) if info.password else info.dsn

        async def open_() -> psycopg.AsyncConnection[Any]:
            return await psycopg.AsyncConnection.connect(
                url, autocommit=conn.autocommit, prepare_threshold=conn.prepare_threshold)

        twin = self.call(open_())
        with self.lock:
            self.twins[id(conn)] = (conn, twin)
        return twin

    def proxy_of(self, aconn: Any) -> Any:
        """The proxy of the sync connection ``aconn`` is the twin of; for any other
        AsyncConnection (a router's pooled one), the one proxy standing for it."""
        with self.lock:
            for sync, twin in self.twins.values():
                if twin is aconn:
                    return ConnProxy(self, sync)
            if not isinstance(aconn, psycopg.AsyncConnection):
                raise LookupError("not an async connection")
            found = self.proxies.get(id(aconn))
            if found is None or found[0] is not aconn:
                found = self.proxies[id(aconn)] = (aconn, ConnProxy(self, None, native=aconn))
            return found[1]

    def close(self) -> None:
        """Close every twin connection and stop the loop."""
        async def close_all() -> None:
            for _, twin in self.twins.values():
                await twin.close()

        self.call(close_all())
        self.twins.clear()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class _Cursor:
    """What a test reads of an executed statement (rows fetched eagerly)."""

    def __init__(self, rows: list[Any] | None, rowcount: int, statusmessage: str | None,
                 description: Any = None) -> None:
        self._rows = list(rows or [])
        self.description = description
        self.rowcount = rowcount
        self.statusmessage = statusmessage

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class ConnProxy:
    """The test's ``conn`` under the async shell: its statements run on the async twin (so they
    are inside the twin's open unit of work, as the test expects); ``info`` is the twin's. A proxy
    of a pooled AsyncConnection (``native``) has no sync connection behind it."""

    def __init__(self, bridge: Bridge, conn: psycopg.Connection[Any] | None,
                 native: psycopg.AsyncConnection[Any] | None = None) -> None:
        self._bridge, self.sync, self.native = bridge, conn, native

    @property
    def twin(self) -> psycopg.AsyncConnection[Any]:
        return self._bridge.twin(self)  # type: ignore[no-any-return]

    @property
    def info(self) -> Any:
        return self.twin.info

    @property
    def prepare_threshold(self) -> int | None:
        return self.twin.prepare_threshold if self.sync is None else self.sync.prepare_threshold

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> _Cursor:
        twin = self.twin

        async def run() -> _Cursor:
            cur = await twin.execute(query, params, **kwargs)
            rows = await cur.fetchall() if cur.description is not None else None
            return _Cursor(rows, cur.rowcount, cur.statusmessage, cur.description)

        return self._bridge.call(run())


def _blocking(bridge: Bridge, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A sync function calling the async ``fn`` with its first argument mapped to the twin."""

    @functools.wraps(fn)
    def call(conn: Any, *args: Any, **kwargs: Any) -> Any:
        return bridge.call(fn(bridge.twin(conn), *args, **kwargs))

    call.__wx_async__ = fn  # type: ignore[attr-defined]  # what a router facade hands on
    return call


def _in_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An async stand-in for the sync ``fn(conn, ...)``: runs it in a worker thread, handing it
    the proxy of the test connection the twin stands for (its own statements then run in the
    twin's transaction)."""

    async def call(aconn: Any, *args: Any, **kwargs: Any) -> Any:
        b = bridge()

        def run(proxy: Any) -> Any:
            with b.fresh_context():
                return fn(proxy, *args, **kwargs)

        return await asyncio.to_thread(run, b.proxy_of(aconn))

    return call


def _stream(bridge: Bridge) -> Callable[..., Any]:
    def stream(conn: Any, ctx: Any, entity: Any, consume: Callable[[Iterator[Any]], Any],
               *args: Any, **kwargs: Any) -> Any:
        async def collect(rows: Any) -> Any:
            seen = [row async for row in rows]
            return consume(iter(seen))

        return bridge.call(aio_crud.stream(bridge.twin(conn), ctx, entity, collect, *args,
                                           **kwargs))

    return stream


class _Module:
    """A module facade: the async twin's functions where one exists, else the original's; a
    function of a connection with no twin refuses to run (the test belongs to the sync shell:
    mark it ``sync_only``), so no ``[async]`` run silently exercises the sync API."""

    def __init__(self, bridge: Bridge, sync: Any, twin: Any) -> None:
        self._bridge, self._sync, self._twin = bridge, sync, twin

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._twin, name, None)
        if name == "stream":
            owner = getattr(found, "__self__", None)
            if isinstance(owner, aio_crud.AsyncOps):
                return _OpsFacade(self._bridge, owner).stream
            return _stream(self._bridge)
        if isinstance(found, aio_crud.AsyncOps):
            return _OpsFacade(self._bridge, found)
        if found is not None and callable(found) and asyncio.iscoroutinefunction(found):
            return _blocking(self._bridge, found)
        if found is not None and isinstance(getattr(found, "__self__", None), aio_crud.AsyncOps):
            return _blocking(self._bridge, found)
        original = getattr(self._sync, name)
        if _takes_conn(original):
            return _no_twin(f"{self._sync.__name__}.{name}")
        return original


def _takes_conn(value: Any) -> bool:
    """Whether ``value`` is a function whose first parameter is a connection."""
    if not inspect.isfunction(value):
        return False
    params = list(inspect.signature(value).parameters)
    return bool(params) and params[0] == "conn"


def _no_twin(name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{name} has no async twin: run this test on the sync shell")

    return refuse


class _OpsFacade:
    def __init__(self, bridge: Bridge, ops: aio_crud.AsyncOps[Any]) -> None:
        self._bridge, self._ops = bridge, ops

    def __getattr__(self, name: str) -> Any:
        if name == "entity":
            return self._ops.entity
        if name == "stream":
            entity = self._ops.entity
            streamer = _stream(self._bridge)
            return lambda conn, ctx, consume, *a, **k: streamer(conn, ctx, entity, consume, *a, **k)
        return _blocking(self._bridge, getattr(self._ops, name))


#: The async twin of each function the ``transactional`` facade decorated (an ``audited`` facade
#: directly above one wraps the twin itself, as the sync decorators compose).
_TX_TWINS: weakref.WeakKeyDictionary[Callable[..., Any], Callable[..., Any]] = (
    weakref.WeakKeyDictionary())


def _tx_facades(bridge: Bridge) -> dict[str, Any]:
    @contextlib.contextmanager
    def unit_of_work(conn: Any, ctx: Any, **options: Any) -> Iterator[Any]:
        manager = aio.unit_of_work(bridge.twin(conn), ctx, **options)
        scope = bridge.call(manager.__aenter__())
        try:
            yield scope
        except BaseException as exc:
            if not bridge.call(manager.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            bridge.call(manager.__aexit__(None, None, None))

    def transactional(*dargs: Any, **dkwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            twin = aio.transactional(*dargs, **dkwargs)(_in_thread(fn))

            @functools.wraps(fn)
            def wrapper(conn: Any, ctx: Any, *args: Any, **kwargs: Any) -> Any:
                return bridge.call(twin(bridge.twin(conn), ctx, *args, **kwargs))

            wrapper.__wx_tx__ = twin.__wx_tx__  # type: ignore[attr-defined]
            _TX_TWINS[wrapper] = twin
            return wrapper

        return decorate

    def run_in_scope(conn: Any, ctx: Any, body: Callable[[], Any], **options: Any) -> Any:
        sleep = options.pop("sleep", None)
        if sleep is not None:
            async def asleep(seconds: float) -> None:
                await asyncio.to_thread(sleep, seconds)
            options["sleep"] = asleep
        return bridge.call(aio.run_in_scope(bridge.twin(conn), ctx,
                                            lambda: asyncio.to_thread(body), **options))

    def audited(*dargs: Any, **dkwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            inner = _TX_TWINS.get(fn) or _in_thread(fn)
            twin = aio.audited(*dargs, **dkwargs)(
                functools.update_wrapper(inner, fn, assigned=("__module__", "__qualname__")))

            @functools.wraps(fn)
            def wrapper(conn: Any, ctx: Any, *args: Any, **kwargs: Any) -> Any:
                return bridge.call(twin(bridge.twin(conn), ctx, *args, **kwargs))

            return wrapper

        return decorate

    async def _current(aconn: Any) -> Any:
        return aio.current_scope(aconn)

    return {
        "unit_of_work": unit_of_work,
        "transactional": transactional,
        "run_in_scope": run_in_scope,
        "audited": audited,
        "current_scope": lambda conn: bridge.call(_current(bridge.twin(conn))),
        "in_scope": lambda conn: bridge.call(_current(bridge.twin(conn))) is not None,
        "after_commit": _blocking(bridge, aio.after_commit),
        "on_rollback": _blocking(bridge, _on_rollback),
    }


#: Where the Redis tier of each sync backend a suite built lives (the async face needs a client).
_REDIS_URLS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def redis_url_of(cache: Any, url: str) -> Any:
    """Record that ``cache`` (a Redis or tiered backend) talks to ``url``; returns ``cache``."""
    _REDIS_URLS[cache.redis if isinstance(cache, TieredCache) else cache] = url
    return cache


def _async_face(bridge: Bridge, cache: Any) -> Any:
    """The async backend wrapping the sync backend ``cache`` (one per backend and test)."""
    if cache is None or not isinstance(cache, MemoryCache | RedisCache | TieredCache):
        return cache
    with bridge.lock:
        found = bridge.caches.get(id(cache))
        if found is not None and found[0] is cache:
            return found[1]
    if isinstance(cache, MemoryCache):
        face: Any = AsyncMemoryCache(cache)
    else:
        redis = cache.redis if isinstance(cache, TieredCache) else cache
        url = _REDIS_URLS.get(redis)
        if url is None:
            raise LookupError("register the backend's Redis URL with redis_url_of()")
        client = make_async_client(url, connect_timeout=1.0, socket_timeout=1.0)
        tier = AsyncRedisCache(redis, client)
        face = AsyncTieredCache(cache, tier) if isinstance(cache, TieredCache) else tier
    with bridge.lock:
        bridge.caches[id(cache)] = (cache, face)
    return face


def _cached_facade(bridge: Bridge) -> Callable[..., Any]:
    def cached(*dargs: Any, cache: Any = None, **dkwargs: Any) -> Callable[[Any], Any]:
        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            twin = aio_cache.cached(*dargs, cache=_async_face(bridge, cache), **dkwargs)(
                functools.update_wrapper(_in_thread(fn), fn))

            @functools.wraps(fn)
            def wrapper(conn: Any, ctx: Any, *args: Any, **kwargs: Any) -> Any:
                return bridge.call(twin(bridge.twin(conn), ctx, *args, **kwargs))

            return wrapper

        return decorate

    return cached


def _as_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What the async router runs for the test's ``fn``: the async twin a facade stands for, else
    the sync ``fn`` in a worker thread on a proxy of the pooled connection."""
    twin = getattr(fn, "__wx_async__", None)
    return twin if twin is not None else _in_thread(fn)


class _RouterFacade:
    """The sync :class:`~wxdata.replicas.Router`'s methods over an AsyncRouter on the loop."""

    def __init__(self, bridge: Bridge, router: Any) -> None:
        self._bridge, self._router = bridge, router

    def read(self, ctx: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self._bridge.call(self._router.read(ctx, _as_async(fn), *args, **kwargs))

    def write(self, ctx: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self._bridge.call(self._router.write(ctx, _as_async(fn), *args, **kwargs))

    @contextlib.contextmanager
    def connection(self, ctx: Any, *, write: bool) -> Iterator[Any]:
        manager = self._router.connection(ctx, write=write)
        aconn = self._bridge.call(manager.__aenter__())
        try:
            yield self._bridge.proxy_of(aconn)
        except BaseException as exc:
            if not self._bridge.call(manager.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            self._bridge.call(manager.__aexit__(None, None, None))

    def note_commit(self, conn: Any, ctx: Any) -> None:
        self._bridge.call(self._router.note_commit(self._bridge.twin(conn), ctx))

    def close(self) -> None:
        self._bridge.call(self._router.close())

    def __enter__(self) -> _RouterFacade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._router, name)
        if asyncio.iscoroutinefunction(found):
            return lambda *a, **k: self._bridge.call(found(*a, **k))
        return found


class _RouterClassFacade:
    """``Router.open(...)`` under the async shell: an AsyncRouter behind the sync methods."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    def open(self, *args: Any, **kwargs: Any) -> _RouterFacade:
        from wxdata.aio.replicas import AsyncRouter

        return _RouterFacade(self._bridge, self._bridge.call(AsyncRouter.open(*args, **kwargs)))


async def _on_rollback(aconn: Any, hook: Callable[[], Any]) -> None:
    aio.on_rollback(aconn, hook)


def facades(bridge: Bridge, namespace: dict[str, Any]) -> dict[str, Any]:
    """Replacement values for the names of a test module's ``namespace`` under the async shell."""
    out: dict[str, Any] = {}
    tx = _tx_facades(bridge)
    for name, value in namespace.items():
        if name in tx:
            out[name] = tx[name]
        elif value is sync_cache.cached:
            out[name] = _cached_facade(bridge)
        elif value is sync_replicas.Router:
            out[name] = _RouterClassFacade(bridge)
        elif value is sync_replicas.is_replica:
            out[name] = lambda conn: sync_replicas.is_replica(bridge.twin(conn))
        elif isinstance(value, types.ModuleType):
            if value.__name__ == "wxdata.crud":
                out[name] = _Module(bridge, value, aio_crud)
            elif value.__name__.startswith("wxdata.domains."):
                twin = getattr(aio_domains, value.__name__.rsplit(".", 1)[1])
                out[name] = _Module(bridge, value, twin)
            elif value.__name__ == "wxdata.audit.log":
                out[name] = _Module(bridge, value, aio_audit)
        elif isinstance(value, Ops):
            out[name] = _OpsFacade(bridge, aio_crud.AsyncOps(value.entity))
        elif callable(value) and id(value) in _SYNC_LOG and _SYNC_LOG[id(value)][0] is value:
            out[name] = _blocking(bridge, getattr(aio_audit, _SYNC_LOG[id(value)][1]))
    return out


#: By identity (a module may hold unhashable callables, pytest marks for one).
_SYNC_LOG = {id(getattr(sync_log, name)): (getattr(sync_log, name), name)
             for name in aio_audit.__all__ if name != "audited" and hasattr(sync_log, name)}
_BRIDGE: list[Bridge] = []


def bridge() -> Bridge:
    """The process's bridge (started on first use, stopped at exit by the session fixture)."""
    if not _BRIDGE:
        _BRIDGE.append(Bridge())
    return _BRIDGE[0]


def parametrise(namespace: dict[str, Any]) -> None:
    """Make every test of a suite module run through both shells: ``parametrise(globals())``.

    Defines the module's autouse ``shell`` fixture and its ``pytest_generate_tests`` hook: tests
    marked ``sync_only`` get the ``[sync]`` run only.
    """

    @pytest.fixture(autouse=True)
    def shell(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
        if request.param != "async":
            yield "sync"
            return
        b = bridge()
        for name, value in facades(b, namespace).items():
            monkeypatch.setitem(namespace, name, value)
        if "conn" in request.fixturenames:  # filled before the test's own arguments
            request.node.funcargs["conn"] = ConnProxy(b, request.getfixturevalue("conn"))
        try:
            yield "async"
        finally:
            b.call(_close_twins(b))
            b.forget_contexts()

    def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
        sync_only = metafunc.definition.get_closest_marker("sync_only") is not None
        metafunc.parametrize("shell", ["sync"] if sync_only else list(SHELLS), indirect=True)

    namespace["shell"] = shell
    namespace["pytest_generate_tests"] = pytest_generate_tests


async def _close_twins(b: Bridge) -> None:
    for _, twin in list(b.twins.values()):
        await twin.close()
    b.twins.clear()
    b.proxies.clear()
    for _, face in list(b.caches.values()):  # the async clients; the suite closes its backends
        client = getattr(face, "client", None) or getattr(getattr(face, "redis", None), "client",
                                                           None)
        if client is not None:
            await client.aclose()
    b.caches.clear()
