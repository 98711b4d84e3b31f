"""A domain table's single-column rules are domains: each column with a closed vocabulary, a range,
a length or a list of allowed items is of its own domain, `<table>_<column>`, whose check holds
the rule the spec declares, no more and no less (property-tested against the spec's own
validation over every such column). Every other writer meets the same rule, refused with a check
violation that names the column and quotes no value; the columns read, compare and sort as their
base types; an upgrade in place keeps every row as it was, and one that meets rows outside a
rule its table never held stops before changing anything, naming the column and the count."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from returns.result import Failure

import wxdata.domains  # noqa: F401 - registers every entity
from tests.upgrades import migrated_before
from wxdata.errors import FieldError, ValidationFailed, from_db_error
from wxdata.migrate import MigrationError
from wxdata.schema.documents import MAX_TAGS
from wxdata.schema.spec import Column, Entity, Kind, registered
from wxdata.schema.validate import validate_changes

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]

#: A column whose rule the spec holds in an entity validator rather than among the column's own
#: rules: at most ``MAX_TAGS`` tags on a document (``wxdata.schema.documents``).
ENTITY_RULED = {("documents", "tags")}

#: (table, column) -> (entity, column) for every column of a registered entity.
COLUMNS: dict[tuple[str, str], tuple[Entity[Any], Column]] = {
    (e.table, c.name): (e, c) for e in registered() for c in (*e.columns, *e.secrets)}


def _ruled(column: Column) -> bool:
    """Whether the spec declares a rule of the column alone that a domain holds."""
    rules = column.rules
    return (rules.choices is not None or rules.minimum is not None
            or rules.maximum is not None or rules.max_length is not None)


#: Every column the spec gives a rule of its own, but for the ones its table never held.
RULED = sorted(k for k, (_, c) in COLUMNS.items() if _ruled(c)
               and not (c.kind is Kind.TEXT and c.rules.choices is None
                        and c.sql_type.startswith("character varying")))
# (a varchar's max_length is its type's length, not a rule of a domain)

_DOMAINS = """
SELECT c.relname, a.attname, t.typname, format_type(t.typbasetype, t.typtypmod),
       string_agg(pg_get_constraintdef(k.oid), ' AND '), string_agg(k.conname, ',')
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p')
   AND c.relnamespace = 'public'::regnamespace
  JOIN pg_type t ON t.oid = a.atttypid AND t.typtype = 'd'
  LEFT JOIN pg_constraint k ON k.contypid = t.oid AND k.contype = 'c'
 WHERE a.attnum > 0 AND NOT a.attisdropped
 GROUP BY 1, 2, 3, 4
