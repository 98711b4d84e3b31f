"""Generic CRUD against the real PostgreSQL: round trips, pagination, concurrency, bad input."""

from __future__ import annotations

import threading
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from returns.result import Failure, Success

from tests.cache_support import records_refused
from tests.conftest import student_values
from tests.shells import parametrise
from wxdata import crud
from wxdata.db import connect_kwargs
from wxdata.domains import health_records, students
from wxdata.errors import Conflict, InvalidQuery, NotFound, ValidationFailed
from wxdata.schema import HEALTH_RECORDS, STUDENTS

parametrise(globals())


def test_create_then_find_round_trips_every_column(conn, ctx, school) -> None:
    values = student_values(school, medical_record_num=f"AB-{uuid.uuid4().hex[:8].upper()}",
                            photo="https://x/p.png")
    created = students.create(conn, ctx, values).unwrap()
    found = students.find_by_id(conn, ctx, created.id).unwrap()
    assert found == created
    for name, value in values.items():
        assert getattr(found, name) == value
    assert found.version == 1 and found.created_by == ctx.user_id and found.deleted_at is None


def test_create_and_update_leave_the_callers_values_as_they_were(conn, ctx, school) -> None:
    """The acting user is stamped into the write's own copy, never into the caller's mapping."""
    values = student_values(school)
    before = dict(values)
    created = students.create(conn, ctx, values).unwrap()
    assert values == before and created.created_by == ctx.user_id
    changes = {"grade": "4"}
    students.update(conn, ctx, created.id, changes).unwrap()
    assert changes == {"grade": "4"}


def test_find_by_id_missing_and_malformed(conn, ctx) -> None:
    assert students.find_by_id(conn, ctx, uuid.uuid4()) == Failure(NotFound(entity="Student"))
    result = students.find_by_id(conn, ctx, "1' OR '1'='1")
    assert result == Failure(InvalidQuery(field="id", rule="must be a UUID"))


def test_update_is_partial_and_versioned(conn, ctx, make_student) -> None:
    s = make_student()
    updated = students.update(conn, ctx, s.id, {"grade": "6"}, expected_version=1).unwrap()
    assert updated.grade == "6" and updated.version == 2 and updated.first_name == s.first_name
    stale = students.update(conn, ctx, s.id, {"grade": "7"}, expected_version=1)
    assert stale == Failure(Conflict(entity="Student", reason="stale version", field="version"))
    assert students.find_by_id(conn, ctx, s.id).unwrap().grade == "6"


def test_concurrent_updates_with_same_version_one_wins(db_url, ctx, make_student) -> None:
    s = make_student()
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as c:
            barrier.wait()
            results.append(students.update(c, ctx, s.id, {"grade": str(i)}, expected_version=1))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if isinstance(r, Success)]
    conflicts = [r for r in results if isinstance(r, Failure)]
    assert len(wins) == 1 and len(conflicts) == 3
    assert all(isinstance(r.failure(), Conflict) for r in conflicts)


@pytest.mark.parametrize("field", ["id", "created_at", "deleted_at", "version", "updated_by"])
def test_update_refuses_managed_columns(conn, ctx, make_student, field) -> None:
    s = make_student()
    result = students.update(conn, ctx, s.id, {field: None})
    assert isinstance(result, Failure)
    err = result.failure()
    assert isinstance(err, ValidationFailed)
    assert (field, "is not writable") in {(e.field, e.rule) for e in err.errors}


def test_create_reports_every_bad_field_and_writes_nothing(conn, ctx, school) -> None:
    number = f"BAD-{uuid.uuid4().hex[:8]}"
    values = student_values(school, student_number=number, grade=5, gender="X",
                            first_name="a" * 101, enrollment_date="not a date")
    del values["last_name"]
    values["ssn_hack"] = "1"
    result = students.create(conn, ctx, values)
    assert isinstance(result, Failure)
    rules = {(e.field, e.rule) for e in result.failure().errors}
    assert ("grade", "must be a string") in rules
    assert ("gender", "must be one of: MALE, FEMALE, OTHER, PREFER_NOT_TO_SAY") in rules
    assert ("first_name", "must be at most 100 characters") in rules
    assert ("enrollment_date", "must be an ISO-8601 date") in rules
    assert ("last_name", "is required") in rules
    assert ("ssn_hack", "is not a column of Student") in rules
    assert students.count(conn, ctx, {"student_number": number}).unwrap() == 0


