"""The signed school scope: SQL run as the application role cannot widen its own scope.

Row-level security trusts only ``app.scope_token`` signed with the scope key, which the application
role cannot read. These tests attack it from raw SQL on the application role's own connection
(forged, replayed, expired, future, truncated, tampered and wrongly signed tokens, and the plain
``app.school_ids`` / ``app.bypass_scope`` settings) around every CRUD path and a hand-written query,
and check that nothing of school B is read or written. They also check the privileged-connection
rule and the roles ``wxdata migrate`` sets up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import make_conninfo
from returns.result import Failure, Result, Success

from tests.conftest import TEST_SCOPE_KEY, student_values
from wxdata import ExecutionContext, Purpose, Role, transactional
from wxdata.config import configure, load_settings
from wxdata.crud import fetch
from wxdata.domains import students
from wxdata.errors import DataError, Forbidden, NotFound, Unavailable
from wxdata.tx.scope import unit_of_work
from wxdata.tx.token import fingerprint, message, pads, scope_token, sign

Conn = psycopg.Connection[Any]
SETTLE = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _school(conn: Conn) -> dict[str, uuid.UUID]:
    tag = uuid.uuid4().hex[:8]
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                     (f"TD-{tag}",)).fetchone()
    s = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) RETURNING id",
                     (f"TS-{tag}", d[0])).fetchone()
    return {"district_id": d[0], "school_id": s[0]}


@pytest.fixture
def world(conn: Conn, sys_ctx: ExecutionContext) -> dict[str, Any]:
    a, b = _school(conn), _school(conn)
    sa = students.create(conn, sys_ctx, student_values(a)).unwrap()
    sb = students.create(conn, sys_ctx, student_values(b)).unwrap()
    return {"a": a, "b": b, "sa": sa, "sb": sb}


def nurse_of(school: dict[str, uuid.UUID], user: str = "u-nurse-a") -> ExecutionContext:
    return ExecutionContext(user_id=user, role=Role.NURSE, purpose=Purpose.TREATMENT,
                            school_ids={school["school_id"]}, request_id="req-scope")


# --- the HMAC in SQL is the HMAC of Python ----------------------------------------------------


@settings(max_examples=40, **SETTLE)
@given(key=st.binary(min_size=1, max_size=200),
       text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    max_size=300))
def test_sql_hmac_equals_python_hmac(conn: Conn, key: bytes, text: str) -> None:
    ipad, opad = pads(key)
    row = conn.execute(
        "SELECT encode(sha256(%s::bytea || sha256(%s::bytea || convert_to(%s, 'UTF8'))), 'hex')",
        (opad, ipad, text)).fetchone()
    assert row == (hmac.new(key, text.encode(), hashlib.sha256).hexdigest(),)
    assert sign(key, text) == row[0]


def test_database_fingerprint_is_the_configured_keys(conn: Conn) -> None:
    row = conn.execute("SELECT wxdata_scope_key_fingerprint()").fetchone()
    assert row == (fingerprint(TEST_SCOPE_KEY),)
    assert row[0] != fingerprint(TEST_SCOPE_KEY + b"x")


def _claims(conn: Conn, token: str) -> tuple[bool, list[uuid.UUID]]:
    with conn.transaction():
        conn.execute("SELECT set_config('app.scope_token', %s, true)", (token,))
        row = conn.execute("SELECT wxdata_scope_bypass(), wxdata_school_ids()").fetchone()
    assert row is not None
    return row[0], list(row[1])


def test_token_age_window(conn: Conn, world: dict[str, Any]) -> None:
    ctx = nurse_of(world["a"])
    school = [world["a"]["school_id"]]
    now = time.time()
    assert _claims(conn, scope_token(ctx, TEST_SCOPE_KEY, now)) == (False, school)
    assert _claims(conn, scope_token(ctx, TEST_SCOPE_KEY, now - 290)) == (False, school)
    assert _claims(conn, scope_token(ctx, TEST_SCOPE_KEY, now + 20)) == (False, school)  # skew
    assert _claims(conn, scope_token(ctx, TEST_SCOPE_KEY, now - 400)) == (False, [])  # expired
    assert _claims(conn, scope_token(ctx, TEST_SCOPE_KEY, now + 120)) == (False, [])  # future
    glass = ctx.break_glass("anaphylaxis on the field trip, allergy chart")
    assert _claims(conn, scope_token(glass, TEST_SCOPE_KEY, now)) == (True, school)
    assert _claims(conn, scope_token(glass, TEST_SCOPE_KEY, now - 400)) == (False, [])


# --- attacks from raw SQL as the application role ---------------------------------------------

ATTACKS = ("bypass_on", "schools_b", "schools_ab", "forged_unsigned", "replay_other_user",
           "expired", "future", "truncated", "wrong_key", "tampered", "empty", "garbage")


def attack_value(kind: str, world: dict[str, Any], cut: int) -> tuple[str, str]:
    """The (setting, value) of one attack on school B's rows."""
    b = world["b"]
    ctx_b = nurse_of(b, user="u-nurse-b")
    ctx_a = nurse_of(world["a"])
    now = time.time()
    if kind == "bypass_on":
        return "app.bypass_scope", "on"
    if kind == "schools_b":
        return "app.school_ids", str(b["school_id"])
    if kind == "schools_ab":
        return "app.school_ids", f"{world['a']['school_id']},{b['school_id']}"
    if kind == "forged_unsigned":
        glass = ctx_a.break_glass("forged emergency reason for this attack")
        text = message(glass, int(now))
        return "app.scope_token", f"{text}|{secrets.token_hex(32)}"
    if kind == "replay_other_user":  # a valid token of another user's transaction, school B
        return "app.scope_token", scope_token(ctx_b, TEST_SCOPE_KEY, now - 1)
    if kind == "expired":
        return "app.scope_token", scope_token(ctx_b, TEST_SCOPE_KEY, now - 400)
    if kind == "future":
        return "app.scope_token", scope_token(ctx_b, TEST_SCOPE_KEY, now + 3600)
    if kind == "truncated":
        token = scope_token(ctx_b, TEST_SCOPE_KEY, now)
        return "app.scope_token", token[: max(0, len(token) - cut)]
    if kind == "wrong_key":
        return "app.scope_token", scope_token(ctx_b, secrets.token_bytes(32), now)
    if kind == "tampered":  # A's valid token with B's id spliced in, signature kept
        token = scope_token(ctx_a, TEST_SCOPE_KEY, now)
        return "app.scope_token", token.replace(str(world["a"]["school_id"]), str(b["school_id"]))
    if kind == "empty":
        return "app.scope_token", ""
    return "app.scope_token", "1|0|1||SYSTEM|system|" + "0" * 64


