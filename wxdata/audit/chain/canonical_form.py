"""The canonical form of an ``audit_log`` row: the bytes every chain hash covers.

``canonical`` is JSON (sorted keys, no spaces, UTF-8) of every non-NULL column, each value in a
fixed text form. :func:`row_encoder` produces the same bytes straight from the text-stable rows
that :func:`wxdata.audit.chain.columns.select_list` reads, without building a mapping per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from json.encoder import encode_basestring as _encode_str
from typing import Any
from uuid import UUID


def _norm(value: Any) -> Any:
    """The canonical JSON value of one column (already-text values pass through)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive timestamps have no canonical form")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date | UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("non-finite floats have no canonical form")
        return value
    return str(value)


def canonical(record: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a record: sorted-key compact JSON of its non-NULL columns, UTF-8."""
    body = {str(k): _norm(v) for k, v in record.items() if v is not None}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def row_encoder(names: Sequence[str]) -> Callable[[Sequence[Any]], bytes]:
    """Fast :func:`canonical` for rows read with ``select_list`` (str/int/bool/None only).

    Produces exactly ``canonical(dict(zip(names, row)))``: keys in sorted order, strings escaped
    by the JSON module's own encoder, ``true``/``false``, integers in decimal.
    """
    order = sorted(range(len(names)), key=names.__getitem__)
    fields = [(i, _encode_str(names[i]) + ":") for i in order]

    def encode(row: Sequence[Any]) -> bytes:
        parts = []
        for i, prefix in fields:
            value = row[i]
            if value is None:
                continue
            if value is True:
                parts.append(prefix + "true")
            elif value is False:
                parts.append(prefix + "false")
            elif type(value) is int:
                parts.append(prefix + int.__repr__(value))
            elif type(value) is str:
                parts.append(prefix + _encode_str(value))
            else:  # not produced by select_list; keep the general path exact anyway
                parts.append(prefix + json.dumps(_norm(value), sort_keys=True,
                                                 separators=(",", ":"), ensure_ascii=False))
        return ("{" + ",".join(parts) + "}").encode("utf-8")

    return encode


__all__ = ["canonical", "row_encoder"]
