"""Building row instances from fetched tuples, for less than their constructor costs.

A row type is a frozen, slotted attrs class (:func:`wxdata.schema.spec.row`). Its generated
``__init__`` takes every column as an argument and stores each through ``object.__setattr__``, a
generic attribute lookup per column; calling it on a fetched tuple also means spreading (and, for
a statement listing its columns in stored order, reordering) the tuple into those arguments first.
Reads, writes and cache decodes build every row they return from such a tuple: twenty per page of
twenty.

:func:`row_maker` builds the same instance straight from the fetched tuple: a new object of the
row type's twin (a subclass adding no slot, whose attributes are set the plain way), each field
stored by a plain attribute assignment read from its position in the tuple, then the object's
class set to the row type. The interpreter turns each such assignment into a direct write of the
slot, where a frozen class's constructor goes through a generic attribute lookup per field. The
result is indistinguishable from the constructor's (the tests compare the two for every registered
entity and every order), for about a quarter of the constructor's cost on a twenty-column row.

It is used only where the constructor does nothing but store its arguments: every field
initialised from an argument, without converter or validator, no ``__attrs_pre_init__`` or
``__attrs_post_init__``, each field a slot, and no other slot set by ``__init__`` (checked on one
instance the constructor builds), and where the twin's instance, once made, is what the
constructor makes (checked once per class and order). Any other class, or one that refuses
subclasses, gets a maker that calls its constructor.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import attrs

R = TypeVar("R")

RowMaker = Callable[[Sequence[Any]], R]
"""Builds one row from a fetched tuple (or any sequence indexed by position)."""


def row_maker(row_type: type[R], positions: tuple[int, ...] | None = None) -> RowMaker[R]:
    """A function building a ``row_type`` from a sequence holding its ``i``-th field at
    ``positions[i]`` (``None``: the fields in their declared order, from position 0).

    Equivalent to ``row_type(*(values[p] for p in positions))``; faster where the class allows
    (module docstring). Made once per class and order (two threads asking first may each make
    one; either serves).
    """
    key = (row_type, positions)
    maker = _MAKERS.get(key)
    if maker is None:
        maker = _MAKERS[key] = _maker(row_type, positions)
    return maker


_MAKERS: dict[tuple[type[Any], tuple[int, ...] | None], RowMaker[Any]] = {}


def _maker(row_type: type[Any], positions: tuple[int, ...] | None) -> RowMaker[Any]:
    names = tuple(f.name for f in attrs.fields(row_type))
    where = tuple(range(len(names))) if positions is None else positions
    if len(where) != len(names):
        raise ValueError(f"{row_type.__name__}: {len(names)} fields, {len(where)} positions")
    direct = _compiled(row_type, names, where) if _stores_only(row_type, names) else None
    if direct is None:
        return lambda values: row_type(*[values[p] for p in where])
    return direct


def _stores_only(row_type: type, names: tuple[str, ...]) -> bool:
    """Whether the constructor does nothing but store its arguments in the fields' slots."""
    if any(hasattr(row_type, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__")):
        return False
    for field in attrs.fields(row_type):
        if not field.init or field.converter is not None or field.validator is not None:
            return False
    descriptors = [inspect.getattr_static(row_type, n, None) for n in names]
    if not all(type(d) is types.MemberDescriptorType for d in descriptors):
        return False
    # nothing but the fields is set by __init__ (a cached hash, say, would be a slot of its own)
    sample = row_type(*names)
    return {s for s in _slot_names(row_type)
            if _slot_value(row_type, sample, s) is not _UNSET} == set(names)


def _slot_names(row_type: type) -> set[str]:
    return {s for klass in row_type.__mro__ for s in getattr(klass, "__slots__", ())}


def _twin(row_type: type) -> type | None:
    """A subclass of ``row_type`` adding no slot, whose attributes are set the plain way
    (``object.__setattr__`` and ``object.__delattr__``, where a frozen class raises), or None if
    the class cannot be subclassed. One per class, whatever the orders its rows are made from."""
    if row_type in _TWINS:
        return _TWINS[row_type]
    try:
        twin: type | None = type(row_type.__name__, (row_type,), {
            "__slots__": (), "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__, "__module__": row_type.__module__,
            "__qualname__": f"{row_type.__qualname__}.<twin>"})
    except TypeError:
        twin = None
    return _TWINS.setdefault(row_type, twin)


_TWINS: dict[type, type | None] = {}


def _compiled(
    row_type: type[Any], names: tuple[str, ...], where: tuple[int, ...]
) -> RowMaker[Any] | None:
    """The maker as one generated function, or None if the class's instances cannot be built so.

    A new instance of the class's twin (:func:`_twin`), each field stored by a plain attribute
    assignment, then the instance's class set to the row type. The twin's layout is the row
    type's (it adds no slot), so the class can be changed; its attribute setting is the plain
    one, so the interpreter turns each assignment into a direct write of the slot (a frozen
    class's setting raises, and calling each slot's descriptor costs a call per field).

    Generated, as attrs generates the constructor itself, so that each call is straight-line code
    with no loop. Its source holds only positions and placeholder names (``_new``, ``_twin``,
    ``_cls`` and ``f<i>``), nothing taken from the class or its columns: each field's name is put
    in the compiled code's table of names in place of its placeholder. The result is checked on
    one instance against the constructor's before it is used."""
    twin = _twin(row_type)
    if twin is None:
        return None
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": row_type}
    lines = ["def make(values):", "    row = _new(_twin)"]
    lines += [f"    row.f{i} = values[{int(position)}]" for i, position in enumerate(where)]
    lines += ["    row.__class__ = _cls", "    return row"]
    code = compile("\n".join(lines), f"<wxdata row maker {row_type.__qualname__}>", "exec")
    exec(code, namespace)  # noqa: S102 - generated above from integers and fixed names only
    maker: RowMaker[Any] = namespace["make"]
    placeholders = {f"f{i}": name for i, name in enumerate(names)}
    function = cast(types.FunctionType, maker)
    function.__code__ = function.__code__.replace(
        co_names=tuple(placeholders.get(n, n) for n in function.__code__.co_names))
    function.__qualname__ = f"row_maker.<{row_type.__qualname__}>"
    if not _same_as_constructed(row_type, maker, names, where):
        return None
    return maker


def _same_as_constructed(
    row_type: type, maker: RowMaker[Any], names: tuple[str, ...], where: tuple[int, ...]
) -> bool:
    """Whether ``maker`` builds what the constructor builds, on the fields' names as values."""
    values: list[Any] = [None] * (max(where) + 1 if where else 0)
    for name, position in zip(names, where, strict=True):
        values[position] = name
    try:
        made = maker(values)
    except TypeError:  # a layout the class cannot be changed from
        return False
    built = row_type(*names)
    return type(made) is row_type and all(
        _slot_value(row_type, made, s) == _slot_value(row_type, built, s)
        for s in _slot_names(row_type))


def _slot_value(row_type: type, instance: object, slot: str) -> object:
    """What ``instance`` holds in ``slot``: :data:`_UNSET` if nothing, or if ``slot`` is not a
    slot of stored values (``__weakref__``, say)."""
    descriptor = inspect.getattr_static(row_type, slot, None)
    if type(descriptor) is not types.MemberDescriptorType:
        return _UNSET
    try:
        return descriptor.__get__(instance, row_type)
    except AttributeError:
        return _UNSET


_UNSET = object()


__all__ = ["RowMaker", "row_maker"]
