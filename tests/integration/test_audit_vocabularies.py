"""The log's closed vocabularies (``action``, ``compliance_type``, ``severity``): the database holds
exactly the values wxdata names, refuses any other from any writer, and the upgrade that made them
enum types keeps every record's text, order and chain. Real PostgreSQL, throw-away databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.upgrades import migrated_before
from wxdata.audit.chain import seal, verify
from wxdata.audit.record import AuditAction, AuditSeverity, ComplianceType

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]
KEY = b"test-audit-vocabularies-key-0123456789"
#: Each closed column and the Python vocabulary its values come from.
VOCABULARIES: dict[str, type[StrEnum]] = {
    "action": AuditAction, "compliance_type": ComplianceType, "severity": AuditSeverity}
_INSERT = ("INSERT INTO audit_log (action, entity_type, user_id, compliance_type, severity) "
           "VALUES (%(action)s, 'Probe', 'u-vocab', %(compliance_type)s, %(severity)s)")
_VALID = {"action": "READ", "compliance_type": "HIPAA", "severity": "LOW"}


@pytest.fixture
def owner(fresh_database: Callable[[], str]) -> Iterator[Conn]:
    """A superuser connection to a throw-away migrated database."""
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        yield conn


def _labels(conn: Conn, column: str) -> list[str]:
    """The labels of the type of audit_log's ``column``, in the type's order."""
    return [label for (label,) in conn.execute(
        "SELECT e.enumlabel FROM pg_attribute a JOIN pg_enum e ON e.enumtypid = a.atttypid "
        "WHERE a.attrelid = 'audit_log'::regclass AND a.attname = %s ORDER BY e.enumsortorder",
        (column,)).fetchall()]


@pytest.mark.parametrize("column", sorted(VOCABULARIES))
def test_the_database_holds_exactly_the_values_wxdata_names_in_text_order(
    owner: Conn, column: str,
) -> None:
    labels = _labels(owner, column)
    assert set(labels) == {m.value for m in VOCABULARIES[column]}
    assert labels == sorted(labels)  # ordering by the column orders as its text does


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(sorted(VOCABULARIES)),
       value=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30))
def test_a_value_outside_a_vocabulary_is_refused_and_nothing_is_written(
    owner: Conn, column: str, value: str,
) -> None:
    before = owner.execute("SELECT count(*) FROM audit_log").fetchone()
    params = {**_VALID, column: value}
    if value in {m.value for m in VOCABULARIES[column]}:
        owner.execute(_INSERT, params)
        assert owner.execute("SELECT count(*) FROM audit_log").fetchone() == (before[0] + 1,)
        return
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        owner.execute(_INSERT, params)
    typed = f"CAST(%({column})s::text AS {_type_name(owner, column)})"
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):  # sent as text, cast
        owner.execute(_INSERT.replace(f"%({column})s", typed), params)
    for kind in ("text", "varchar"):  # a typed value, assigned
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            owner.execute(_INSERT.replace(f"%({column})s", f"%({column})s::{kind}"), params)
    assert owner.execute("SELECT count(*) FROM audit_log").fetchone() == before


@pytest.mark.parametrize("kind", ["text", "varchar"])
def test_a_typed_value_of_a_vocabulary_is_written_as_by_any_writer(owner: Conn, kind: str) -> None:
    # a writer's own SQL: VALUES makes its literals text; a driver may bind varchar
    owner.execute(
        "INSERT INTO audit_log (action, entity_type, user_id, compliance_type, severity) "
        f"SELECT a, 'Probe', 'u-vocab', c, s FROM (VALUES (%s::{kind}, %s::{kind}, %s::{kind})) "
        "v(a, c, s)", ("EXPORT", "FERPA", "HIGH"))
    assert owner.execute(
        "SELECT action::text, compliance_type::text, severity::text FROM audit_log "
        "WHERE user_id = 'u-vocab'").fetchall() == [("EXPORT", "FERPA", "HIGH")]


def _type_name(conn: Conn, column: str) -> str:
    row = conn.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = "
                       "'audit_log'::regclass AND attname = %s", (column,)).fetchone()
    assert row is not None
    return str(row[0])


def test_the_upgrade_keeps_every_records_text_and_its_chain(
    server_url: str, tmp_path: Path,
) -> None:
    with migrated_before(server_url, tmp_path / "sql", "0220_") as (conn, upgrade):
        assert _labels(conn, "action") == []  # a domain over varchar before the upgrade
        for i, action in enumerate(AuditAction):
            conn.execute(_INSERT, {
                "action": action.value,
                "compliance_type": list(ComplianceType)[i % len(ComplianceType)].value,
                "severity": list(AuditSeverity)[i % len(AuditSeverity)].value})
        conn.execute("INSERT INTO audit_log (action, entity_type) VALUES ('VIEW', 'Default')")
        seal(conn, KEY).unwrap()
        query = ("SELECT seq, action::text, compliance_type::text, severity::text "
                 "FROM audit_log ORDER BY {}")
        by_seq = conn.execute(query.format("seq")).fetchall()
        by_text = conn.execute(query.format("action, severity, seq")).fetchall()
        assert upgrade()[0] == "0220_audit_vocabularies_enum.sql"
        assert _labels(conn, "action") != []
        assert conn.execute(query.format("seq")).fetchall() == by_seq
        assert conn.execute(query.format("action, severity, seq")).fetchall() == by_text
        assert by_seq[-1][2:] == ("GENERAL", "LOW")  # the defaults, kept
        report = verify(conn, KEY).unwrap()
        assert report.ok and report.verified == len(by_seq), report.broken
        conn.execute("INSERT INTO audit_log (action, entity_type) VALUES ('VIEW', 'After')")
        assert conn.execute("SELECT compliance_type::text, severity::text FROM audit_log "
                            "WHERE entity_type = 'After'").fetchone() == ("GENERAL", "LOW")
        seal(conn, KEY).unwrap()
        assert verify(conn, KEY).unwrap().ok