"""


@pytest.fixture
def owner(fresh_database: Callable[[], str]) -> Iterator[Conn]:
    """A superuser connection to a throw-away migrated database."""
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        yield conn


def _listed(definition: str) -> frozenset[str]:
    """The values a domain's ``VALUE IN (...)`` check lists (as PostgreSQL prints it)."""
    return frozenset(v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'::", definition))


def test_every_ruled_column_is_of_its_own_domain(conn: Conn) -> None:
    live = {(table, column): (domain, base, definition, names)
            for table, column, domain, base, definition, names in conn.execute(_DOMAINS)}
    problems = []
    for table, column in RULED + sorted(ENTITY_RULED):
        found = live.get((table, column))
        if found is None:
            problems.append(f"{table}.{column}: its rule is not a domain")
            continue
        domain, _, definition, names = found
        if domain != f"{table}_{column}" or names != f"{column}_check":
            problems.append(f"{table}.{column}: domain {domain} with check {names}")
        choices = COLUMNS[(table, column)][1].rules.choices
        if choices is not None and _listed(definition) != frozenset(choices):
            problems.append(f"{table}.{column}: the domain lists "
                            f"{sorted(_listed(definition) ^ frozenset(choices))} unlike the spec")
    ruled = set(RULED) | ENTITY_RULED
    problems += [f"{t}.{c}: a domain ({d}) for a column the spec gives no rule"
                 for (t, c), (d, *_) in sorted(live.items()) if (t, c) not in ruled]
    assert not problems, "\n".join(problems)
    assert len(RULED) >= 220


def test_no_table_check_reads_a_single_column(conn: Conn) -> None:
    """A table CHECK is set up again on every execution of a write: a rule of one column belongs
    in its domain (a new table's migration too). Rules over several columns stay CHECKs, and so do
    the audit trail's and wxdata's own tables' (their one vocabulary is read by a view)."""
    rows = conn.execute(
        "SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint"
        " WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
        " AND conrelid <> 0 AND cardinality(conkey) = 1"
        " AND conrelid::regclass::text !~ '^(audit_|wxdata_)'").fetchall()
    assert rows == []
    several = conn.execute(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND conrelid <> 0"
        " AND connamespace = 'public'::regnamespace AND cardinality(conkey) > 1").fetchone()
    assert several is not None and several[0] >= 30  # the cross-field rules are still there


def _near(low: float | None, high: float | None, lo: int, hi: int) -> st.SearchStrategy[int]:
    """Integers at and around the bounds, and anywhere in [lo, hi]."""
    edges = [b for b in (low, high) if b is not None]
    near = [st.integers(max(lo, int(b) - 3), min(hi, int(b) + 3)) for b in edges]
    return st.one_of(*near, st.integers(lo, hi))


def _values(column: Column) -> st.SearchStrategy[Any]:
    """Values of the column's type that the database can hold (its length, range, digits), at
    and around its rule's edges and anywhere else."""
    rules, limits = column.rules, column.limits
    if column.kind is Kind.TEXT and rules.choices is not None:
        listed = sorted(rules.choices)
        length = limits.max_chars or 5000
        return st.one_of(
            st.sampled_from(listed), st.sampled_from(listed).map(str.lower),
            st.sampled_from(listed).map(lambda v: " " + v), st.sampled_from(listed).map(
                lambda v: v[:-1]),
            st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=length),
        ).filter(lambda v: len(v) <= length)
    if column.kind is Kind.TEXT:  # a length
        limit = int(rules.max_length or 0)
        return st.integers(max(0, limit - 3), limit + 3).map(lambda n: "é" * n)
    if column.kind is Kind.TEXT_ARRAY and rules.choices is not None:
        return st.lists(st.one_of(st.sampled_from(sorted(rules.choices)),
                                  st.sampled_from(sorted(rules.choices)).map(str.lower),
                                  st.text(max_size=8).filter(lambda v: "\x00" not in v)),
                        max_size=6)
    if column.kind is Kind.INT:
        lo, hi = limits.int_range or (-(2**31), 2**31 - 1)
        return _near(rules.minimum, rules.maximum, lo, hi)
    if column.kind is Kind.FLOAT:
        edges = [b for b in (rules.minimum, rules.maximum) if b is not None]
        return st.one_of(*(st.floats(b - 1, b + 1) for b in edges),
                         st.sampled_from(edges), st.floats(-1e9, 1e9))
    if column.kind is Kind.DECIMAL:
        whole, scale = limits.digits or (8, 2)
        top = Decimal(10) ** whole - Decimal(1).scaleb(-scale)
        edges = [Decimal(str(b)) for b in (rules.minimum, rules.maximum) if b is not None]
        return st.one_of(*(st.decimals(b - 1, b + 1, places=scale) for b in edges),
                         st.sampled_from(edges), st.decimals(-top, top, places=scale))
    raise AssertionError(f"no values drawn for a {column.kind} column")


def _spec_accepts(entity: Entity[Any], column: Column, value: Any) -> bool:
    """Whether the spec's validation lets ``value`` into ``column`` (its own field's errors)."""
    match validate_changes(entity, {column.name: value}):
        case Failure(failed):
            return not any(e.field == column.name for e in failed.errors)
        case _:
            return True


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_columns_domain_accepts_exactly_what_its_spec_does(
    conn: Conn, data: st.DataObject,
) -> None:
    table, name = data.draw(st.sampled_from(RULED), label="column")
    entity, column = COLUMNS[(table, name)]
    value = data.draw(_values(column), label="value")
    domain = sql.Identifier(f"{table}_{name}")
    spec = _spec_accepts(entity, column, value)
    forms = [sql.SQL("SELECT CAST(%s AS {})").format(domain)]  # a parameter, typed by the driver
    if isinstance(value, str):  # and text as other writers send it
        forms += [sql.SQL("SELECT %s::text::{}").format(domain),
                  sql.SQL("SELECT %s::varchar::{}").format(domain)]
    for form in forms:
        if spec:
            assert conn.execute(form, (value,)).fetchone() is not None
            continue
        with pytest.raises(psycopg.errors.CheckViolation) as refused:
            conn.execute(form, (value,))
        # the column named, the rule, and nothing of the value
        assert from_db_error(refused.value, table) == ValidationFailed(
            entity=table, errors=(FieldError(name, "violates a check"),))
    assert conn.execute(sql.SQL("SELECT CAST(NULL AS {}) IS NULL").format(domain)
                        ).fetchone() == (True,)