def _arm(conn: Conn, attacks: list[tuple[str, int]], world: dict[str, Any], local: bool) -> None:
    for kind, cut in attacks:
        name, value = attack_value(kind, world, cut)
        conn.execute("SELECT set_config(%s, %s, %s)", (name, value, local))


def _b_untouched(admin: Conn, world: dict[str, Any]) -> None:
    row = admin.execute("SELECT grade, deleted_at FROM students WHERE id = %s",
                        (world["sb"].id,)).fetchone()
    assert row == (world["sb"].grade, None)
    count = admin.execute("SELECT count(*) FROM students WHERE school_id = %s",
                          (world["b"]["school_id"],)).fetchone()
    assert count == (1,)


attack_lists = st.lists(st.tuples(st.sampled_from(ATTACKS), st.integers(1, 80)),
                        min_size=1, max_size=4)


@settings(max_examples=25, **SETTLE)
@given(attacks=attack_lists)
def test_session_settings_cannot_widen_any_crud_path(
        conn: Conn, admin_conn: Conn, world: dict[str, Any], attacks: list[tuple[str, int]]
) -> None:
    """Session-level settings (set before wxdata's call) never reach school B through wxdata."""
    for name in ("app.scope_token", "app.school_ids", "app.bypass_scope"):  # left by earlier examples
        conn.execute("SELECT set_config(%s, '', false)", (name,))
    _arm(conn, attacks, world, local=False)
    ctx = nurse_of(world["a"])
    b_id = world["sb"].id
    b_school = {"school_id": world["b"]["school_id"]}
    assert students.find_by_id(conn, ctx, b_id) == Failure(NotFound("Student"))
    page = students.find_many(conn, ctx, b_school).unwrap()
    assert (tuple(page.data), page.total) == ((), 0)
    assert students.count(conn, ctx, b_school) == Success(0)
    assert students.exists(conn, ctx, {"id": b_id}) == Success(False)
    assert students.update(conn, ctx, b_id, {"grade": "9"}) == Failure(NotFound("Student"))
    assert students.delete(conn, ctx, b_id) == Failure(NotFound("Student"))
    created = students.create(conn, ctx, student_values(world["b"]))
    assert isinstance(created.failure(), Forbidden)
    assert fetch(conn, ctx, "SELECT id FROM students WHERE school_id = %(s)s",
                 {"s": world["b"]["school_id"]}) == Success([])
    # a raw statement with no wxdata context sees nothing, except through a fresh, validly signed
    # token the attacker already holds (the documented replay window: wxdata never discloses one)
    raw = conn.execute("SELECT count(*) FROM students WHERE id = ANY(%s)",
                       ([world["sa"].id, b_id],)).fetchone()
    replayed = [k for k, _ in attacks if k == "replay_other_user"]
    last_token = [k for k, _ in attacks if attack_value(k, world, 1)[0] == "app.scope_token"]
    holds_fresh_b = bool(replayed) and last_token[-1] == "replay_other_user"
    assert raw == ((1,) if holds_fresh_b else (0,))
    # school A is still served (the attack did not break the nurse's own scope)
    assert students.find_by_id(conn, ctx, world["sa"].id).unwrap().id == world["sa"].id
    _b_untouched(admin_conn, world)


