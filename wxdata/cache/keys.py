"""Cache keys and tags: a full hash of the canonical call, readable shapes, no identifier of PHI in clear.

Every key ends in a full SHA-256 (64 hex digits, never truncated) of the *canonical call*: the
function's name and identity (code, defaults, closure values: :mod:`wxdata.cache.identity`), the
entity's schema fingerprint, the caller's row-security partition, and every argument bound to the
function's signature with defaults applied (ids, filters, sort, page, limit, projection, flags) in a typed
canonical text — ``1``, ``1.0``, ``True``, ``"1"``, ``Decimal("1")`` and ``UUID(...)`` never
encode alike, mappings keep their insertion order (equal dicts in other orders are other calls),
sets and frozensets are sorted (their iteration order is not part of their value), dates and
datetimes keep their type and offset. Two calls share a key only if every argument is equal
with the same type (the original's ``{id: a}`` / ``{id: b}`` collision cannot happen: values
are hashed, not replaced).

Shapes, for non-sensitive entities (reference data; the original's formats, hash widened)::

    white-cross:<entity>:<id>:<sha256>                  by id
    white-cross:<entity>:<id>:summary:<kind>:<sha256>   summary of one row
    white-cross:<entity>:list:<sha256>                  lists and pages
    white-cross:search:<sha256>                         searches

For sensitive entities (any PHI or FERPA column) the key holds no identifier at all:
``white-cross:<entity>:<kind>:<hmac>`` where ``<hmac>`` is HMAC-SHA256 of the canonical call under
a key derived from ``CACHE_KEY`` (or a per-process random key for the memory-only backend), so
neither ids nor searched names can be recovered or confirmed by hashing guesses.

Tags name what a cached value depends on; writes invalidate them (:mod:`wxdata.cache.invalidation`):
``entity:<Name>`` (any write to the entity), ``row:<Name>:<id>`` (a write to that row) and
``student:<id>`` (a write to any row whose subject is that student). Backends only ever see a tag's
keyed hash (:meth:`KeyBuilder.tag_id`), never the tag text.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import attrs

from wxdata.context import ExecutionContext
from wxdata.schema.spec import Entity

PREFIX = "white-cross"
ShapeKind = Literal["id", "list", "summary", "search"]
_SEGMENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: a namespace: safe characters, optionally one non-empty ``{hash tag}`` pinning it to one slot
_PREFIX = re.compile(r"[A-Za-z0-9._-]*(?:\{[A-Za-z0-9._-]+\})?[A-Za-z0-9._-]*")


class UncacheableArgument(TypeError):
    """An argument of a cached call has a type with no canonical encoding (a programming error)."""


# --- canonical text ---------------------------------------------------------------------------


def _str(v: str) -> str:
    return f"s{len(v)}:{v}"


def _bytes(v: bytes) -> str:
    return f"y{len(v)}:{v.hex()}"


def _float(v: float) -> str:
    return "f:" + float.hex(v)


def _datetime(v: datetime) -> str:
    zone = getattr(v.tzinfo, "key", None)
    return f"t:{v.isoformat()}@{zone or ''}"


def _seq(tag: str, items: Any) -> str:
    return tag + "[" + ",".join(canonical(x) for x in items) + "]"


def _set(tag: str, items: Any) -> str:
    return tag + "{" + ",".join(sorted(canonical(x) for x in items)) + "}"


def _mapping(v: Mapping[Any, Any]) -> str:
    # in insertion order: equal dicts in other orders iterate otherwise (a sort spec), so they
    # are other calls; a set's iteration order is not part of its value (sorted above)
    return "m[" + ",".join(f"{canonical(k)}={canonical(x)}" for k, x in v.items()) + "]"


_EXACT: dict[type, Callable[[Any], str]] = {
    str: _str,
    int: lambda v: f"i:{v}",
    bool: lambda v: "b:1" if v else "b:0",
    type(None): lambda v: "n",
    float: _float,
    UUID: lambda v: f"u:{v.bytes.hex()}",
    Decimal: lambda v: f"d:{v}",
    date: lambda v: f"D:{v.isoformat()}",
    datetime: _datetime,
    time: lambda v: f"T:{v.isoformat()}@{getattr(v.tzinfo, 'key', '') or ''}",
    timedelta: lambda v: f"dt:{v.days}:{v.seconds}:{v.microseconds}",
    bytes: _bytes,
    tuple: lambda v: _seq("t", v),
    list: lambda v: _seq("l", v),
    frozenset: lambda v: _set("F", v),
    set: lambda v: _set("S", v),
    dict: _mapping,
}


def canonical(value: Any) -> str:
    """The typed canonical text of a value; equal texts only for equal values of equal types."""
    t = type(value)
    encode = _EXACT.get(t)
    if encode is not None:
        return encode(value)
    if isinstance(value, Entity):
        return f"E:{value.name}"
    if isinstance(value, enum.Enum):
        return f"e:{t.__module__}.{t.__qualname__}:{canonical(value.value)}"
    if attrs.has(t):
        fields = ",".join(f"{f.name}={canonical(getattr(value, f.name))}" for f in attrs.fields(t))
        return f"a:{t.__module__}.{t.__qualname__}({fields})"
    if isinstance(value, Mapping):
        return _mapping(value)
    for base in (str, int, float, tuple, frozenset, datetime, date):  # subclasses keep their type
        if isinstance(value, base):
            return f"x:{t.__module__}.{t.__qualname__}:{_EXACT[base](value)}"
    raise UncacheableArgument(f"cannot build a cache key from a {t.__module__}.{t.__qualname__}")


def call_text(
    function: str, fingerprint: str, partition: str, args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> bytes:
    """The canonical call: function, schema fingerprint, partition, positional and keyword args."""
    kw = ",".join(f"{k}={canonical(kwargs[k])}" for k in sorted(kwargs)) if kwargs else ""
    positional = ",".join(canonical(a) for a in args)
    return f"{function}\x1f{fingerprint}\x1f{partition}\x1f{positional}\x1f{kw}".encode()


def fingerprint(entity: Entity[Any] | None) -> str:
    """Full SHA-256 of an entity's row shape: a schema change never reads an old entry."""
    if entity is None:
        return "-"
    text = "|".join(
        [entity.name, entity.table, entity.row_type.__qualname__]
        + [f"{c.name}:{c.kind.value}:{int(c.nullable)}" for c in entity.columns]
    )
    return hashlib.sha256(text.encode()).hexdigest()


