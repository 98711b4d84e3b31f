"""The one redaction registry: what may be stored, logged or shown about a value, and how.

Two sources decide, together: the column's data class from the entity spec (secrets are never
stored; clinical free text is masked) and case-insensitive substring rules on field names, which
catch secrets in places the schema does not describe (metadata, nested JSON, error details).
Audit diffs, log records and error details all pass through these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from wxdata.schema.spec import Column, DataClass, Entity

SECRET_MARK = "[SECRET]"  # noqa: S105 - a marker, not a password
MASK = "[MASKED]"

#: Field-name fragments that always denote a secret, matched case-insensitively as substrings.
SECRET_NAME_PARTS: tuple[str, ...] = (
    "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "private_key",
    "privatekey", "ssn", "social_security", "tax_id", "taxid", "credit_card", "creditcard",
    "card_number", "bank_account", "mfa", "otp", "backup_code", "salt", "session_key",
    "encryption_key", "hmac_key", "cache_key",
)


def is_secret_name(name: str) -> bool:
    """True when a field name matches a secret rule (substring, any case)."""
    lowered = name.lower().replace("-", "_")
    compact = lowered.replace("_", "")
    return any(part in lowered or part.replace("_", "") in compact for part in SECRET_NAME_PARTS)


def to_json_value(value: Any) -> Any:
    """Make a value JSON-ready without losing meaning: ISO dates, exact decimals, arrays as arrays."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, Enum):
        return to_json_value(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


def scrub(value: Any) -> Any:
    """Redact secret-named keys at any depth of a JSON-like value (for metadata and details)."""
    if isinstance(value, Mapping):
        return {
            str(k): SECRET_MARK if is_secret_name(str(k)) else scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return to_json_value(value)


def column_policy(column: Column | None, name: str) -> str:
    """'drop'-free policy for one field: 'secret', 'mask' or 'keep'."""
    if column is not None and column.data_class is DataClass.SECRET:
        return "secret"
    if is_secret_name(name):
        return "secret"
    if column is not None and column.rules.clinical_text:
        return "mask"
    return "keep"


def redact_value(entity: Entity[Any] | None, name: str, value: Any) -> Any:
    """The storable form of one field's value: secret marker, mask, or the JSON-ready value."""
    column = entity.by_name.get(name) if entity is not None else None
    policy = column_policy(column, name)
    if policy == "secret":
        return SECRET_MARK
    if policy == "mask":
        return None if value is None else MASK
    return scrub(value) if isinstance(value, Mapping | list | tuple) else to_json_value(value)


def redact_row(entity: Entity[Any] | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot of a row (or input) safe to store in the audit trail."""
    return {name: redact_value(entity, name, v) for name, v in values.items()}
