"""Typed, pickle-free serialisation of cached values, and the immutability rules of the memory tier.

Wire format: JSON with tagged objects for every type JSON cannot tell apart, so values round-trip
exactly: ``{"$u": hex}`` UUID, ``{"$d": "1.10"}`` Decimal (exponent kept), ``{"$D": iso}`` date,
``{"$dt": "iso"}`` / ``{"$dt": "wall|Zone/Key|fold"}`` datetime (offset or zoneinfo zone and
fold, microseconds kept),
``{"$t": [...]}`` tuple, ``{"$fs"|"$s": [...]}`` sets, ``{"$b": base64}`` bytes,
``{"$m": [[k, v], ...]}`` mappings whose keys are not plain strings,
``{"$r": name, "v": [...]}`` a registered attrs value (``Page``, ``KeysetPage``...),
``{"$row": entity, "v": [...]}`` an entity row encoded column by column from its spec.
Decoding only ever builds types from these registries — a payload cannot name a class to
import — and any mismatch raises :class:`CorruptPayload` (the cache treats it as a miss).

Memory tier: a value that is deeply immutable (frozen rows and tuples of scalars) is shared; any
value with a mutable part (a JSON column's dict or list, a projected row's dict) is copied when
stored and again on every hit, so callers never share mutable state through the cache.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import attrs

from wxdata.query.paging import KeysetPage, Page
from wxdata.schema._rows import row_maker
from wxdata.schema.spec import Entity, Kind, lookup, registered

FORMAT_VERSION = 1


class CorruptPayload(ValueError):
    """A stored payload could not be decoded (garbage, unknown type, wrong shape)."""


class Unserialisable(TypeError):
    """A value holds a type the cache cannot store (it is then not cached)."""


class SecretInValue(ValueError):
    """A value to cache contains a secret column (it is then not cached)."""


# --- registries -------------------------------------------------------------------------------

_lock = threading.Lock()
_C = TypeVar("_C", bound=type)
_VALUE_TYPES: dict[str, type] = {}
_VALUE_NAMES: dict[type, str] = {}


def register_value_type(cls: _C, name: str | None = None) -> _C:
    """Allow a frozen attrs class (not an entity row) to be cached; returns it (usable as decorator)."""
    if not attrs.has(cls) or cls.__setattr__ is object.__setattr__:
        raise TypeError(f"{cls.__qualname__} must be a frozen attrs class to be cached")
    label = name or f"{cls.__module__}.{cls.__qualname__}"
    with _lock:
        existing = _VALUE_TYPES.get(label)
        if existing is not None and existing is not cls:
            raise ValueError(f"cache value type name {label!r} registered twice")
        _VALUE_TYPES[label] = cls
        _VALUE_NAMES[cls] = label
    return cls  # type: ignore[return-value]


register_value_type(Page, "Page")
register_value_type(KeysetPage, "KeysetPage")


def _enc_float(v: Any) -> Any:
    if v is None or math.isfinite(v):
        return v
    return {"$f": repr(v)}


def _dec_float(v: Any) -> Any:
    if isinstance(v, dict):
        return float(v["$f"])
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise CorruptPayload("float expected")
    return float(v)


def _enc_dt(v: datetime) -> str:
    zone = getattr(v.tzinfo, "key", None)
    if not zone:
        return v.isoformat()  # naive or a fixed offset: exact as ISO text
    # a zoneinfo zone: the wall time, the zone and the fold (exact even across DST transitions)
    return f"{v.replace(tzinfo=None).isoformat()}|{zone}|{v.fold}"


_ZONES: dict[str, ZoneInfo] = {}


def _zone(key: str) -> ZoneInfo:
    zone = _ZONES.get(key)
    if zone is None:
        zone = ZoneInfo(key)  # validates the key (no paths); raises on unknown zones
        if len(_ZONES) < 512:
            _ZONES[key] = zone
    return zone


def _dec_dt(v: str) -> datetime:
    iso, _, rest = v.partition("|")
    value = datetime.fromisoformat(iso)
    if rest:
        zone, _, fold = rest.partition("|")
        if value.tzinfo is not None or fold not in ("0", "1"):
            raise CorruptPayload("datetime shape")
        value = value.replace(tzinfo=_zone(zone), fold=int(fold))
    return value


def _enc_uuid_list(v: list[UUID]) -> list[str | None]:
    return [None if u is None else u.bytes.hex() for u in v]


def _dec_uuid_list(v: list[str | None]) -> list[UUID | None]:
    return [None if u is None else UUID(hex=u) for u in v]


def _check_json(v: Any) -> Any:
    """JSON columns hold JSON values only (what psycopg loads from jsonb)."""
    t = type(v)
    if v is None or t is str or t is int or t is bool:
        return v
    if t is float:
        if not math.isfinite(v):
            raise Unserialisable("non-finite float in a JSON column")
        return v
    if t is list:
        return [_check_json(x) for x in v]
    if t is dict:
        out = {}
        for k, x in v.items():
            if type(k) is not str:
                raise Unserialisable("JSON object keys must be strings")
            out[k] = _check_json(x)
        return out
    raise Unserialisable(f"{t.__qualname__} in a JSON column")


_ENCODERS: dict[Kind, Callable[[Any], Any] | None] = {
    Kind.TEXT: None, Kind.INT: None, Kind.BOOL: None,
    Kind.FLOAT: _enc_float,
    Kind.DECIMAL: str,
    Kind.DATE: date.isoformat,
    Kind.DATETIME: _enc_dt,
    Kind.UUID: lambda u: u.bytes.hex(),
    Kind.TEXT_ARRAY: list,
    Kind.UUID_ARRAY: _enc_uuid_list,
    Kind.JSON: _check_json,
}
_DECODERS: dict[Kind, Callable[[Any], Any] | None] = {
    Kind.TEXT: None, Kind.INT: None, Kind.BOOL: None,
    Kind.FLOAT: _dec_float,
    Kind.DECIMAL: Decimal,
    Kind.DATE: date.fromisoformat,
    Kind.DATETIME: _dec_dt,
    Kind.UUID: lambda h: UUID(hex=h),
    Kind.TEXT_ARRAY: list,
    Kind.UUID_ARRAY: _dec_uuid_list,
    Kind.JSON: None,
}
_MUTABLE_KINDS = frozenset({Kind.JSON, Kind.TEXT_ARRAY, Kind.UUID_ARRAY})


@attrs.frozen(slots=True)
class RowCodec:
    """How one entity's row type is encoded: per-column converters, in field order."""

    name: str
    row_type: type
    fields: tuple[str, ...]
    encoders: tuple[tuple[int, Callable[[Any], Any]], ...]
    decoders: tuple[tuple[int, Callable[[Any], Any]], ...]
    mutable: tuple[str, ...]


