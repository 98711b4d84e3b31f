"""Redaction and diffs (A4): secrets never reach the audit table, clinical free text is masked with
the field name and the fact of change kept, values compare as values, and the SQL rendering (the
CRUD path, computed by PostgreSQL) agrees with the Python rendering (``log_*`` calls) exactly.

Every test reaching wxdata runs through both shells (``wxdata.crud`` / ``wxdata.aio.crud``,
``log_update`` / ``wxdata.aio.audit.log_update``); the pure rules and the SQL functions alone are
shell-free and run once."""

from __future__ import annotations

import json
import string
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.shells import parametrise
from wxdata import ExecutionContext, Purpose, Role, crud
from wxdata.audit import (
    MASK,
    SECRET_MARK,
    diff,
    is_secret_name,
    log_update,
    redact,
    redact_row,
    same_value,
    scrub,
)
from wxdata.audit import sql as audit_sql
from wxdata.audit.redact import to_json_value
from wxdata.domains import health_records
from wxdata.schema import USERS
from wxdata.schema import spec as spec_module
from wxdata.schema.spec import (
    DataClass,
    col,
    created_at,
    deleted_at,
    entity,
    pk,
    row,
    secret,
    updated_at,
    version,
)

Conn = psycopg.Connection[Any]
#: No wxdata call: the same under both shells, run once.
shell_free = pytest.mark.sync_only
parametrise(globals())
FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# --- strategies -------------------------------------------------------------------------------

plain_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                     max_size=24)
SECRET_KEYS = ["password", "apiKey", "student_ssn", "pin", "otp_code", "mfa_secret",
               "refresh-token", "PrivateKey", "backup_codes_2"]
PLAIN_KEYS = ["bp", "note", "spinal", "classname", "grade", "a", "b", "items"]
json_keys = st.sampled_from(SECRET_KEYS + PLAIN_KEYS) | st.text(string.ascii_letters, min_size=1,
                                                                 max_size=6)
json_leaf = (st.none() | st.booleans() | st.integers(-(10**9), 10**9)
             | st.floats(min_value=-1e6, max_value=1e6, allow_subnormal=False) | plain_text)
json_docs = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_keys, inner, max_size=4),
    max_leaves=10,
)


def sentinel() -> st.SearchStrategy[str]:
    """A secret value that cannot occur in an audit row by accident."""
    return st.builds(lambda tail, tag: f"S3CR3T{uuid.uuid4().hex}{tag}{tail}",
                     plain_text.filter(lambda s: "\\" not in s and '"' not in s),
                     st.sampled_from(["", "-x", "π"]))


_SCHOOLS: list[uuid.UUID] = []  # the school of the running test (see ``_test_school``)


@pytest.fixture(autouse=True)
def _test_school(school: dict[str, uuid.UUID]) -> None:
    """Every test works in the ``school`` fixture's school (the one ``make_student`` uses)."""
    _SCHOOLS[:] = [school["school_id"]]


def fresh_ctx() -> ExecutionContext:
    """An administrator of the test's school with a request id of her own."""
    return ExecutionContext(user_id="u-admin-1", role=Role.ADMIN, purpose=Purpose.OPERATIONS,
                            request_id=f"req-{uuid.uuid4().hex[:12]}", school_ids=set(_SCHOOLS))


def audit_text(conn: Conn, ctx: ExecutionContext) -> str:
    rows = conn.execute("SELECT a::text FROM audit_log a WHERE request_id = %s",
                        (ctx.request_id,)).fetchall()
    return "\n".join(r[0] for r in rows)


def one_record(conn: Conn, ctx: ExecutionContext, action: str, entity_id: UUID) -> dict[str, Any]:
    cur = conn.execute(
        "SELECT changes, previous_values, new_values FROM audit_log "
        "WHERE request_id = %s AND action = %s AND entity_id = %s", (ctx.request_id, action, entity_id))
    rows = cur.fetchall()
    assert len(rows) == 1
    return {"changes": rows[0][0], "previous_values": rows[0][1], "new_values": rows[0][2]}


# --- secrets ----------------------------------------------------------------------------------

USER_SECRETS = ("password_hash", "mfa_secret", "mfa_backup_codes", "two_factor_secret",
                "password_reset_token", "email_verification_token")


@FUZZ
@given(secrets=st.lists(sentinel(), min_size=12, max_size=12), first=plain_text.filter(bool),
       bad_email=st.booleans())
