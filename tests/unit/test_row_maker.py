"""Rows built from fetched tuples are the rows their constructor builds.

Every row a read, a write or a cache decode returns is built by :func:`row_maker` from the tuple
PostgreSQL sent, with each field read from its position. For every registered entity and any
order of the fetched columns, the row is the constructor's own: equal, of the same type, with the
same representation and hash, every slot the same, still frozen, and usable by ``attrs.evolve``
and ``attrs.asdict``. A class whose constructor does more than store its arguments (a validator, a
converter, a post-init hook, a cached hash) is built by its constructor, whatever that does.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wxdata.schema._rows import row_maker
from wxdata.schema.spec import Entity, registered

ENTITIES = sorted(registered(), key=lambda e: e.name)


def _slots(row: object) -> dict[str, Any]:
    """Every slot of ``row``'s class and its value (``unset`` where the slot holds nothing)."""
    out: dict[str, Any] = {}
    for klass in type(row).__mro__:
        for name in getattr(klass, "__slots__", ()):
            descriptor = inspect.getattr_static(klass, name)
            if type(descriptor) is types.MemberDescriptorType:
                try:
                    out[name] = descriptor.__get__(row, type(row))
                except AttributeError:
                    out[name] = "unset"
    return out


@st.composite
def _fetched(draw: st.DrawFn) -> tuple[Entity[Any], tuple[Any, ...], tuple[int, ...], list[Any]]:
    """An entity, a fetched tuple (leading extra values, then the columns in a random order),
    each field's position in it, and the field values in declared order."""
    entity = draw(st.sampled_from(ENTITIES))
    names = [f.name for f in attrs.fields(entity.row_type)]
    order = draw(st.permutations(names))
    lead = draw(st.integers(min_value=0, max_value=3))
    values = {n: draw(st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                st.tuples(st.integers()))) for n in names}
    fetched = (*(f"lead{i}" for i in range(lead)), *(values[n] for n in order))
    positions = tuple(lead + order.index(n) for n in names)
    return entity, fetched, positions, [values[n] for n in names]


