"""Connection settings without a server: the conninfo wxdata builds (timeouts, application name,
TLS), ``DB_POOLER`` and what each mode sends (startup options direct, per-transaction settings
behind a transaction pooler, never both), and the connection budget's warning rule. The same
settings against a real server and PgBouncer are checked in ``tests/integration/test_db.py``,
``tests/integration/test_pooler.py`` and ``tests/integration/test_sizing.py``."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from wxdata.audit.lanes import LaneTarget
from wxdata.audit.sql import relaxed_commit
from wxdata.config import ConfigError, load_settings
from wxdata.db import connect_kwargs, conninfo, side_connect_kwargs
from wxdata.sizing import ConnectionBudget
from wxdata.tx.scope import transaction_timeouts

# --- conninfo -------------------------------------------------------------------------------------


def test_conninfo_carries_timeouts_name_and_tls() -> None:
    config = load_settings({"DATABASE_URL": "postgresql://app@db.example.org:5432/wx",
                            "DB_SSLMODE": "verify-full", "DB_SSLROOTCERT": "/etc/ca.pem",
                            "DB_STATEMENT_TIMEOUT": "1234", "DB_APPLICATION_NAME": "svc"})
    info = conninfo_to_dict(conninfo(config=config))
    assert info["sslmode"] == "verify-full"
    assert info["sslrootcert"] == "/etc/ca.pem"
    assert info["application_name"] == "svc"
    assert "statement_timeout=1234" in info["options"]
    assert "idle_in_transaction_session_timeout=30000" in info["options"]


# --- the pooler setting ---------------------------------------------------------------------------


def test_pooler_setting_values() -> None:
    assert load_settings({}).pooler == "none"
    assert load_settings({"DB_POOLER": "transaction"}).transaction_pooled
    assert load_settings({"DB_POOLER": " Transaction "}).pooler == "transaction"
    assert not load_settings({"DB_POOLER": "none"}).transaction_pooled
    keeping = load_settings({"DB_POOLER": "Transaction-Prepared"})
    assert keeping.pooler == "transaction-prepared" and keeping.transaction_pooled


@pytest.mark.parametrize(("mode", "pooled", "keeps", "prepare"), [
    ("none", False, False, True),
    ("transaction", True, False, False),
    ("transaction-prepared", True, True, True),
])
def test_what_each_pooler_mode_allows(mode: str, pooled: bool, keeps: bool, prepare: bool) -> None:
    """Only a pooler that does not keep prepared statements forbids naming them; both pooled
    modes keep no other session state."""
    config = load_settings({"DB_POOLER": mode})
    assert (config.transaction_pooled, config.pooler_keeps_statements, config.prepare) == (
        pooled, keeps, prepare)


def test_a_pooler_keeping_statements_needs_a_libpq_that_closes_them(monkeypatch) -> None:
    """libpq before 17 drops a statement with SQL DEALLOCATE, which no pooler tracks: refused."""
    monkeypatch.setattr("wxdata.config._libpq_closes_statements", lambda: False)
    with pytest.raises(ConfigError, match="libpq 17"):
        load_settings({"DB_POOLER": "transaction-prepared"})
    assert load_settings({"DB_POOLER": "transaction"}).pooler == "transaction"


@given(st.text(max_size=24).filter(
    lambda v: v.strip().lower() not in ("", "none", "transaction", "transaction-prepared")))
def test_bad_pooler_value_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"DB_POOLER": value})
    assert str(caught.value) == "DB_POOLER must be none, transaction or transaction-prepared"


# --- how a read's disclosure record commits --------------------------------------------------------


def test_read_commit_setting_values() -> None:
    assert load_settings({}).audit_read_commit == "durable"
    assert load_settings({"AUDIT_READ_COMMIT": " Async "}).audit_read_commit == "async"
    assert load_settings({"AUDIT_READ_COMMIT": "durable"}).audit_read_commit == "durable"


@given(st.text(max_size=20).filter(lambda v: v.strip().lower() not in ("", "durable", "async")))
def test_bad_read_commit_value_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"AUDIT_READ_COMMIT": value})
    assert str(caught.value) == "AUDIT_READ_COMMIT must be durable or async"
    with pytest.raises(ValueError):  # nor can a Settings value be built with it
        attrs.evolve(load_settings({}), audit_read_commit=value)


@given(st.sampled_from(["durable", "async"]), st.booleans())
def test_only_an_autocommit_read_in_async_mode_is_relaxed(mode: str, autocommit: bool) -> None:
    assert relaxed_commit(mode, autocommit) is (mode == "async" and autocommit)


def test_connect_kwargs_per_mode() -> None:
    assert connect_kwargs(load_settings({})) == {}
    assert connect_kwargs(load_settings({"DB_POOLER": "transaction"})) == {
        "prepare_threshold": None}
    assert connect_kwargs(load_settings({"DB_POOLER": "transaction-prepared"})) == {}


@pytest.mark.parametrize("mode", ["none", "transaction", "transaction-prepared"])
def test_side_connections_name_no_statement_behind_any_pooler(mode: str) -> None:
    """Audit lane 2 and the router's health probes are not proven to reach a pooler that keeps
    prepared statements (only the connections doing the work are): behind any pooler they open
    with ``prepare_threshold=None``; direct, with psycopg's defaults."""
    config = load_settings({"DB_POOLER": mode})
    unnamed = {"prepare_threshold": None} if mode != "none" else {}
    assert side_connect_kwargs(config) == unnamed
    assert dict(LaneTarget.of("host=db", config).kwargs) == unnamed


@given(st.sampled_from(["none", "transaction", "transaction-prepared"]), st.integers(0, 86_400_000),
       st.integers(0, 86_400_000))
def test_each_timeout_is_sent_exactly_once_per_mode(mode: str, statement: int, idle: int) -> None:
    """Direct: startup options only; pooled: the transaction's set_config only; 0: not sent."""
    config = load_settings({"DATABASE_URL": "postgresql://app@db/wx", "DB_POOLER": mode,
                            "DB_STATEMENT_TIMEOUT": str(statement),
                            "DB_IDLE_IN_TRANSACTION_TIMEOUT": str(idle)})
    options = conninfo_to_dict(conninfo(config=config)).get("options", "")
    per_transaction = transaction_timeouts(config)
    wanted = {k: str(v) for k, v in (("statement_timeout", statement),
                                      ("idle_in_transaction_session_timeout", idle)) if v}
    if mode != "none":
        assert options == "" and per_transaction == wanted
    else:
        sent = dict(o.split("=", 1) for o in options.replace("-c ", "").split())
        assert per_transaction == {} and sent == wanted


# --- the connection budget ------------------------------------------------------------------------


counts = st.integers(min_value=0, max_value=5000)


@given(st.integers(min_value=1, max_value=500), counts, counts, counts, counts, counts)
def test_warning_exactly_when_demand_exceeds_capacity(
    processes: int, pool: int, lane: int, reserve: int, server: int, reserved: int
) -> None:
    budget = ConnectionBudget(processes=processes, pool_max=pool, lane_pool_max=lane,
                              reserve=reserve, max_connections=server, server_reserved=reserved)
    assert budget.demand == processes * (pool + lane) + reserve
    assert (budget.warning() is None) == (budget.demand <= max(server - reserved, 0))
    assert attrs.evolve(budget, pooled=True).warning() is None