def test_user_secrets_never_reach_the_audit_table(conn, secrets, first, bad_email) -> None:
    ctx = fresh_ctx()
    tag = uuid.uuid4().hex[:12]
    values: dict[str, Any] = {
        "email": f"u{tag}@example.org", "first_name": first[:100], "last_name": "Smith",
        "role": "NURSE", **dict(zip(USER_SECRETS, secrets[:6], strict=True))}
    if bad_email:  # a failure goes to lane 2: its record must not echo a secret either
        failed = crud.create(conn, ctx, USERS, {**values, "email": "not an email"})
        assert failed.failure().code == "VALIDATION_FAILED"
    user = crud.create(conn, ctx, USERS, values).unwrap()
    changes = {**dict(zip(USER_SECRETS, secrets[6:], strict=True)), "last_name": "Jones"}
    crud.update(conn, ctx, USERS, user.id, changes).unwrap()
    log_update(conn, ctx, USERS, user.id, {"password_hash": secrets[0], "last_name": "Smith"},
               {"password_hash": secrets[6], "last_name": "Jones"}).unwrap()
    text = audit_text(conn, ctx)
    for value in secrets:
        assert value not in text
    rows = conn.execute("SELECT changes FROM audit_log WHERE request_id = %s AND action = 'UPDATE'",
                        (ctx.request_id,)).fetchall()
    assert len(rows) == 2  # the CRUD update (SQL rendering) and log_update (Python rendering)
    for (recorded,) in rows:
        assert recorded["password_hash"] == {"before": SECRET_MARK, "after": SECRET_MARK,
                                             "changed": True}
        assert recorded["last_name"] == {"before": "Smith", "after": "Jones"}


@FUZZ
@given(doc=json_docs, token=sentinel(), deep=sentinel())
def test_secret_keys_inside_json_columns_are_scrubbed(conn, make_student, doc, token, deep) -> None:
    ctx = fresh_ctx()
    s = make_student()
    metadata = {"payload": doc, "api_token": token, "nested": [{"Password": deep, "ok": 1}]}
    rec = health_records.create(conn, ctx, {
        "student_id": s.id, "record_type": "CHECKUP", "title": "t", "description": "d",
        "record_date": date(2024, 1, 2), "metadata": metadata}).unwrap()
    health_records.update(conn, ctx, rec.id, {"metadata": {**metadata, "api_token": deep}}).unwrap()
    text = audit_text(conn, ctx)
    assert token not in text and deep not in text
    created = one_record(conn, ctx, "CREATE", rec.id)["new_values"]["metadata"]
    assert created == json.loads(json.dumps(scrub(metadata)))  # the same as the Python rendering
    assert created["nested"][0] == {"Password": SECRET_MARK, "ok": 1}


# --- clinical text ----------------------------------------------------------------------------

CLINICAL = ("description", "diagnosis", "treatment", "notes")


@FUZZ
@given(texts=st.lists(sentinel(), min_size=8, max_size=8), keep=st.sampled_from(CLINICAL))
def test_clinical_text_is_masked_with_field_name_and_change_kept(conn, make_student, texts, keep) -> None:
    ctx = fresh_ctx()
    s = make_student()
    first = dict(zip(CLINICAL, texts[:4], strict=True))
    rec = health_records.create(conn, ctx, {
        "student_id": s.id, "record_type": "ILLNESS", "title": "Visit",
        "record_date": date(2024, 3, 1), **first}).unwrap()
    second = {k: v for k, v in zip(CLINICAL, texts[4:], strict=True) if k != keep}
    second[keep] = first[keep]  # unchanged clinical field: absent from the diff
    health_records.update(conn, ctx, rec.id, second).unwrap()
    text = audit_text(conn, ctx)
    for value in texts:
        assert value not in text
    created = one_record(conn, ctx, "CREATE", rec.id)["new_values"]
    assert all(created[k] == MASK for k in CLINICAL)
    changes = one_record(conn, ctx, "UPDATE", rec.id)["changes"]
    assert set(changes) == set(CLINICAL) - {keep}
    for k in changes:
        assert changes[k] == {"before": MASK, "after": MASK, "changed": True}


