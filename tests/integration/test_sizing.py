"""Connection sizing: ``wxdata health`` warns when the configured processes may open more
connections than the server admits (checked against the real test server's settings). The warning
rule itself, over every budget, is checked in ``tests/unit/test_connection_settings.py``."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from wxdata.cli import main
from wxdata.config import load_settings
from wxdata.sizing import connection_budget


def _slots(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute("SELECT current_setting('max_connections')::int, "
                       "current_setting('superuser_reserved_connections')::int").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.fixture
def admin(direct_db_url: str) -> Any:
    with psycopg.connect(direct_db_url, autocommit=True, prepare_threshold=None) as c:
        yield c


def test_budget_reads_the_servers_slots(admin) -> None:
    max_connections, superuser = _slots(admin)
    budget = connection_budget(admin, load_settings({"WXDATA_PROCESSES": "3", "DB_POOL_MAX": "7",
                                                     "AUDIT_LANE_POOL_MAX": "2",
                                                     "DB_RESERVED_CONNECTIONS": "5"}))
    assert (budget.max_connections, budget.server_reserved) == (max_connections, superuser)
    assert budget.demand == 3 * (7 + 2) + 5
    assert budget.capacity == max_connections - superuser


def test_budget_boundary_against_the_real_server(admin) -> None:
    """Demand equal to the server's slots fits; one connection more is warned about."""
    max_connections, superuser = _slots(admin)
    capacity = max_connections - superuser
    env = {"WXDATA_PROCESSES": "1", "DB_POOL_MAX": "10", "AUDIT_LANE_POOL_MAX": "4"}
    at = connection_budget(admin, load_settings({**env, "DB_RESERVED_CONNECTIONS": str(capacity - 14)}))
    over = connection_budget(admin, load_settings({**env,
                                                   "DB_RESERVED_CONNECTIONS": str(capacity - 13)}))
    assert at.demand == capacity and at.fits and at.warning() is None
    assert over.demand == capacity + 1 and not over.fits
    assert "WXDATA_PROCESSES 1 x (DB_POOL_MAX 10 + AUDIT_LANE_POOL_MAX 4)" in (over.warning() or "")


def _health(monkeypatch, capsys, url: str, fmt: str = "text", **env: str) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("DATABASE_REPLICA_URLS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rc = main(["health", "--format", fmt])
    out, err = capsys.readouterr()
    return rc, out, err


def test_health_warns_when_processes_outgrow_the_server(
    monkeypatch, capsys, direct_db_url: str, admin
) -> None:
    max_connections, _ = _slots(admin)
    processes = max_connections  # each opens at least DB_POOL_MAX + AUDIT_LANE_POOL_MAX > 1
    rc, out, err = _health(monkeypatch, capsys, direct_db_url, WXDATA_PROCESSES=str(processes),
                           DB_POOLER="none")
    assert rc == 0  # a warning, not an outage
    assert "connections: OVER" in out
    assert "health: warning: connection budget exceeded" in err
    assert f"WXDATA_PROCESSES {processes}" in err


def test_health_is_quiet_when_the_budget_fits(monkeypatch, capsys, direct_db_url: str) -> None:
    rc, out, err = _health(monkeypatch, capsys, direct_db_url, WXDATA_PROCESSES="1",
                           DB_POOL_MAX="10", DB_POOLER="none")
    assert rc == 0 and "connections: ok" in out and "warning" not in err
    rc, out, _ = _health(monkeypatch, capsys, direct_db_url, "json")
    body = json.loads(out)["connections"]
    assert body["fits"] and body["demand"] == 1 * (10 + 4) + 3


def test_health_behind_a_transaction_pooler_compares_nothing_with_the_server(
    monkeypatch, capsys, pgbouncer, direct_db_url: str, admin
) -> None:
    """Behind PgBouncer the server's connections are the pooler's: no false alarm, a pointer."""
    max_connections, _ = _slots(admin)
    rc, out, err = _health(monkeypatch, capsys, pgbouncer.url(direct_db_url),
                           DB_POOLER="transaction", WXDATA_PROCESSES=str(max_connections))
    assert rc == 0 and "max_client_conn" in out and "warning" not in err


@pytest.fixture(scope="module")
def twenty_slots() -> Any:
    """A private primary with ``max_connections = 20`` (the size of a small managed server)."""
    from tests import local_cluster as local

    reason = local.missing()
    if reason is not None:
        pytest.fail(reason)  # the machine is expected to have the server binaries
    with local.LocalCluster.create(replicas=0, conf=("max_connections = 20",)) as c:
        yield c


def test_three_processes_of_ten_overflow_a_twenty_slot_server(
    monkeypatch, capsys, twenty_slots
) -> None:
    """3 processes x (10 + 4) + 3 = 45 > 17: warned. One process: 10 + 4 + 3 = 17, exactly the
    17 slots ordinary roles get (20 - 3 superuser-reserved): quiet."""
    url = twenty_slots.url("primary")
    rc, out, err = _health(monkeypatch, capsys, url, WXDATA_PROCESSES="3", DB_POOL_MAX="10",
                           AUDIT_LANE_POOL_MAX="4", DB_RESERVED_CONNECTIONS="3", DB_POOLER="none")
    assert rc == 0
    assert "connections: OVER demand=45 (3 x (10 + 4) + 3) capacity=17 (20 - 3)" in out
    assert "connection budget exceeded" in err
    rc, out, err = _health(monkeypatch, capsys, url, WXDATA_PROCESSES="1")
    assert rc == 0 and "connections: ok demand=17" in out and "warning" not in err
