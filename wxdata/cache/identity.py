"""What a cached function computes, as a digest: its code and every value that can change a result.

Two functions share cache keys only when their identities are equal, so the identity covers
everything a result can depend on besides the call's arguments:

* the function's module, qualname and code (bytecode, names, constants, nested code objects);
* its positional defaults (``__defaults__``) and keyword-only defaults (``__kwdefaults__``);
* its closure cells, **by value**: plain data (str, int, UUID, Decimal, dates...), tuples and
  frozensets of them, enum members, entities, frozen attrs and frozen dataclass instances (field
  by field, recursively), classes and modules (by name), and functions held in cells, which
  contribute their own full identity (code, defaults, closure) recursively;
* ``functools.partial`` objects: the function, the positional arguments and the keywords;
* bound methods: the instance bound to (by value: it must be frozen) and the function.

Anything whose value could change after decoration without changing the function — a list, a
dict, a set, a non-frozen instance, a bound method of such an instance, or a global name bound to
a mutable container — cannot be proven to leave results unchanged, and is refused with
:class:`UnprovableIdentity`, which names the offending part (a variable, attribute or global name)
and its type, never its value.

Module globals: a module-level function's identity is its module, qualname and code; the globals
it reads are taken to be the module's constants (functions, classes, entities, compiled SQL) —
except globals bound to a mutable container, which are refused as above.

Closure cells, defaults and partial keywords can be rebound after decoration (``nonlocal``,
``fn.__defaults__ = ...``). An :class:`Identity` therefore keeps *pins*: the objects its digest was
computed from; :meth:`Identity.holds` checks them by identity before each call, and the caller
recomputes the identity when one moved.
"""

from __future__ import annotations

import dataclasses
import dis
import enum
import functools
import hashlib
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs

from wxdata.cache.keys import UncacheableArgument, canonical
from wxdata.schema.spec import Entity

try:  # attrs marks frozen classes with this __setattr__
    from attr._make import _frozen_setattrs

    _FROZEN_SETATTR: Any = _frozen_setattrs
except ImportError:  # pragma: no cover - a future attrs without it: only dataclasses/plain data
    _FROZEN_SETATTR = None


class UnprovableIdentity(TypeError):
    """A function to cache could return different results for equal arguments (decoration refused).

    The message names the function, the offending part (closure variable, default, attribute,
    global) and its type; never a value.
    """

    def __init__(self, function: str, part: str, reason: str) -> None:
        self.function = function
        self.part = part
        self.reason = reason
        super().__init__(
            f"cannot cache {function}: {part} {reason}; the cache key cannot prove it unchanged "
            "(make it immutable — a tuple, frozenset or frozen attrs instance — or pass it as an "
            "argument)")


_EMPTY = object()
_SCALARS = frozenset({str, int, bool, type(None), float, UUID, Decimal, date, datetime, time,
                      timedelta, bytes})
_MUTABLE_GLOBALS = (list, dict, set, bytearray, deque)
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


def _is_frozen_attrs(t: type) -> bool:
    return attrs.has(t) and _FROZEN_SETATTR is not None and t.__setattr__ is _FROZEN_SETATTR


def _is_frozen_dataclass(t: type) -> bool:
    params = getattr(t, "__dataclass_params__", None)
    return dataclasses.is_dataclass(t) and params is not None and bool(params.frozen)


def _read(obj: Any, attr: str) -> Any:
    try:
        return getattr(obj, attr)
    except ValueError:  # an empty closure cell
        return _EMPTY


