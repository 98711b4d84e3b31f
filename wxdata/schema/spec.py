"""Entity specs: the one declaration of a table, its columns, their data class and their rules.

A domain declares its row as a frozen attrs class whose fields are built with :func:`col` (or the
standard-column helpers), then wraps it in an :class:`Entity` with :func:`entity`. Everything else
reads from here: the query compiler's allow-lists, validation, redaction in audit diffs, the cache's
TTL and encryption policy, and the drift test that compares ``sql/`` with these specs.
"""

from __future__ import annotations

import enum
import functools
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar, dataclass_transform
from uuid import UUID

import attrs

from wxdata.errors import FieldError

R = TypeVar("R")
T = TypeVar("T")


class DataClass(enum.StrEnum):
    """Sensitivity class of a column; drives audit, redaction, caching and encryption."""

    PHI = "PHI"  # protected health information (HIPAA) / health part of an education record
    FERPA = "FERPA"  # education-record data that is not health information (ids, grade, school)
    SECRET = "SECRET"  # noqa: S105 - credentials and tokens: never returned, cached, logged or audited in clear
    GENERAL = "GENERAL"  # operational or reference data


class CacheTTL(enum.IntEnum):
    """TTL classes in seconds."""

    SHORT = 300
    MEDIUM = 900
    LONG = 1800
    HOUR = 3600
    DAY = 86400


_META = "wxdata"


@attrs.frozen(slots=True)
class ColumnRules:
    """What a domain says about a column; types come from the row class annotations."""

    data_class: DataClass
    sql: str | None = None
    max_length: int | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    not_future: bool = False
    unique: bool = False
    writable: bool = True
    filterable: bool | None = None
    sortable: bool | None = None
    has_default: bool = False
    clinical_text: bool = False
    references: str | None = None
    managed: str | None = None  # id | created_at | updated_at | created_by | updated_by | ...


def col(
    data_class: DataClass,
    *,
    sql: str | None = None,
    max_length: int | None = None,
    choices: Iterable[str] | type[enum.Enum] | None = None,
    pattern: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    not_future: bool = False,
    unique: bool = False,
    writable: bool = True,
    filterable: bool | None = None,
    sortable: bool | None = None,
    has_default: bool = False,
    clinical_text: bool = False,
    references: str | None = None,
) -> Any:
    """Declare a column of a row class: its data class (required) and the rules its values keep."""
    if isinstance(choices, type) and issubclass(choices, enum.Enum):
        choice_tuple: tuple[str, ...] | None = tuple(str(m.value) for m in choices)
    else:
        choice_tuple = tuple(choices) if choices is not None else None
    rules = ColumnRules(
        data_class=data_class,
        sql=sql,
        max_length=max_length,
        choices=choice_tuple,
        pattern=pattern,
        minimum=minimum,
        maximum=maximum,
        not_future=not_future,
        unique=unique,
        writable=writable,
        filterable=filterable,
        sortable=sortable,
        has_default=has_default,
        clinical_text=clinical_text,
        references=references,
    )
    return attrs.field(metadata={_META: rules})


_MANAGED_SQL = {"created_by": "varchar(128)", "updated_by": "varchar(128)"}


def _managed(kind: str, *, sortable: bool = True) -> Any:
    return attrs.field(
        metadata={
            _META: ColumnRules(
                data_class=DataClass.GENERAL,
                sql=_MANAGED_SQL.get(kind),
                max_length=128 if kind in _MANAGED_SQL else None,
                writable=False,
                has_default=kind in ("id", "created_at", "updated_at", "version"),
                managed=kind,
                sortable=sortable,
            )
        }
    )


def pk() -> Any:
    """The ``id uuid primary key default gen_random_uuid()`` column."""
    return _managed("id")


def created_at() -> Any:
    """``created_at timestamptz not null default now()``, set by the library."""
    return _managed("created_at")


def updated_at() -> Any:
    """``updated_at timestamptz not null default now()``, set by the library on every update."""
    return _managed("updated_at")


def created_by() -> Any:
    """``created_by varchar(128)``: the context's user id at creation."""
    return _managed("created_by", sortable=False)


def updated_by() -> Any:
    """``updated_by varchar(128)``: the context's user id at the last update."""
    return _managed("updated_by", sortable=False)


def version() -> Any:
    """``version integer not null default 1``: optimistic-concurrency counter."""
    return _managed("version")


def deleted_at() -> Any:
    """``deleted_at timestamptz``: soft-delete marker (PHI rows are never hard-deleted)."""
    return _managed("deleted_at")


@dataclass_transform(
    frozen_default=True,
    field_specifiers=(
        attrs.field, col, pk, created_at, updated_at, created_by, updated_by, version, deleted_at,
    ),
)
def row(cls: type[T]) -> type[T]:
    """Make a class a frozen, slotted attrs row type whose fields are columns."""
    return attrs.frozen(cls, slots=True, weakref_slot=False)


