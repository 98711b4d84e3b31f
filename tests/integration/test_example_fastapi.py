"""The example FastAPI service (examples/fastapi_service) against the real test database.

The app runs in-process (httpx ``ASGITransport``, its lifespan entered by hand so its
``AsyncConnectionPool`` opens and closes) on the application role, so row-level security and the
signed school scope apply exactly as in production. Every response is checked (only the caller's
school's rows, the right status), and so is every audit record each request left (the caller's
user and request id, subjects only from the caller's school, exactly the students disclosed).
Building the request context from headers is checked in ``tests/unit/test_example_context.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import date
from typing import Any

import httpx
import psycopg
import pytest

from examples.fastapi_service import create_app
from tests.conftest import student_values
from wxdata import system_context
from wxdata.domains import health_records, students

SCHOOLS = 3
STUDENTS_PER_SCHOOL = 4


@pytest.fixture(scope="module")
def world(direct_db_url: str) -> dict[str, Any]:
    """Three schools (one district each), four students and a health record per student."""
    sys_ctx = system_context("tests")
    out: dict[str, Any] = {"schools": [], "students": {}, "records": {}}
    with psycopg.connect(direct_db_url, autocommit=True) as conn:
        for _ in range(SCHOOLS):
            tag = uuid.uuid4().hex[:8]
            district = conn.execute("INSERT INTO districts (name, code) VALUES (%s, %s) RETURNING id",
                                    (f"District {tag}", f"D-{tag}")).fetchone()
            assert district is not None
            school = conn.execute(
                "INSERT INTO schools (name, code, district_id) VALUES (%s, %s, %s) RETURNING id",
                (f"School {tag}", f"S-{tag}", district[0])).fetchone()
            assert school is not None
            ids = {"school_id": school[0], "district_id": district[0]}
            out["schools"].append(school[0])
            made = [students.create(conn, sys_ctx, student_values(ids, grade="5")).unwrap()
                    for _ in range(STUDENTS_PER_SCHOOL)]
            out["students"][school[0]] = {s.id for s in made}
            for s in made:
                record = health_records.create(conn, sys_ctx, {
                    "student_id": s.id, "record_type": "CHECKUP", "title": "Annual checkup",
                    "description": "Routine visit", "record_date": date(2024, 3, 1)}).unwrap()
                out["records"][s.id] = record.id
    return out


def _headers(user: str, school: uuid.UUID, request_id: str, role: str = "NURSE") -> dict[str, str]:
    return {"X-User-Id": user, "X-Role": role, "X-School-Id": str(school),
            "X-Request-Id": request_id, "User-Agent": "wxdata-example-test"}


def _audit(owner_url: str, request_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every audit record of these requests, by request id (read as the owner)."""
    out: dict[str, list[dict[str, Any]]] = {r: [] for r in request_ids}
    with psycopg.connect(owner_url, autocommit=True) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        for row in cur.execute(
            "SELECT request_id, user_id, user_role, action, entity_type, success, subject_ids "
            "FROM audit_log WHERE request_id = ANY(%s)", (request_ids,)):
            out[row["request_id"]].append(row)
    return out


