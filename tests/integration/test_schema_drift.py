"""No drift between ``sql/`` and ``wxdata.schema``: after migrating an empty database, every
registered entity's table has exactly the spec's columns (readable and secret), with the same
canonical types, nullability and unique keys; every key has the server default a create relies
on (it sends no id); no table in ``public`` lacks a spec; no clinical
table cascades a student delete; the app role reads every entity and hard-deletes no PHI. The
specs' own consistency (classification, soft delete, references) is checked without a database in
``tests/unit/test_schema_specs.py``."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

import wxdata.domains  # noqa: F401 - registers every entity
from wxdata.schema.spec import Column, Entity, canonical_sql_type, registered

ENTITIES = sorted(registered(), key=lambda e: e.table)
#: Tables that are not entities: the audit machinery and the migration ledger.
NOT_ENTITIES = ("audit_log", "wxdata_migrations", "wxdata_scope_key")  # the last: owner-only


def _is_infrastructure(table: str) -> bool:
    return table in NOT_ENTITIES or table.startswith("audit_")


def _live_columns(conn: psycopg.Connection[Any], table: str) -> dict[str, tuple[str, bool]]:
    """Column name -> (format_type, nullable) as PostgreSQL reports them; a column of a domain
    (its rule, sql/0221) reports the domain's base type, what its values are stored as (the
    domain itself is checked in ``test_column_domains.py``)."""
    rows = conn.execute(
        "SELECT a.attname, CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)"
        "       ELSE format_type(a.atttypid, a.atttypmod) END, NOT a.attnotnull"
        "  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
        (f"public.{table}",),
    ).fetchall()
    return {name: (sql_type, nullable) for name, sql_type, nullable in rows}


def _spec_columns(entity: Entity[Any]) -> dict[str, Column]:
    return {c.name: c for c in (*entity.columns, *entity.secrets)}


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
def test_table_matches_spec(conn: psycopg.Connection[Any], entity: Entity[Any]) -> None:
    live = _live_columns(conn, entity.table)
    assert live, f"{entity.table}: table missing from the migrated database"
    spec = _spec_columns(entity)
    missing = sorted(set(spec) - set(live))
    extra = sorted(set(live) - set(spec))
    problems = [f"{entity.table}.{name}: declared but not in sql/" for name in missing]
    problems += [f"{entity.table}.{name}: in sql/ but not declared" for name in extra]
    for name in sorted(set(spec) & set(live)):
        column = spec[name]
        live_type, live_nullable = live[name]
        if canonical_sql_type(column.sql_type) != canonical_sql_type(live_type):
            problems.append(f"{entity.table}.{name}: type {column.sql_type!r} in spec, "
                            f"{live_type!r} in database")
        if column.nullable != live_nullable:
            problems.append(f"{entity.table}.{name}: nullable={column.nullable} in spec, "
                            f"{live_nullable} in database")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
def test_stored_order_is_the_tables(conn: psycopg.Connection[Any], entity: Entity[Any]) -> None:
    """A by-id read lists its columns in ``stored_names`` order so that PostgreSQL returns the
    stored tuple without a projection: that order is the table's own, column for column."""
    stored = [r[0] for r in conn.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (f"public.{entity.table}",)).fetchall()]
    readable = set(entity.column_names)
    assert tuple(name for name in stored if name in readable) == entity.stored_names


def test_every_public_table_has_a_spec(conn: psycopg.Connection[Any]) -> None:
    tables = {r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')").fetchall()}
    declared = {e.table for e in ENTITIES}
    orphans = sorted(t for t in tables - declared if not _is_infrastructure(t))
    assert not orphans, f"tables without an entity spec: {orphans}"


def test_student_references_never_cascade(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT conrelid::regclass::text, confdeltype FROM pg_constraint"
        " WHERE contype = 'f' AND confrelid = 'public.students'::regclass").fetchall()
    assert len(rows) >= 25, "expected the clinical tables to reference students"
    cascading = sorted(table for table, action in rows if action in ("c", "n", "d"))
    assert not cascading, f"tables removing or orphaning clinical rows on student delete: {cascading}"


def test_phi_tables_cannot_be_hard_deleted_by_the_app(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.role_table_grants"
        " WHERE grantee = 'wxdata_app' AND privilege_type = 'DELETE'").fetchall()
    deletable = {r[0] for r in rows}
    phi = sorted(e.table for e in ENTITIES if e.is_phi and e.table in deletable)
    assert not phi, f"PHI tables the app can hard-delete: {phi}"
    granted = {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.role_table_grants"
        " WHERE grantee = 'wxdata_app' AND privilege_type = 'SELECT'").fetchall()}
    ungranted = sorted(e.table for e in ENTITIES if e.table not in granted)
    assert not ungranted, f"entities the app role cannot read: {ungranted}"


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
def test_unique_keys_match_spec(conn: psycopg.Connection[Any], entity: Entity[Any]) -> None:
    rows = conn.execute(
        "SELECT array_agg(a.attname::text ORDER BY k.ord)"
        "  FROM pg_index i"
        "  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
        "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND NOT i.indisprimary"
        # partial or expression unique indexes are domain rules (one active allergy per
        # allergen, sql/0201), not keys of the table: they surface as Conflict on their field
        "   AND i.indpred IS NULL AND i.indexprs IS NULL"
        " GROUP BY i.indexrelid",
        (f"public.{entity.table}",),
    ).fetchall()
    live = {frozenset(r[0]) for r in rows}
    declared = {frozenset((c.name,)) for c in (*entity.columns, *entity.secrets) if c.rules.unique}
    declared |= {frozenset(key) for key in entity.unique_together}
    assert live == declared, (
        f"{entity.table}: unique keys in sql/ only {sorted(map(sorted, live - declared))}, "
        f"in the spec only {sorted(map(sorted, declared - live))}")


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
def test_key_has_a_server_default(conn: psycopg.Connection[Any], entity: Entity[Any]) -> None:
    """A create names no id: the key column's default makes it (a fresh random UUID)."""
    key = entity.by_name[entity.pk]
    assert not key.writable, f"{entity.table}.{entity.pk}: a caller could set the key"
    default = conn.execute(
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
        "  JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = to_regclass(%s) AND a.attname = %s",
        (f"public.{entity.table}", entity.pk),
    ).fetchone()
    assert default is not None, f"{entity.table}.{entity.pk}: no server default"
    assert default[0] == "gen_random_uuid()", f"{entity.table}.{entity.pk}: default {default[0]}"