# --- partition (row-level security inputs) ----------------------------------------------------

_PARTITIONS: dict[tuple[bool, frozenset[UUID]], str] = {}


def partition_of(ctx: ExecutionContext) -> str:
    """What row-level security sees of the context: bypass (system, break-glass) or the school ids.

    Mirrors ``app.bypass_scope`` and ``app.school_ids`` of :func:`wxdata.context.context_settings`:
    two callers whose rows could differ never share a cache entry.
    """
    bypass = ctx.is_system or ctx.is_break_glass
    memo_key = (bypass, ctx.school_ids)
    part = _PARTITIONS.get(memo_key)
    if part is None:
        part = "*" if bypass else ",".join(sorted(s.hex for s in ctx.school_ids))
        if len(_PARTITIONS) > 4096:
            _PARTITIONS.clear()
        _PARTITIONS[memo_key] = part
    return part


def needs_partition(entity: Entity[Any] | None) -> bool:
    """Whether rows of the entity can depend on the caller's school scope (safe over-approximation)."""
    if entity is None:
        return True
    return (
        entity.audit_reads
        or entity.subject is not None
        or "school_id" in entity.by_name
        or "student_id" in entity.by_name
    )


# --- shapes -----------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class KeyShape:
    """Which readable key shape a cached call uses; ``id`` is shown only for non-sensitive data."""

    kind: ShapeKind = "list"
    id: Any = None
    summary: str | None = None


LIST = KeyShape("list")
SEARCH = KeyShape("search")


def by_id(id: Any) -> KeyShape:
    """Shape of a read of one row by its id."""
    return KeyShape("id", id)


def summary(id: Any, kind: str) -> KeyShape:
    """Shape of a summary (``kind``) of one row."""
    if not _SEGMENT.match(kind):
        raise ValueError("summary kind must be a short lowercase identifier")
    return KeyShape("summary", id, kind)


def listing() -> KeyShape:
    """Shape of a list or page."""
    return LIST


def search() -> KeyShape:
    """Shape of a search."""
    return SEARCH


def entity_segment(entity: Entity[Any] | None) -> str:
    """The entity's key segment: its name lower-cased as the original did (``healthrecord``)."""
    if entity is None:
        return "fn"
    seg = entity.name.lower()
    if not _SEGMENT.match(seg):
        raise ValueError(f"entity name {entity.name!r} cannot be a key segment")
    return seg


_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _id_text(value: Any) -> str:
    """An id as shown in keys and tags: a UUID in its one canonical spelling, else a short token."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            return str(UUID(value))
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("a key id must be a UUID, a string or an integer")
    text = str(value)
    if not _ID.fullmatch(text):
        raise ValueError("a key id must be a UUID or 1-64 characters of [A-Za-z0-9._-]")
    return text


# --- keyed hashing ----------------------------------------------------------------------------


class Hmac256:
    """HMAC-SHA256 with the key's inner and outer states prepared once (RFC 2104)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("HMAC key must be at least 16 bytes")
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def digest(self, message: bytes) -> bytes:
        """The 32-byte MAC."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def hexdigest(self, message: bytes) -> str:
        """The MAC as 64 hex digits."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


