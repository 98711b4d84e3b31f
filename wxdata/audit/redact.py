"""The one redaction registry: what may be stored, logged or shown about a value, and how.

Two sources decide, together: the column's data class from the entity spec (secrets are never
stored; clinical free text is masked) and rules on field names, which catch secrets in places the
schema does not describe (metadata, nested JSON, error details). Audit diffs, log records and error
details all pass through these functions, and :mod:`wxdata.audit.sql` renders the same rules in
SQL (the name rules are two regular expressions valid both in Python and in PostgreSQL).

Name rule: a name is normalised (``-`` to ``_``, camelCase split with ``_``, lower case). It is a
secret when its *compact* form (separators removed) contains a fragment of
:data:`SECRET_NAME_PARTS` (``passwordResetToken``, ``mfa_secret``, ``API-Key``), or when it
contains one of :data:`SECRET_NAME_TOKENS` as whole ``_``-separated tokens (``ssn``,
``student_ssn``, ``otp_code``; but not ``classname`` or ``spinal``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any
from uuid import UUID

from wxdata.schema.spec import Column, DataClass, Entity

SECRET_MARK = "[SECRET]"  # noqa: S105 - a marker, not a password
MASK = "[MASKED]"

#: Fragments that denote a secret anywhere in a name's compact form (separators removed).
SECRET_NAME_PARTS: tuple[str, ...] = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "privatekey", "accesskey",
    "signingkey", "sessionkey", "encryptionkey", "hmackey", "cachekey", "socialsecurity",
    "creditcard", "cardnumber", "bankaccount", "backupcode", "recoverycode",
)
#: Short secret words that only count as whole tokens (``_?`` allows ``taxid`` and ``tax_id``).
SECRET_NAME_TOKENS: tuple[str, ...] = ("ssn", "otp", "pwd", "pin", "salt", "cvv", "cvc", "tax_?id")

#: Regular expressions (Python ``re`` and PostgreSQL ARE alike) over the compact / normal form.
SECRET_PARTS_RE = "(" + "|".join(SECRET_NAME_PARTS) + ")"
SECRET_TOKENS_RE = "(^|_)(" + "|".join(SECRET_NAME_TOKENS) + ")(_|$)"
#: camelCase boundary, split with ``_`` before lower-casing.
CAMEL_RE = "([a-z0-9])([A-Z])"

_parts = re.compile(SECRET_PARTS_RE)
_tokens = re.compile(SECRET_TOKENS_RE)
_camel = re.compile(CAMEL_RE)


def normal_name(name: str) -> str:
    """A name in normal form: ``-`` to ``_``, camelCase split with ``_``, lower case."""
    return _camel.sub(r"\1_\2", name.replace("-", "_")).lower()


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True when a field name denotes a secret (see the module docstring for the rule); decided
    once per name (column and metadata key names repeat on every record)."""
    normal = normal_name(name)
    return bool(_parts.search(normal.replace("_", ""))) or bool(_tokens.search(normal))


def _trim_fraction(text: str) -> str:
    """Drop trailing zeros of fractional seconds, as PostgreSQL prints them."""
    match = re.match(r"^(.*T?\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", text)
    if match is None:
        return text
    head, fraction, tail = match.groups()
    fraction = fraction.rstrip("0")
    return f"{head}.{fraction}{tail}" if fraction else f"{head}{tail}"


def to_json_value(value: Any) -> Any:
    """Make a value JSON-ready without losing meaning, rendered as PostgreSQL's ``to_jsonb`` does.

    ISO-8601 dates and times; decimals as exact strings (``"1.50"``); non-finite floats as
    ``"NaN"``/``"Infinity"``; UUIDs as strings; arrays stay arrays; mappings stay objects.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, datetime | time):
        return _trim_fraction(value.isoformat())
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.copy_abs() if value.is_zero() else value, "f")
    if isinstance(value, UUID):
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
    """The policy of one field: 'secret' (never stored), 'mask' (clinical text) or 'keep'."""
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