def test_error_messages_never_echo_values(conn, ctx, school) -> None:
    secret_name = "Zebediah-" + uuid.uuid4().hex
    result = students.create(conn, ctx, student_values(school, first_name=secret_name * 10))
    assert isinstance(result, Failure)
    rendered = repr(result.failure()) + str(result.failure().to_dict())
    assert secret_name not in rendered


@pytest.mark.parametrize(
    "bad",
    ["O'Brien\\'; DROP TABLE students; --", "100%_off", "back\\slash", "é漢字\u200b", "x" * 4000],
)
def test_hostile_strings_are_data(conn, ctx, make_student, bad) -> None:
    s = make_student(last_name=bad[:100])
    page = students.find_many(conn, ctx, {"last_name": bad[:100], "id": s.id}).unwrap()
    assert [r.id for r in page.data] == [s.id]
    like = students.find_many(conn, ctx, {"last_name": {"like": bad[:50]}, "id": s.id}).unwrap()
    assert [r.id for r in like.data] == [s.id]


def test_like_escapes_wildcards_unless_pattern(conn, ctx, make_student) -> None:
    tag = uuid.uuid4().hex[:6]
    a = make_student(last_name=f"{tag}100%")
    b = make_student(last_name=f"{tag}1000")
    escaped = students.find_many(conn, ctx, {"last_name": {"like": f"{tag}100%"}}).unwrap()
    assert {r.id for r in escaped.data} == {a.id}
    from wxdata import Pattern

    raw = students.find_many(conn, ctx, {"last_name": {"like": Pattern(f"{tag}100%")}}).unwrap()
    assert {r.id for r in raw.data} == {a.id, b.id}


def test_nul_bytes_rejected_everywhere(conn, ctx, school, make_student) -> None:
    created = students.create(conn, ctx, student_values(school, first_name="A\x00B"))
    assert ("first_name", "must not contain NUL bytes") in {
        (e.field, e.rule) for e in created.failure().errors}
    found = students.find_many(conn, ctx, {"last_name": "x\x00"})
    assert found == Failure(InvalidQuery("last_name", "must not contain NUL bytes"))


def test_megabyte_strings(conn, ctx, school) -> None:
    huge = "y" * 1_000_001
    result = students.create(conn, ctx, student_values(school, last_name=huge))
    assert ("last_name", "must be at most 100 characters") in {
        (e.field, e.rule) for e in result.failure().errors}
    query = students.find_many(conn, ctx, {"last_name": huge})
    assert isinstance(query.failure(), InvalidQuery)


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ({"password_hash": "x"}, "password_hash"),
        ({"nope": 1}, "nope"),
        ({'first_name" = \'x\' OR 1=1 --': 1}, "<invalid field name>"),
        ({"grade": {"in": []}}, "grade"),
        ({"grade": {"regex": ".*"}}, "grade"),
        ({"date_of_birth": {"gt": "yesterday"}}, "date_of_birth"),
        ({"is_active": {"gt": True}}, "is_active"),
        ({"or": []}, "or"),
    ],
)
def test_bad_filters_fail_before_sql(conn, ctx, where, field) -> None:
    result = students.find_many(conn, ctx, where)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidQuery)
    assert result.failure().field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"page": 0}, "page"), ({"limit": 0}, "limit"), ({"limit": 10_000}, "limit"),
     ({"page": -1}, "page"), ({"limit": "20"}, "limit"),
     ({"order_by": ["password_hash"]}, "password_hash"),
     ({"order_by": [("last_name", "sideways")]}, "last_name"),
     ({"order_by": ["last_name; DROP TABLE x"]}, "<invalid field name>")],
)
def test_bad_pages_and_sorts(conn, ctx, kwargs, field) -> None:
    result = students.find_many(conn, ctx, None, **kwargs)
    assert isinstance(result.failure(), InvalidQuery)
    assert result.failure().field == field


