"""Pure core values: configuration, execution context, error taxonomy (no database)."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from returns.result import Failure, Success

from wxdata.config import ConfigError, load_settings
from wxdata.context import ExecutionContext, Purpose, Role, system_context, validate_context
from wxdata.errors import (
    Conflict,
    FieldError,
    Forbidden,
    Internal,
    InvalidContext,
    NotFound,
    Retryable,
    Timeout,
    Unavailable,
    ValidationFailed,
)


def test_defaults_need_no_environment() -> None:
    s = load_settings({})
    assert s.database_url is None
    assert s.cache_backend == "memory"
    assert s.audit_enabled


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"DB_POOL_MAX": "lots"}, "DB_POOL_MAX"),
        ({"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}, "DB_POOL_MAX"),
        ({"CACHE_BACKEND": "memcached"}, "CACHE_BACKEND"),
        ({"CACHE_BACKEND": "redis"}, "REDIS_URL"),
        ({"CACHE_ENCRYPT_PHI": "true"}, "CACHE_KEY"),
        ({"CACHE_KEY": "not base64!!"}, "CACHE_KEY"),
        ({"CACHE_KEY": base64.b64encode(b"short").decode()}, "CACHE_KEY"),
        ({"CACHE_ENABLED": "maybe"}, "CACHE_ENABLED"),
        ({"DB_SSLMODE": "sometimes"}, "DB_SSLMODE"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ],
)
def test_bad_settings_name_the_variable(env, name) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


def test_password_never_in_error_or_repr() -> None:
    s = load_settings({"DB_HOST": "db", "DB_PASSWORD": "hunter2", "CACHE_KEY":
                       base64.b64encode(b"k" * 32).decode()})
    assert s.database_url is not None
    assert "hunter2" not in repr(s)
    assert "kkkk" not in repr(s)


def test_db_parts_build_a_url() -> None:
    s = load_settings({"DB_HOST": "h", "DB_PORT": "6543", "DB_USERNAME": "u", "DB_NAME": "n"})
    assert s.database_url == "postgresql://u@h:6543/n"


def test_context_validation_names_fields_not_values() -> None:
    with pytest.raises(InvalidContext) as raised:
        ExecutionContext(user_id="bad id with spaces", role=Role.NURSE, ip_address="999.1.1.1",
                         break_glass_reason="x", timestamp=datetime(2024, 1, 1))
    fields = {e.field for e in raised.value.errors}
    assert fields == {"user_id", "ip_address", "break_glass_reason", "timestamp"}
    assert "bad id with spaces" not in str(raised.value)
    result = ExecutionContext.build(user_id="bad id with spaces", role=Role.NURSE)
    assert isinstance(result, Failure)
    assert {e.field for e in result.failure().errors} == {"user_id"}
    assert "bad id with spaces" not in result.failure().message


def test_valid_and_system_contexts() -> None:
    ctx = ExecutionContext(user_id="u-1", role=Role.NURSE, ip_address="10.0.0.1",
                           school_ids={"00000000-0000-0000-0000-000000000001"})
    assert validate_context(ctx) == Success(ctx)
    sys_ctx = system_context("nightly")
    assert sys_ctx.is_system and sys_ctx.purpose is Purpose.SYSTEM
    assert validate_context(sys_ctx) == Success(sys_ctx)
    glass = ctx.break_glass("anaphylaxis in the gym, chart needed")
    assert glass.is_break_glass and glass.purpose is Purpose.EMERGENCY


def test_error_taxonomy_is_stable() -> None:
    cases = [(NotFound("Student"), "NOT_FOUND", 404),
             (ValidationFailed("Student", (FieldError("grade", "is required"),)), "VALIDATION_FAILED", 422),
             (Conflict("Student", "duplicate value", "student_number"), "CONFLICT", 409),
             (Forbidden("Student", "rls"), "FORBIDDEN", 403), (Retryable("40001"), "RETRYABLE", 503),
             (Timeout("57014"), "TIMEOUT", 504), (Unavailable("down"), "UNAVAILABLE", 503),
             (Internal("XX000"), "INTERNAL", 500)]
    for error, code, status in cases:
        assert (error.code, error.status) == (code, status)
        body = error.to_dict()
        assert body["code"] == code
        assert body["status"] == status


def test_sqlstate_mapping_copies_no_detail(conn) -> None:
    import psycopg

    from wxdata.errors import from_db_error

    conn.execute("CREATE TEMP TABLE t (email text UNIQUE, n int CHECK (n > 0))")
    conn.execute("INSERT INTO t VALUES ('jane.doe@example.org', 1)")
    with pytest.raises(psycopg.Error) as dup:
        conn.execute("INSERT INTO t VALUES ('jane.doe@example.org', 2)")
    error = from_db_error(dup.value, "T")
    assert error == Conflict(entity="T", reason="duplicate value", field="email")
    assert "jane.doe" not in repr(error) + str(error.to_dict())
    with pytest.raises(psycopg.Error) as check:
        conn.execute("INSERT INTO t VALUES ('x@example.org', -1)")
    assert isinstance(from_db_error(check.value, "T"), ValidationFailed)
    conn.execute("SET statement_timeout = 10")
    with pytest.raises(psycopg.Error) as timeout:
        conn.execute("SELECT pg_sleep(1)")
    assert from_db_error(timeout.value) == Timeout("57014")
