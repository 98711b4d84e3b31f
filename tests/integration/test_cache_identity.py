"""Cache keys cannot collide: a key covers everything that can change a cached function's result.

Two cached functions that differ only in a default, a keyword-only default, a closure value (also
nested in a function held by the closure), a ``functools.partial`` argument or an attribute of the
frozen instance a method is bound to never share an entry — on the memory, Redis and tiered
backends. What cannot be proven unchanged is refused at decoration time, and so is a declared
value type the cache cannot store.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from returns.result import Result, Success

from tests.cache_support import memory, prefix, redis_backend, tiered, wipe
from wxdata import ExecutionContext
from wxdata.cache import cached
from wxdata.cache.backends.base import CacheManager
from wxdata.cache.identity import UnprovableIdentity, function_identity
from wxdata.cache.keys import canonical
from wxdata.cache.returns import UnserialisableReturn
from wxdata.domains import students
from wxdata.errors import DataError
from wxdata.query.paging import Page
from wxdata.schema import STUDENTS, Student

Conn = psycopg.Connection[Any]
TAGS = {"tags": lambda *a, **k: ["entity:Probe"], "ttl": 60.0}
LOOSE = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(max_examples=6, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])

values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2), st.dates(),
    st.tuples(st.integers(), st.text(max_size=3)), st.frozensets(st.integers(), max_size=3),
)


# --- the shapes: factories of functions equal in everything but one value ----------------------


def by_default(v: Any) -> Callable[..., Result[Any, DataError]]:
    def read(conn: Conn, ctx: ExecutionContext, x: int, c: Any = v) -> Result[Any, DataError]:
        return Success((x, c))

    return read


def by_kwdefault(v: Any) -> Callable[..., Result[Any, DataError]]:
    def read(conn: Conn, ctx: ExecutionContext, x: int, *, c: Any = v) -> Result[Any, DataError]:
        return Success((x, c))

    return read


def by_closure(v: Any) -> Callable[..., Result[Any, DataError]]:
    def read(conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success((x, v))

    return read


def by_nested_closure(v: Any) -> Callable[..., Result[Any, DataError]]:
    held = (v,)

    def inner() -> Any:
        return held[0]

    def read(conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success((x, inner()))

    return read


def by_nested_default(v: Any) -> Callable[..., Result[Any, DataError]]:
    def inner(c: Any = v) -> Any:
        return c

    def read(conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success((x, inner()))

    return read


def _keyword_base(conn: Conn, ctx: ExecutionContext, x: int, c: Any = None) -> Result[Any, DataError]:
    return Success((x, c))


def _positional_base(c: Any, conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
    return Success((x, c))


def by_partial_keyword(v: Any) -> Callable[..., Result[Any, DataError]]:
    return functools.partial(_keyword_base, c=v)


def by_partial_positional(v: Any) -> Callable[..., Result[Any, DataError]]:
    return functools.partial(_positional_base, v)


@attrs.frozen
class Reader:
    """A frozen reader: what it is bound to is part of its methods' identity."""

    c: Any

    def read(self, conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success((x, self.c.c if isinstance(self.c, Reader) else self.c))


@dataclasses.dataclass(frozen=True)
class DataReader:
    c: Any

    def read(self, conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success((x, self.c))


def by_frozen_attrs(v: Any) -> Callable[..., Result[Any, DataError]]:
    return Reader(v).read


def by_nested_frozen_attrs(v: Any) -> Callable[..., Result[Any, DataError]]:
    return Reader(Reader(v)).read


def by_frozen_dataclass(v: Any) -> Callable[..., Result[Any, DataError]]:
    return DataReader(v).read


SHAPES = [by_default, by_kwdefault, by_closure, by_nested_closure, by_nested_default,
          by_partial_keyword, by_partial_positional, by_frozen_attrs, by_nested_frozen_attrs,
          by_frozen_dataclass]


def _never_collide(conn: Conn, ctx: ExecutionContext, cache: CacheManager,
                   shape: Callable[[Any], Any], a: Any, b: Any) -> None:
    assume(canonical(a) != canonical(b))
    first = cached(cache=cache, **TAGS)(shape(a))
    second = cached(cache=cache, **TAGS)(shape(b))
    assert canonical(first(conn, ctx, 1).unwrap()) == canonical((1, a))
    assert canonical(second(conn, ctx, 1).unwrap()) == canonical((1, b))  # not a's entry
    assert canonical(first(conn, ctx, 1).unwrap()) == canonical((1, a))   # a hit, a's own


@pytest.fixture
def mem() -> Iterator[CacheManager]:
    cache = memory(max_size=100_000)
    yield cache
    cache.close()


@pytest.fixture
def red(redis_url: str) -> Iterator[CacheManager]:
    ns = prefix()
    cache = redis_backend(redis_url, ns)
    yield cache
    cache.close()
    wipe(redis_url, ns)


@pytest.fixture
def tier(redis_url: str) -> Iterator[CacheManager]:
    ns = prefix()
    cache = tiered(redis_url, ns)
    yield cache
    cache.close()
    wipe(redis_url, ns)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.__name__)
@LOOSE
@given(a=values, b=values)
def test_functions_differing_in_one_value_never_share_a_key_memory(
        conn: Conn, ctx: ExecutionContext, mem: CacheManager, shape: Any, a: Any, b: Any) -> None:
    _never_collide(conn, ctx, mem, shape, a, b)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.__name__)
