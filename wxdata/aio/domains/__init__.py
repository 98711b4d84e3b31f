"""The async twin of every domain module: ``from wxdata.aio.domains import students``.

Generated from the one list of operations, the sync domain modules: each ``Ops`` binding of
``wxdata.domains.<name>`` becomes an :class:`~wxdata.aio.crud.AsyncOps` under the same name here,
and each name bound to one of its operations (``find_by_id = ops.find_by_id``) the async
operation. ``await students.find_by_id(conn, ctx, id)`` on an AsyncConnection.
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
        elif attr == "ENTITY":
            setattr(module, attr, value)
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
