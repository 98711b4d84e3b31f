"""The async twin of every domain module: ``from wxdata.aio.domains import students``.

Generated from the sync domain modules, which follow one convention (``docs/domains.md``): each
``Ops`` binding of ``wxdata.domains.<name>`` becomes an :class:`~wxdata.aio.crud.AsyncOps` under
the same name here, each module-level operation (``find_by_id = ops.find_by_id``) the async
operation, each finder its async twin (``finder.aio``: the same plan, driven on an
AsyncConnection; cached finders cached by :func:`wxdata.cache.aio.cached`), and ``ENTITY``, the
row and value types and constants of the module's ``__all__`` are the sync module's own.
``await students.find_by_id(conn, ctx, id)``; ``await students.search(conn, ctx, "love")``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import types
from typing import Any

import wxdata.domains as _sync_domains
from wxdata.aio.crud import AsyncOps
from wxdata.crud import Ops
from wxdata.domains.finders import is_finder


def _twin(name: str) -> types.ModuleType:
    source = importlib.import_module(f"{_sync_domains.__name__}.{name}")
    module = types.ModuleType(f"{__name__}.{name}", f"Async twin of :mod:`{source.__name__}`.")
    bound: dict[int, AsyncOps[Any]] = {}

    def twin_of(ops: Ops[Any]) -> AsyncOps[Any]:
        return bound.setdefault(id(ops), AsyncOps(ops.entity))

    for attr, value in vars(source).items():
        if isinstance(value, Ops):
            setattr(module, attr, twin_of(value))
        elif inspect.ismethod(value) and isinstance(value.__self__, Ops):
            setattr(module, attr, getattr(twin_of(value.__self__), value.__name__))
        elif is_finder(value):
            setattr(module, attr, value.aio)
    public = tuple(getattr(source, "__all__", ()))
    for attr in public:
        value = getattr(source, attr)
        if not hasattr(module, attr) and (isinstance(value, type) or not callable(value)):
            setattr(module, attr, value)  # ENTITY, row and value types, constants
    module.__all__ = [attr for attr in public if hasattr(module, attr)]  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return module


_MODULES = {info.name: _twin(info.name) for info in pkgutil.iter_modules(_sync_domains.__path__)}
globals().update(_MODULES)


def __getattr__(name: str) -> Any:
    """The twin module ``name`` (declared for type checkers; every twin is built at import)."""
    try:
        return _MODULES[name]
    except KeyError:
        raise AttributeError(name) from None