@FEW
@given(a=values, b=values)
def test_functions_differing_in_one_value_never_share_a_key_redis(
        conn: Conn, ctx: ExecutionContext, red: CacheManager, shape: Any, a: Any, b: Any) -> None:
    _never_collide(conn, ctx, red, shape, a, b)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.__name__)
@FEW
@given(a=values, b=values)
def test_functions_differing_in_one_value_never_share_a_key_tiered(
        conn: Conn, ctx: ExecutionContext, tier: CacheManager, shape: Any, a: Any, b: Any) -> None:
    _never_collide(conn, ctx, tier, shape, a, b)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.__name__)
@LOOSE
@given(a=values, b=values)
def test_identity_differs_exactly_when_the_value_differs(shape: Any, a: Any, b: Any) -> None:
    same = canonical(a) == canonical(b)
    assert (function_identity(shape(a), "f") == function_identity(shape(b), "f")) is same


# --- the original wrong-patient bug, on every backend, against real rows ------------------------


@pytest.mark.parametrize("backend", ["mem", "red", "tier"])
def test_default_column_choice_never_returns_the_other_functions_rows(
        request: pytest.FixtureRequest, conn: Conn, ctx: ExecutionContext, make_student: Any,
        school: dict[str, uuid.UUID], backend: str) -> None:
    """Measured on the old keys: the second function returned the first one's value."""
    cache = request.getfixturevalue(backend)
    reader = attrs.evolve(ctx, school_ids={school["school_id"]})
    s = make_student(first_name="Ada", last_name="Lovelace")
    first = cached(STUDENTS, cache=cache)(
        lambda conn, ctx, v, c="first_name": students.find_by_id(conn, ctx, v).map(
            lambda row: getattr(row, c)))
    last = cached(STUDENTS, cache=cache)(
        lambda conn, ctx, v, c="last_name": students.find_by_id(conn, ctx, v).map(
            lambda row: getattr(row, c)))
    assert first(conn, reader, s.id) == Success("Ada")
    assert last(conn, reader, s.id) == Success("Lovelace")
    assert first(conn, reader, s.id) == Success("Ada")
    assert last(conn, reader, s.id) == Success("Lovelace")


@attrs.frozen
class Repo:
    grade: str

    def list(self, conn: Conn, ctx: ExecutionContext, sid: uuid.UUID) -> Result[Page[Student],
                                                                                 DataError]:
        return students.find_many(conn, ctx, {"id": sid, "grade": self.grade})


@pytest.mark.parametrize("backend", ["mem", "red", "tier"])
def test_methods_of_different_frozen_instances_never_share_rows(
        request: pytest.FixtureRequest, conn: Conn, ctx: ExecutionContext, make_student: Any,
        school: dict[str, uuid.UUID], backend: str) -> None:
    cache = request.getfixturevalue(backend)
    reader = attrs.evolve(ctx, school_ids={school["school_id"]})
    s = make_student(grade="5")
    five = cached(STUDENTS, cache=cache)(Repo("5").list)
    six = cached(STUDENTS, cache=cache)(Repo("6").list)
    assert five(conn, reader, s.id).unwrap().total == 1
    assert six(conn, reader, s.id).unwrap().total == 0
    assert five(conn, reader, s.id).unwrap().total == 1


# --- arguments are bound to the signature, defaults applied -------------------------------------