def test_a_documents_tags_are_as_many_as_the_spec_allows_from_any_writer(conn: Conn) -> None:
    conn.execute("SELECT %s::documents_tags", (["t"] * MAX_TAGS,))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("SELECT %s::documents_tags", (["t"] * (MAX_TAGS + 1),))


_STUDENT = ("INSERT INTO students (student_number, first_name, last_name, date_of_birth, grade,"
            " gender, enrollment_date) VALUES (%s, 'Ada', 'Lovelace', '2014-05-17', '5', {},"
            " '2020-09-01')")


@pytest.mark.parametrize("form", ["%s", "%s::text", "%s::varchar"])
def test_a_hand_written_write_breaking_a_rule_writes_nothing(owner: Conn, form: str) -> None:
    before = owner.execute("SELECT count(*) FROM students").fetchone()
    with pytest.raises(psycopg.errors.CheckViolation):
        owner.execute(_STUDENT.format(form), ("S-1", "male"))
    owner.execute(_STUDENT.format(form), ("S-2", "FEMALE"))
    student = owner.execute("SELECT id FROM students WHERE student_number = 'S-2'").fetchone()
    with pytest.raises(psycopg.errors.CheckViolation):  # an UPDATE is held to it as well
        owner.execute(f"UPDATE students SET gender = {form} WHERE id = %s", ("NONE", student[0]))
    assert owner.execute("SELECT count(*), min(gender) FROM students").fetchone() == (
        before[0] + 1, "FEMALE")


def test_a_range_is_held_on_insert_update_and_copy(owner: Conn) -> None:
    owner.execute(_STUDENT.format("%s"), ("V-1", "OTHER"))
    (student,) = owner.execute("SELECT id FROM students WHERE student_number = 'V-1'").fetchone()
    insert = ("INSERT INTO vital_signs (student_id, measurement_date, heart_rate)"
              " VALUES (%s, now(), %s) RETURNING id")
    (vital,) = owner.execute(insert, (student, 72)).fetchone()
    for bad in (-1, 401):
        with pytest.raises(psycopg.errors.CheckViolation):
            owner.execute(insert, (student, bad))
        with pytest.raises(psycopg.errors.CheckViolation):
            owner.execute("UPDATE vital_signs SET heart_rate = %s WHERE id = %s", (bad, vital))
    copying = "COPY vital_signs (student_id, measurement_date, heart_rate) FROM STDIN"
    with pytest.raises(psycopg.errors.CheckViolation), owner.cursor().copy(copying) as copy:
        copy.write_row((student, "2024-01-01", 500))
    assert owner.execute("SELECT count(*), max(heart_rate) FROM vital_signs").fetchone() == (1, 72)


