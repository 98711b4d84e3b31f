"""Values: exact, pickle-free round trips, sealed envelopes, immutability of shared values."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wxdata.cache import serde
from wxdata.cache.crypto import Envelope
from wxdata.query.paging import KeysetPage, Page
from wxdata.schema import HealthRecord, Student
from wxdata.schema.organisation import User


def student(**over: Any) -> Student:
    values: dict[str, Any] = dict(
        id=uuid.uuid4(), student_number="STU-1", first_name="Ada", last_name="Lovelace",
        date_of_birth=date(2014, 5, 17), grade="5", gender="FEMALE", photo=None,
        medical_record_num="AB-12345", is_active=True, enrollment_date=date(2020, 9, 1),
        nurse_id=None, school_id=uuid.uuid4(), district_id=uuid.uuid4(), version=3,
        created_at=datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=ZoneInfo("Etc/UTC")),
        updated_at=datetime(2024, 6, 1, 12, 0, tzinfo=ZoneInfo("America/New_York")),
        created_by="u1", updated_by=None, deleted_at=None,
    )
    values.update(over)
    return Student(**values)


def record(**over: Any) -> HealthRecord:
    values: dict[str, Any] = dict(
        id=uuid.uuid4(), student_id=uuid.uuid4(), record_type="ILLNESS", title="Flu",
        description="fever", record_date=date(2024, 2, 1), provider=None, provider_npi=None,
        facility=None, facility_npi=None, diagnosis="Influenza A", diagnosis_code="J10.1",
        treatment=None, follow_up_required=False, follow_up_date=None, follow_up_completed=False,
        attachments=[{"name": "x.pdf", "size": 12}], metadata={"temp": 38.5, "tags": ["a"]},
        is_confidential=True, notes=None, version=1,
        created_at=datetime(2024, 2, 1, tzinfo=timezone(timedelta(hours=2))),
        updated_at=datetime(2024, 2, 1, tzinfo=UTC), created_by=None, updated_by=None,
        deleted_at=None,
    )
    values.update(over)
    return HealthRecord(**values)


def roundtrip(value: Any) -> Any:
    return serde.loads(serde.dumps(value))


def test_rows_round_trip_exactly_with_types_and_zones() -> None:
    s = student()
    back = roundtrip(s)
    assert back == s and type(back) is Student
    for f in attrs.fields(Student):
        a, b = getattr(s, f.name), getattr(back, f.name)
        assert type(a) is type(b), f.name
        if isinstance(a, datetime):
            assert a.tzinfo == b.tzinfo and a.utcoffset() == b.utcoffset() and a.isoformat() == \
                b.isoformat()
    r = record()
    back_r = roundtrip(r)
    assert back_r == r and back_r.metadata == {"temp": 38.5, "tags": ["a"]}
    assert back_r.created_at.utcoffset() == timedelta(hours=2)


def test_pages_tuples_dicts_round_trip() -> None:
    rows = (student(), student(grade="6"))
    page = Page.of(rows, 2, 20, 41)
    assert roundtrip(page) == page and type(roundtrip(page).data) is tuple
    keyset = KeysetPage(rows, "cursor-token")
    assert roundtrip(keyset) == keyset
    projected = Page.of([{"id": uuid.uuid4(), "grade": "5", "$odd": Decimal("1.10")}], 1, 20, 1)
    back = roundtrip(projected)
    assert back == projected and str(back.data[0]["$odd"]) == "1.10"
    mixed = (1, 1.0, True, "1", None, Decimal("1"), [1, (2, 3)], {1: "int key"},
             frozenset({"a"}), {"s"}, time(9, 30), timedelta(days=1, microseconds=5), b"\x00raw")
    assert roundtrip(mixed) == mixed
    assert [type(x) for x in roundtrip(mixed)] == [type(x) for x in mixed]


def test_non_finite_and_special_values() -> None:
    assert roundtrip((float("inf"), float("-inf"))) == (float("inf"), float("-inf"))
    nan = roundtrip(float("nan"))
    assert nan != nan


def test_unregistered_types_are_refused_and_payloads_cannot_name_classes() -> None:
    class Foreign:
        pass

    with pytest.raises(serde.Unserialisable):
        serde.dumps(Foreign())
    with pytest.raises(serde.Unserialisable):
        serde.dumps(record(metadata={"when": date(2020, 1, 1)}))  # not JSON in a JSON column
    for payload in (
        {"$r": "os.system", "v": ["echo pwned"]},
        {"$r": "subprocess.Popen", "v": [["id"]]},
        {"$row": "NoSuchEntity", "v": []},
        {"$row": "Student", "v": [1, 2]},
        {"$weird": 1},
        {"$u": "not-a-uuid"},
        {"$dt": "2020-01-01T00:00:00|../../etc/passwd"},
    ):
        with pytest.raises(serde.CorruptPayload):
            serde.loads(json.dumps(payload).encode())
    for garbage in (b"", b"\x00\xff", b"{", b"[1,2", b"\xc3\x28"):
        with pytest.raises(serde.CorruptPayload):
            serde.loads(garbage)


def test_register_value_type_needs_frozen_attrs() -> None:
    @attrs.define
    class Mutable:
        x: int

    with pytest.raises(TypeError):
        serde.register_value_type(Mutable)

    @attrs.frozen
    class Summary:
        visits: int
        last: date | None

    serde.register_value_type(Summary, "test.Summary")
    assert roundtrip(Summary(3, date(2024, 1, 1))) == Summary(3, date(2024, 1, 1))


def test_secret_columns_are_detected_and_rows_cannot_carry_them() -> None:
    assert serde.find_secret({"email": "x", "password_hash": "h"}) == "password_hash"
    assert serde.find_secret(Page.of([{"id": 1, "mfa_secret": "s"}], 1, 20, 1)) == "mfa_secret"
    assert serde.find_secret([{"mfa_enabled": True}]) is None  # a general column, not a secret
    assert "password_hash" not in {f.name for f in attrs.fields(User)}
    assert serde.find_secret(student()) is None


def test_frozen_values_are_shared_and_mutable_ones_copied() -> None:
    s = student()
    assert serde.is_frozen(s) and serde.is_frozen(Page.of((s,), 1, 20, 1))
    assert serde.thaw(s) is s
    r = record()
    assert not serde.is_frozen(r)  # JSON columns hold lists and dicts
    copy = serde.thaw(r)
    assert copy == r and copy.metadata is not r.metadata and copy.attachments is not r.attachments
    assert not serde.is_frozen([s]) and not serde.is_frozen({"a": 1})
    assert serde.is_frozen((1, "a", None, date.today(), frozenset({1})))


# --- envelopes -----------------------------------------------------------------------------


def test_envelope_seals_opens_and_binds_the_key() -> None:
    env = Envelope(os.urandom(32))
    payload = serde.dumps(student())
    for sensitive in (True, False):
        blob = env.seal("white-cross:student:id:aa", payload, sensitive)
        assert env.open("white-cross:student:id:aa", blob, sensitive) == payload
        with pytest.raises(serde.CorruptPayload):  # copied under another patient's key
            env.open("white-cross:student:id:bb", blob, sensitive)
        flipped = blob[:-1] + bytes([blob[-1] ^ 1])
        with pytest.raises(serde.CorruptPayload):
            env.open("white-cross:student:id:aa", flipped, sensitive)
    sealed = env.seal("k", payload, True)
    assert b"Lovelace" not in sealed and b"Ada" not in sealed
    plain = env.seal("k", payload, False)
    with pytest.raises(serde.CorruptPayload):  # a sensitive read never accepts a plaintext entry
        env.open("k", plain, True)


def test_envelope_key_rotation_and_unknown_keys() -> None:
    old, new = os.urandom(32), os.urandom(32)
    blob = Envelope(old).seal("k", b"payload", True)
    with pytest.raises(serde.CorruptPayload):
        Envelope(new).open("k", blob, True)
    assert Envelope(new, previous=[old]).open("k", blob, True) == b"payload"
    with pytest.raises(PermissionError):
        Envelope(new, encrypt=False).seal("k", b"payload", True)


@st.composite
def values(draw: st.DrawFn) -> Any:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6),
        st.uuids(), st.decimals(allow_nan=False, allow_infinity=False),
        st.dates(), st.datetimes(timezones=st.sampled_from([UTC, ZoneInfo("Europe/Paris"),
                                                            timezone(timedelta(hours=5))])),
    )
    return draw(st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
                                st.dictionaries(st.text(max_size=4), inner, max_size=3)),
        max_leaves=10,
    ))


@settings(max_examples=200, deadline=None)
@given(values())
def test_any_supported_value_round_trips_with_its_types(value: Any) -> None:
    back = roundtrip(value)
    assert back == value

    def types(v: Any) -> Any:
        if isinstance(v, list | tuple):
            return (type(v), [types(x) for x in v])
        if isinstance(v, dict):
            return (dict, {k: types(x) for k, x in v.items()})
        if isinstance(v, Decimal):
            return (Decimal, str(v))
        if isinstance(v, datetime):
            return (datetime, v.isoformat(), getattr(v.tzinfo, "key", None))
        return type(v)

    assert types(back) == types(value)


def test_datetimes_in_a_dst_gap_or_fold_round_trip_exactly() -> None:
    paris = ZoneInfo("Europe/Paris")
    for value in (datetime(1922, 3, 25, 23, 0, tzinfo=paris),  # a wall time DST skipped
                  datetime(2024, 10, 27, 2, 30, tzinfo=paris, fold=1),  # the second 02:30
                  datetime(2024, 10, 27, 2, 30, tzinfo=paris, fold=0)):
        back = roundtrip(value)
        assert back == value and back.fold == value.fold and back.tzinfo is paris
        assert back.replace(tzinfo=None) == value.replace(tzinfo=None)