def test_clearing_clinical_text_records_null_not_the_text(conn, make_student) -> None:
    ctx = fresh_ctx()
    s = make_student()
    rec = health_records.create(conn, ctx, {
        "student_id": s.id, "record_type": "ILLNESS", "title": "Visit", "description": "d",
        "record_date": date(2024, 3, 1), "diagnosis": "Streptococcal pharyngitis"}).unwrap()
    health_records.update(conn, ctx, rec.id, {"diagnosis": None}).unwrap()
    changes = one_record(conn, ctx, "UPDATE", rec.id)["changes"]
    assert changes == {"diagnosis": {"before": MASK, "after": None, "changed": True}}


# --- by value ---------------------------------------------------------------------------------


def _equal_variant(value: Any) -> Any:
    """The same JSON value spelled differently: keys reordered, integral numbers as floats."""
    if isinstance(value, dict):
        return {k: _equal_variant(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_equal_variant(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**52:
        return float(value)
    return value


@FUZZ
@given(doc=json_docs, other=json_docs)
def test_json_dates_and_arrays_diff_by_value(conn, make_student, doc, other) -> None:
    ctx = fresh_ctx()
    s = make_student()
    rec = health_records.create(conn, ctx, {
        "student_id": s.id, "record_type": "CHECKUP", "title": "t", "description": "d",
        "record_date": date(2024, 1, 2), "metadata": {"doc": doc},
        "attachments": ["a.pdf", {"k": 1}]}).unwrap()
    health_records.update(conn, ctx, rec.id, {
        "title": "t2", "record_date": date(2024, 1, 2), "metadata": _equal_variant({"doc": doc}),
        "attachments": ["a.pdf", {"k": 1.0}]}).unwrap()
    changes = one_record(conn, ctx, "UPDATE", rec.id)["changes"]
    assert changes == {"title": {"before": "t", "after": "t2"}}  # no spurious changes
    again = health_records.update(conn, ctx, rec.id, {"metadata": {"doc": other}}).unwrap()
    second = conn.execute(
        "SELECT changes FROM audit_log WHERE request_id = %s AND action = 'UPDATE' "
        "ORDER BY seq DESC LIMIT 1", (ctx.request_id,)).fetchone()
    assert second is not None
    # PostgreSQL's IS DISTINCT FROM and the Python same_value agree on every pair of documents
    assert ("metadata" in second[0]) == (not same_value({"doc": doc}, {"doc": other}))
    assert again.metadata == json.loads(json.dumps({"doc": other}))


_UPDATABLE = {
    "title": st.sampled_from(["t", "t2", "Visit"]),
    "description": st.sampled_from(["d", "other"]),
    "diagnosis": st.sampled_from(["dx", None]),
    "provider": st.sampled_from(["Dr A", "Dr B", None]),
    "is_confidential": st.booleans(),
    "record_date": st.sampled_from([date(2024, 1, 2), date(2024, 5, 6)]),
    "metadata": st.sampled_from([None, {"a": 1}, {"a": 1.0, "api_token": "x"}]),
}


@FUZZ
@given(first=st.fixed_dictionaries({}, optional=_UPDATABLE),
       second=st.fixed_dictionaries({}, optional=_UPDATABLE).filter(bool))
def test_an_updates_images_are_the_halves_of_its_changes(conn, make_student, first, second) -> None:
    """previous_values and new_values hold exactly each change's before and after, for exactly the
    columns whose value changed (and all three are empty objects when nothing did)."""
    ctx = fresh_ctx()
    s = make_student()
    rec = health_records.create(conn, ctx, {
        "student_id": s.id, "record_type": "CHECKUP", "title": "t", "description": "d",
        "record_date": date(2024, 1, 2), **first}).unwrap()
    health_records.update(conn, ctx, rec.id, second).unwrap()
    images = one_record(conn, ctx, "UPDATE", rec.id)
    changes = images["changes"]
    changed = {k for k, v in second.items() if not same_value(getattr(rec, k), v)}
    assert set(changes) == changed
    assert images["previous_values"] == {k: v["before"] for k, v in changes.items()}
    assert images["new_values"] == {k: v["after"] for k, v in changes.items()}
    # and each change is the one the Python model records: redacted alike, by value alike
    assert changes == json.loads(json.dumps(diff(health_records.ENTITY, attrs.asdict(rec), second),
                                            default=to_json_value))


@shell_free
def test_python_diff_compares_by_value() -> None:
    before = {"d": date(2024, 1, 1), "n": Decimal("1.0"), "j": {"a": 1, "b": [1, 2]},
              "t": datetime(2024, 1, 1, 12, tzinfo=UTC), "f": True, "x": 1}
    after = {"d": date(2024, 1, 1), "n": Decimal("1.00"), "j": {"b": [1.0, 2], "a": 1.0},
             "t": datetime(2024, 1, 1, 7, tzinfo=timezone(timedelta(hours=-5))), "f": True,
             "x": 1}
    assert diff(None, before, after) == {}
    assert diff(None, {"j": {"a": 1}}, {"j": {"a": True}}) == {
        "j": {"before": {"a": 1}, "after": {"a": True}}}
    assert diff(None, {"d": date(2024, 1, 1)}, {"d": datetime(2024, 1, 1)}) != {}
    assert diff(None, {"version": 1, "updated_at": 1}, {"version": 2, "updated_at": 2}) == {}
    assert diff(None, {"n": Decimal("NaN")}, {"n": Decimal("NaN")}) == {}
    assert diff(None, {"n": 1.5}, {"n": Decimal("1.5")}) == {}


@shell_free
def test_json_rendering_is_valid_json_like_postgres() -> None:
    assert to_json_value(date(2024, 2, 29)) == "2024-02-29"
    assert to_json_value(datetime(2024, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)) == (
        "2024-01-01T10:00:00.5+00:00")
    assert to_json_value(Decimal("1E+2")) == "100" and to_json_value(Decimal("-0.00")) == "0.00"
    assert to_json_value((1, {2, 3}.__class__([2]))) == [1, [2]]
    assert to_json_value(float("inf")) == "Infinity" and to_json_value(float("nan")) == "NaN"
    json.dumps(to_json_value({"a": [date(2024, 1, 1), Decimal("2.50"), uuid.UUID(int=1)]}))


# --- one registry, two renderings -------------------------------------------------------------

names = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=24)


@shell_free
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(names | st.sampled_from(SECRET_KEYS + PLAIN_KEYS + [
    "mfa_enabled", "taxid", "syntax_identifier", "passWord", "studentSSN", "SSN", "business_name"]),
    min_size=1, max_size=30))
def test_sql_and_python_agree_on_secret_names(conn, batch) -> None:
    rows = conn.execute(f"SELECT n, {audit_sql.SECRET_NAME_FUNCTION}(n) FROM unnest(%s::text[]) n",
                        (batch,)).fetchall()
    assert {n: bool(v) for n, v in rows} == {n: is_secret_name(n) for n in batch}


@shell_free
def test_sql_functions_carry_the_python_rules(conn) -> None:
    source = conn.execute("SELECT pg_get_functiondef(%s::regproc)",
                          (audit_sql.SECRET_NAME_FUNCTION,)).fetchone()
    assert source is not None
    for rule in (redact.SECRET_PARTS_RE, redact.SECRET_TOKENS_RE, redact.CAMEL_RE):
        assert rule in source[0]


@shell_free
def test_secret_name_rule_examples() -> None:
    for name in ("password_hash", "mfaSecret", "mfa_backup_codes", "API-Key", "ssn", "student_ssn",
                 "studentSSN", "pin_code", "tax_id", "taxid", "refreshToken", "private_key"):
        assert is_secret_name(name), name
    for name in ("classname", "business_name", "spinal", "mfa_enabled", "footprint",
                 "syntax_identifier", "first_name", "grade", "grade_level"):
        assert not is_secret_name(name), name


@shell_free
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=json_docs)
def test_sql_scrub_equals_python_scrub(conn, doc) -> None:
    expr = audit_sql.scrub_expr("%(d)s::jsonb")
    got = conn.execute(f"SELECT {expr}", {"d": json.dumps(doc)}).fetchone()
    assert got is not None
    assert got[0] == json.loads(json.dumps(scrub(doc)))


