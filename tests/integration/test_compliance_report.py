"""``wxdata compliance report``: every safeguard checked live; a weakened database fails its check.
The command with no database to reach is checked in ``tests/unit/test_cli_errors.py``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
import pytest

from wxdata.audit.chain import seal
from wxdata.audit.safeguards import CHECKS, Status, report
from wxdata.cli import main
from wxdata.config import settings

KEY = b"test-compliance-report-key-0123456789ab"
CITATIONS = {"164.312(a)(1)", "164.312(a)(2)(i)", "164.312(a)(2)(ii)", "164.312(a)(2)(iii)",
             "164.312(a)(2)(iv)", "164.312(b)", "164.312(c)(1)", "164.312(c)(2)", "164.312(e)(1)",
             "164.308(a)(1)(ii)(D)", "164.528", "FERPA 99.32"}


def _by(checks: Any, citation: str, feature_word: str = "") -> Any:
    return next(c for c in checks if c.citation == citation and feature_word in c.feature)


def test_every_listed_safeguard_has_a_live_check(conn: psycopg.Connection[Any]) -> None:
    checks = report(conn)
    assert len(checks) == len(CHECKS)
    assert {c.citation for c in checks} == CITATIONS
    forced = _by(checks, "164.312(a)(1)", "row-level")
    assert forced.status is Status.PASS and "FORCEd on" in forced.detail
    assert _by(checks, "164.312(c)(1)").status is Status.PASS
    assert _by(checks, "FERPA 99.32").status is Status.PASS
    assert _by(checks, "164.528").status is Status.PASS  # the subject index, whatever its name


def test_a_weakened_database_fails_its_checks_and_the_command_exits_1(
    fresh_database: Callable[[], str], capsys: pytest.CaptureFixture[str],
) -> None:
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE allergies NO FORCE ROW LEVEL SECURITY")
        conn.execute("GRANT UPDATE ON audit_log TO wxdata_app")
        # queries by student left without their index: a GIN index on the rows alone is not it
        conn.execute("DROP INDEX audit_log_ids_gin")
        conn.execute("CREATE INDEX probe_rows_gin ON audit_log USING gin (entity_ids)")
        checks = report(conn)
        forced = _by(checks, "164.312(a)(1)", "row-level")
        assert forced.status is Status.FAIL
        total = forced.detail.split("/")[1].split()[0]
        assert f"{int(total) - 1}/{total}" in forced.detail
        assert _by(checks, "164.312(c)(1)").status is Status.FAIL
        assert _by(checks, "164.528").status is Status.FAIL
    assert main(["compliance", "report", "--database-url", url, "--json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(CHECKS)
    assert {r["status"] for r in rows if r["citation"] == "164.312(c)(1)"} == {"FAIL"}


def test_the_chain_check_verifies_with_the_key_and_names_a_break(
    fresh_database: Callable[[], str],
) -> None:
    config = attrs.evolve(settings(), audit_hmac_key=KEY)
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (action, entity_type, user_id) "
                     "SELECT 'READ', 'Student', 'u-' || g FROM generate_series(1, 5) g")
        last = seal(conn, KEY).unwrap().last_position  # the clone may hold records already
        chain = _by(report(conn, config), "164.312(c)(2)")
        assert chain.status is Status.PASS and f"verified to position {last}" in chain.detail
        keyless = attrs.evolve(settings(), audit_hmac_key=None)
        assert _by(report(conn, keyless), "164.312(c)(2)").status is Status.WARN
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET user_id = 'u-forged' WHERE user_id = 'u-3'")
        conn.execute("SET session_replication_role = origin")
        broken = _by(report(conn, config), "164.312(c)(2)")
        assert broken.status is Status.FAIL and f"broken at position {last - 2}" in broken.detail
