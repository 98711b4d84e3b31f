"""Before/after diffs computed by value, redacted through the one registry.

``diff`` keeps only fields whose values differ as values: a date equal to itself,
``Decimal('1.0')`` and ``Decimal('1.00')``, equal JSON documents (numbers compare numerically,
``true`` is not ``1``, key order is irrelevant) are unchanged, as PostgreSQL's ``IS DISTINCT FROM``
judges the same values in :mod:`wxdata.audit.sql`. Bookkeeping columns are skipped. Secrets and
clinical free text are stored as markers, so the fact and the field name survive without the
value; a secret that was set is recorded even when its old value is unknown (never read back).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from wxdata.audit.redact import MASK, SECRET_MARK, column_policy, redact_value
from wxdata.schema.spec import Entity

#: Skipped by name when the entity is unknown; with a spec every managed column is skipped.
BOOKKEEPING = frozenset({"updated_at", "updated_by", "version"})

_MISSING = object()


def _number(value: Any) -> Decimal | None:
    """A JSON number as an exact Decimal (floats through their shortest repr), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:  # pragma: no cover - repr of a float is always a valid Decimal
        return None


def same_value(a: Any, b: Any) -> bool:
    """Whether two column or JSON values are equal as values (not as Python objects)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    na, nb = _number(a), _number(b)
    if na is not None or nb is not None:
        if na is None or nb is None:
            return False
        if na.is_nan() or nb.is_nan():
            return na.is_nan() and nb.is_nan()
        return na == nb
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)) or a.keys() != b.keys():
            return False
        return all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        if not (isinstance(a, list | tuple) and isinstance(b, list | tuple)) or len(a) != len(b):
            return False
        return all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):  # a date is not the datetime of its midnight, "1" is not 1
        return False
    if isinstance(a, float) and math.isnan(a):  # pragma: no cover - handled as numbers above
        return math.isnan(b)
    return bool(a == b)


def _skipped(entity: Entity[Any] | None, name: str) -> bool:
    if entity is None:
        return name in BOOKKEEPING
    column = entity.by_name.get(name)
    if column is None:
        return name in BOOKKEEPING
    return column.rules.managed is not None


def diff(
    entity: Entity[Any] | None, before: Mapping[str, Any], after: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Fields that changed, as ``{field: {"before": b, "after": a}}`` (redacted).

    Only fields present in ``after`` are considered (a partial update). Masked and secret fields
    carry ``"changed": true``.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in after:
        if _skipped(entity, name):
            continue
        old, new = before.get(name, _MISSING), after[name]
        column = entity.by_name.get(name) if entity is not None else None
        policy = column_policy(column, name)
        if policy == "secret":
            if old is _MISSING or not same_value(old, new):
                out[name] = {"before": SECRET_MARK, "after": SECRET_MARK, "changed": True}
            continue
        if old is _MISSING:
            old = None
        if same_value(old, new):
            continue
        if policy == "mask":
            out[name] = {
                "before": None if old is None else MASK,
                "after": None if new is None else MASK,
                "changed": True,
            }
        else:
            out[name] = {
                "before": redact_value(entity, name, old),
                "after": redact_value(entity, name, new),
            }
    return out


def split(changes: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """previous_values and new_values columns from a diff."""
    return (
        {k: v["before"] for k, v in changes.items()},
        {k: v["after"] for k, v in changes.items()},
    )