def test_projection_allow_list(conn, ctx, make_student) -> None:
    s = make_student()
    page = crud.find_projected(conn, ctx, STUDENTS, ["first_name", "grade"], {"id": s.id}).unwrap()
    assert page.data == ({"first_name": s.first_name, "grade": s.grade},)
    bad = crud.find_projected(conn, ctx, STUDENTS, ["first_name", "password_hash"])
    assert isinstance(bad.failure(), InvalidQuery)


def test_and_or_not_keep_every_sibling(conn, ctx, school, make_student) -> None:
    tag = uuid.uuid4().hex[:6]
    a = make_student(last_name=f"{tag}a", grade="5")
    b = make_student(last_name=f"{tag}b", grade="6")
    make_student(last_name=f"{tag}c", grade="7", is_active=False)
    where = {"school_id": school["school_id"], "is_active": True,
             "or": [{"grade": "5"}, {"grade": "6"}], "not": {"last_name": f"{tag}b"}}
    page = students.find_many(conn, ctx, where).unwrap()
    assert {r.id for r in page.data} == {a.id}
    assert b.id not in {r.id for r in page.data}


def test_page_metadata_and_order(conn, ctx, school, make_student) -> None:
    made = [make_student(last_name=f"Name{i:02d}") for i in range(7)]
    where = {"school_id": school["school_id"]}
    pages = [students.find_many(conn, ctx, where, order_by=["last_name"], page=p, limit=3)
             .unwrap() for p in (1, 2, 3, 4)]
    assert [p.total for p in pages] == [7] * 4
    assert [p.pages for p in pages] == [3] * 4
    assert [p.has_next for p in pages] == [True, True, False, False]
    assert [p.has_previous for p in pages] == [False, True, True, True]
    assert [len(p.data) for p in pages] == [3, 3, 1, 0]
    ordered = [r.id for p in pages for r in p.data]
    assert ordered == [m.id for m in sorted(made, key=lambda m: m.last_name)]


def test_keyset_pages_cover_everything_once(conn, ctx, school, make_student) -> None:
    made = [make_student(grade=str(i % 3)) for i in range(11)]
    where = {"school_id": school["school_id"]}
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = students.find_after(conn, ctx, where, order_by=["grade", "-created_at"],
                                   after=cursor, limit=4).unwrap()
        seen.extend(r.id for r in page.data)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(m.id for m in made) and len(seen) == len(set(seen))
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1] if cursor else "x"
    assert isinstance(students.find_after(conn, ctx, where, order_by=["grade", "-created_at"],
                                          after=tampered).failure(), InvalidQuery)


def test_soft_delete_hides_and_restore_returns(conn, admin_conn, ctx, make_student) -> None:
    s = make_student()
    assert students.delete(conn, ctx, s.id) == Success(None)
    assert students.find_by_id(conn, ctx, s.id) == Failure(NotFound(entity="Student"))
    assert students.find_by_id(conn, ctx, s.id, include_deleted=True).unwrap().deleted_at
    assert students.delete(conn, ctx, s.id) == Failure(NotFound(entity="Student"))
    restored = students.restore(conn, ctx, s.id).unwrap()
    assert restored.deleted_at is None and restored.version == 3
    row = admin_conn.execute("SELECT count(*) FROM students WHERE id = %s", (s.id,)).fetchone()
    assert row == (1,)


def test_duplicate_unique_under_concurrent_insert_is_conflict(db_url, ctx, school) -> None:
    values = student_values(school)
    results: list[Any] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as c:
            barrier.wait()
            results.append(students.create(c, ctx, dict(values)))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, Success) for r in results) == 1
    failures = [r.failure() for r in results if isinstance(r, Failure)]
    assert all(isinstance(f, Conflict) and f.field == "student_number" for f in failures)
    assert values["student_number"] not in repr(failures)