_ROW_BY_NAME: dict[str, RowCodec] = {}
_ROW_BY_TYPE: dict[type, RowCodec] = {}
_SECRET_NAMES: list[frozenset[str]] = [frozenset()]
_seen_entities = [0]


def _codec(entity: Entity[Any]) -> RowCodec:
    fields = tuple(f.name for f in attrs.fields(entity.row_type))
    if fields != entity.column_names:
        raise TypeError(f"{entity.name}: row fields differ from the spec's columns")
    secrets = {c.name for c in entity.secrets}
    if secrets & set(fields):
        raise TypeError(f"{entity.name}: a row type must never carry a secret column")
    enc = tuple((i, e) for i, c in enumerate(entity.columns)
                if (e := _ENCODERS[c.kind]) is not None)
    dec = tuple((i, d) for i, c in enumerate(entity.columns)
                if (d := _DECODERS[c.kind]) is not None)
    mutable = tuple(c.name for c in entity.columns if c.kind in _MUTABLE_KINDS)
    return RowCodec(entity.name, entity.row_type, fields, enc, dec, mutable)


def register_entity(entity: Entity[Any]) -> RowCodec:
    """Make an entity's rows cacheable (done by ``cached`` for its entity, and lazily for all)."""
    codec = _ROW_BY_TYPE.get(entity.row_type)
    if codec is not None:
        return codec
    codec = _codec(entity)
    with _lock:
        _ROW_BY_NAME[codec.name] = codec
        _ROW_BY_TYPE[entity.row_type] = codec
        _SECRET_NAMES[0] = _SECRET_NAMES[0] | {c.name for c in entity.secrets}
    return codec


