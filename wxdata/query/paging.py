"""Sorting, page/limit pagination and keyset cursors: pure parsing and the result values.

Every sort ends with the primary key, so orders are total and pages never overlap or skip rows.
Page requests are checked (page >= 1, 1 <= limit <= 100). Keyset cursors are encrypted and
authenticated tokens (AES-256-GCM, see ``docs/cursors.md``): the last row's sort values (often PHI:
a name, a date of birth) never appear in a URL or a log, and a cursor is bound to the entity, the
filter, the sort and the user it was made for, so a tampered, truncated or replayed cursor is
refused with ``InvalidQuery``, never trusted.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar
from uuid import UUID

import attrs
from returns.result import Failure, Result, Success

from wxdata.config import Settings, settings
from wxdata.errors import InvalidQuery
from wxdata.query.compiler import Direction, Nulls, SortKey, sort_direction
from wxdata.schema.spec import Entity, Kind

R = TypeVar("R")
log = logging.getLogger("wxdata.query")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_PAGE = 1_000_000

SortSpec = Sequence[str | tuple[str, str] | tuple[str, str, str]] | None


@attrs.frozen(slots=True)
class Page(Generic[R]):
    """One page of rows with its position in the whole result."""

    data: tuple[R, ...]
    page: int
    limit: int
    total: int
    pages: int
    has_next: bool
    has_previous: bool

    @staticmethod
    def of(data: Sequence[R], page: int, limit: int, total: int) -> Page[R]:
        """Build a page and its metadata: pages = ceil(total / limit)."""
        pages = math.ceil(total / limit) if total else 0
        return Page(tuple(data), page, limit, total, pages, page < pages, page > 1)


@attrs.frozen(slots=True)
class KeysetPage(Generic[R]):
    """Rows after a cursor, and the cursor for the next call (None at the end)."""

    data: tuple[R, ...]
    next_cursor: str | None


def parse_sort(entity: Entity[Any], order_by: SortSpec) -> Result[SortKey, InvalidQuery]:
    """Check sort fields against the allow-list and append the primary key as tie-breaker.

    The answer depends only on the entity and the sort spec: one made of strings and tuples is
    parsed once per entity and spec (memoised), anything else every time.
    """
    key = _sort_key(order_by)
    if key is None:
        return _parse_sort(entity, order_by)
    return _parse_sort_cached(entity, key)


#: The type tuples of :func:`_sort_key`'s checks, made once (``list | tuple`` in a function body
#: is a new union object on every call).
_SEQUENCES = (list, tuple)
_NAMES = (str, type(None))


def _sort_key(order_by: SortSpec) -> tuple[Any, ...] | None:
    if order_by is None:
        return ()
    if isinstance(order_by, _SEQUENCES) and all(
            isinstance(i, str) or (isinstance(i, tuple) and all(isinstance(x, _NAMES)
                                                                 for x in i))
            for i in order_by):
        return tuple(order_by)
    return None


@functools.lru_cache(maxsize=1024)
def _parse_sort_cached(entity: Entity[Any], key: tuple[Any, ...]) -> Result[SortKey, InvalidQuery]:
    return _parse_sort(entity, list(key))


def _parse_sort(entity: Entity[Any], order_by: SortSpec) -> Result[SortKey, InvalidQuery]:
    """Check sort fields against the allow-list and append the primary key as tie-breaker."""
    items: list[tuple[str, Direction, Nulls]] = []
    seen: set[str] = set()
    for item in order_by or ():
        if isinstance(item, str):
            name, direction, nulls = (item[1:], "desc", None) if item.startswith("-") else (
                item, "asc", None)
        elif isinstance(item, tuple) and len(item) in (2, 3):
            name, direction = item[0], item[1]
            nulls = item[2] if len(item) == 3 else None
        else:
            return Failure(InvalidQuery("order_by", "items are 'field', '-field' or (field, dir)"))
        column = entity.by_name.get(name) if isinstance(name, str) else None
        label = name if isinstance(name, str) and name.isidentifier() and len(name) <= 63 \
            else "<invalid field name>"
        if column is None or not column.sortable:
            return Failure(InvalidQuery(label, "is not a sortable column of " + entity.name))
        d = sort_direction(direction) if isinstance(direction, str) else None
        if d is None:
            return Failure(InvalidQuery(label, "direction must be asc or desc"))
        if nulls is None:
            n = Nulls.LAST if d is Direction.ASC else Nulls.FIRST  # PostgreSQL's default
        elif isinstance(nulls, str) and nulls.lower().replace("nulls_", "") in ("first", "last"):
            n = Nulls(nulls.lower().replace("nulls_", "").upper())
        else:
            return Failure(InvalidQuery(label, "nulls must be first or last"))
        if name in seen:
            return Failure(InvalidQuery(label, "appears twice in order_by"))
        seen.add(name)
        items.append((name, d, n))
    if entity.pk not in seen:
        items.append((entity.pk, Direction.ASC, Nulls.LAST))
    return Success(tuple(items))


def check_page(page: object, limit: object) -> Result[tuple[int, int], InvalidQuery]:
    """page >= 1 and 1 <= limit <= 100, both integers."""
    refused = page_refusal(page, limit)
    if refused is not None:
        return Failure(refused)
    return Success((page, limit))  # type: ignore[arg-type]  # both checked integers


def page_refusal(page: object, limit: object) -> InvalidQuery | None:
    """What :func:`check_page` refuses, or None: the check itself, for a caller that needs no
    container around a page and limit it goes on to use (a page read, on every call)."""
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= MAX_PAGE:
        return InvalidQuery("page", f"must be an integer from 1 to {MAX_PAGE}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return InvalidQuery("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return None


def check_projection(
    entity: Entity[Any], select: Sequence[str] | None
) -> Result[tuple[str, ...], InvalidQuery]:
    """Readable, known, distinct columns in the caller's order (secrets are never selectable)."""
    if select is None:
        return Success(entity.column_names)
    if isinstance(select, str) or not select:
        return Failure(InvalidQuery("select", "must be a non-empty list of column names"))
    readable = set(entity.column_names)
    out: list[str] = []
    for name in select:
        if not isinstance(name, str) or name not in readable:
            label = name if isinstance(name, str) and name.isidentifier() and len(name) <= 63 \
                else "<invalid field name>"
            return Failure(InvalidQuery(label, "is not a selectable column of " + entity.name))
        if name in out:
            return Failure(InvalidQuery(name, "appears twice in select"))
        out.append(name)
    return Success(tuple(out))