def test_missing_reference_is_validation_failure(conn, sys_ctx) -> None:
    # SYSTEM: a nurse is refused earlier, by the school scope (no such student in her school)
    result = health_records.create(conn, sys_ctx, {
        "student_id": uuid.uuid4(), "record_type": "CHECKUP", "title": "t",
        "description": "d", "record_date": date(2024, 1, 2)})
    err = result.failure()
    assert isinstance(err, ValidationFailed)
    assert err.errors[0].rule == "must reference an existing row"


def test_cross_field_validator_on_create_and_update(conn, ctx, make_student) -> None:
    s = make_student()
    base = {"student_id": s.id, "record_type": "CHECKUP", "title": "Annual",
            "description": "Routine", "record_date": date(2024, 3, 1)}
    bad = health_records.create(conn, ctx, {**base, "follow_up_required": True})
    assert ("follow_up_date", "is required when follow_up_required is true") in {
        (e.field, e.rule) for e in bad.failure().errors}
    rec = health_records.create(conn, ctx, base).unwrap()
    bad_update = health_records.update(conn, ctx, rec.id, {"follow_up_date": date(2024, 2, 1)})
    assert ("follow_up_date", "must not be before record_date") in {
        (e.field, e.rule) for e in bad_update.failure().errors}
    ok = health_records.update(conn, ctx, rec.id, {"follow_up_required": True,
                                                   "follow_up_date": date(2024, 4, 1)})
    assert ok.unwrap().follow_up_date == date(2024, 4, 1)


def test_json_and_arrays_round_trip(conn, ctx, make_student) -> None:
    s = make_student()
    meta = {"bp": [120, 80], "note": "ok", "nested": {"a": None, "b": 1.5}}
    rec = health_records.create(conn, ctx, {
        "student_id": s.id, "record_type": "VITAL_SIGNS_CHECK", "title": "BP",
        "description": "measured", "record_date": date(2024, 3, 1),
        "attachments": ["a.pdf", "b.png"], "metadata": meta}).unwrap()
    again = health_records.find_by_id(conn, ctx, rec.id).unwrap()
    assert again.metadata == meta and again.attachments == ["a.pdf", "b.png"]


def test_bulk_create_all_or_nothing(conn, ctx, school) -> None:
    good = [student_values(school) for _ in range(50)]
    ids = students.bulk_create(conn, ctx, good).unwrap()
    assert len(ids) == 50
    assert students.count(conn, ctx, {"id": {"in": list(ids)}}).unwrap() == 50
    dup = [student_values(school) for _ in range(5)]
    dup.append(dict(dup[0]))
    result = students.bulk_create(conn, ctx, dup)
    assert isinstance(result.failure(), Conflict)
    numbers = [v["student_number"] for v in dup]
    assert students.count(conn, ctx, {"student_number": {"in": numbers}}).unwrap() == 0
    invalid = [student_values(school), student_values(school, grade=None)]
    bad = students.bulk_create(conn, ctx, invalid).failure()
    assert ("[1].grade", "must not be null") in {(e.field, e.rule) for e in bad.errors}


def test_stream_feeds_all_rows_through_a_server_side_cursor(conn, ctx, school) -> None:
    students.bulk_create(conn, ctx, [student_values(school) for _ in range(25)]).unwrap()
    result = students.stream(conn, ctx, lambda rows: sum(1 for _ in rows),
                             {"school_id": school["school_id"]}, order_by=["last_name"])
    assert result == Success(25)


def test_exists_and_count(conn, ctx, school, make_student) -> None:
    where = {"school_id": school["school_id"]}
    assert students.exists(conn, ctx, where) == Success(False)
    make_student()
    assert students.exists(conn, ctx, where) == Success(True)
    assert students.count(conn, ctx, where) == Success(1)


def _reads_of(admin_conn, request_id: str) -> list[tuple[Any, ...]]:
    return admin_conn.execute(
        "SELECT action::text, entity_type, entity_ids, subject_ids, fields_disclosed, "
        "metadata->>'operation' FROM audit_log WHERE request_id = %s ORDER BY seq",
        (request_id,)).fetchall()