IN_TX_ATTACKS = tuple(a for a in ATTACKS if a != "replay_other_user")


@settings(max_examples=25, **SETTLE)
@given(attacks=st.lists(st.tuples(st.sampled_from(IN_TX_ATTACKS), st.integers(1, 80)),
                        min_size=1, max_size=4))
def test_settings_inside_a_hand_written_transaction_cannot_widen(
        conn: Conn, admin_conn: Conn, world: dict[str, Any], attacks: list[tuple[str, int]]
) -> None:
    """Transaction-local settings made by the caller's own SQL, after wxdata applied the context."""

    @transactional()
    def attack(c: Conn, ctx: ExecutionContext) -> Result[dict[str, Any], DataError]:
        _arm(c, attacks, world, local=True)
        seen = c.execute("SELECT id FROM students WHERE school_id = %s",
                         (world["b"]["school_id"],)).fetchall()
        updated = c.execute("UPDATE students SET grade = '9' WHERE id = %s",
                            (world["sb"].id,)).rowcount
        try:
            with c.transaction():
                c.execute(
                    "INSERT INTO students (student_number, first_name, last_name, date_of_birth,"
                    " grade, gender, enrollment_date, school_id, district_id) VALUES"
                    " (%s, 'X', 'Y', '2014-01-01', '5', 'FEMALE', '2020-09-01', %s, %s)",
                    (f"ATT-{uuid.uuid4().hex[:10]}", world["b"]["school_id"],
                     world["b"]["district_id"]))
            inserted = True
        except psycopg.errors.InsufficientPrivilege:
            inserted = False
        return Success({"seen": seen, "updated": updated, "inserted": inserted})

    outcome = attack(conn, nurse_of(world["a"])).unwrap()
    assert outcome == {"seen": [], "updated": 0, "inserted": False}
    _b_untouched(admin_conn, world)


def test_a_stale_token_replayed_inside_a_transaction_reads_nothing(
        conn: Conn, world: dict[str, Any]) -> None:
    """A token of school B older than the window is refused even when set inside the transaction
    (a fresh one is the documented replay window; wxdata never discloses tokens)."""
    with unit_of_work(conn, nurse_of(world["a"])):
        conn.execute("SELECT set_config('app.scope_token', %s, true)",
                     (scope_token(nurse_of(world["b"]), TEST_SCOPE_KEY, time.time() - 400),))
        assert conn.execute("SELECT count(*) FROM students").fetchone() == (0,)


def test_the_application_role_cannot_read_the_key_or_call_the_verifier(conn: Conn) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM wxdata_scope_key")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT wxdata_scope_claims()")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE wxdata_scope_key SET max_age_seconds = 86400")


# --- privileged connections -------------------------------------------------------------------


@pytest.fixture
def restore_settings() -> Iterator[None]:
    from wxdata.config import settings as current

    previous = current()
    yield
    configure(previous)