# --- keyset cursors -----------------------------------------------------------------------
#
# token = base64url(VERSION || nonce(12) || AES-GCM(key, nonce, padded plaintext, binding))
# The plaintext holds only the sort values; the associated data ("binding") is a digest of the
# entity, filter shape and values, sort and user id, so it is authenticated but never carried.

_VERSION = b"\x01"
_NONCE = 12
_PAD = 64  # plaintext padded to a multiple of this: the token length hides the values' length
MAX_CURSOR = 8192
_BAD_CURSOR = InvalidQuery("after", "is not a valid cursor for this query")


@functools.lru_cache(maxsize=1)
def _process_key() -> bytes:
    """The fallback key when none is configured: valid in this process only (logged once)."""
    log.warning(
        "no cursor key configured (WXDATA_CURSOR_KEY or WXDATA_MASTER_KEY): keyset cursors are "
        "valid only in the process that made them"
    )
    return os.urandom(32)


@functools.lru_cache(maxsize=8)
def _aead(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _keys() -> tuple[bytes, ...]:
    """The key cursors are made with, then the previous one still accepted during rotation."""
    return _keys_of(settings())


@functools.lru_cache(maxsize=4)
def _keys_of(current: Settings) -> tuple[bytes, ...]:
    key = current.secret("cursor") or _process_key()
    previous = current.cursor_key_previous
    return (key,) if previous is None or previous == key else (key, previous)


def _canonical(value: Any) -> str:
    """A process-independent text for a bound filter value (lists compare as sets)."""
    if isinstance(value, list | tuple):
        return "[" + ",".join(sorted(_canonical(v) for v in value)) + "]"
    return type(value).__name__ + ":" + repr(value)


@attrs.frozen(slots=True)
class CursorBinding:
    """What a cursor is valid for: the digest of entity, filter, sort and user (never sent)."""

    sort: SortKey
    digest: bytes


def cursor_binding(
    entity: Entity[Any],
    shape: Any,
    filter_values: Sequence[Any],
    sort: SortKey,
    user_id: str,
) -> CursorBinding:
    """Bind cursors to this entity, filter (shape and bound values), sort and user."""
    parts = [
        "wxdata-cursor-v1", entity.name, repr(shape),
        json.dumps([[c, d.value, n.value] for c, d, n in sort]),
        _canonical(list(filter_values)) if filter_values else "", user_id,
    ]
    digest = hashlib.sha256(
        b"\x00".join(p.encode("utf-8", "backslashreplace") for p in parts)
    ).digest()
    return CursorBinding(sort, _VERSION + digest)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": "dt", "v": value.isoformat()}
    if isinstance(value, date):
        return {"t": "d", "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {"t": "n", "v": str(value)}
    if isinstance(value, UUID):
        return {"t": "u", "v": str(value)}
    return {"t": "j", "v": value}


def _decode(kind: Kind, item: Any) -> Any:
    tag, value = item["t"], item["v"]
    if tag == "dt":
        return datetime.fromisoformat(value)
    if tag == "d":
        return date.fromisoformat(value)
    if tag == "n":
        return Decimal(value)
    if tag == "u":
        return UUID(value)
    return value


def make_cursor(binding: CursorBinding, values: Sequence[Any]) -> str:
    """An opaque, encrypted continuation token for the row with these sort values."""
    body = json.dumps([_encode(v) for v in values], separators=(",", ":")).encode()
    body += b" " * (-len(body) % _PAD)
    nonce = os.urandom(_NONCE)
    sealed = _aead(_keys()[0]).encrypt(nonce, body, binding.digest)
    return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode().rstrip("=")


def _open(raw: bytes, binding: CursorBinding) -> bytes | None:
    from cryptography.exceptions import InvalidTag

    nonce, sealed = raw[1: 1 + _NONCE], raw[1 + _NONCE:]
    for key in _keys():
        try:
            return bytes(_aead(key).decrypt(nonce, sealed, binding.digest))
        except InvalidTag:
            continue
    return None


def read_cursor(
    entity: Entity[Any], binding: CursorBinding, token: str
) -> Result[tuple[Any, ...], InvalidQuery]:
    """Decrypt a cursor made for this binding (current or previous key); return its values.

    Any other token (tampered, truncated, from another query or user, or sealed with an unknown
    key) is ``InvalidQuery`` on ``after``; nothing about why is disclosed.
    """
    bad: Result[tuple[Any, ...], InvalidQuery] = Failure(_BAD_CURSOR)
    if not isinstance(token, str) or not 0 < len(token) <= MAX_CURSOR or not token.isascii():
        return bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return bad
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != token.encode():  # one spelling per token
        return bad
    if len(raw) < 1 + _NONCE + 16 or raw[:1] != _VERSION:
        return bad
    body = _open(raw, binding)
    if body is None:
        return bad
    try:
        items = json.loads(body)
        values = tuple(
            _decode(entity.by_name[c].kind, item)
            for (c, _, _), item in zip(binding.sort, items, strict=True)
        )
    except (KeyError, ValueError, TypeError):
        return bad
    return Success(values)
