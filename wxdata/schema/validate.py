"""Validation of values against an entity spec: pure functions, no database.

A Failure names every bad field and the rule it broke; it never repeats the value (values are PHI).
Values are coerced only where the intent is unambiguous (ISO strings to dates, strings to UUIDs and
decimals); everything else must already have the column's type. Every value is also checked against
the range its SQL type holds (``Column.limits``, derived once from the declaration): integer
widths, numeric precision and scale (refused, never rounded), varchar lengths, text that PostgreSQL
can store (valid UTF-8, no NUL) and timestamps that load back into Python. What passes here is
stored and read back unchanged; see ``docs/validation.md``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, TypeVar
from uuid import UUID

import attrs
from returns.result import Failure, Result, Success

from wxdata.errors import FieldError, ValidationFailed
from wxdata.schema.spec import Column, Entity, Kind

MAX_TEXT = 1_000_000  # hard ceiling for unbounded text columns (1 MB)
MAX_JSON = 1_000_000
MAX_DECIMAL_TEXT = 1000  # a numeric string longer than this is refused before parsing
#: Timestamps must stay a day inside Python's years 1..9999 in UTC, so the value loads back in
#: any session time zone (a timestamptz is returned in the session's zone, up to ±16 h away).
_DT_LOW = datetime(1, 1, 2, tzinfo=UTC)
_DT_HIGH = datetime(9999, 12, 31, tzinfo=UTC) - timedelta(microseconds=1)
_JSON_INT = 10**4000
_EXACT_FLOAT = 2.0**53
_DT_RULE = "must be between 0001-01-02 and 9999-12-30 in UTC"

_Missing = object()


class _Bad(Exception):
    """Internal signal: the value broke ``rule``."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def unstorable_text(text: str) -> str | None:
    """The rule ``text`` breaks for PostgreSQL to store it, or None: no NUL character, and
    encodable as UTF-8 (no lone surrogate)."""
    if "\x00" in text:
        return "must not contain NUL bytes"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (no lone surrogates)"
    return None


def _no_nul(text: str) -> str:
    """Text PostgreSQL can store (:func:`unstorable_text`), or :class:`_Bad`."""
    rule = unstorable_text(text)
    if rule is not None:
        raise _Bad(rule)
    return text


def _check_int(column: Column, value: int) -> int:
    bounds = column.limits.int_range
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise _Bad(f"must be an integer from {bounds[0]} to {bounds[1]}")
    return value


def _check_decimal(column: Column, value: Decimal) -> Decimal:
    """Refuse (never round) a decimal with more digits than the column's numeric(p, s) holds."""
    if not value.is_finite():
        raise _Bad("must be finite")
    limit = column.limits.digits
    if limit is None or not value:
        return value
    whole, scale = limit
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # 'n'/'N'/'F': excluded by is_finite above
        raise _Bad("must be finite")
    significant = len(digits)
    if exponent < 0:
        trailing = 0
        for d in reversed(digits):
            if d or trailing == -exponent:
                break
            trailing += 1
        places = -exponent - trailing
        whole_digits = significant + exponent
    else:
        places = 0
        whole_digits = significant + exponent
    if places > scale:
        raise _Bad(f"must have at most {scale} decimal places")
    if whole_digits > whole:
        raise _Bad(f"must have at most {whole} digits before the decimal point")
    return value


