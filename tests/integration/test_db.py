"""Connections against the server: the conninfo's session settings applied, the pool's reset and
its replacement of a dead idle connection, the privilege warning, the embedded server. The conninfo
itself (timeouts, name, TLS) is checked in ``tests/unit/test_connection_settings.py``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import psycopg
import pytest

from wxdata.db import conninfo, create_pool, warn_if_privileged


def test_session_settings_applied(db_url) -> None:
    with psycopg.connect(conninfo(db_url), autocommit=True) as conn:
        row = conn.execute("SHOW statement_timeout").fetchone()
        name = conn.execute("SHOW application_name").fetchone()
    assert row == ("30s",)
    assert name == ("wxdata",)


def test_pool_resets_leaked_transactions(db_url) -> None:
    with create_pool(db_url, min_size=1, max_size=1) as pool:
        with pool.connection() as conn:
            assert conn.autocommit
            conn.execute("BEGIN")
            conn.execute("SELECT 1")
        with pool.connection() as conn:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert conn.autocommit
        stats = pool.get_stats()
        assert stats["connections_num"] >= 1


def test_superuser_warning(conn, admin_conn, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="wxdata.tx"):
        assert warn_if_privileged(admin_conn)
        assert not warn_if_privileged(conn)
    assert "connect as the application role" in caplog.text
    assert len(caplog.records) == 1


@pytest.mark.integration  # starts the embedded PostgreSQL
def test_embedded_server_when_nothing_is_configured(tmp_path) -> None:
    """On a machine with nothing installed: no DATABASE_URL, the embedded PostgreSQL serves, and
    connect() is its application role (migrated, scope key generated, row security applies)."""
    script = textwrap.dedent("""
        import os, stat
        from wxdata import system_context
        from wxdata.db import connect
        from wxdata.domains import students
        from wxdata.tx.scope import bypasses_row_security
        with connect() as conn:
            assert not bypasses_row_security(conn)
            assert students.count(conn, system_context("t"), {}).unwrap() >= 0
            print(conn.execute("SELECT current_user").fetchone()[0])
        with connect(owner=True) as owner:
            print(owner.execute("SELECT count(*) FROM wxdata_migrations").fetchone()[0])
        secrets_file = os.path.join(os.environ["WXDATA_EMBEDDED_DIR"], "wxdata-embedded-pg",
                                    "wxdata-secrets.json")
        print(oct(stat.S_IMODE(os.stat(secrets_file).st_mode)))
    """)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "DB_HOST", "WXDATA_TEST_DATABASE_URL", "WXDATA_SCOPE_KEY",
                        "WXDATA_MASTER_KEY", "WXDATA_MIGRATION_URL")}
    env["WXDATA_EMBEDDED_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    user, migrations, mode = done.stdout.strip().splitlines()[-3:]
    assert user == "wxdata_embedded_app"
    assert int(migrations) >= 4
    assert mode == "0o600"


def test_pool_replaces_a_dead_idle_connection(db_url, conn, monkeypatch) -> None:
    import wxdata.db as db

    monkeypatch.setattr(db, "IDLE_CHECK_AFTER", 0.0)
    with create_pool(db_url, min_size=1, max_size=1) as pool:
        with pool.connection() as c:
            pid = c.info.backend_pid
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pool.connection() as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
            assert c.info.backend_pid != pid