_SIMPLE = frozenset({str, int, bool, UUID, type(None)})
MEMO_SIZE = 8192


def fast_signature(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """An exact, typed signature of simple arguments (str, int, bool, UUID, None), else None.

    Each value is paired with its exact type, so ``1``, ``True`` and ``"1"`` never meet; values of
    these types are equal only when their canonical texts are. Used to memoise built keys.
    """
    if not kwargs and len(args) == 1:  # the common by-id call
        a = args[0]
        t = type(a)
        if t is UUID:
            return (t, a.int)
        return (t, a) if t in _SIMPLE else None
    sig: list[Any] = []
    for a in args:
        t = type(a)
        if t not in _SIMPLE:
            return None
        sig.append(t)
        sig.append(a.int if t is UUID else a)  # an int hashes in C; the type keeps it apart
    if kwargs:
        for k in kwargs:  # in call order: a function taking **kwargs sees that order
            v = kwargs[k]
            t = type(v)
            if t not in _SIMPLE:
                return None
            sig.append(k)
            sig.append(t)
            sig.append(v)
    return tuple(sig)


class KeyBuilder:
    """Builds entry keys and tag ids under one namespace and one key-hashing key."""

    __slots__ = ("_mac", "memo", "prefix")

    def __init__(self, key_hash_key: bytes, prefix: str = PREFIX) -> None:
        if not (0 < len(prefix) <= 64 and _PREFIX.fullmatch(prefix)):
            raise ValueError("cache prefix must be 1-64 characters of [A-Za-z0-9._-], "
                             "with at most one {hash tag} (Redis Cluster)")
        self.prefix = prefix
        self._mac = Hmac256(key_hash_key)
        #: built keys of calls with simple arguments: (function, partition, signature) -> key
        self.memo: dict[tuple[Any, ...], str] = {}

    def remember(self, memo_key: tuple[Any, ...], key: str) -> str:
        """Memoise a built key (bounded: the memo is emptied when full)."""
        if len(self.memo) >= MEMO_SIZE:
            self.memo.clear()
        self.memo[memo_key] = key
        return key

    def key(self, entity: Entity[Any] | None, sensitive: bool, shape: KeyShape, call: bytes) -> str:
        """The entry key for a canonical call in a shape (keyed hash and no id when sensitive)."""
        seg = entity_segment(entity)
        if sensitive:
            kind = shape.kind if shape.summary is None else f"summary:{shape.summary}"
            return f"{self.prefix}:{seg}:{kind}:{self._mac.hexdigest(call)}"
        digest = hashlib.sha256(call).hexdigest()
        kind = shape.kind
        if kind == "list":
            return f"{self.prefix}:{seg}:list:{digest}"
        if kind == "search":
            return f"{self.prefix}:search:{digest}"
        ident = _id_text(shape.id)
        if kind == "summary":
            return f"{self.prefix}:{seg}:{ident}:summary:{shape.summary}:{digest}"
        return f"{self.prefix}:{seg}:{ident}:{digest}"

    def tag_id(self, tag: str) -> str:
        """The opaque id of a tag (HMAC): what backends, Redis and pub/sub messages carry."""
        return self._mac.hexdigest(b"tag\x1f" + tag.encode())

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under the key-hashing key (for other derived names)."""
        return self._mac.digest(message)


# --- tags -------------------------------------------------------------------------------------


def entity_tag(entity: Entity[Any] | str) -> str:
    """Tag invalidated by any write to the entity (lists, searches, summaries depend on it)."""
    name = entity if isinstance(entity, str) else entity.name
    return f"entity:{name}"


def row_tag(entity: Entity[Any] | str, id: Any) -> str:
    """Tag invalidated by a write to one row."""
    name = entity if isinstance(entity, str) else entity.name
    return f"row:{name}:{_id_text(id)}"


def student_tag(student_id: Any) -> str:
    """Tag invalidated by a write to any row whose subject is this student."""
    return f"student:{_id_text(student_id)}"


def by_id_tags(entity: Entity[Any]) -> Callable[..., list[str]]:
    """A ``tags=`` callable for ``(conn, ctx, id, ...)`` reads of one row."""

    def tags(conn: Any, ctx: Any, id: Any, *args: Any, **kwargs: Any) -> list[str]:
        return [row_tag(entity, id)]

    return tags