def test_fifty_concurrent_requests_from_different_users_and_schools_see_and_record_only_their_own(
    direct_db_url: str, owner_url: str, world: dict[str, Any]
) -> None:
    app = create_app(direct_db_url, min_size=2, max_size=8)
    rnd = random.Random(7)
    plan: list[tuple[str, str, uuid.UUID, str, uuid.UUID | None]] = []
    kinds = ("list", "get", "records", "export", "other_school", "create", "other_create")
    for i in range(50):
        school = world["schools"][i % SCHOOLS]
        mine = sorted(world["students"][school])
        other = world["schools"][(i + 1) % SCHOOLS]
        kind = kinds[i % len(kinds)]
        target = rnd.choice(sorted(world["students"][other])) if kind.startswith("other") else (
            rnd.choice(mine))
        plan.append((f"req-ex-{uuid.uuid4().hex[:12]}", f"u-ex-{i}", school, kind, target))

    async def one(client: httpx.AsyncClient, rid: str, user: str, school: uuid.UUID, kind: str,
                  target: uuid.UUID | None) -> httpx.Response:
        h = _headers(user, school, rid)
        if kind == "list":
            return await client.get("/students", params={"limit": 100}, headers=h)
        if kind in ("get", "other_school"):
            return await client.get(f"/students/{target}", headers=h)
        if kind == "records":
            return await client.get(f"/students/{target}/health-records", headers=h)
        if kind == "export":
            return await client.get("/students/export", headers=h)
        return await client.post(f"/students/{target}/health-records", headers=h, json={
            "record_type": "ILLNESS", "title": "Seen at the clinic", "description": "Rested",
            "record_date": "2024-04-02"})

    async def main() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
                return await asyncio.gather(*(one(client, *p) for p in plan))

    responses = asyncio.run(main())
    audit = _audit(owner_url, [p[0] for p in plan])
    for (rid, user, school, kind, target), response in zip(plan, responses, strict=True):
        mine = world["students"][school]
        records = audit[rid]
        assert all(r["user_id"] == user and r["user_role"] == "NURSE" for r in records), kind
        disclosed = {s for r in records if r["success"] for s in r["subject_ids"] or ()}
        assert disclosed <= mine, kind  # nothing of another school is ever recorded as disclosed
        if kind == "list":
            assert response.status_code == 200, response.text
            body = response.json()
            seen = {uuid.UUID(s["id"]) for s in body["data"]}
            assert seen == mine and body["total"] == len(mine)
            assert {s["school_id"] for s in body["data"]} == {str(school)}
            assert disclosed == seen
        elif kind == "get":
            assert response.status_code == 200, response.text
            assert response.json()["id"] == str(target) and disclosed == {target}
        elif kind == "other_school":
            assert response.status_code == 404  # hidden by the scope, as if it did not exist
            assert response.json()["error"]["code"] == "NOT_FOUND"
            assert str(target) not in response.text and not disclosed
        elif kind == "records":
            assert response.status_code == 200, response.text
            rows = response.json()["data"]
            assert rows and {r["student_id"] for r in rows} == {str(target)}
            assert disclosed == {target}
        elif kind == "other_create":  # writing into another school's student is refused
            assert response.status_code in (403, 404), response.text
            assert "data" not in response.json() and not disclosed
            with psycopg.connect(owner_url, autocommit=True) as owner:
                assert owner.execute("SELECT count(*) FROM health_records WHERE student_id = %s "
                                     "AND created_by = %s", (target, user)).fetchone() == (0,)
        elif kind == "export":
            assert response.status_code == 200, response.text
            lines = [json.loads(x) for x in response.text.splitlines()]
            exported = {uuid.UUID(x["id"]) for x in lines}
            assert exported == mine and {x["school_id"] for x in lines} == {str(school)}
            assert any(r["action"] == "EXPORT" and set(r["subject_ids"]) == mine for r in records)
        else:
            assert response.status_code == 201, response.text
            assert response.json()["student_id"] == str(target)
            assert any(r["action"] == "CREATE" and r["subject_ids"] == [target] for r in records)
        assert records, f"{kind}: no audit record"


def test_requests_without_a_valid_context_are_refused_before_any_query(
    direct_db_url: str, owner_url: str, world: dict[str, Any]
) -> None:
    app = create_app(direct_db_url, min_size=1, max_size=2)
    school = world["schools"][0]
    rid = f"req-ex-{uuid.uuid4().hex[:12]}"

    async def main() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
                no_school = {"X-User-Id": "u-ex-x", "X-Role": "NURSE", "X-Request-Id": rid}
                forged = _headers("u-ex-x", school, rid, role="SYSTEM")
                return [await client.get("/students", headers=no_school),
                        await client.get("/students", headers=forged)]

    for response in asyncio.run(main()):
        assert response.status_code == 422 and response.json()["error"]["code"] == "VALIDATION_FAILED"
        assert "data" not in response.json()
    assert _audit(owner_url, [rid])[rid] == []  # refused before wxdata was asked anything


def test_the_audit_trail_export_streams_to_an_auditor_and_refuses_a_nurse(
    direct_db_url: str, owner_url: str, world: dict[str, Any]
) -> None:
    app = create_app(direct_db_url, min_size=1, max_size=2)
    school = world["schools"][0]
    student = sorted(world["students"][school])[0]
    auditor = f"u-ex-auditor-{uuid.uuid4().hex[:6]}"
    rid_ok, rid_no = f"req-ex-{uuid.uuid4().hex[:12]}", f"req-ex-{uuid.uuid4().hex[:12]}"

    async def main() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
                ok = await client.get("/audit/export", params={"student_id": str(student)},
                                      headers=_headers(auditor, school, rid_ok, role="ADMIN"))
                no = await client.get("/audit/export", params={"student_id": str(student)},
                                      headers=_headers("u-ex-nurse", school, rid_no))
                return [ok, no]

    ok, no = asyncio.run(main())
    assert ok.status_code == 200, ok.text
    lines = [json.loads(x) for x in ok.text.splitlines()]
    assert lines and all(str(student) in x["subject_ids"] for x in lines)
    assert no.status_code == 403 and no.json()["error"]["code"] == "FORBIDDEN"
    audit = _audit(owner_url, [rid_ok, rid_no])
    assert [(r["action"], r["success"], r["subject_ids"]) for r in audit[rid_ok]] == [
        ("EXPORT", True, [student])]
    assert [(r["action"], r["success"]) for r in audit[rid_no]] == [("ACCESS_DENIED", False)]