@attrs.frozen(slots=True)
class Identity:
    """A function's identity digest, and the pins it was computed from."""

    digest: str
    #: (holder, attribute, object read) — or (dict, None, items snapshot) for in-place mutation
    pins: tuple[tuple[Any, str | None, Any], ...]

    def holds(self) -> bool:
        """Whether every pinned attribute still holds the very object the digest was built from.

        The per-call path of a cached function: one loop, plain attribute reads (an emptied
        closure cell raises ValueError and no longer holds its object)."""
        for holder, attr, expected in self.pins:
            if attr is None:
                if len(holder) != len(expected):
                    return False
                for k, v in expected:
                    if holder.get(k, _EMPTY) is not v:
                        return False
                continue
            try:  # _read, inlined: this runs on every call of a cached function
                got = getattr(holder, attr)
            except ValueError:
                got = _EMPTY
            if got is not expected:
                return False
        return True


class _Walker:
    """One identity computation: the hash, the pins, and the functions already on the path."""

    def __init__(self, top: str, unkeyed: frozenset[str]) -> None:
        self.top = top
        self.unkeyed = unkeyed
        self.skipped: set[str] = set()
        self.h = hashlib.sha256()
        self.pins: list[tuple[Any, str | None, Any]] = []
        self.seen: dict[int, int] = {}

    def emit(self, text: str) -> None:
        self.h.update(text.encode())
        self.h.update(b"\x1e")

    def refuse(self, path: str, reason: str) -> UnprovableIdentity:
        return UnprovableIdentity(self.top, path, reason)

    def pin(self, holder: Any, attr: str) -> Any:
        value = _read(holder, attr)
        self.pins.append((holder, attr, value))
        return value

    # --- values ----------------------------------------------------------------------------

    def value(self, v: Any, path: str) -> None:
        t = type(v)
        if t in _SCALARS:
            self.emit(canonical(v))
        elif t is tuple:
            self.emit(f"t{len(v)}[")
            for i, x in enumerate(v):
                self.value(x, f"{path}[{i}]")
            self.emit("]")
        elif t is frozenset:
            try:
                self.emit(canonical(v))
            except UncacheableArgument:
                raise self.refuse(path, "is a frozenset of values with no canonical form") from None
        elif isinstance(v, Entity | enum.Enum):
            self.emit(canonical(v))
        elif isinstance(v, types.FunctionType):
            self.function(v, path)
        elif isinstance(v, functools.partial):
            self.partial(v, path)
        elif isinstance(v, types.MethodType):
            self.emit("bound(")
            self.value(v.__self__, f"{path}.__self__")
            self.value(v.__func__, f"{path}.__func__")
            self.emit(")")
        elif isinstance(v, types.BuiltinFunctionType | types.BuiltinMethodType):
            owner = v.__self__
            if owner is not None and not isinstance(owner, types.ModuleType):
                self.value(owner, f"{path}.__self__")
            self.emit(f"B:{getattr(v, '__module__', None)}.{v.__qualname__}")
        elif isinstance(v, type):
            self.emit(f"C:{v.__module__}.{v.__qualname__}")
        elif isinstance(v, types.ModuleType):
            self.emit(f"M:{v.__name__}")
        elif _is_frozen_attrs(t):
            self.emit(f"a:{t.__module__}.{t.__qualname__}(")
            for f in attrs.fields(t):
                self.emit(f.name)
                self.value(getattr(v, f.name), f"{path}.{f.name}")
            self.emit(")")
        elif _is_frozen_dataclass(t):
            self.emit(f"dc:{t.__module__}.{t.__qualname__}(")
            for f in dataclasses.fields(v):
                self.emit(f.name)
                self.value(getattr(v, f.name), f"{path}.{f.name}")
            self.emit(")")
        elif isinstance(v, list | dict | set | bytearray | deque):
            raise self.refuse(path, f"is a mutable {_type_name(v)}")
        else:
            raise self.refuse(path, f"is a {_type_name(v)}, not a frozen value")

    # --- callables -------------------------------------------------------------------------

    def partial(self, p: functools.partial[Any], path: str) -> None:
        self.emit("partial(")
        self.value(p.func, f"{path}.func")
        self.value(p.args, f"{path}.args")
        self.pins.append((p.keywords, None, tuple(p.keywords.items())))
        for k in sorted(p.keywords):
            self.emit(k)
            self.value(p.keywords[k], f"{path}.keywords[{k!r}]")
        self.emit(")")

    def function(self, fn: types.FunctionType, path: str) -> None:
        marker = self.seen.get(id(fn))
        if marker is not None:  # recursion through a closure: refer to the earlier occurrence
            self.emit(f"ref:{marker}")
            return
        self.seen[id(fn)] = len(self.seen)
        self.emit(f"fn:{fn.__module__}.{fn.__qualname__}")
        code = self.pin(fn, "__code__")
        _code_digest(code, self.h)
        self._globals(fn, code, path)
        defaults = self.pin(fn, "__defaults__")
        if defaults:
            self.value(defaults, f"{path} default")
        kwdefaults = self.pin(fn, "__kwdefaults__")
        if kwdefaults:
            self.pins.append((kwdefaults, None, tuple(kwdefaults.items())))
            for k in sorted(kwdefaults):
                self.emit(f"kw:{k}")
                self.value(kwdefaults[k], f"{path} default of {k!r}")
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
            self.emit(f"cell:{name}")
            if name in self.unkeyed:  # declared by the caller not to change any result
                self.skipped.add(name)
                self.emit("<unkeyed>")
                continue
            value = self.pin(cell, "cell_contents")
            if value is _EMPTY:
                self.emit("<empty>")
            else:
                self.value(value, f"closure variable {name!r} of {fn.__qualname__}")
        self.emit("/fn")

    def _globals(self, fn: types.FunctionType, code: types.CodeType, path: str) -> None:
        scope = fn.__globals__
        for name in _global_names(code):
            if name in self.unkeyed:
                self.skipped.add(name)
                continue
            found = scope.get(name, _EMPTY)
            if isinstance(found, _MUTABLE_GLOBALS):
                raise self.refuse(f"global {name!r} read by {fn.__qualname__}",
                                  f"is a mutable {_type_name(found)}")


