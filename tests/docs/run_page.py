"""Run one page's Python examples in order, in one namespace, after the documented prelude.

``python -m tests.docs.run_page PAGE`` (the test module starts it in a fresh process per page, so
what one page registers — an entity, a value type, the process cache — never leaks into another
page or into the rest of the suite). The process environment names the page's own database:
``DATABASE_URL`` (the application role, row-level security applies) and ``WXDATA_MIGRATION_URL``
(its owner). ``REDIS_URL`` is unset, so the process cache is the memory backend.

The prelude (documented in docs/index.md, "About the examples") defines:

- ``conn``: an autocommit psycopg connection as the application role, opened as wxdata opens its
  own (``connect_kwargs()``);
- ``school_id`` / ``district_id``: a school and its district, created for the page;
- ``ctx``: a nurse (``Role.NURSE``, ``Purpose.TREATMENT``) scoped to that school;
- ``student_id``: a student of that school (created with the system context).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from tests.docs.blocks import ROOT, blocks


def prelude() -> dict[str, Any]:
    """The names every page's examples may use (see the module docstring)."""
    from datetime import date

    import psycopg

    from wxdata import ExecutionContext, Purpose, Role, system_context
    from wxdata.db import connect_kwargs
    from wxdata.domains import students

    conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, **connect_kwargs())
    row = conn.execute(
        "INSERT INTO districts (name, code) VALUES ('Docs District', 'D-DOCS') RETURNING id"
    ).fetchone()
    assert row is not None
    district_id = row[0]
    row = conn.execute(
        "INSERT INTO schools (name, code, district_id) VALUES ('Docs School', 'S-DOCS', %s)"
        " RETURNING id", (district_id,),
    ).fetchone()
    assert row is not None
    school_id = row[0]
    ctx = ExecutionContext(
        user_id="u-nurse-1", role=Role.NURSE, purpose=Purpose.TREATMENT,
        ip_address="10.1.2.3", user_agent="docs", request_id="req-docs",
        school_ids={school_id},
    )
    student = students.create(conn, system_context("docs"), {
        "student_number": "S-0001", "first_name": "Ada", "last_name": "Lovelace",
        "date_of_birth": date(2014, 5, 17), "grade": "5", "gender": "FEMALE",
        "enrollment_date": date(2020, 9, 1), "school_id": school_id, "district_id": district_id,
    }).unwrap()
    return {"__name__": "__docs__", "conn": conn, "ctx": ctx, "school_id": school_id,
            "district_id": district_id, "student_id": student.id}


def run(page: str) -> int:
    """Execute the page's runnable blocks; 0 when all pass, else 1 with the failing block named."""
    namespace = prelude()
    try:
        for block in blocks(ROOT / page):
            if not block.runnable:
                continue
            # Pad so that tracebacks give the line numbers of the Markdown page itself.
            try:
                code = compile("\n" * block.line + block.code, page, "exec")
                exec(code, namespace)  # noqa: S102 - the examples are the project's own docs
            except BaseException:
                print(f"example at {block.label()} failed:", file=sys.stderr)
                traceback.print_exc()
                return 1
    finally:
        namespace["conn"].close()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))
    sys.exit(run(sys.argv[1]))