def _refresh_entities() -> None:
    """Register every entity declared since the last call (rows decoded before their ``cached``)."""
    entities = registered()
    if len(entities) != _seen_entities[0]:
        for e in entities:
            register_entity(e)
        _seen_entities[0] = len(entities)


def secret_names() -> frozenset[str]:
    """Names of every declared secret column (never allowed in a cached value)."""
    _refresh_entities()
    return _SECRET_NAMES[0]


def _row_codec_by_name(name: str) -> RowCodec:
    codec = _ROW_BY_NAME.get(name)
    if codec is None:
        _refresh_entities()
        codec = _ROW_BY_NAME.get(name)
        if codec is None:
            entity = lookup(name)
            if entity is None or entity.name != name:
                raise CorruptPayload("unknown row type")
            codec = register_entity(entity)
    return codec


# --- encoding ---------------------------------------------------------------------------------


def _encode_row(codec: RowCodec, row: Any) -> dict[str, Any]:
    values = [getattr(row, f) for f in codec.fields]
    for i, enc in codec.encoders:
        v = values[i]
        if v is not None:
            values[i] = enc(v)
    return {"$row": codec.name, "v": values}


def encode(value: Any) -> Any:
    """The JSON-ready tagged form of a value; raises :class:`Unserialisable` for foreign types."""
    t = type(value)
    if value is None or t is str or t is int or t is bool:
        return value
    if t is float:
        return _enc_float(value)
    codec = _ROW_BY_TYPE.get(t)
    if codec is not None:
        return _encode_row(codec, value)
    if t is tuple:
        return {"$t": [encode(v) for v in value]}
    if t is list:
        return [encode(v) for v in value]
    if t is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$m": [[encode(k), encode(v)] for k, v in value.items()]}
    if t is UUID:
        return {"$u": value.bytes.hex()}
    if t is datetime:
        return {"$dt": _enc_dt(value)}
    if t is date:
        return {"$D": value.isoformat()}
    if t is Decimal:
        return {"$d": str(value)}
    if t is frozenset:
        return {"$fs": [encode(v) for v in value]}
    if t is set:
        return {"$s": [encode(v) for v in value]}
    if t is time:
        return {"$tm": value.isoformat(), "z": getattr(value.tzinfo, "key", None)}
    if t is timedelta:
        return {"$td": [value.days, value.seconds, value.microseconds]}
    if t is bytes:
        return {"$b": base64.b64encode(value).decode()}
    name = _VALUE_NAMES.get(t)
    if name is not None:
        return {"$r": name, "v": [encode(getattr(value, f.name)) for f in attrs.fields(t)]}
    if t not in _ROW_BY_TYPE and attrs.has(t):
        _refresh_entities()
        if t in _ROW_BY_TYPE:
            return encode(value)
    if isinstance(value, Enum):
        raise Unserialisable("enum members are not cached; store their value")
    raise Unserialisable(f"{t.__module__}.{t.__qualname__} values are not cacheable")


def dumps(value: Any) -> bytes:
    """Serialise a value (UTF-8 JSON of its tagged form)."""
    return json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


# --- decoding ---------------------------------------------------------------------------------