class Kind(enum.StrEnum):
    """The Python-side kind of a column value, resolved from the row annotation."""

    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    UUID = "uuid"
    TEXT_ARRAY = "text[]"
    UUID_ARRAY = "uuid[]"
    JSON = "json"


_KIND_OF: dict[Any, Kind] = {
    str: Kind.TEXT,
    int: Kind.INT,
    float: Kind.FLOAT,
    bool: Kind.BOOL,
    Decimal: Kind.DECIMAL,
    date: Kind.DATE,
    datetime: Kind.DATETIME,
    UUID: Kind.UUID,
}

_DEFAULT_SQL: dict[Kind, str] = {
    Kind.TEXT: "text",
    Kind.INT: "integer",
    Kind.FLOAT: "double precision",
    Kind.BOOL: "boolean",
    Kind.DECIMAL: "numeric",
    Kind.DATE: "date",
    Kind.DATETIME: "timestamp with time zone",
    Kind.UUID: "uuid",
    Kind.TEXT_ARRAY: "text[]",
    Kind.UUID_ARRAY: "uuid[]",
    Kind.JSON: "jsonb",
}

_SQL_ALIASES = (
    (re.compile(r"^varchar\((\d+)\)$"), r"character varying(\1)"),
    (re.compile(r"^varchar$"), "character varying"),
    (re.compile(r"^timestamptz$"), "timestamp with time zone"),
    (re.compile(r"^timestamp$"), "timestamp without time zone"),
    (re.compile(r"^int$|^int4$"), "integer"),
    (re.compile(r"^int8$"), "bigint"),
    (re.compile(r"^bool$"), "boolean"),
    (re.compile(r"^float8$|^double$"), "double precision"),
    (re.compile(r"^decimal\((\d+),\s*(\d+)\)$"), r"numeric(\1,\2)"),
    (re.compile(r"^numeric\((\d+),\s*(\d+)\)$"), r"numeric(\1,\2)"),
)


def canonical_sql_type(sql: str) -> str:
    """Spell a type as PostgreSQL's ``format_type`` does (``varchar(9)`` -> ``character varying(9)``)."""
    text = sql.strip().lower()
    for rx, repl in _SQL_ALIASES:
        if rx.match(text):
            return rx.sub(repl, text)
    return text


def _kind_of(annotation: Any) -> tuple[Kind, bool]:
    """Map a resolved annotation to (kind, nullable)."""
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"unsupported union annotation {annotation!r}")
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if annotation in _KIND_OF:
        return _KIND_OF[annotation], nullable
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        if item is str:
            return Kind.TEXT_ARRAY, nullable
        if item is UUID:
            return Kind.UUID_ARRAY, nullable
        return Kind.JSON, nullable
    if origin is dict or annotation is dict or annotation is Any:
        return Kind.JSON, nullable
    raise TypeError(f"unsupported column annotation {annotation!r}")


#: Integer widths of PostgreSQL's integer types.
INT_RANGES: dict[str, tuple[int, int]] = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_VARCHAR = re.compile(r"^character varying\((\d+)\)$")
_NUMERIC_TYPE = re.compile(r"^numeric\((\d+),(\d+)\)$")
#: Unconstrained ``numeric``: at most 131072 digits before the point and 16383 after.
NUMERIC_UNBOUNDED = (131_072, 16_383)


@attrs.frozen(slots=True)
class TypeLimits:
    """The value range a column's SQL type can hold, derived once from its declared type.

    ``int_range`` for smallint/integer/bigint, ``digits`` as (integer digits, scale) for numeric,
    ``max_chars`` for varchar(n) (or the declared ``max_length``, whichever is smaller).
    """

    int_range: tuple[int, int] | None = None
    digits: tuple[int, int] | None = None
    max_chars: int | None = None


def type_limits(kind: Kind, sql_type: str, max_length: int | None) -> TypeLimits:
    """The range of values a column of this kind and SQL type holds without loss."""
    base = sql_type.removesuffix("[]")
    if kind is Kind.INT:
        return TypeLimits(int_range=INT_RANGES.get(base, INT_RANGES["bigint"]))
    if kind is Kind.DECIMAL:
        match = _NUMERIC_TYPE.match(base)
        if match is None:
            return TypeLimits(digits=NUMERIC_UNBOUNDED)
        precision, scale = int(match.group(1)), int(match.group(2))
        return TypeLimits(digits=(precision - scale, scale))
    if kind in (Kind.TEXT, Kind.TEXT_ARRAY):
        match = _VARCHAR.match(base)
        declared = int(match.group(1)) if match else None
        sizes = [n for n in (declared, max_length) if n is not None]
        return TypeLimits(max_chars=min(sizes) if sizes else None)
    return TypeLimits()