@pytest.mark.parametrize("ask", ["count", "exists"])
def test_a_count_or_exists_naming_a_student_is_recorded_whatever_it_answers(
        conn, admin_conn, ctx, sys_ctx, make_student, ask: str) -> None:
    """``exists`` of a student's health record with a given title answers a question about
    that student's health: recorded as a READ naming the student and the columns asked about,
    for a yes and for a no; a count over a school names no one and is not recorded."""
    import attrs

    s = make_student()
    health_records.create(conn, sys_ctx, {
        "student_id": s.id, "record_type": "ILLNESS", "title": "Asthma review",
        "description": "inhaler", "record_date": date(2024, 3, 1)}).unwrap()
    answers = []
    for title in ("Asthma review", "Something else"):
        call = attrs.evolve(ctx, request_id=f"req-ask-{uuid.uuid4().hex[:10]}")
        where = {"student_id": str(s.id), "title": title}
        answers.append(getattr(health_records, ask)(conn, call, where).unwrap())
        assert _reads_of(admin_conn, call.request_id) == [
            ("READ", "HealthRecord", [], [s.id], ["title", "student_id"], ask)]
    assert answers == ([1, 0] if ask == "count" else [True, False])
    # by the row's key: the row is named, and a student's own row names the student
    call = attrs.evolve(ctx, request_id=f"req-ask-{uuid.uuid4().hex[:10]}")
    assert getattr(students, ask)(conn, call, {"or": [{"id": {"in": [s.id]}},
                                                      {"grade": "99"}]}).unwrap()
    assert _reads_of(admin_conn, call.request_id) == [
        ("READ", "Student", [s.id], [s.id], ["grade", "id"], ask)]
    # an aggregate names no one
    call = attrs.evolve(ctx, request_id=f"req-ask-{uuid.uuid4().hex[:10]}")
    assert getattr(students, ask)(conn, call, {"school_id": s.school_id}).unwrap()
    assert _reads_of(admin_conn, call.request_id) == []


def test_a_count_naming_a_student_whose_record_is_refused_answers_nothing(
        conn, admin_conn, ctx, make_student) -> None:
    import attrs

    s = make_student()
    call = attrs.evolve(ctx, request_id=f"req-refused-{uuid.uuid4().hex[:10]}")
    with records_refused(admin_conn, call.request_id):
        out = health_records.exists(conn, call, {"student_id": s.id, "title": "x"})
    assert isinstance(out, Failure), out  # no answer without its record
    assert _reads_of(admin_conn, call.request_id) == []


def test_decimal_and_dates_validation_types(conn, ctx, school) -> None:
    result = students.create(conn, ctx, student_values(school, date_of_birth=Decimal("1")))
    assert ("date_of_birth", "must be a date") in {(e.field, e.rule) for e in result.failure().errors}


def test_health_record_entity_is_phi_everywhere() -> None:
    assert HEALTH_RECORDS.is_phi and STUDENTS.is_phi
    assert "password_hash" not in STUDENTS.by_name


def test_writes_without_audit_use_plain_statements(conn, ctx, make_student) -> None:
    import attrs

    from wxdata import config

    s = make_student()
    previous = config.configure(attrs.evolve(config.settings(), audit_enabled=False))
    try:
        updated = students.update(conn, ctx, s.id, {"grade": "7"}, expected_version=1).unwrap()
        stale = students.update(conn, ctx, s.id, {"grade": "8"}, expected_version=1)
        dob = students.update(conn, ctx, s.id, {"date_of_birth": date(1990, 1, 1)})
    finally:
        config.configure(previous)
    assert (updated.grade, updated.version) == ("7", 2)
    assert stale == Failure(Conflict(entity="Student", reason="stale version", field="version"))
    assert ("date_of_birth", "age must be between 3 and 22") in {
        (e.field, e.rule) for e in dob.failure().errors}
    rows = conn.execute("SELECT count(*) FROM audit_log WHERE entity_id = %s AND action = 'UPDATE'",
                        (s.id,)).fetchone()
    assert rows == (0,)
