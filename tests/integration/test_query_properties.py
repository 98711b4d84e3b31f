"""Property tests of the query compiler and pagination against a Python reference.

For generated filter trees (every operator of D3, and/or/not nesting) over a seeded set of
students: the SQL text carries no value (all bound), and the rows PostgreSQL returns are exactly
the rows a Python reference filter with SQL three-valued logic selects. Page metadata obeys its
invariants and concatenated pages equal the whole ordered result. Every query runs through both
shells (``wxdata.domains`` and their ``wxdata.aio.domains`` twins); the compiler's own properties
are shell-free and run once.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import date, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import student_values
from tests.shells import parametrise
from wxdata import ExecutionContext
from wxdata.domains import students
from wxdata.query import compiler
from wxdata.query.filters import And, Cond, Node, Not, Or, Pattern, bind, escape_like
from wxdata.schema import STUDENTS

GRADES = ["K", "1", "5", "6", "12"]
NAMES = ["Ab%c", "ab_c", "O'Neil", "back\\slash", "Zed", "abc", "ABC", "x%y_z"]
BASE = date(2010, 1, 1)
#: No wxdata call: the same under both shells, run once.
shell_free = pytest.mark.sync_only
parametrise(globals())

# --- the seeded data -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(db_url: str) -> dict[str, Any]:
    import psycopg

    from wxdata import system_context

    ctx = system_context("property-tests")
    with psycopg.connect(db_url, autocommit=True) as conn:
        tag = uuid.uuid4().hex[:8]
        d = conn.execute("INSERT INTO districts (name, code) VALUES ('P', %s) RETURNING id",
                         (f"P-{tag}",)).fetchone()
        s = conn.execute(
            "INSERT INTO schools (name, code, district_id) VALUES ('P', %s, %s) RETURNING id",
            (f"PS-{tag}", d[0])).fetchone()
        school = {"district_id": d[0], "school_id": s[0]}
        rows = []
        for i in range(40):
            values = student_values(
                school,
                last_name=NAMES[i % len(NAMES)],
                grade=GRADES[i % len(GRADES)],
                date_of_birth=BASE + timedelta(days=97 * i),
                is_active=i % 3 != 0,
                medical_record_num=None if i % 4 == 0 else f"MR-{tag[:4].upper()}{i:04d}",
            )
            rows.append(values)
        ids = students.bulk_create(conn, ctx, rows).unwrap()
        for new_id, values in zip(ids, rows, strict=True):
            values["id"] = new_id
    return {"school": school, "rows": rows}


@pytest.fixture
def ctx(ctx: ExecutionContext, dataset: dict[str, Any]) -> ExecutionContext:
    """The nurse, scoped to the dataset's school as well as to the ``school`` fixture's school."""
    return attrs.evolve(ctx, school_ids=ctx.school_ids | {dataset["school"]["school_id"]})


# --- filter trees and their Python meaning ---------------------------------------------------

dates = st.integers(min_value=-5, max_value=45).map(lambda n: BASE + timedelta(days=97 * n))


def leaves() -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(Cond, st.just("grade"), st.sampled_from(["eq", "ne"]), st.sampled_from(GRADES)),
        st.builds(Cond, st.just("grade"), st.sampled_from(["in", "not_in"]),
                  st.lists(st.sampled_from(GRADES), min_size=1, max_size=3)),
        st.builds(Cond, st.just("is_active"), st.sampled_from(["eq", "ne"]), st.booleans()),
        st.builds(Cond, st.just("medical_record_num"), st.just("is_null"), st.booleans()),
        st.builds(Cond, st.just("date_of_birth"), st.sampled_from(["lt", "lte", "gt", "gte"]), dates),
        st.builds(lambda a, b: Cond("date_of_birth", "between", [min(a, b), max(a, b)]), dates, dates),
        st.builds(Cond, st.just("last_name"), st.sampled_from(["like", "ilike"]),
                  st.sampled_from(["b", "%", "_", "'", "\\", "Ab", "c", "x%y"])),
        st.builds(lambda p: Cond("last_name", "like", Pattern(p)), st.sampled_from(["a%", "%c", "_b_c"])),
        st.builds(Cond, st.just("medical_record_num"), st.sampled_from(["ne", "eq"]),
                  st.sampled_from(["MR-ZZZZ0001", "none"])),
    )


trees = st.recursive(
    leaves(),
    lambda children: st.one_of(
        st.builds(lambda xs: And(tuple(xs)), st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda xs: Or(tuple(xs)), st.lists(children, min_size=1, max_size=3)),
        st.builds(Not, children),
    ),
    max_leaves=8,
)


def _like(value: str, pattern: str, ci: bool) -> bool:
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.fullmatch(out, value, re.DOTALL | (re.IGNORECASE if ci else 0)) is not None


def evaluate(node: Node, row: dict[str, Any]) -> bool | None:
    """SQL three-valued logic: None is UNKNOWN."""
    if isinstance(node, And):
        vals = [evaluate(i, row) for i in node.items]
        return False if False in vals else None if None in vals else True
    if isinstance(node, Or):
        vals = [evaluate(i, row) for i in node.items]
        return True if True in vals else None if None in vals else False
    if isinstance(node, Not):
        v = evaluate(node.item, row)
        return None if v is None else not v
    value = row.get(node.field)
    op, arg = node.op, node.value
    if op == "is_null":
        return (value is None) == arg
    if value is None:
        return None
    if op in ("like", "ilike"):
        pattern = arg.text if isinstance(arg, Pattern) else "%" + escape_like(arg) + "%"
        return _like(value, pattern, op == "ilike")
    ops = {"eq": lambda: value == arg, "ne": lambda: value != arg, "lt": lambda: value < arg,
           "lte": lambda: value <= arg, "gt": lambda: value > arg, "gte": lambda: value >= arg,
           "in": lambda: value in arg, "not_in": lambda: value not in arg,
           "between": lambda: arg[0] <= value <= arg[1]}
    return bool(ops[op]())


def _values(node: Node) -> list[Any]:
    if isinstance(node, And | Or):
        return [v for i in node.items for v in _values(i)]
    if isinstance(node, Not):
        return _values(node.item)
    return [node.value]


@shell_free
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_sql_text_binds_every_value(tree: Node) -> None:
    bound = bind(STUDENTS, tree).unwrap()
    sql = compiler.select_page(STUDENTS, bound.shape, (("id", compiler.Direction.ASC,
                                                        compiler.Nulls.LAST),), STUDENTS.column_names)
    bare = re.sub(r"%\((\w+)\)s", "", sql)
    assert "'" not in bare and "%" not in bare
    placeholders = set(re.findall(r"%\((p\d+)\)s", sql))
    assert placeholders == {f"p{i}" for i in range(len(bound.values))}
    for value in _values(tree):
        text = value.text if isinstance(value, Pattern) else value
        if isinstance(text, str) and len(text) >= 2:
            assert text not in bare


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_filter_selects_exactly_the_reference_rows(conn, ctx, dataset, tree: Node) -> None:
    school_id = dataset["school"]["school_id"]
    where = And((Cond("school_id", "eq", school_id), tree))
    got = students.find_many(conn, ctx, where, limit=100).unwrap()
    expected = {r["id"] for r in dataset["rows"] if evaluate(tree, r) is True}
    assert {r.id for r in got.data} == expected
    assert got.total == len(expected)
    assert students.count(conn, ctx, where).unwrap() == len(expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, limit=st.integers(min_value=1, max_value=15),
       desc=st.booleans())
def test_pages_concatenate_to_the_ordered_result(conn, ctx, dataset, tree: Node, limit: int,
                                                 desc: bool) -> None:
    school_id = dataset["school"]["school_id"]
    where = And((Cond("school_id", "eq", school_id), tree))
    order = [("date_of_birth", "desc" if desc else "asc")]
    expected_rows = [r for r in dataset["rows"] if evaluate(tree, r) is True]
    expected_rows.sort(key=lambda r: r["id"])
    expected_rows.sort(key=lambda r: r["date_of_birth"], reverse=desc)
    total = len(expected_rows)
    pages = max(1, math.ceil(total / limit))
    seen = []
    for number in range(1, pages + 2):
        page = students.find_many(conn, ctx, where, order_by=order, page=number,
                                  limit=limit).unwrap()
        assert page.total == total
        assert page.pages == math.ceil(total / limit)
        assert page.has_next == (number < page.pages)
        assert page.has_previous == (number > 1)
        assert len(page.data) == max(0, min(limit, total - (number - 1) * limit))
        seen.extend(r.id for r in page.data)
    assert seen == [r["id"] for r in expected_rows]


@shell_free
def test_compiled_sql_is_memoised_per_shape() -> None:
    a = bind(STUDENTS, Cond("grade", "eq", "5")).unwrap()
    b = bind(STUDENTS, Cond("grade", "eq", "6")).unwrap()
    assert a.shape == b.shape
    sort = (("id", compiler.Direction.ASC, compiler.Nulls.LAST),)
    first = compiler.select_page(STUDENTS, a.shape, sort, STUDENTS.column_names)
    assert compiler.select_page(STUDENTS, b.shape, sort, STUDENTS.column_names) is first


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, limit=st.integers(min_value=1, max_value=9),
       directions=st.sampled_from([("asc", "asc"), ("desc", "desc"), ("asc", "desc"),
                                   ("desc", "asc")]))
def test_keyset_pages_concatenate_to_the_ordered_result(conn, ctx, dataset, tree: Node,
                                                        limit: int, directions) -> None:
    school_id = dataset["school"]["school_id"]
    where = And((Cond("school_id", "eq", school_id), tree))
    order = [("date_of_birth", directions[0]), ("student_number", directions[1])]
    expected = [r for r in dataset["rows"] if evaluate(tree, r) is True]
    expected.sort(key=lambda r: r["id"])  # the implicit tie-breaker, always ascending
    expected.sort(key=lambda r: r["student_number"], reverse=directions[1] == "desc")
    expected.sort(key=lambda r: r["date_of_birth"], reverse=directions[0] == "desc")
    seen: list[Any] = []
    cursor = None
    for _ in range(len(expected) + 2):
        page = students.find_after(conn, ctx, where, order_by=order, after=cursor,
                                   limit=limit).unwrap()
        seen.extend(r.id for r in page.data)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [r["id"] for r in expected]