# A probe entity with a column of every kind, never registered (it must not join the real schema).
@row
class Probe:
    """Every kind of column the redaction and diff code must render."""

    id: UUID = pk()
    label: str = col(DataClass.GENERAL)
    count: int = col(DataClass.GENERAL)
    ratio: float = col(DataClass.GENERAL)
    flag: bool = col(DataClass.GENERAL)
    amount: Decimal = col(DataClass.GENERAL)
    day: date = col(DataClass.PHI)
    moment: datetime = col(DataClass.GENERAL)
    ref: UUID = col(DataClass.GENERAL)
    tags: list[str] = col(DataClass.GENERAL)
    refs: list[UUID] = col(DataClass.GENERAL)
    doc: dict[str, Any] | None = col(DataClass.PHI)
    note: str | None = col(DataClass.PHI, sql="text", clinical_text=True)
    api_token: str | None = col(DataClass.GENERAL)
    version: int = version()
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()
    deleted_at: datetime | None = deleted_at()


PROBE_TABLE = "wx_audit_probe"
PROBE = entity(Probe, table=PROBE_TABLE, name="AuditProbe", secrets=(secret("pin_hash"),))
spec_module._REGISTRY.pop(PROBE.name, None)  # a test-only spec: keep it out of the registry

PROBE_DDL = f"""CREATE TABLE {PROBE_TABLE} (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), label text NOT NULL, count integer NOT NULL,
    ratio double precision NOT NULL, flag boolean NOT NULL, amount numeric NOT NULL,
    day date NOT NULL, moment timestamptz NOT NULL, ref uuid NOT NULL, tags text[] NOT NULL,
    refs uuid[] NOT NULL, doc jsonb, note text, api_token text, pin_hash text,
    version integer NOT NULL DEFAULT 1, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz)"""


