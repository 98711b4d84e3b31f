"""One list of operations, one convention for every domain module, no drift between the shells.

* Drift: every operation of :data:`wxdata._operations.OPERATIONS` has, on both shells
  (``wxdata.crud``, ``wxdata.aio.crud``) and both bindings (``Ops``, ``AsyncOps``), the parameters
  (names, kinds, defaults, annotations) and answer of its plan in :mod:`wxdata.core.crud`; the
  list is exactly the plans there that take an entity.
* Convention: every module of ``wxdata.domains`` (walked, so a new one is checked too) is a
  single-entity module (``ENTITY``, ``ops``, every operation at module level, bound to ``ENTITY``)
  or a group module (one ``Ops`` per entity); everything else it exports is a finder runnable on
  both shells, a type or a constant; its twin in ``wxdata.aio.domains`` has all of it, async.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import wxdata.aio.crud as aio_crud
import wxdata.crud as crud
import wxdata.domains
from wxdata import _operations
from wxdata.aio import domains as aio_domains
from wxdata.aio.crud import AsyncOps
from wxdata.core import crud as plans
from wxdata.crud import Ops
from wxdata.domains.finders import is_finder
from wxdata.schema.spec import Entity

OPERATIONS = _operations.OPERATIONS
#: Parameters whose annotation is the shell's own (an iterator, or an async iterator).
SHELL_TYPED = {"consume"}


def _answer(annotation: Any) -> str:
    """A return annotation as text, with a plan's ``Plan[...]`` unwrapped."""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    match = re.fullmatch(r"Plan\[(.*)\]", text)
    return match.group(1) if match else text


def _shape(fn: Callable[..., Any], drop: tuple[str, ...]) -> tuple[Any, ...]:
    """(name, kind, default, annotation) of every parameter but ``drop``, and the answer."""
    signature = inspect.signature(fn)
    params = tuple(
        (p.name, p.kind, p.default, None if p.name in SHELL_TYPED else p.annotation)
        for p in signature.parameters.values() if p.name not in drop)
    return params, _answer(signature.return_annotation)


def _domain_modules() -> Iterator[types.ModuleType]:
    for info in pkgutil.iter_modules(wxdata.domains.__path__):
        if info.name != "finders":
            yield importlib.import_module(f"wxdata.domains.{info.name}")


MODULES = list(_domain_modules())


# --- drift ----------------------------------------------------------------------------------


def test_the_list_is_every_plan_that_takes_an_entity() -> None:
    public = {name for name in plans.__all__ if not name.startswith("_")
              and inspect.isfunction(getattr(plans, name))}
    taking_entity = {name for name in public
                     if list(inspect.signature(getattr(plans, name)).parameters)[2:3] == ["entity"]}
    assert set(OPERATIONS) == taking_entity
    assert public - taking_entity == set(_operations.UNBOUND)
    assert len(set(OPERATIONS)) == len(OPERATIONS)


@pytest.mark.parametrize("name", [*OPERATIONS, *_operations.UNBOUND])
def test_both_shells_offer_the_plan_as_is(name: str) -> None:
    plan = _shape(getattr(plans, name), ("conn",))
    for shell in (crud, aio_crud):
        assert name in shell.__all__, shell.__name__
        assert _shape(getattr(shell, name), ("conn",)) == plan, shell.__name__
    assert inspect.iscoroutinefunction(getattr(aio_crud, name))


@pytest.mark.parametrize("name", OPERATIONS)
def test_both_bindings_offer_the_plan_with_the_entity_bound(name: str) -> None:
    plan = _shape(getattr(plans, name), ("conn", "entity"))
    assert _shape(getattr(Ops, name), ("self", "conn")) == plan
    assert _shape(getattr(AsyncOps, name), ("self", "conn")) == plan
    assert inspect.iscoroutinefunction(getattr(AsyncOps, name))
    assert getattr(Ops, name).__doc__ and getattr(AsyncOps, name).__doc__


def test_the_bindings_offer_nothing_else() -> None:
    for binding in (Ops, AsyncOps):
        public = {n for n, v in vars(binding).items() if not n.startswith("_") and callable(v)}
        assert public == set(OPERATIONS), binding.__name__


