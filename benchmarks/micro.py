"""Micro-costs of wxdata's hot-path pieces, no database: ``python -m benchmarks.micro``.

Evidence for optimisation proposals: each line is the best of several ``timeit`` runs, in µs per
call, of one function the CRUD hot path calls per operation (validation, audit record building,
parameter dumping, row and result construction). Internals move while wxdata is being built, so
every item is guarded: one that no longer exists prints ``n/a`` instead of failing the run.
"""

from __future__ import annotations

import timeit
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any


class _Conn:
    """A weak-referenceable stand-in for a connection (no scope is open on it)."""


def _best(fn: Callable[[], Any], number: int = 20_000, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def items() -> list[tuple[str, Callable[[], Any]]]:
    """(label, zero-argument callable) pairs to time."""
    from psycopg.adapt import PyFormat, Transformer
    from returns.result import Success

    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.audit.record import AuditAction, compliance_of, context_params, record_params
    from wxdata.query import compiler
    from wxdata.query.paging import Page, parse_sort
    from wxdata.schema import STUDENTS
    from wxdata.schema.validate import validate_changes, validate_create

    crud = __import__("wxdata.crud", fromlist=["_record"])
    ctx = ExecutionContext(user_id="u-bench", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           ip_address="10.1.2.3", user_agent="bench", request_id="req-1")
    values = {"student_number": "BN-1", "first_name": "Ada", "last_name": "Lovelace",
              "date_of_birth": date(2014, 5, 17), "grade": "5", "gender": "FEMALE",
              "enrollment_date": date(2020, 9, 1), "school_id": uuid.uuid4(),
              "district_id": uuid.uuid4()}
    cols = STUDENTS.column_names
    record = crud._record(ctx, STUDENTS, AuditAction.READ, fields=cols)
    row = (uuid.uuid4(), "S1", "Ada", "Lovelace", date(2014, 5, 17), "5", "FEMALE", None, None,
           True, date(2020, 9, 1), None, None, None, 1, None, None, "u", "u", None)
    params = {**context_params(ctx), **record_params(record), "_id": uuid.uuid4()}
    text_params = {**params, "a_fields_disclosed": "{" + ",".join(cols) + "}",
                   "a_tags": "{student,read}"}
    clean = {"id": uuid.uuid4(), **values, "created_by": "u", "updated_by": "u"}
    ordered = crud._ordered(STUDENTS, clean)
    made = STUDENTS.row_type(*row)
    dummy = _Conn()
    from wxdata.core.auditing import _riding
    from wxdata.core.reads import _by_id as by_id
    from wxdata.query.filters import bind, bind_where, parse

    riding_params = {**_riding(ctx, STUDENTS, AuditAction.READ, cols).params(ctx), "_id": uuid.uuid4()}
    riding_formats = [PyFormat.AUTO] * len(riding_params)
    flat = {"grade": "5", "last_name": "Lovelace"}
    tx = Transformer()
    formats = [PyFormat.AUTO] * len(params)
    out: list[tuple[str, Callable[[], Any]]] = [
        ("validate_create(students, 9 values)", lambda: validate_create(STUDENTS, values)),
        ("validate_changes(students, {grade})", lambda: validate_changes(STUDENTS, {"grade": "6"})),
        ("crud._record(READ, 20 fields)", lambda: crud._record(ctx, STUDENTS, AuditAction.READ,
                                                                fields=cols)),
        ("crud._ride_params(ctx, record)", lambda: crud._ride_params(ctx, record)),
        ("record_params(record)", lambda: record_params(record)),
        ("context_params(ctx)", lambda: context_params(ctx)),
        ("compliance_of(students)", lambda: compliance_of(STUDENTS)),
        ("Entity.is_phi (property)", lambda: STUDENTS.is_phi),
        ("Entity.audit_reads (property)", lambda: STUDENTS.audit_reads),
        ("Entity.column_names (property)", lambda: STUDENTS.column_names),
        ("crud._reads_audited(students)", lambda: crud._reads_audited(STUDENTS)),
        ("compiler.select_by_id (memo hit)", lambda: compiler.select_by_id(STUDENTS, cols, "live")),
        ("parse_sort(2 keys)", lambda: parse_sort(STUDENTS, [("last_name", "asc"),
                                                             ("first_name", "asc")])),
        ("Student(*row) attrs row", lambda: STUDENTS.row_type(*row)),
        ("Success(x) + isinstance", lambda: isinstance(Success(row), Success)),
        ("Page.of(20 rows)", lambda: Page.of([row] * 20, 1, 20, 1000)),
        ("uuid4()", uuid.uuid4),
        ("crud._ordered(12 columns)", lambda: crud._ordered(STUDENTS, clean)),
        ("crud._write_params(12 values)", lambda: crud._write_params(STUDENTS, clean)),
        ("compiler.insert_row (memo hit)", lambda: compiler.insert_row(STUDENTS, ordered, cols)),
        ("crud._subjects(1 row)", lambda: crud._subjects(STUDENTS, (made,))),
        ("crud._announce(1 write, no listener)",
         lambda: crud._announce(dummy, STUDENTS, "CREATE", (made.id,), (made.id,))),
        ("psycopg dump: audited fetch params (lists)",
         lambda: tx.dump_sequence(list(params.values()), formats)),
        ("psycopg dump: same, arrays pre-rendered as text",
         lambda: tx.dump_sequence(list(text_params.values()), formats)),
        ("psycopg dump: riding read params as bound (memoised record)",
         lambda: tx.dump_sequence(list(riding_params.values()), riding_formats)),
        ("filters: parse + bind (2 equalities)",
         lambda: parse(flat).bind(lambda node: bind(STUDENTS, node))),
        ("filters: bind_where (2 equalities, shape memoised)",
         lambda: bind_where(STUDENTS, flat)),
        ("reads._by_id (statement + builder, memo hit)", lambda: by_id(STUDENTS, False)),
    ]
    return out


def main() -> None:
    """Print the table."""
    print(f"{'µs/call':>9}  item")
    for label, fn in items():
        try:
            fn()
            cost = f"{_best(fn):9.2f}"
        except Exception as exc:
            cost = f"{'n/a':>9}  ({type(exc).__name__}: {exc})"
        print(f"{cost}  {label}")


if __name__ == "__main__":
    main()