@pytest.fixture
def probe_table(admin_conn: Conn) -> Iterator[str]:
    admin_conn.execute(f"DROP TABLE IF EXISTS {PROBE_TABLE}")
    admin_conn.execute(PROBE_DDL)
    admin_conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {PROBE_TABLE} TO wxdata_app")
    yield PROBE_TABLE
    admin_conn.execute(f"DROP TABLE IF EXISTS {PROBE_TABLE}")


moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                       timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
probe_values = st.fixed_dictionaries({
    "label": plain_text, "count": st.integers(-(2**31), 2**31 - 1),
    "ratio": st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False),
    "flag": st.booleans(),
    "amount": st.decimals(allow_nan=False, allow_infinity=False, places=3,
                          min_value=-(10**9), max_value=10**9),
    "day": st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)), "moment": moments,
    "ref": st.uuids(), "tags": st.lists(plain_text, max_size=3),
    "refs": st.lists(st.uuids(), max_size=2),
    "doc": st.none() | st.dictionaries(json_keys, json_docs, max_size=3),
    "note": st.none() | plain_text, "api_token": st.none() | plain_text, "pin_hash": plain_text,
})


def _numbers(value: Any) -> Any:
    """JSON with every number as a float: PostgreSQL prints 3.6e16 as 36028797018963990."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _stored(row_value: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The values as PostgreSQL stored them (read back), secrets as the caller gave them."""
    stored = attrs.asdict(row_value, recurse=False)
    return {k: stored[k] if k in stored else values[k] for k in values}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(before=probe_values, after=probe_values,
       keep=st.sets(st.sampled_from(list(Probe.__annotations__)[1:14])), respell=st.booleans())
def test_sql_and_python_render_the_same_change(conn, probe_table, before, after, keep, respell) -> None:
    """The CRUD path (snapshots and diffs computed in SQL) and the Python path (redact_row/diff)
    store identical JSON for the same create and the same update."""
    ctx = fresh_ctx()
    changes = dict(after)
    for name in keep:  # some fields keep their value, possibly spelled differently
        changes[name] = before[name]
        if respell and name == "amount":
            changes[name] = before[name].quantize(Decimal("0.00001"))
        if respell and name == "moment":
            changes[name] = before[name].astimezone(timezone(timedelta(hours=-3)))
        if respell and name == "doc" and before[name] is not None:
            changes[name] = _equal_variant(before[name])
    created = crud.create(conn, ctx, PROBE, before).unwrap()
    updated = crud.update(conn, ctx, PROBE, created.id, changes).unwrap()

    recorded_create = one_record(conn, ctx, "CREATE", created.id)
    python_create = redact_row(PROBE, {"id": created.id, **_stored(created, before)})
    assert _numbers(recorded_create["new_values"]) == _numbers(json.loads(json.dumps(python_create)))

    recorded_update = one_record(conn, ctx, "UPDATE", created.id)
    python_update = diff(PROBE, attrs.asdict(created, recurse=False), _stored(updated, changes))
    assert _numbers(recorded_update["changes"]) == _numbers(json.loads(json.dumps(python_update)))
    assert "pin_hash" in recorded_update["changes"]  # a secret that was set: the fact, no value
    assert all(v.get("changed") for k, v in recorded_update["changes"].items()
               if k in ("note", "pin_hash", "api_token"))