@attrs.frozen(slots=True)
class Column:
    """A column as everything else sees it: name, kind, SQL type, nullability, class and rules."""

    name: str
    kind: Kind
    sql_type: str
    nullable: bool
    rules: ColumnRules
    secret_field: bool = False

    @functools.cached_property
    def data_class(self) -> DataClass:
        """The column's sensitivity class."""
        return self.rules.data_class

    @functools.cached_property
    def writable(self) -> bool:
        """Whether callers may set it on create/update."""
        return self.rules.writable and self.rules.managed is None

    @functools.cached_property
    def required(self) -> bool:
        """Whether create must supply it."""
        return self.writable and not self.nullable and not self.rules.has_default

    @functools.cached_property
    def limits(self) -> TypeLimits:
        """The range of values its SQL type holds (integer width, numeric digits, varchar length)."""
        return type_limits(self.kind, self.sql_type, self.rules.max_length)

    @functools.cached_property
    def filterable(self) -> bool:
        """Whether it may appear in a filter (secrets never; JSON and clinical text by opt-in)."""
        if self.data_class is DataClass.SECRET:
            return False
        if self.rules.filterable is not None:
            return self.rules.filterable
        return self.kind is not Kind.JSON and not self.rules.clinical_text

    @functools.cached_property
    def sortable(self) -> bool:
        """Whether it may appear in an ORDER BY (scalars only)."""
        if self.data_class is DataClass.SECRET:
            return False
        if self.rules.sortable is not None:
            return self.rules.sortable
        scalar = self.kind not in (Kind.JSON, Kind.TEXT_ARRAY, Kind.UUID_ARRAY)
        return scalar and not self.rules.clinical_text


def secret(
    name: str, *, sql: str = "text", nullable: bool = True, max_length: int | None = None,
    unique: bool = False,
) -> Column:
    """A write-only secret column (password hash, token): never selected, cached or audited."""
    rules = ColumnRules(data_class=DataClass.SECRET, sql=sql, max_length=max_length, unique=unique)
    return Column(
        name=name,
        kind=Kind.TEXT,
        sql_type=canonical_sql_type(sql),
        nullable=nullable,
        rules=rules,
        secret_field=True,
    )


Validator = Callable[[Mapping[str, Any]], Iterable[FieldError]]
V = TypeVar("V", bound=Validator)


def reads(*fields: str) -> Callable[[V], V]:
    """Declare the columns a cross-field validator reads; updates touching none of them skip it."""

    def mark(fn: V) -> V:
        fn.wx_reads = frozenset(fields)  # type: ignore[attr-defined]
        return fn

    return mark


def validator_reads(validator: Validator) -> frozenset[str] | None:
    """The columns a validator declared it reads (None: unknown, always run)."""
    declared = getattr(validator, "wx_reads", None)
    return declared if isinstance(declared, frozenset) else None


@attrs.frozen(slots=True, eq=False)
class Entity(Generic[R]):
    """A table and everything wxdata knows about it; build with :func:`entity`."""

    name: str
    table: str
    row_type: type[R]
    columns: tuple[Column, ...]
    secrets: tuple[Column, ...]
    soft_delete: bool
    versioned: bool
    subject: str | None
    school: str | None
    validators: tuple[Validator, ...]
    cache_ttl: int
    by_name: Mapping[str, Column]
    pk: str = "id"
    unique_together: tuple[tuple[str, ...], ...] = ()

    @functools.cached_property
    def is_phi(self) -> bool:
        """True when any column holds PHI: reads are audited and cache values encrypted
        (computed once: the spec is frozen)."""
        return any(c.data_class is DataClass.PHI for c in self.columns)

    @functools.cached_property
    def audit_reads(self) -> bool:
        """True when reads disclose PHI or education records and must be audited (computed
        once: the spec is frozen)."""
        return any(c.data_class in (DataClass.PHI, DataClass.FERPA) for c in self.columns)

    @functools.cached_property
    def column_names(self) -> tuple[str, ...]:
        """Readable column names in row order (secrets excluded)."""
        return tuple(c.name for c in self.columns)

    @functools.cached_property
    def stored_names(self) -> tuple[str, ...]:
        """:attr:`column_names` in the order the table stores them: the row class's own columns,
        then those it inherits (every table is created with its own columns first and the base
        columns last). A read listing its columns in this order gets the stored tuple as it is,
        where any other order has PostgreSQL build a projection on every execution."""
        inherited = {f.name for base in self.row_type.__mro__[1:] if attrs.has(base)
                     for f in attrs.fields(base)}
        names = self.column_names
        return (tuple(n for n in names if n not in inherited)
                + tuple(n for n in names if n in inherited))

    def column(self, name: str) -> Column | None:
        """The column of that name, secrets included, or None."""
        return self.by_name.get(name)

    def managed(self, kind: str) -> str | None:
        """Name of the column managing ``kind`` (created_at, version, deleted_at...), if any."""
        for c in self.columns:
            if c.rules.managed == kind:
                return c.name
        return None

    def __repr__(self) -> str:
        return f"Entity({self.name!r}, table={self.table!r})"


