"""Before/after diffs computed by value, redacted through the one registry.

``diff`` keeps only fields whose values differ as values (a date equal to itself, ``Decimal('1.0')``
and ``Decimal('1.00')``, equal JSON documents are unchanged), skips bookkeeping columns, and stores
secrets and clinical free text as markers so the fact and the field name survive without the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wxdata.audit.redact import MASK, SECRET_MARK, column_policy, redact_value
from wxdata.schema.spec import Entity

BOOKKEEPING = frozenset({"updated_at", "updated_by", "version"})


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b) and not (
        isinstance(a, int | float) and isinstance(b, int | float)
        and not isinstance(a, bool) and not isinstance(b, bool)
    ):
        return False
    return bool(a == b)


def diff(
    entity: Entity[Any] | None, before: Mapping[str, Any], after: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Fields that changed, as ``{field: {"before": b, "after": a}}`` (redacted)."""
    out: dict[str, dict[str, Any]] = {}
    for name in after:
        if name in BOOKKEEPING:
            continue
        old, new = before.get(name), after[name]
        if _same(old, new):
            continue
        column = entity.by_name.get(name) if entity is not None else None
        policy = column_policy(column, name)
        if policy == "secret":
            out[name] = {"before": SECRET_MARK, "after": SECRET_MARK, "changed": True}
        elif policy == "mask":
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