def test_superuser_connection_with_a_nurse_context_is_forbidden(
        admin_conn: Conn, world: dict[str, Any], sys_ctx: ExecutionContext) -> None:
    ctx = nurse_of(world["a"])
    refused = [
        students.find_by_id(admin_conn, ctx, world["sa"].id),
        students.find_many(admin_conn, ctx, {}),
        students.count(admin_conn, ctx, {}),
        students.exists(admin_conn, ctx, {"id": world["sa"].id}),
        students.update(admin_conn, ctx, world["sa"].id, {"grade": "9"}),
        students.delete(admin_conn, ctx, world["sa"].id),
        students.create(admin_conn, ctx, student_values(world["a"])),
        fetch(admin_conn, ctx, "SELECT 1"),
        transactional()(lambda c, x: Success(c.execute("SELECT 1").fetchall()))(admin_conn, ctx),
        students.find_by_id(admin_conn, ctx.break_glass("unconscious student, need chart"),
                            world["sa"].id),
    ]
    for result in refused:
        error = result.failure()
        assert isinstance(error, Forbidden)
        assert "application role" in error.reason and "WXDATA_ALLOW_PRIVILEGED_CONNECTION" in error.reason
    # SYSTEM (migrations, seeding) still works on the owner's connection
    assert students.find_by_id(admin_conn, sys_ctx, world["sa"].id).unwrap().id == world["sa"].id
    row = admin_conn.execute("SELECT grade, deleted_at FROM students WHERE id = %s",
                             (world["sa"].id,)).fetchone()
    assert row == (world["sa"].grade, None)


def test_cached_reads_are_refused_on_a_privileged_connection(
        conn: Conn, admin_conn: Conn, world: dict[str, Any]) -> None:
    from tests.cache_support import memory
    from wxdata.cache import by_id, cached

    mem = memory()

    read = cached(students.ENTITY, key=lambda c, x, sid: by_id(sid), cache=mem)(
        students.find_by_id)
    ctx = nurse_of(world["a"])
    assert read(conn, ctx, world["sa"].id).unwrap().id == world["sa"].id  # cached now
    assert isinstance(read(admin_conn, ctx, world["sa"].id).failure(), Forbidden)


def test_an_own_by_id_read_cached_on_redis_is_refused_on_a_privileged_connection(
        conn: Conn, admin_conn: Conn, world: dict[str, Any], redis_url: str) -> None:
    """wxdata's own audited by-id read, cached on Redis, goes to PostgreSQL unlooked-up: the
    refusal of a privileged connection is then the read's own, and nothing is read or recorded."""
    from tests.cache_support import all_keys, audit_rows, redis_backend, wipe
    from wxdata.cache import cached

    namespace = f"wx-refuse-{uuid.uuid4().hex[:8]}"
    backend = redis_backend(redis_url, namespace)
    try:
        read = cached(students.ENTITY, cache=backend)(students.find_by_id)
        ctx = nurse_of(world["a"])
        assert read(conn, ctx, world["sa"].id).unwrap().id == world["sa"].id
        refused = attrs.evolve(ctx, request_id=f"req-refused-{uuid.uuid4().hex[:8]}")
        assert isinstance(read(admin_conn, refused, world["sa"].id).failure(), Forbidden)
        assert audit_rows(admin_conn, refused.request_id, "Student") == []
        assert audit_rows(admin_conn, ctx.request_id, "Student")  # the allowed read's record
        assert backend.counters.raw().get("Student", {}).get("bypasses") == 2
        assert all_keys(redis_url, f"{namespace}:*") == []  # neither looked up nor filled
    finally:
        wipe(redis_url, namespace)


def test_allowed_privileged_connection_works_and_warns(
        owner_url: str, world: dict[str, Any], caplog: pytest.LogCaptureFixture,
        restore_settings: None) -> None:
    from wxdata.db import connect, create_pool

    configure(load_settings({"WXDATA_ALLOW_PRIVILEGED_CONNECTION": "true",
                             "WXDATA_SCOPE_KEY": base64.b64encode(TEST_SCOPE_KEY).decode()}))
    ctx = nurse_of(world["a"])
    with caplog.at_level(logging.WARNING, logger="wxdata.tx"):
        with connect(owner_url) as c:
            assert students.find_by_id(c, ctx, world["sb"].id).unwrap().id == world["sb"].id
        with create_pool(owner_url, min_size=1, max_size=1) as pool, pool.connection() as c:
            assert students.count(c, ctx, {}).unwrap() >= 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "NOT enforced" in r.getMessage()]
    assert len(warnings) >= 2  # one for connect(), one for the pool's connection