_REGISTRY: dict[str, Entity[Any]] = {}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: The names of the parameters a statement binds besides the columns' values: wxdata's own
#: (``_id``, ``_uid``, ``_version``, ``_limit``, ``_k0``...), the audit record's (``a_user_id``...)
#: and a filter's values (``p0``, ``p1``...). No column may be named so.
_PARAMETER_NAME = re.compile(r"^(?:_|a_|p[0-9]+$)")


def entity(
    row_type: type[R],
    *,
    table: str,
    name: str | None = None,
    subject: str | None = None,
    school: str | None = None,
    secrets: Iterable[Column] = (),
    validators: Iterable[Validator] = (),
    cache_ttl: int | None = None,
    unique_together: Iterable[Iterable[str]] = (),
) -> Entity[R]:
    """Build and register the spec of a table from its row class; checks the declaration.

    ``unique_together`` names multi-column unique keys (single columns use ``col(unique=True)``).
    """
    attrs.resolve_types(row_type)  # type: ignore[type-var]
    columns: list[Column] = []
    for f in attrs.fields(row_type):  # type: ignore[arg-type]
        rules = f.metadata.get(_META)
        if not isinstance(rules, ColumnRules):
            raise TypeError(f"{row_type.__name__}.{f.name} is not declared with col()")
        kind, nullable = _kind_of(f.type)
        sql = canonical_sql_type(rules.sql) if rules.sql else _DEFAULT_SQL[kind]
        if rules.max_length is not None and rules.sql is None and kind is Kind.TEXT:
            sql = f"character varying({rules.max_length})"
        columns.append(Column(f.name, kind, sql, nullable, rules))
    secret_cols = tuple(secrets)
    by_name: dict[str, Column] = {}
    for c in (*columns, *secret_cols):
        if not _IDENT.match(c.name):
            raise ValueError(f"bad column identifier {c.name!r}")
        if _PARAMETER_NAME.match(c.name):
            raise ValueError(
                f"{table}: column {c.name!r} is named as wxdata's own statement parameters are"
                " (a name starting with '_' or 'a_', or p followed by digits): a write binds each"
                " value under its column's name")
        if c.name in by_name:
            raise ValueError(f"duplicate column {c.name!r}")
        by_name[c.name] = c
    if not _IDENT.match(table):
        raise ValueError(f"bad table identifier {table!r}")
    if "id" not in by_name or by_name["id"].kind is not Kind.UUID:
        raise ValueError(f"{table}: an 'id uuid' primary key is required")
    for ref in (subject, school):
        if ref is not None and ref not in by_name:
            raise ValueError(f"{table}: unknown column {ref!r}")
    keys = tuple(tuple(key) for key in unique_together)
    for key in keys:
        if len(key) < 2 or any(c not in by_name for c in key):
            raise ValueError(f"{table}: bad unique_together key {key!r}")
    soft = any(c.rules.managed == "deleted_at" for c in columns)
    phi = any(c.data_class is DataClass.PHI for c in columns)
    if phi and not soft:
        raise ValueError(f"{table}: PHI tables must soft-delete (declare deleted_at())")
    ttl = cache_ttl if cache_ttl is not None else int(CacheTTL.MEDIUM)
    spec: Entity[R] = Entity(
        name=name or row_type.__name__,
        table=table,
        row_type=row_type,
        columns=tuple(columns),
        secrets=secret_cols,
        soft_delete=soft,
        versioned=any(c.rules.managed == "version" for c in columns),
        subject=subject,
        school=school,
        validators=tuple(validators),
        cache_ttl=ttl,
        by_name=types.MappingProxyType(by_name),
        unique_together=keys,
    )
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing.table != table:
        raise ValueError(f"entity name {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def registered() -> tuple[Entity[Any], ...]:
    """Every entity declared so far (import :mod:`wxdata.domains` to load them all)."""
    return tuple(_REGISTRY.values())


def registered_count() -> int:
    """How many entities are declared so far (a memo of :func:`registered` is stale when this
    changes)."""
    return len(_REGISTRY)


def lookup(name: str) -> Entity[Any] | None:
    """The registered entity of that name or table, if any."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for e in _REGISTRY.values():
        if e.table == name:
            return e
    return None