def _check_datetime(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _Bad(_DT_RULE) from None
    if not _DT_LOW <= utc <= _DT_HIGH:
        raise _Bad(_DT_RULE)
    return utc  # the same instant; any offset Python allows binds (PostgreSQL's stop at ±15:59)


def _json_safe(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise _Bad("must be JSON nested at most 32 levels")
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -_JSON_INT < value < _JSON_INT:
            raise _Bad("must have JSON integers of at most 4000 digits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad("must be finite JSON numbers")
        # jsonb keeps the shortest decimal text of a float; a large integral float comes back as
        # that decimal's integer, which is another number unless the two agree exactly.
        if abs(value) >= _EXACT_FLOAT and Decimal(value) != Decimal(repr(value)):
            raise _Bad("must have JSON numbers that round-trip (large values as integers)")
    elif isinstance(value, list | tuple):
        for v in value:
            _json_safe(v, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Bad("must have string JSON keys")
            _no_nul(k)
            _json_safe(v, depth + 1)
    else:
        raise _Bad("must be JSON (dict, list, str, number, bool, null)")


def coerce_value(column: Column, value: Any) -> Any:
    """Return the value in the column's Python type, or raise _Bad naming the rule."""
    return _COERCE[column.kind](column, value)


def _text(column: Column, value: Any) -> Any:
    if not isinstance(value, str):
        raise _Bad("must be a string")
    return _no_nul(value)


def _bool(column: Column, value: Any) -> Any:
    if not isinstance(value, bool):
        raise _Bad("must be a boolean")
    return value


def _int(column: Column, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad("must be an integer")
    return _check_int(column, value)


def _float(column: Column, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad("must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise _Bad("must be finite") from None
    if not math.isfinite(number):
        raise _Bad("must be finite")
    if isinstance(value, int) and number != value:
        raise _Bad("must be exactly representable as a double")
    return number


def _decimal(column: Column, value: Any) -> Any:
    if isinstance(value, (bool, float)):
        raise _Bad("must be a Decimal, int or numeric string")
    if isinstance(value, str) and len(value) > MAX_DECIMAL_TEXT:
        raise _Bad(f"must be a numeric string of at most {MAX_DECIMAL_TEXT} characters")
    try:
        dec = value if isinstance(value, Decimal) else Decimal(_no_nul(value) if isinstance(
            value, str) else int(value))
    except (InvalidOperation, TypeError, ValueError):
        raise _Bad("must be a Decimal, int or numeric string") from None
    return _check_decimal(column, dec)


def _uuid(column: Column, value: Any) -> Any:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(_no_nul(value))
        except ValueError:
            raise _Bad("must be a UUID") from None
    raise _Bad("must be a UUID")


def _datetime(column: Column, value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(_no_nul(value))
        except ValueError:
            raise _Bad("must be an ISO-8601 timestamp") from None
    if not isinstance(value, datetime):
        raise _Bad("must be a timezone-aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _Bad("must be timezone-aware")
    return _check_datetime(value)


def _date(column: Column, value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(_no_nul(value))
        except ValueError:
            raise _Bad("must be an ISO-8601 date") from None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise _Bad("must be a date")
    return value


def _text_array(column: Column, value: Any) -> Any:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _Bad("must be a list of strings")
    return [_no_nul(v) for v in value]


def _uuid_array(column: Column, value: Any) -> Any:
    if not isinstance(value, list | tuple):
        raise _Bad("must be a list of UUIDs")
    try:
        return [v if isinstance(v, UUID) else UUID(str(v)) for v in value]
    except ValueError:
        raise _Bad("must be a list of UUIDs") from None


def _json(column: Column, value: Any) -> Any:
    _json_safe(value)
    if len(json.dumps(value)) > MAX_JSON:
        raise _Bad(f"must serialise to at most {MAX_JSON} bytes")
    return value


#: Each kind's conversion: one lookup per value, where a chain of kind tests cost a test for
#: every kind listed before the value's own.
_COERCE: dict[Kind, Callable[[Column, Any], Any]] = {
    Kind.TEXT: _text,
    Kind.BOOL: _bool,
    Kind.INT: _int,
    Kind.FLOAT: _float,
    Kind.DECIMAL: _decimal,
    Kind.UUID: _uuid,
    Kind.DATETIME: _datetime,
    Kind.DATE: _date,
    Kind.TEXT_ARRAY: _text_array,
    Kind.UUID_ARRAY: _uuid_array,
    Kind.JSON: _json,
}


def check_rules(column: Column, value: Any) -> None:
    """Raise _Bad if a typed, non-null value breaks one of the column's declared rules."""
    rules = column.rules
    if isinstance(value, str):
        limit = column.limits.max_chars or MAX_TEXT
        if len(value) > limit:
            raise _Bad(f"must be at most {limit} characters")
        if rules.choices is not None and value not in rules.choices:
            raise _Bad("must be one of: " + ", ".join(rules.choices))
        if rules.pattern is not None and not _regex(rules.pattern).fullmatch(value):
            raise _Bad("must match the required format")
    if isinstance(value, list) and column.kind is Kind.TEXT_ARRAY:
        limit = column.limits.max_chars or MAX_TEXT
        if any(len(v) > limit for v in value):
            raise _Bad(f"items must be at most {limit} characters")
        if rules.choices is not None and any(v not in rules.choices for v in value):
            raise _Bad("items must be one of: " + ", ".join(rules.choices))
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        if rules.minimum is not None and value < rules.minimum:
            raise _Bad(f"must be at least {rules.minimum:g}")
        if rules.maximum is not None and value > rules.maximum:
            raise _Bad(f"must be at most {rules.maximum:g}")
    if rules.not_future:
        today = datetime.now(UTC)
        if isinstance(value, datetime) and value > today:
            raise _Bad("must not be in the future")
        if isinstance(value, date) and not isinstance(value, datetime) and value > today.date():
            raise _Bad("must not be in the future")


def check_value(column: Column, value: Any) -> Any:
    """Coerce and check one value (None allowed only for nullable columns)."""
    if value is None:
        if not column.nullable:
            raise _Bad("must not be null")
        return None
    typed = coerce_value(column, value)
    check_rules(column, typed)
    return typed


def _validate(
    entity: Entity[Any], values: Mapping[str, Any], *, creating: bool
) -> Result[dict[str, Any], ValidationFailed]:
    errors: list[FieldError] = []
    clean: dict[str, Any] = {}
    if not isinstance(values, Mapping):
        return Failure(ValidationFailed(entity.name, (FieldError("<input>", "must be a mapping"),)))
    for name, value in values.items():
        column = entity.by_name.get(name) if isinstance(name, str) else None
        if column is None:
            label = name if isinstance(name, str) and len(name) <= 63 and name.isidentifier() \
                else "<unknown>"
            errors.append(FieldError(label, "is not a column of " + entity.name))
            continue
        if not column.writable:
            errors.append(FieldError(name, "is not writable"))
            continue
        try:
            clean[name] = check_value(column, value)
        except _Bad as bad:
            errors.append(FieldError(name, bad.rule))
    if creating:
        for column in (*entity.columns, *entity.secrets):
            if column.required and column.name not in values:
                errors.append(FieldError(column.name, "is required"))
    if creating and not errors:
        # Cross-field rules need the whole row: on update they run on the merged row (crud.update).
        for validator in entity.validators:
            errors.extend(validator(clean))
    if errors:
        return Failure(ValidationFailed(entity.name, tuple(errors)))
    return Success(clean)


def validate_create(
    entity: Entity[Any], values: Mapping[str, Any]
) -> Result[dict[str, Any], ValidationFailed]:
    """Check a new row's values: known, writable, typed, within rules, required ones present.

    A row the entity's precompiled create check (:func:`create_checker`) passes is clean as it is
    (the same clean values, property-tested); any other row takes the field-by-field path, which
    names every field error.
    """
    clean = create_checker(entity)(values)
    if clean is not None:
        return Success(clean)
    return _validate(entity, values, creating=True)


def validate_changes(
    entity: Entity[Any], changes: Mapping[str, Any]
) -> Result[dict[str, Any], ValidationFailed]:
    """Check a partial update: every key known, writable, typed and within its rules.

    Changes the entity's precompiled check (:func:`changes_checker`) passes are clean as they are
    (the same clean values, property-tested); any others take the field-by-field path, which names
    every field error.
    """
    if not changes:
        return Failure(ValidationFailed(entity.name, (FieldError("<changes>", "must not be empty"),)))
    clean = changes_checker(entity)(changes)
    if clean is not None:
        return Success(clean)
    return _validate(entity, changes, creating=False)


def merged_view(row: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The row's values with changes applied, for cross-field validators on update."""
    base = attrs.asdict(row, recurse=False)
    base.update(changes)
    return base


# --- Precompiled checks (creates, updates, bulk loads) ---------------------------------------------
#
# The field-by-field path (``_validate``) re-derives every rule from the column declaration for
# every value. ``create_checker`` and ``changes_checker`` derive them once per entity: per writable
# column, a test (``_accepted_test``) that accepts a value already in its column's exact Python
# type and within its rules, anything else going to ``check_value`` (which coerces or names the
# broken rule). The tests only ever accept what ``check_value`` accepts, unchanged, so values a
# checker passes are the values the field-by-field path returns; values it refuses take that path
# for the field errors. Each test is a Python expression, generated once: compiled into one
# function per column (the changes check calls those) and, for the create check, every column's
# into one function per entity, so that a row's values are checked with no call per value.
# ``validate_create`` and ``validate_changes`` try the checker first; a bulk load checks thousands
# of rows with it. Tested against the field-by-field path, on every entity (property-based) and
# rule by rule, in ``tests/integration/test_bulk_create.py``.

#: A create check: the clean values of a valid row, or None for a row ``validate_create`` refuses.
CreateCheck = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]
#: An update check: the clean changes, or None for changes ``validate_changes`` refuses.
ChangesCheck = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]
ValueCheck = Callable[[Any], Any]


def _accepted_test(column: Column, i: int) -> tuple[str, dict[str, Any]] | None:
    """The column's test of a value ``v`` that passes unchanged: a Python expression and the
    names it reads (suffixed ``_<i>``, so that the tests of every column can share one function),
    or None when every value of the column goes to ``check_value``.

    The one description of what a precompiled check accepts: compiled alone into the column's
    check (:func:`_value_check`) and together into the entity's create check
    (:func:`_create_checker`). It accepts only values ``check_value`` passes unchanged; numbers in
    it are ints formatted by ``int``, never text from the schema (names are looked up by
    placeholder).
    """
    kind = column.kind
    rules = column.rules
    if kind is Kind.TEXT:
        limit = int(column.limits.max_chars or MAX_TEXT)
        if rules.choices is not None and rules.pattern is None:
            # A declared choice that is plain text within the limit passes every text rule.
            accepted = frozenset(c for c in rules.choices
                                 if len(c) <= limit and c.isascii() and "\x00" not in c)
            return f"type(v) is str and v in accepted_{i}", {f"accepted_{i}": accepted}
        plain = f"type(v) is str and len(v) <= {limit} and v.isascii() and '\\x00' not in v"
        if rules.pattern is None:
            return plain, {}
        names: dict[str, Any] = {f"fullmatch_{i}": _regex(rules.pattern).fullmatch}
        if rules.choices is not None:
            names[f"choices_{i}"] = frozenset(rules.choices)
            plain += f" and v in choices_{i}"
        return plain + f" and fullmatch_{i}(v)", names
    if kind is Kind.UUID:
        return "type(v) is UUID", {"UUID": UUID}
    if kind is Kind.BOOL:
        return "(v is True or v is False)", {}
    if kind is Kind.DATE and not rules.not_future:
        return "type(v) is date", {"date": date}
    if kind is Kind.DATE:
        # ``today`` is read once per call of the generated function (:data:`_TODAY_LINE`)
        return "type(v) is date and v <= today", {"date": date, "utc_today": utc_today}
    if kind is Kind.INT and rules.minimum is None and rules.maximum is None:
        low, high = column.limits.int_range or (-(2**63), 2**63 - 1)
        return f"type(v) is int and {int(low)} <= v <= {int(high)}", {}
    return None


#: The line a generated check starts with when a test reads ``today`` (a date not in the future).
_TODAY_LINE = "    today = utc_today()"


def _generated(name: str, lines: list[str], namespace: dict[str, Any]) -> Any:
    """The function ``name`` defined by ``lines`` in ``namespace`` (compiled once per entity or
    column; the source holds placeholders and ints only). A test reading ``today`` has it read
    once, first (:data:`_TODAY_LINE`)."""
    if "utc_today" in namespace:
        lines = [lines[0], _TODAY_LINE, *lines[1:]]
    exec(compile("\n".join(lines) + "\n", f"<wxdata {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def _branches(column: Column, i: int) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """What column ``i``'s check does with a value ``v`` before ``check_value``: the (condition,
    clean value) pairs tried in order, and the names they read (``slow_<i>``, the column's
    ``check_value``, among them)."""
    names: dict[str, Any] = {f"slow_{i}": _slow(column)}
    branches = [("v is None", "None")] if column.nullable else []
    test = _accepted_test(column, i)
    if test is not None:
        expression, reads = test
        branches.append((expression, "v"))
        names.update(reads)
    return branches, names


_today: tuple[date, float] = (date.min, 0.0)  # today's date in UTC, valid until (epoch seconds)


def utc_today() -> date:
    """Today in UTC, as ``datetime.now(UTC).date()``, read from the clock once per day: the day
    every date rule of the schemas is checked against (``not_future``, an age in range)."""
    global _today
    today, until = _today
    if time.time() < until:
        return today
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    _today = (now.date(), midnight.timestamp())
    return now.date()


def _slow(column: Column) -> ValueCheck:
    def slow(value: Any) -> Any:
        return check_value(column, value)
    return slow


def _value_check(column: Column) -> ValueCheck:
    """The check of one column's values: exact types inline, everything else by ``check_value``
    (one generated function per column)."""
    branches, names = _branches(column, 0)
    lines = ["def check(v):"]
    for condition, value in branches:
        lines += [f"    if {condition}:", f"        return {value}"]
    lines.append("    return slow_0(v)")
    check: ValueCheck = _generated("check", lines, names)
    return check


def create_checker(entity: Entity[Any]) -> CreateCheck:
    """The create check of ``entity``, derived once per entity (see the section comment above).

    ``check(values)`` returns the clean values exactly as ``validate_create`` would, or None when
    ``validate_create`` would refuse the row (call it then for the field errors).
    """
    return _once(_CHECKERS, entity, _create_checker)


def changes_checker(entity: Entity[Any]) -> ChangesCheck:
    """The update check of ``entity``, derived once per entity: ``check(changes)`` returns the
    clean changes exactly as ``validate_changes`` would for non-empty ``changes``, or None when it
    would refuse them (call it then for the field errors). Cross-field validators are not its
    business: an update runs them on the merged row."""
    return _once(_CHANGE_CHECKERS, entity, _changes_checker)


#: Entity id -> (the entity, its check); the entity is kept so that its id is never reused.
_CHECKERS: dict[int, tuple[Entity[Any], CreateCheck]] = {}
_CHANGE_CHECKERS: dict[int, tuple[Entity[Any], ChangesCheck]] = {}
_Check = TypeVar("_Check")


def _once(memo: dict[int, tuple[Entity[Any], _Check]], entity: Entity[Any],
          build: Callable[[Entity[Any]], _Check]) -> _Check:
    """``build(entity)``, derived once per entity and kept in ``memo``."""
    found = memo.get(id(entity))
    if found is None or found[0] is not entity:
        found = (entity, build(entity))
        memo[id(entity)] = found
    return found[1]


def _value_checks(entity: Entity[Any]) -> dict[str, ValueCheck]:
    """The check of every writable column's values, by name."""
    return {c.name: _value_check(c) for c in entity.by_name.values() if c.writable}


def _changes_checker(entity: Entity[Any]) -> ChangesCheck:
    checks = _value_checks(entity)

    def check(changes: Mapping[str, Any]) -> dict[str, Any] | None:
        if type(changes) is not dict and not isinstance(changes, Mapping):
            return None
        clean = {}  # a loop, not a comprehension: no nested function called per write
        try:
            for name, value in changes.items():
                clean[name] = checks[name](value)
        except (KeyError, TypeError, _Bad):  # unknown or unwritable name, unhashable key, bad value
            return None
        return clean
    return check


def _create_checker(entity: Entity[Any]) -> CreateCheck:
    """One generated function for the entity: each writable column's value looked up by name and
    tested inline (:func:`_branches`), with no function called per value that passes its test;
    a name no writable column has, a value the column cannot take, a required column missing or a
    cross-field validator's error answers None. The clean values are in the columns' order."""
    namespace: dict[str, Any] = {
        "Mapping": Mapping, "Bad": _Bad, "missing": object(),
        "required": frozenset(c.name for c in (*entity.columns, *entity.secrets) if c.required),
        "validators": entity.validators,
    }
    lines = [
        "def check(values):",
        "    if type(values) is not dict and not isinstance(values, Mapping):",
        "        return None",
        "    try:",
        "        get = values.get",
        "        left = len(values)",
        "        clean = {}",
    ]
    for i, column in enumerate(c for c in entity.by_name.values() if c.writable):
        branches, names = _branches(column, i)
        namespace.update(names)
        namespace[f"name_{i}"] = column.name
        lines += [f"        v = get(name_{i}, missing)",
                  "        if v is not missing:",
                  "            left -= 1"]
        for k, (condition, value) in enumerate(branches):
            lines += [f"            {'elif' if k else 'if'} {condition}:",
                      f"                clean[name_{i}] = {value}"]
        if branches:
            lines += ["            else:", f"                clean[name_{i}] = slow_{i}(v)"]
        else:
            lines.append(f"            clean[name_{i}] = slow_{i}(v)")
    lines += [
        "    except (KeyError, TypeError, Bad):  # an unhashable key, a bad value",
        "        return None",
        "    if left or not required <= clean.keys():  # a name no writable column has; a gap",
        "        return None",
        "    for validator in validators:",
        "        for _ in validator(clean):  # any error (validators may yield them)",
        "            return None",
        "    return clean",
    ]
    check: CreateCheck = _generated("check", lines, namespace)
    return check