def test_privileged_connect_warns_even_when_refusing(
        owner_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from wxdata.db import connect

    with caplog.at_level(logging.WARNING, logger="wxdata.tx"), connect(owner_url):
        pass
    assert any("will be refused" in r.getMessage() for r in caplog.records)


def test_owner_of_an_unforced_table_counts_as_privileged(
        admin_conn: Conn, db_url: str, app_role: tuple[str, str]) -> None:
    from wxdata.tx.scope import bypasses_row_security

    table = f"scope_probe_{uuid.uuid4().hex[:8]}"
    admin_conn.execute(sql.SQL("CREATE TABLE {} (id int, school_id uuid)").format(
        sql.Identifier(table)))
    try:
        admin_conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(
            sql.Identifier(table)))
        admin_conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(
            sql.Identifier(table), sql.Identifier(app_role[0])))
        with psycopg.connect(db_url, autocommit=True) as c:
            assert bypasses_row_security(c)
            ctx = ExecutionContext(user_id="u-1", role=Role.NURSE)
            assert isinstance(fetch(c, ctx, "SELECT 1").failure(), Forbidden)
        admin_conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(
            sql.Identifier(table)))
        with psycopg.connect(db_url, autocommit=True) as c:
            assert not bypasses_row_security(c)
    finally:
        admin_conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


# --- the key must match -----------------------------------------------------------------------


def test_a_key_that_differs_from_the_databases_fails_closed(
        db_url: str, world: dict[str, Any], restore_settings: None) -> None:
    other = secrets.token_bytes(32)
    configure(load_settings({"WXDATA_SCOPE_KEY": base64.b64encode(other).decode()}))
    with psycopg.connect(db_url, autocommit=True) as c:
        result = students.find_by_id(c, nurse_of(world["a"]), world["sa"].id)
        error = result.failure()
        assert isinstance(error, Unavailable)
        assert "WXDATA_SCOPE_KEY" in error.reason
        assert base64.b64encode(other).decode() not in error.reason
        assert other.hex() not in error.reason
    configure(load_settings({}))
    with psycopg.connect(db_url, autocommit=True) as c:
        missing = students.find_by_id(c, nurse_of(world["a"]), world["sa"].id).failure()
        assert isinstance(missing, Unavailable) and "WXDATA_SCOPE_KEY" in missing.reason


# --- wxdata migrate: the two roles ------------------------------------------------------------


def test_migrate_creates_the_application_role(
        fresh_database: Any, sys_ctx: ExecutionContext, monkeypatch: pytest.MonkeyPatch,
        restore_settings: None, capsys: pytest.CaptureFixture[str]) -> None:
    import wxdata.tx.token as token
    from wxdata.cli import main
    from wxdata.config import settings as current

    owner = fresh_database()
    role, password = f"wxdata_test_mig_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    app = make_conninfo(owner, user=role, password=password)
    env = {"WXDATA_MIGRATION_URL": owner, "DATABASE_URL": app}
    # no key registered by an embedded server or a test kit earlier in this process either
    monkeypatch.setattr(token, "_fallback", [])
    try:
        configure(load_settings({**env}))
        assert main(["migrate"]) == 2  # no scope key: refused, naming the variable
        assert "WXDATA_SCOPE_KEY" in capsys.readouterr().err
        configure(load_settings({**env, "WXDATA_MASTER_KEY": base64.b64encode(b"m" * 32).decode()}))
        assert main(["migrate"]) == 0
        key = current().secret("scope")
        assert key is not None
        with psycopg.connect(owner, autocommit=True) as admin:
            row = admin.execute(
                "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole,"
                " pg_has_role(rolname, 'wxdata_app', 'MEMBER') FROM pg_roles WHERE rolname = %s",
                (role,)).fetchone()
            assert row == (True, False, False, False, False, True)
            assert admin.execute("SELECT wxdata_scope_key_fingerprint()").fetchone() == (
                fingerprint(key),)
        with psycopg.connect(app, autocommit=True) as c, pytest.raises(
                psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT ipad FROM wxdata_scope_key")
        with psycopg.connect(app, autocommit=True) as c:
            school = _school(c)
            made = students.create(c, sys_ctx, student_values(school)).unwrap()
            assert students.find_by_id(c, nurse_of(school), made.id).unwrap().id == made.id
            assert students.find_by_id(c, nurse_of(_school(c)), made.id) == Failure(
                NotFound("Student"))
    finally:
        with psycopg.connect(owner, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE usename = %s", (role,))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
