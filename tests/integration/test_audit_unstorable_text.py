"""A record holding text the audit log cannot store is refused by name, and nothing is written.

PostgreSQL's ``text`` and ``jsonb`` cannot hold a NUL character or a lone surrogate. An explicit
disclosure whose caller-given metadata or field names carry one (in a key or a value, at any
depth) gets ``Failure(ValidationFailed)`` naming the record's field and the rule, with the value
itself nowhere in the error; no row reaches the log, on the caller's connection or on lane 2 (a
read-only unit of work); and the same call without it is recorded.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from wxdata import ExecutionContext, Purpose, Role
from wxdata.audit import log_export, log_read
from wxdata.errors import ValidationFailed
from wxdata.schema import HEALTH_RECORDS
from wxdata.tx import unit_of_work

Conn = psycopg.Connection[Any]

_TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=6)
#: Each character the log cannot store, and the rule it breaks.
_UNSTORABLE = {"\x00": "must not contain NUL bytes",
               "\ud800": "must be valid Unicode (no lone surrogates)"}


@st.composite
def _unstorable(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(the character, metadata holding it once somewhere, the same metadata without it)."""
    bad = draw(st.sampled_from(sorted(_UNSTORABLE)))
    key, value, item = draw(_TEXT), draw(_TEXT), draw(_TEXT)
    where = draw(st.sampled_from(["key", "value", "nested key", "list item"]))
    at = draw(st.integers(0, 6))

    def cut(text: str, nul: bool) -> str:
        return text[:at] + bad + text[at:] if nul else text

    def shape(nul: bool) -> dict[str, Any]:
        return {cut(key, nul and where == "key") or "k": cut(value, nul and where == "value"),
                "inner": {cut("name", nul and where == "nested key"): 1},
                "list": [cut(item, nul and where == "list item")]}

    return bad, shape(True), shape(False)


def _ctx() -> ExecutionContext:
    return ExecutionContext(user_id="u-nul", role=Role.NURSE, purpose=Purpose.TREATMENT,
                            request_id=f"req-{uuid.uuid4().hex[:12]}")


def _written(conn: Conn, ctx: ExecutionContext) -> int:
    row = conn.execute("SELECT count(*) FROM audit_log WHERE request_id = %s",
                       (ctx.request_id,)).fetchone()
    assert row is not None
    return int(row[0])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metadata=_unstorable(), export=st.booleans(), lane_two=st.booleans())
def test_metadata_the_log_cannot_store_is_refused_by_name_and_nothing_is_written(
    conn: Conn, metadata: tuple[str, dict[str, Any], dict[str, Any]], export: bool,
    lane_two: bool,
) -> None:
    """The character anywhere in the metadata: the field and the rule named, the value not
    echoed, no row; the same call without it writes its one record."""
    char, bad, good = metadata
    ids = [uuid.uuid4()]

    def log(conn: Conn, ctx: ExecutionContext, metadata: dict[str, Any]) -> Any:
        if export:
            return log_export(conn, ctx, HEALTH_RECORDS, ids=ids, metadata=metadata)
        return log_read(conn, ctx, HEALTH_RECORDS, ids, metadata=metadata)

    ctx = _ctx()
    if lane_two:  # a read-only unit of work: the record goes to lane 2
        with unit_of_work(conn, ctx, read_only=True):
            result = log(conn, ctx, bad)
    else:
        result = log(conn, ctx, bad)
    match result:
        case Failure(ValidationFailed(entity="AuditLog", errors=errors)):
            assert [(e.field, e.rule) for e in errors] == [("metadata", _UNSTORABLE[char])]
        case other:
            raise AssertionError(f"not refused by name: {other!r}")
    assert char not in repr(result.failure()) and char not in result.failure().message
    assert _written(conn, ctx) == 0
    twin = _ctx()
    assert log(conn, twin, good) == Success(None)
    assert _written(conn, twin) == 1


def test_a_field_name_the_log_cannot_store_is_refused_by_name(conn: Conn) -> None:
    ctx = _ctx()
    result = log_read(conn, ctx, HEALTH_RECORDS, [uuid.uuid4()], fields=["notes", "no\x00tes"])
    match result:
        case Failure(ValidationFailed(errors=errors)):
            assert [(e.field, e.rule) for e in errors] == [("fields_disclosed",
                                                            "must not contain NUL bytes")]
        case other:
            raise AssertionError(f"not refused by name: {other!r}")
    assert _written(conn, ctx) == 0