def _global_names(code: types.CodeType) -> Iterator[str]:
    """Names a code object (and the code nested in it) loads as globals."""
    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_OPS and isinstance(ins.argval, str):
            yield ins.argval
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def _code_digest(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update(f"{code.co_argcount}:{code.co_posonlyargcount}:{code.co_kwonlyargcount}:"
             f"{code.co_flags}".encode())
    h.update("\x1f".join((*code.co_names, *code.co_varnames, *code.co_freevars,
                          *code.co_cellvars)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(const, h)
        else:
            try:
                h.update(canonical(const).encode())
            except UncacheableArgument:
                h.update(f"{type(const).__qualname__}:{const!r}".encode())
        h.update(b"\x1e")


def identity_of(fn: Callable[..., Any], name: str, unkeyed: Iterable[str] = ()) -> Identity:
    """The identity of ``fn`` (see the module docstring); raises :class:`UnprovableIdentity`.

    ``unkeyed``: names of closure variables or globals the caller declares cannot change any
    result (a call counter, a test's synchronisation event, a logger); they are left out of the
    identity. Each must name a closure variable or global the function reads (a ``ValueError``
    otherwise, so a typo cannot silently exempt nothing).
    """
    exempt = frozenset(unkeyed)
    walker = _Walker(name, exempt)
    walker.emit(name)
    walker.emit(",".join(sorted(exempt)))
    walker.value(fn, "the function")
    unused = exempt - walker.skipped
    if unused:
        raise ValueError(f"cannot cache {name}: unkeyed names no closure variable or global it "
                         f"reads: {', '.join(sorted(unused))}")
    return Identity(walker.h.hexdigest(), tuple(walker.pins))


def function_identity(fn: Callable[..., Any], name: str, unkeyed: Iterable[str] = ()) -> str:
    """Full SHA-256 of what a cached function computes (:func:`identity_of`'s digest)."""
    return identity_of(fn, name, unkeyed).digest