def test_a_drifted_binding_is_caught() -> None:
    """The comparison sees a renamed keyword, a changed default and a dropped parameter."""

    def renamed(self: Any, conn: Any, ctx: Any, id: Any, *, deleted: bool = False) -> Any: ...
    def defaulted(self: Any, conn: Any, ctx: Any, id: Any, *, include_deleted: bool = True) -> Any: ...
    def dropped(self: Any, conn: Any, ctx: Any, id: Any) -> Any: ...

    plan = _shape(plans.find_by_id, ("conn", "entity"))
    for drifted in (renamed, defaulted, dropped):
        assert _shape(drifted, ("self", "conn")) != plan


# --- the convention -------------------------------------------------------------------------


def _bound_to(value: Any, entity: Entity[Any], name: str) -> bool:
    return (inspect.ismethod(value) and isinstance(value.__self__, Ops)
            and value.__self__.entity is entity and value.__func__ is getattr(Ops, name))


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_domain_module_keeps_the_convention(module: types.ModuleType) -> None:
    public = list(module.__all__)
    assert len(public) == len(set(public))
    assert module.__name__.rsplit(".", 1)[1] in wxdata.domains.__all__
    entity = getattr(module, "ENTITY", None)
    if entity is not None:  # a single-entity module
        assert isinstance(entity, Entity)
        assert isinstance(module.ops, Ops) and module.ops.entity is entity
        for name in ("ENTITY", "ops", *OPERATIONS):
            assert name in public, name
        for name in OPERATIONS:
            assert _bound_to(getattr(module, name), entity, name), name
        assert not [n for n in public if isinstance(getattr(module, n), Ops) and n != "ops"]
    else:  # a group module: one binding per entity, each entity once
        bindings = [getattr(module, n) for n in public if isinstance(getattr(module, n), Ops)]
        assert bindings
        assert len({id(b.entity) for b in bindings}) == len(bindings)
    for name in public:
        value = getattr(module, name)
        ok = (name in OPERATIONS or isinstance(value, Ops | Entity | type) or is_finder(value)
              or not callable(value))
        assert ok, f"{module.__name__}.{name} is a function that only one shell can run"


def _finders() -> list[tuple[str, Any]]:
    return [(f"{m.__name__.rsplit('.', 1)[1]}.{n}", getattr(m, n)) for m in MODULES
            for n in m.__all__ if is_finder(getattr(m, n))]


FINDERS = _finders()


def test_there_are_finders_to_check() -> None:
    assert len(FINDERS) >= 40


@pytest.mark.parametrize(("name", "found"), FINDERS, ids=[n for n, _ in FINDERS])
def test_every_finder_has_its_plan_signature_on_both_shells(name: str, found: Any) -> None:
    plan = _shape(found.plan, ("conn",))
    assert _shape(found, ("conn",)) == _shape(found.aio, ("conn",))
    assert [p[:3] for p in _shape(found, ("conn",))[0]] == [p[:3] for p in plan[0]]
    assert inspect.iscoroutinefunction(found.aio)
    assert found.__doc__ and found.aio.__doc__ == found.__doc__
    cached = getattr(found, "__wxdata_cached__", False)
    assert getattr(found.aio, "__wxdata_cached__", False) is cached, "cached on one shell only"
    if cached:
        sync_plan, async_plan = found.__wxdata_plan__, found.aio.__wxdata_plan__
        assert (sync_plan.entity, sync_plan.label, sync_plan.watched, sync_plan.fixed_ttl) == (
            async_plan.entity, async_plan.label, async_plan.watched, async_plan.fixed_ttl)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_domain_module_has_its_async_twin(module: types.ModuleType) -> None:
    twin = getattr(aio_domains, module.__name__.rsplit(".", 1)[1])
    assert list(twin.__all__) == list(module.__all__)
    for name in module.__all__:
        value, other = getattr(module, name), getattr(twin, name)
        if isinstance(value, Ops):
            assert isinstance(other, AsyncOps) and other.entity is value.entity
        elif name in OPERATIONS:
            assert inspect.ismethod(other) and isinstance(other.__self__, AsyncOps)
            assert other.__self__.entity is module.ENTITY
            assert other.__func__ is getattr(AsyncOps, name)
        elif is_finder(value):
            assert other is value.aio
        else:
            assert other is value
