"""Sorting, page/limit pagination and keyset cursors: pure parsing and the result values.

Every sort ends with the primary key, so orders are total and pages never overlap or skip rows.
Page requests are checked (page >= 1, 1 <= limit <= 100); keyset cursors are opaque, signed
tokens carrying the last row's sort values, so a tampered cursor is refused, not trusted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar
from uuid import UUID

import attrs
from returns.result import Failure, Result, Success

from wxdata.errors import InvalidQuery
from wxdata.query.compiler import Direction, Nulls, SortKey, sort_direction
from wxdata.schema.spec import Entity, Kind

R = TypeVar("R")

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
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= MAX_PAGE:
        return Failure(InvalidQuery("page", f"must be an integer from 1 to {MAX_PAGE}"))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return Failure(InvalidQuery("limit", f"must be an integer from 1 to {MAX_LIMIT}"))
    return Success((page, limit))


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

_CURSOR_KEY = os.urandom(32)  # process-local: cursors are short-lived continuation tokens


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


def make_cursor(sort: SortKey, values: Sequence[Any]) -> str:
    """An opaque, signed continuation token for the row with these sort values."""
    body = json.dumps(
        {"k": [c for c, _, _ in sort], "v": [_encode(v) for v in values]}, separators=(",", ":")
    ).encode()
    mac = hmac.new(_CURSOR_KEY, body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")


def read_cursor(
    entity: Entity[Any], sort: SortKey, token: str
) -> Result[tuple[Any, ...], InvalidQuery]:
    """Verify a cursor's signature and that it belongs to this sort; return its values."""
    bad = Failure(InvalidQuery("after", "is not a valid cursor for this query"))
    if not isinstance(token, str) or len(token) > 8192:
        return bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return bad
    mac, body = raw[:16], raw[16:]
    if not hmac.compare_digest(mac, hmac.new(_CURSOR_KEY, body, hashlib.sha256).digest()[:16]):
        return bad
    try:
        data = json.loads(body)
        if data["k"] != [c for c, _, _ in sort]:
            return bad
        values = tuple(
            _decode(entity.by_name[c].kind, item)
            for (c, _, _), item in zip(sort, data["v"], strict=True)
        )
    except (KeyError, ValueError, TypeError):
        return bad
    return Success(values)