@given(_fetched())
def test_a_made_row_is_the_constructors_row_for_any_entity_and_order(
    case: tuple[Entity[Any], tuple[Any, ...], tuple[int, ...], list[Any]],
) -> None:
    entity, fetched, positions, in_order = case
    made = row_maker(entity.row_type, positions)(fetched)
    built = entity.row_type(*in_order)
    assert type(made) is type(built)
    assert made == built
    assert repr(made) == repr(built)
    assert _slots(made) == _slots(built)
    assert hash(made) == hash(built)
    assert attrs.asdict(made, recurse=False) == attrs.asdict(built, recurse=False)
    first = attrs.fields(entity.row_type)[0].name
    assert attrs.evolve(made, **{first: "changed"}) == attrs.evolve(built, **{first: "changed"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(made, first, "changed")


@given(st.sampled_from(ENTITIES), st.data())
def test_without_positions_the_fields_are_read_in_declared_order(
    entity: Entity[Any], data: st.DataObject,
) -> None:
    n = len(attrs.fields(entity.row_type))
    values = data.draw(st.lists(st.integers(), min_size=n, max_size=n))
    assert row_maker(entity.row_type)(values) == entity.row_type(*values)
    assert row_maker(entity.row_type) is row_maker(entity.row_type)  # made once


def test_every_registered_row_type_takes_the_direct_path() -> None:
    """Every entity's maker sets the slots itself (the constructor is not what it calls)."""
    for entity in ENTITIES:
        maker = row_maker(entity.row_type)
        assert maker.__code__.co_filename.startswith("<wxdata row maker"), entity.name


@attrs.frozen(slots=True)
class _Placeholders:
    """Fields named as the generated code's placeholders, globals and locals."""
    f1: Any
    f0: Any
    _cls: Any
    row: Any
    values: Any
    _new: Any
    _twin: Any


def test_fields_named_as_the_generated_codes_own_names_are_each_set_from_their_position(
) -> None:
    names = [f.name for f in attrs.fields(_Placeholders)]
    positions = tuple(reversed(range(len(names))))
    made = row_maker(_Placeholders, positions)(tuple(reversed(names)))
    assert row_maker(_Placeholders, positions).__code__.co_filename.startswith(
        "<wxdata row maker")
    assert type(made) is _Placeholders
    assert made == _Placeholders(*names)
    assert _slots(made) == _slots(_Placeholders(*names))


def test_a_made_row_is_never_of_another_class_than_the_row_type() -> None:
    """The instance is its row type's from the moment it is returned: it compares, hashes and
    refuses changes as one, and no other class is ever seen by the caller."""
    for entity in ENTITIES:
        n = len(attrs.fields(entity.row_type))
        made = row_maker(entity.row_type)(list(range(n)))
        assert type(made) is entity.row_type, entity.name
        assert made.__class__ is entity.row_type
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            delattr(made, attrs.fields(entity.row_type)[0].name)


def test_positions_must_name_every_field() -> None:
    row_type = ENTITIES[0].row_type
    with pytest.raises(ValueError, match="positions"):
        row_maker(row_type, (0,))


# --- classes whose constructor does more than store its arguments ---------------------------


def _grade(_: object, __: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError("grade must be text")


@attrs.frozen(slots=True)
class _Validated:
    id: int
    grade: str = attrs.field(validator=_grade)


@attrs.frozen(slots=True)
class _Converted:
    id: int
    grade: str = attrs.field(converter=str.upper)


@attrs.frozen(slots=True)
class _PostInit:
    id: int
    grade: str

    def __attrs_post_init__(self) -> None:
        if self.id < 0:
            raise ValueError("id must not be negative")


@attrs.frozen(slots=True, cache_hash=True)
class _CachedHash:
    id: int
    grade: str


@attrs.define(slots=False, frozen=True)
class _Unslotted:
    id: int
    grade: str


def test_a_validator_still_runs() -> None:
    make = row_maker(_Validated, (1, 0))
    assert make(("5", 7)) == _Validated(7, "5")
    with pytest.raises(TypeError, match="grade"):
        make((5, 7))


def test_a_converter_still_converts() -> None:
    assert row_maker(_Converted)((1, "k")).grade == "K"


def test_a_post_init_hook_still_runs() -> None:
    make = row_maker(_PostInit)
    assert make((1, "5")) == _PostInit(1, "5")
    with pytest.raises(ValueError, match="negative"):
        make((-1, "5"))


def test_a_cached_hash_is_still_set() -> None:
    made = row_maker(_CachedHash)((1, "5"))
    assert _slots(made) == _slots(_CachedHash(1, "5"))  # the hash's slot set, to nothing yet
    assert hash(made) == hash(_CachedHash(1, "5"))


def test_an_unslotted_class_is_built_by_its_constructor() -> None:
    made = row_maker(_Unslotted, (1, 0))(("5", 1))
    assert made == _Unslotted(1, "5")
    assert vars(made) == vars(_Unslotted(1, "5"))


class _NoSubclasses:
    """A base refusing subclasses of its subclasses: its rows are built by their constructor."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if _NoSubclasses not in cls.__bases__:
            raise TypeError("no subclasses")
        super().__init_subclass__(**kwargs)


@attrs.frozen(slots=True)
class _Sealed(_NoSubclasses):
    id: int
    grade: str


def test_a_class_that_cannot_be_subclassed_is_built_by_its_constructor() -> None:
    make = row_maker(_Sealed, (1, 0))
    assert not make.__code__.co_filename.startswith("<wxdata row maker")
    made = make(("5", 1))
    assert type(made) is _Sealed
    assert made == _Sealed(1, "5")


def test_a_row_class_has_one_twin_whatever_the_orders_its_rows_are_made_from() -> None:
    row_type = ENTITIES[0].row_type
    n = len(attrs.fields(row_type))
    row_maker(row_type, tuple(range(n)))
    row_maker(row_type, tuple(reversed(range(n))))
    row_maker(row_type, tuple(range(2, n + 2)))
    assert len(row_type.__subclasses__()) == 1