def _decode_row(obj: dict[str, Any]) -> Any:
    codec = _row_codec_by_name(obj["$row"])
    values = obj["v"]
    if type(values) is not list or len(values) != len(codec.fields):
        raise CorruptPayload("row shape")
    for i, dec in codec.decoders:
        v = values[i]
        if v is not None:
            values[i] = dec(v)
    return row_maker(codec.row_type)(values)


def _decode_tagged(obj: dict[str, Any]) -> Any:
    if "$row" in obj:
        return _decode_row(obj)
    if len(obj) == 1:
        ((tag, v),) = obj.items()
        if tag == "$t":
            return tuple(decode(x) for x in v)
        if tag == "$u":
            return UUID(hex=v)
        if tag == "$dt":
            return _dec_dt(v)
        if tag == "$D":
            return date.fromisoformat(v)
        if tag == "$d":
            return Decimal(v)
        if tag == "$f":
            return float(v)
        if tag == "$fs":
            return frozenset(decode(x) for x in v)
        if tag == "$s":
            return {decode(x) for x in v}
        if tag == "$m":
            return {decode(k): decode(x) for k, x in v}
        if tag == "$td":
            return timedelta(days=v[0], seconds=v[1], microseconds=v[2])
        if tag == "$b":
            return base64.b64decode(v, validate=True)
    if "$tm" in obj:
        value = time.fromisoformat(obj["$tm"])
        zone = obj.get("z")
        return value.replace(tzinfo=_zone(zone)) if zone else value
    if "$r" in obj:
        cls = _VALUE_TYPES.get(obj["$r"])
        if cls is None:
            raise CorruptPayload("unknown value type")
        fields = attrs.fields(cls)
        values = obj["v"]
        if type(values) is not list or len(values) != len(fields):
            raise CorruptPayload("value shape")
        return cls(*[decode(x) for x in values])
    raise CorruptPayload("unknown tag")


def decode(obj: Any) -> Any:
    """Rebuild a value from its tagged form (registered types only)."""
    t = type(obj)
    if t is dict:
        for k in obj:
            if k.startswith("$"):
                return _decode_tagged(obj)
            break
        return {k: decode(v) for k, v in obj.items()}
    if t is list:
        return [decode(v) for v in obj]
    return obj


_json = json.JSONDecoder().decode  # json.loads without its per-call argument checks
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, InvalidOperation,
              RecursionError)


def loads(payload: bytes) -> Any:
    """Deserialise; any malformed input raises :class:`CorruptPayload`."""
    try:
        return decode(_json(payload.decode()))
    except CorruptPayload:
        raise
    except _MALFORMED as exc:
        raise CorruptPayload(type(exc).__name__) from None


def loads_entry(payload: bytes) -> tuple[Any, tuple[str, ...], float]:
    """A stored cache entry, ``dumps((value, tag ids, expires at))``: the value decoded as by
    :func:`loads`, the tag ids and the expiry checked and read directly (the per-hit path).
    Anything else raises :class:`CorruptPayload`."""
    try:
        obj = _json(payload.decode())
        if type(obj) is not dict or len(obj) != 1:
            raise CorruptPayload("entry shape")
        parts = obj["$t"]
        if type(parts) is not list or len(parts) != 3:
            raise CorruptPayload("entry shape")
        value, tags, expires = parts
        if type(tags) is not dict or len(tags) != 1:
            raise CorruptPayload("entry tags")
        tag_ids = tags["$t"]
        if type(tag_ids) is not list:
            raise CorruptPayload("entry tags")
        for t in tag_ids:
            if type(t) is not str:
                raise CorruptPayload("entry tags")
        return (decode(value), tuple(tag_ids),
                expires if type(expires) is float else _dec_float(expires))
    except CorruptPayload:
        raise
    except _MALFORMED as exc:
        raise CorruptPayload(type(exc).__name__) from None


# --- immutability (memory tier) ----------------------------------------------------------------

_SCALARS = frozenset({type(None), bool, int, float, str, bytes, UUID, Decimal, date, datetime,
                      time, timedelta})