def test_ruled_columns_read_compare_and_sort_as_their_base_types(owner: Conn) -> None:
    for i, gender in enumerate(["OTHER", "FEMALE", "PREFER_NOT_TO_SAY", "MALE"]):
        owner.execute(_STUDENT.format("%s"), (f"S-{i}", gender))
    cur = owner.execute(
        "SELECT gender, pg_typeof(gender)::text FROM students WHERE gender LIKE %s"
        " AND gender = ANY(%s) AND gender > %s::text ORDER BY gender",
        ("%A%", ["MALE", "FEMALE", "PREFER_NOT_TO_SAY"], "A"))
    assert cur.fetchall() == [("FEMALE", "students_gender"), ("MALE", "students_gender"),
                              ("PREFER_NOT_TO_SAY", "students_gender")]
    assert cur.description is not None and cur.description[0].type_code == 1043  # varchar
    (student,) = owner.execute("SELECT id FROM students LIMIT 1").fetchone()
    owner.execute("INSERT INTO vital_signs (student_id, measurement_date, heart_rate, temperature)"
                  " VALUES (%s, now(), %s, %s)", (student, 72, 98.6))
    row = owner.execute("SELECT heart_rate, temperature, heart_rate + 1 FROM vital_signs"
                        " WHERE heart_rate BETWEEN 70 AND 80").fetchone()
    assert row == (72, 98.6, 73)  # an int and a float, as the base types are read
    # a value compared is not assigned: outside the rule it matches nothing and raises nothing
    for query, params in [("SELECT count(*) FROM students WHERE gender = %s", ("X",)),
                          ("SELECT count(*) FROM students WHERE gender = ANY(%s)", (["X"],)),
                          ("SELECT count(*) FROM vital_signs WHERE heart_rate = %s", (9999,))]:
        assert owner.execute(query, params, prepare=True).fetchone() == (0,)


def test_an_upgrade_keeps_every_row_and_the_same_rules(server_url: str, tmp_path: Path) -> None:
    with migrated_before(server_url, tmp_path / "sql", "0221_") as (conn, upgrade):
        for i, gender in enumerate(["MALE", "FEMALE", "OTHER", "PREFER_NOT_TO_SAY"]):
            conn.execute(_STUDENT.format("%s"), (f"U-{i}", gender))
        (student,) = conn.execute("SELECT id FROM students LIMIT 1").fetchone()
        conn.execute("INSERT INTO vital_signs (student_id, measurement_date, heart_rate, pain,"
                     " temperature) VALUES (%s, '2024-03-01', 88, 3, 99.1)", (student,))
        conn.execute("INSERT INTO alert_rules (name, category, severity, trigger_conditions)"
                     " VALUES ('r', 'HEALTH', 'HIGH', '{}')")
        snapshot = ("SELECT s.*, v.*, a.* FROM students s CROSS JOIN vital_signs v"
                    " CROSS JOIN alert_rules a ORDER BY s.student_number")
        before = conn.execute(snapshot).fetchall()
        assert upgrade()[0] == "0221_column_checks_as_domains.sql"
        assert conn.execute(snapshot).fetchall() == before
        assert conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'c'"
            " AND conrelid IN ('students'::regclass, 'vital_signs'::regclass)").fetchone() == (0,)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(_STUDENT.format("%s"), ("U-9", "UNKNOWN"))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE alert_rules SET severity = 'SEVERE'")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE vital_signs SET pain = 11")


def test_an_upgrade_meeting_rows_outside_a_rule_stops_before_changing_anything(
    server_url: str, tmp_path: Path,
) -> None:
    """sql/0222 gives three columns the rule the spec always held; rows another writer left
    outside it stop the migration, which names the column and how many rows, not a value."""
    with migrated_before(server_url, tmp_path / "sql", "0222_") as (conn, upgrade):
        conn.execute(_STUDENT.format("%s"), ("L-1", "MALE"))
        (student,) = conn.execute("SELECT id FROM students LIMIT 1").fetchone()
        conn.execute("INSERT INTO health_records (student_id, record_type, title, description,"
                     " record_date) VALUES (%s, 'LEGACY_NOTE', 't', 'd', '2024-01-01')",
                     (student,))
        with pytest.raises(MigrationError) as refused:
            upgrade()
        message = str(refused.value)
        assert "0222_spec_rules_held.sql failed (sqlstate 23514)" in message
        assert "health_records.record_type: 1 rows" in message and "LEGACY" not in message
        assert conn.execute("SELECT count(*) FROM wxdata_migrations WHERE name LIKE '0222%'"
                            ).fetchone() == (0,)
        assert conn.execute("SELECT pg_typeof(record_type)::text FROM health_records"
                            ).fetchone() == ("character varying",)
        conn.execute("UPDATE health_records SET record_type = 'OTHER'")
        assert upgrade()[0] == "0222_spec_rules_held.sql"
        for breaking in ("UPDATE health_records SET record_type = 'LEGACY_NOTE'",
                         "SELECT (-1)::users_failed_login_attempts", "SELECT 'OWNER'::users_role"):
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(breaking)
