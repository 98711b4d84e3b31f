"""Cross-field validators shared by the domain schemas (each mirrored by a table CHECK in ``sql/``;
a rule of one column is its column's domain there)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from wxdata.errors import FieldError
from wxdata.schema.spec import Validator, reads


def not_before(later: str, earlier: str) -> Validator:
    """A validator: ``later`` must not precede ``earlier`` when both are set."""

    @reads(later, earlier)
    def check(values: Mapping[str, Any]) -> Iterable[FieldError]:
        a, b = values.get(later), values.get(earlier)
        if isinstance(a, date) and isinstance(b, date) and type(a) is type(b) and a < b:
            yield FieldError(later, f"must not be before {earlier}")

    return check


def required_if(flag: str, field: str) -> Validator:
    """A validator: ``field`` is required when the boolean ``flag`` is true."""

    @reads(flag, field)
    def check(values: Mapping[str, Any]) -> Iterable[FieldError]:
        if values.get(flag) is True and values.get(field) is None:
            yield FieldError(field, f"is required when {flag} is true")

    return check


def only_if(flag: str, field: str) -> Validator:
    """A validator: ``field`` is set exactly when ``flag`` is true (an absent flag is false)."""

    @reads(flag, field)
    def check(values: Mapping[str, Any]) -> Iterable[FieldError]:
        on, value = values.get(flag) is True, values.get(field)
        if on and value is None:
            yield FieldError(field, f"is required when {flag} is true")
        if not on and value is not None:
            yield FieldError(field, f"is only allowed when {flag} is true")

    return check


def distinct(a: str, b: str) -> Validator:
    """A validator: columns ``a`` and ``b`` must not hold the same value."""

    @reads(a, b)
    def check(values: Mapping[str, Any]) -> Iterable[FieldError]:
        x, y = values.get(a), values.get(b)
        if x is not None and x == y:
            yield FieldError(b, f"must differ from {a}")

    return check


def required_with(present: str, field: str) -> Validator:
    """A validator: ``field`` is required whenever ``present`` is set."""

    @reads(present, field)
    def check(values: Mapping[str, Any]) -> Iterable[FieldError]:
        if values.get(present) is not None and values.get(field) is None:
            yield FieldError(field, f"is required when {present} is set")

    return check
