"""Decoration-time check that a cached function's declared value type can be stored.

A function whose ``Success`` type the cache's serialiser (:mod:`wxdata.cache.serde`) cannot
encode would be computed on every call and never stored ("not cacheable" forever). ``cached``
refuses such a function when it is decorated, naming the type that cannot be stored.

What is accepted: scalars (str, int, bool, float, None, UUID, Decimal, date, datetime, time,
timedelta, bytes), tuples, lists, sets, frozensets and dicts of accepted types, unions and
``Literal``, ``Page``/``KeysetPage`` of accepted types, entity row types, and frozen attrs
classes registered with :func:`wxdata.cache.serde.register_value_type` (their fields are checked
too). What cannot be decided from a declaration (no annotation, ``Any``, ``object``, a type
variable) is accepted and checked on every fill, as before.
"""

from __future__ import annotations

import collections.abc as abc
import functools
import inspect
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from returns.result import Result

from wxdata.cache.serde import is_registered_type
from wxdata.query.paging import KeysetPage, Page


class UnserialisableReturn(TypeError):
    """A cached function declares a value type the cache cannot store (decoration refused)."""


_SCALARS = frozenset({str, int, bool, float, type(None), UUID, Decimal, date, datetime, time,
                      timedelta, bytes})
_CONTAINERS = frozenset({tuple, list, set, frozenset, dict, abc.Sequence, abc.Mapping,
                         abc.Set, abc.Collection, abc.Iterable, Page, KeysetPage})
_UNDECIDED = (typing.TypeVar, typing.ParamSpec)


def _name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


def _problem(tp: Any, seen: set[Any]) -> str | None:
    """The first type in ``tp`` the cache cannot store (its name), or None."""
    if tp is Any or tp is object or isinstance(tp, _UNDECIDED) or tp is None:
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return None
    if origin is typing.Union or origin is types.UnionType:
        return next((p for a in typing.get_args(tp) if (p := _problem(a, seen))), None)
    if origin is not None:
        if origin not in _CONTAINERS:
            return _name(origin)
        return next((p for a in typing.get_args(tp) if a is not Ellipsis
                     and (p := _problem(a, seen))), None)
    if not isinstance(tp, type):
        return repr(tp)
    if tp in _SCALARS or tp in _CONTAINERS:
        return None
    kind = is_registered_type(tp)
    if kind == "row":
        return None
    if kind == "value":
        if tp in seen:
            return None
        seen.add(tp)
        hints = typing.get_type_hints(tp)
        return next((p for h in hints.values() if (p := _problem(h, seen))), None)
    return _name(tp)


def check_return_type(fn: Callable[..., Any], label: str) -> None:
    """Refuse (:class:`UnserialisableReturn`) a function whose declared value type cannot be stored."""
    inner: Any = inspect.unwrap(fn)
    while isinstance(inner, functools.partial):
        inner = inspect.unwrap(inner.func)
    local: dict[str, Any] = {}
    code = getattr(inner, "__code__", None)
    for name, cell in zip(getattr(code, "co_freevars", ()), getattr(inner, "__closure__", None)
                          or (), strict=False):
        try:
            local[name] = cell.cell_contents
        except ValueError:
            continue
    try:
        hints = typing.get_type_hints(inner, localns=local)
    except Exception as exc:  # noqa: BLE001 - any failure to resolve is reported the same way
        raise UnserialisableReturn(
            f"cannot cache {label}: its annotations cannot be resolved ({type(exc).__name__})"
        ) from None
    declared = hints.get("return", Any)
    if typing.get_origin(declared) is Result or declared is Result:
        args = typing.get_args(declared)
        declared = args[0] if args else Any
    problem = _problem(declared, set())
    if problem is not None:
        raise UnserialisableReturn(
            f"cannot cache {label}: its value type {problem} cannot be stored by the cache "
            "(return rows, tuples, Page, or a frozen attrs class registered with "
            "register_value_type)")