def test_calls_are_keyed_on_bound_arguments_with_defaults(conn: Conn, ctx: ExecutionContext,
                                                          mem: CacheManager) -> None:
    calls: list[Any] = []

    @cached(cache=mem, unkeyed=("calls",), **TAGS)
    def page(conn: Conn, ctx: ExecutionContext, x: int, *, page: int = 1) -> Result[Any, DataError]:
        calls.append((x, page))
        return Success((x, page))

    assert page(conn, ctx, 3).unwrap() == (3, 1)
    assert page(conn, ctx, 3, page=1).unwrap() == (3, 1)  # the same call: a hit
    assert page(conn, ctx, x=3).unwrap() == (3, 1)
    assert page(conn, ctx, 3, page=2).unwrap() == (3, 2)
    assert calls == [(3, 1), (3, 2)]


# --- rebinding after decoration -----------------------------------------------------------------


def test_a_closure_cell_rebound_after_decoration_never_serves_the_old_value(
        conn: Conn, ctx: ExecutionContext, mem: CacheManager) -> None:
    column = "first_name"

    @cached(cache=mem, **TAGS)
    def read(conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success((x, column))

    assert read(conn, ctx, 1).unwrap() == (1, "first_name")
    column = "last_name"
    assert read(conn, ctx, 1).unwrap() == (1, "last_name")
    column = "first_name"
    assert read(conn, ctx, 1).unwrap() == (1, "first_name")
    before = mem.stats().entities["_"].hits
    assert read(conn, ctx, 1).unwrap() == (1, "first_name")
    assert mem.stats().entities["_"].hits == before + 1


def test_a_closure_cell_emptied_after_decoration_never_serves_the_old_value(
        conn: Conn, ctx: ExecutionContext, mem: CacheManager) -> None:
    column = "first_name"

    @cached(cache=mem, **TAGS)
    def read(conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success((x, column))  # noqa: F821 - the cell is emptied below, on purpose

    assert read(conn, ctx, 1).unwrap() == (1, "first_name")
    assert read(conn, ctx, 1).unwrap() == (1, "first_name")
    hits = mem.stats().entities["_"].hits
    del column  # the cell is emptied: the function itself can no longer answer
    with pytest.raises(NameError):
        read(conn, ctx, 1)
    assert mem.stats().entities["_"].hits == hits


def test_defaults_reassigned_after_decoration_are_keyed(conn: Conn, ctx: ExecutionContext,
                                                        mem: CacheManager) -> None:
    def read(conn: Conn, ctx: ExecutionContext, x: int, c: str = "a", *,
             d: str = "b") -> Result[Any, DataError]:
        return Success((x, c, d))

    wrapped = cached(cache=mem, **TAGS)(read)
    assert wrapped(conn, ctx, 1).unwrap() == (1, "a", "b")
    read.__defaults__ = ("z",)
    assert wrapped(conn, ctx, 1).unwrap() == (1, "z", "b")
    assert read.__kwdefaults__ is not None
    read.__kwdefaults__["d"] = "y"  # mutated in place
    assert wrapped(conn, ctx, 1).unwrap() == (1, "z", "y")


def test_a_cell_rebound_to_mutable_state_bypasses_the_cache(conn: Conn, ctx: ExecutionContext,
                                                            mem: CacheManager) -> None:
    held: Any = ("a",)

    @cached(cache=mem, **TAGS)
    def read(conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success((x, held[0]))

    assert read(conn, ctx, 1).unwrap() == (1, "a")
    held = ["b"]
    assert read(conn, ctx, 1).unwrap() == (1, "b")
    held[0] = "c"
    assert read(conn, ctx, 1).unwrap() == (1, "c")
    assert mem.stats().entities["_"].bypasses == 2


# --- refused at decoration time -----------------------------------------------------------------

PHI = "Lovelace-1815"
_GLOBAL_NAMES = [PHI]


def _reads_mutable_global(conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
    return Success(_GLOBAL_NAMES[0])


class Mutable:
    def __init__(self) -> None:
        self.c = PHI

    def read(self, conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success(self.c)


@attrs.define
class MutableAttrs:
    c: str = PHI


@dataclasses.dataclass
class MutableData:
    c: str = PHI


@attrs.frozen
class Shallow:
    """Frozen, but holding a list: not a value."""

    names: Any

    def read(self, conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success(self.names[0])


def _closure_over(value: Any) -> Callable[..., Result[Any, DataError]]:
    def read(conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success(repr(value))

    return read


def _nested_over_list() -> Callable[..., Result[Any, DataError]]:
    names = [PHI]

    def inner() -> str:
        return names[0]

    def read(conn: Conn, ctx: ExecutionContext, x: int) -> Result[Any, DataError]:
        return Success(inner())

    return read


def _default_list() -> Callable[..., Result[Any, DataError]]:
    def read(conn: Conn, ctx: ExecutionContext, x: int, c: Any = [PHI]) -> Result[Any, DataError]:  # noqa: B006
        return Success(c[0])

    return read


def _kwdefault_dict() -> Callable[..., Result[Any, DataError]]:
    def read(conn: Conn, ctx: ExecutionContext, x: int, *,
             c: Any = {"n": PHI}) -> Result[Any, DataError]:  # noqa: B006
        return Success(c["n"])

    return read


UNPROVABLE: list[tuple[str, Callable[[], Any], str]] = [
    ("closure over a list", lambda: _closure_over([PHI]), "'value'"),
    ("closure over a dict", lambda: _closure_over({"n": PHI}), "'value'"),
    ("closure over a set", lambda: _closure_over({PHI}), "'value'"),
    ("closure over a plain instance", lambda: _closure_over(Mutable()), "'value'"),
    ("closure over a non-frozen attrs instance", lambda: _closure_over(MutableAttrs()), "'value'"),
    ("closure over a non-frozen dataclass", lambda: _closure_over(MutableData()), "'value'"),
    ("closure over a lock", lambda: _closure_over(threading.Lock()), "'value'"),
    ("function in a closure over a list", _nested_over_list, "'names'"),
    ("default holding a list", _default_list, "default"),
    ("keyword default holding a dict", _kwdefault_dict, "default of 'c'"),
    ("bound method of a mutable instance", lambda: Mutable().read, "__self__"),
    ("frozen instance holding a list", lambda: Shallow([PHI]).read, "__self__.names"),
    ("partial with a list argument", lambda: functools.partial(_positional_base, [PHI]),
     "args[0]"),
    ("partial with a dict keyword", lambda: functools.partial(_keyword_base, c={"n": PHI}),
     "keywords['c']"),
    ("global bound to a list", lambda: _reads_mutable_global, "'_GLOBAL_NAMES'"),
]


@pytest.mark.parametrize(("label", "make", "part"), UNPROVABLE, ids=[u[0] for u in UNPROVABLE])
def test_unprovable_identity_is_refused_at_decoration_naming_the_part(
        mem: CacheManager, label: str, make: Callable[[], Any], part: str) -> None:
    with pytest.raises(UnprovableIdentity) as refused:
        cached(cache=mem, **TAGS)(make())
    message = str(refused.value)
    assert part in message and "Lovelace" not in message and PHI not in message


def test_unkeyed_must_name_something_the_function_reads(mem: CacheManager) -> None:
    with pytest.raises(ValueError, match="colls"):
        cached(cache=mem, unkeyed=("colls",), **TAGS)(by_closure(1))


class Color(enum.Enum):
    RED = "red"


@attrs.frozen
class Unregistered:
    total: int


class Plain:
    pass


def _returning(tp: Any) -> Callable[..., Any]:
    def read(conn: Conn, ctx: ExecutionContext, x: int) -> Result[tp, DataError]:  # type: ignore[valid-type]
        return Success(None)

    read.__annotations__["return"] = Result[tp, DataError]
    return read


UNSTORABLE = [Unregistered, Color, Plain, list[Unregistered], tuple[int, Color],
              Page[Unregistered], dict[str, Plain], Unregistered | None, threading.Thread]


@pytest.mark.parametrize("tp", UNSTORABLE, ids=repr)
def test_unstorable_declared_value_type_is_refused_at_decoration(mem: CacheManager,
                                                                 tp: Any) -> None:
    with pytest.raises(UnserialisableReturn, match="cannot be stored"):
        cached(cache=mem, **TAGS)(_returning(tp))


STORABLE = [int, str, Decimal, date, uuid.UUID, tuple[int, ...], list[Student], Page[Student],
            dict[str, int], frozenset[str], Student | None, Any]


@pytest.mark.parametrize("tp", STORABLE, ids=repr)
def test_storable_declared_value_types_are_accepted(mem: CacheManager, tp: Any) -> None:
    cached(cache=mem, **TAGS)(_returning(tp))
