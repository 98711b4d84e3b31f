"""Building row instances from fetched tuples, for less than their constructor costs.

A row type is a frozen, slotted attrs class (:func:`wxdata.schema.spec.row`). Its generated
``__init__`` takes every column as an argument and stores each through ``object.__setattr__``, a
generic attribute lookup per column; calling it on a fetched tuple also means spreading (and, for
a statement listing its columns in stored order, reordering) the tuple into those arguments first.
Reads, writes and cache decodes build every row they return from such a tuple: twenty per page of
twenty.

:func:`row_maker` builds the same instance straight from the fetched tuple: a new object, then each
slot's own descriptor setting its value, read from its position in the tuple. The result is
indistinguishable from the constructor's (the tests compare the two for every registered entity
and every order), for about four fifths of the constructor's cost on a twenty-column row, and two
thirds of it where the tuple would have been reordered first.

It is used only where the constructor does nothing but store its arguments: every field
initialised from an argument, without converter or validator, no ``__attrs_pre_init__`` or
``__attrs_post_init__``, each field a slot, and no other slot set by ``__init__`` (checked on one
instance the constructor builds). Any other class gets a maker that calls its constructor.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

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
    setters = _slot_setters(row_type, names)
    if setters is None:
        return lambda values: row_type(*[values[p] for p in where])
    return _compiled(row_type, setters, where)


def _slot_setters(row_type: type, names: tuple[str, ...]) -> tuple[Callable[..., None], ...] | None:
    """Each field's slot descriptor's setter, or None when the constructor does more than store
    its arguments in those slots."""
    if any(hasattr(row_type, hook) for hook in ("__attrs_pre_init__", "__attrs_post_init__")):
        return None
    for field in attrs.fields(row_type):
        if not field.init or field.converter is not None or field.validator is not None:
            return None
    descriptors = [inspect.getattr_static(row_type, n, None) for n in names]
    if not all(type(d) is types.MemberDescriptorType for d in descriptors):
        return None
    # nothing but the fields is set by __init__ (a cached hash, say, would be a slot of its own)
    sample = row_type(*names)
    slots = {s for klass in row_type.__mro__ for s in getattr(klass, "__slots__", ())}
    if {s for s in slots if _is_set(row_type, sample, s)} != set(names):
        return None
    return tuple(d.__set__ for d in descriptors)


def _is_set(row_type: type, instance: object, slot: str) -> bool:
    descriptor = inspect.getattr_static(row_type, slot, None)
    if type(descriptor) is not types.MemberDescriptorType:
        return False
    try:
        descriptor.__get__(instance, row_type)
    except AttributeError:
        return False
    return True


def _compiled(
    row_type: type[Any], setters: tuple[Callable[..., None], ...], where: tuple[int, ...]
) -> RowMaker[Any]:
    """The maker as one generated function: a new object, then one setter call per field.

    Generated, as attrs generates the constructor itself, so that each call is straight-line code
    with no loop; its source holds only positions and the names ``new``, ``cls`` and ``s<i>``,
    nothing taken from the class or its columns."""
    namespace: dict[str, Any] = {"new": object.__new__, "cls": row_type}
    lines = ["def make(values):", "    row = new(cls)"]
    for i, (setter, position) in enumerate(zip(setters, where, strict=True)):
        namespace[f"s{i}"] = setter
        lines.append(f"    s{i}(row, values[{int(position)}])")
    lines.append("    return row")
    code = compile("\n".join(lines), f"<wxdata row maker {row_type.__qualname__}>", "exec")
    exec(code, namespace)  # noqa: S102 - generated above from integers and fixed names only
    maker: RowMaker[Any] = namespace["make"]
    maker.__qualname__ = f"row_maker.<{row_type.__qualname__}>"
    return maker


__all__ = ["RowMaker", "row_maker"]