def is_frozen(value: Any) -> bool:
    """Whether the value is deeply immutable (safe to hand the same object to every caller)."""
    t = type(value)
    if t in _SCALARS:
        return True
    codec = _ROW_BY_TYPE.get(t)
    if codec is not None:
        return all(is_frozen(getattr(value, f)) for f in codec.mutable)
    if t is tuple or t is frozenset:
        return all(is_frozen(v) for v in value)
    if t in _VALUE_NAMES:
        return all(is_frozen(getattr(value, f.name)) for f in attrs.fields(t))
    if attrs.has(t) and t not in _ROW_BY_TYPE:
        _refresh_entities()
        if t in _ROW_BY_TYPE:
            return is_frozen(value)
    return isinstance(value, Enum)


def thaw(value: Any) -> Any:
    """A copy sharing no mutable container with ``value`` (immutable parts are reused).

    Raises :class:`Unserialisable` for a type the cache does not know (it could hide mutable state).
    """
    t = type(value)
    if t in _SCALARS:
        return value
    if t is list:
        return [thaw(v) for v in value]
    if t is dict:
        return {k: thaw(v) for k, v in value.items()}
    codec = _ROW_BY_TYPE.get(t)
    if codec is not None:
        if not codec.mutable:
            return value
        return attrs.evolve(value, **{f: thaw(getattr(value, f)) for f in codec.mutable})
    if t is tuple:
        return tuple(thaw(v) for v in value)
    if t is set:
        return {thaw(v) for v in value}
    if t is frozenset:
        return value
    if t in _VALUE_NAMES:
        return t(*[thaw(getattr(value, f.name)) for f in attrs.fields(t)])
    if isinstance(value, Enum):
        return value
    if attrs.has(t) and t not in _ROW_BY_TYPE:
        _refresh_entities()
        if t in _ROW_BY_TYPE:
            return thaw(value)
    raise Unserialisable(f"{t.__module__}.{t.__qualname__} values are not cacheable")


# --- checks and size ----------------------------------------------------------------------------


def find_secret(value: Any, names: frozenset[str] | None = None) -> str | None:
    """The first secret column name found as a mapping key in the value (rows never carry them)."""
    names = secret_names() if names is None else names
    if not names:
        return None
    t = type(value)
    if t in _SCALARS or t in _ROW_BY_TYPE:
        return None
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and k in names:
                return k
            found = find_secret(v, names)
            if found:
                return found
        return None
    if t in _VALUE_NAMES:
        return _first(find_secret(getattr(value, f.name), names) for f in attrs.fields(t))
    if isinstance(value, list | tuple | set | frozenset):
        return _first(find_secret(v, names) for v in value)
    return None


def _first(items: Iterable[str | None]) -> str | None:
    for item in items:
        if item:
            return item
    return None


def estimate_size(value: Any) -> int:
    """A rough size in bytes of a cached value (for the memory estimate in stats)."""
    t = type(value)
    if t is str:
        return 49 + len(value)
    if t in _SCALARS:
        return 32
    codec = _ROW_BY_TYPE.get(t)
    if codec is not None:
        return 56 + sum(estimate_size(getattr(value, f)) + 8 for f in codec.fields)
    if isinstance(value, Mapping):
        return 64 + sum(estimate_size(k) + estimate_size(v) + 16 for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return 56 + sum(estimate_size(v) + 8 for v in value)
    if t in _VALUE_NAMES:
        return 56 + sum(estimate_size(getattr(value, f.name)) + 8 for f in attrs.fields(t))
    return 64


def is_registered_type(t: type) -> str | None:
    """``"row"`` for an entity's row type, ``"value"`` for a registered value type, else None."""
    if t not in _ROW_BY_TYPE:
        _refresh_entities()
    if t in _ROW_BY_TYPE:
        return "row"
    return "value" if t in _VALUE_NAMES else None
