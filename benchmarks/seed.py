"""The benchmark database: created on the server, migrated with ``wxdata.migrate``, seeded with COPY.

Seeding writes districts, schools, students and health records with ``COPY ... FROM STDIN`` (text
format, generated in chunks), with the secondary indexes dropped during the load and rebuilt after
(the same definitions, read back from ``pg_indexes``), then ``VACUUM ANALYZE`` so plans and
index-only scans are those of a settled table. Names come from small lists so that searches have
realistic selectivity; dates of birth keep every student 5 to 18 years old (wxdata's validators hold).
The database is dropped on exit unless ``--keep-db``.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from benchmarks.common import Dataset, Options

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
    "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres",
    "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell",
    "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker",
    "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook",
    "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly",
    "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood",
    "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo",
    "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry",
    "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher",
    "Vasquez", "Simmons", "Romero", "Jordan", "Patterson",
)
FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Charlotte", "Oliver", "Amelia", "James", "Sophia", "Elijah",
    "Isabella", "William", "Ava", "Henry", "Mia", "Lucas", "Evelyn", "Benjamin", "Harper",
    "Theodore", "Luna", "Mateo", "Camila", "Levi", "Gianna", "Sebastian", "Elizabeth", "Daniel",
    "Eleanor", "Jack", "Ella", "Michael", "Abigail", "Alexander", "Sofia", "Owen", "Avery", "Asher",
    "Scarlett", "Samuel", "Emily", "Ethan", "Aria", "Leo", "Penelope", "Jackson", "Chloe", "Mason",
    "Layla", "Ezra", "Mila", "John", "Nora", "Hudson", "Hazel", "Luca", "Madison", "Aiden", "Ellie",
    "Joseph", "Lily", "David", "Nova", "Jacob", "Isla", "Logan", "Grace", "Luke", "Violet",
    "Julian", "Aurora", "Gabriel", "Riley", "Grayson", "Zoey", "Wyatt", "Willow", "Matthew",
    "Emilia", "Maverick", "Stella", "Dylan", "Zoe",
)
GRADES = ["K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]
GENDERS = ["MALE", "FEMALE", "OTHER", "PREFER_NOT_TO_SAY"]
RECORD_TYPES = ["CHECKUP", "VACCINATION", "ILLNESS", "INJURY", "SCREENING", "DENTAL", "VISION",
                "HEARING", "FOLLOW_UP", "MEDICATION_REVIEW"]
STUDENT_COPY_COLUMNS = (
    "id", "student_number", "first_name", "last_name", "date_of_birth", "grade", "gender",
    "medical_record_num", "enrollment_date", "school_id", "district_id", "created_by", "updated_by",
)
RECORD_COPY_COLUMNS = (
    "id", "student_id", "record_type", "title", "description", "record_date", "provider",
    "diagnosis_code", "created_by", "updated_by",
)
CHUNK = 20_000


def fragments() -> list[str]:
    """Three-letter fragments that occur in several last names (ILIKE search terms)."""
    counts: dict[str, int] = {}
    for name in LAST_NAMES:
        low = name.lower()
        for i in range(len(low) - 2):
            counts[low[i : i + 3]] = counts.get(low[i : i + 3], 0) + 1
    return sorted(f for f, c in counts.items() if c >= 3)


def student_line(rng: random.Random, number: str, school: tuple[uuid.UUID, uuid.UUID],
                 today: date, sid: uuid.UUID | None = None) -> tuple[uuid.UUID, str]:
    """One students row in COPY text format (and its id)."""
    sid = sid or uuid.uuid4()
    dob = today - timedelta(days=rng.randint(5 * 366, 18 * 365))
    enrolled = today - timedelta(days=rng.randint(30, 5 * 365))
    line = "\t".join((
        str(sid), number, rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), dob.isoformat(),
        rng.choice(GRADES), rng.choice(GENDERS), "\\N", enrolled.isoformat(), str(school[0]),
        str(school[1]), "seed", "seed",
    ))
    return sid, line


def copy_students(conn: psycopg.Connection[Any], rng: random.Random, count: int, prefix: str,
                  schools: list[tuple[uuid.UUID, uuid.UUID]], collect: bool = True) -> list[uuid.UUID]:
    """COPY ``count`` students with numbers ``<prefix><i>``; returns their ids when ``collect``."""
    today = date.today()
    ids: list[uuid.UUID] = []
    cols = ",".join(STUDENT_COPY_COLUMNS)
    with conn.cursor() as cur, cur.copy(f"COPY students ({cols}) FROM STDIN") as copy:
        for start in range(0, count, CHUNK):
            lines = []
            for i in range(start, min(count, start + CHUNK)):
                sid, line = student_line(rng, f"{prefix}{i:08d}", schools[i % len(schools)], today)
                lines.append(line)
                if collect:
                    ids.append(sid)
            copy.write(("\n".join(lines) + "\n").encode())
    return ids


def _copy_records(conn: psycopg.Connection[Any], rng: random.Random, student_ids: list[uuid.UUID],
                  per_student: int) -> None:
    today = date.today()
    cols = ",".join(RECORD_COPY_COLUMNS)
    with conn.cursor() as cur, cur.copy(f"COPY health_records ({cols}) FROM STDIN") as copy:
        lines: list[str] = []
        for sid in student_ids:
            for _ in range(per_student):
                kind = rng.choice(RECORD_TYPES)
                lines.append("\t".join((
                    str(uuid.uuid4()), str(sid), kind, f"{kind.title()} visit",
                    "Seen by the school nurse; routine.", (today - timedelta(
                        days=rng.randint(0, 1500))).isoformat(),
                    "School nurse", f"Z{rng.randint(0, 99):02d}.{rng.randint(0, 9)}", "seed", "seed",
                )))
            if len(lines) >= CHUNK:
                copy.write(("\n".join(lines) + "\n").encode())
                lines = []
        if lines:
            copy.write(("\n".join(lines) + "\n").encode())


def _secondary_indexes(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i "
        "WHERE i.schemaname = 'public' AND i.tablename = %s AND NOT EXISTS ("
        " SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", (table,)
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def seed(conn: psycopg.Connection[Any], options: Options, students: int, per_student: int,
         log: Callable[[str], None] = print) -> Dataset:
    """Fill a migrated, empty database; returns the samples workloads draw from."""
    rng = random.Random(options.seed)
    t0 = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '256MB'")
    schools: list[tuple[uuid.UUID, uuid.UUID]] = []
    with conn.transaction():
        districts = []
        for d in range(max(1, options.schools // 4)):
            row = conn.execute("INSERT INTO districts (name, code) VALUES (%s, %s) RETURNING id",
                               (f"District {d}", f"D{d:03d}")).fetchone()
            assert row is not None
            districts.append(row[0])
        for s in range(options.schools):
            district = districts[s % len(districts)]
            row = conn.execute(
                "INSERT INTO schools (name, code, district_id) VALUES (%s, %s, %s) RETURNING id",
                (f"School {s}", f"S{s:03d}", district)).fetchone()
            assert row is not None
            schools.append((row[0], district))
    dropped: list[tuple[str, str]] = []
    for table in ("students", "health_records"):
        dropped.extend(_secondary_indexes(conn, table))
    with conn.transaction():
        for name, _ in dropped:
            conn.execute(f'DROP INDEX "{name}"')
        ids = copy_students(conn, rng, students, "S", schools, collect=per_student > 0)
        if per_student > 0:
            _copy_records(conn, rng, ids, per_student)
        for _, definition in dropped:
            conn.execute(definition)
    conn.execute("VACUUM ANALYZE students")
    conn.execute("VACUUM ANALYZE health_records")
    conn.execute("VACUUM ANALYZE schools")
    # Inputs are drawn from the live rows this call wrote (students of the schools it created),
    # never from the whole table: a database cloned from a used one also holds other rows,
    # soft-deleted ones among them, which every read reports as NotFound.
    ours = [school for school, _ in schools]
    sample = [r[0] for r in conn.execute(
        "SELECT id FROM students WHERE school_id = ANY(%s) AND deleted_at IS NULL "
        "ORDER BY random() LIMIT %s", (ours, min(students, 20_000)))]
    records = [r[0] for r in conn.execute(
        "SELECT h.id FROM health_records h JOIN students s ON s.id = h.student_id "
        "WHERE s.school_id = ANY(%s) AND s.deleted_at IS NULL AND h.deleted_at IS NULL "
        "ORDER BY random() LIMIT 20000", (ours,))]
    log(f"seeded {students} students, {students * per_student} health records, "
        f"{len(schools)} schools in {time.perf_counter() - t0:.1f}s")
    frags = [f for f in fragments() if len(f) == 3]
    return Dataset(students, schools, sample, records, GRADES, frags)


@contextlib.contextmanager
def bench_database(server: str, options: Options, students: int, per_student: int, *,
                   log: Callable[[str], None] = print,
                   migrations_before: str | None = None) -> Iterator[tuple[str, Dataset]]:
    """A new database on ``server``: migrated, seeded, yielded as (url, dataset), then dropped.

    ``migrations_before`` (e.g. ``"0210"``) stops the migrations at the first file whose name
    sorts at or after it: the schema as it was before that migration (the "before" side of a
    schema comparison).
    """
    from wxdata.migrate import migrate, sql_dir

    name = f"wxdata_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server, dbname=name)
    log(f"database {name}: migrating{' before ' + migrations_before if migrations_before else ''}"
        f" and seeding {students} students")
    try:
        with psycopg.connect(url, autocommit=True) as conn, \
                _migrations(sql_dir(), migrations_before) as directory:
            migrate(conn, directory)
            data = seed(conn, options, students, per_student, log=log)
        yield url, data
    finally:
        if options.keep_db:
            log(f"kept database {name}")
        else:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _migrations(directory: Path, before: str | None) -> Iterator[Path | None]:
    """``directory``, or a temporary copy of its migrations that sort before ``before``."""
    if before is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="wxdata-bench-sql-") as tmp:
        for path in sorted(directory.glob("*.sql")):
            if path.name < before:
                shutil.copy(path, Path(tmp) / path.name)
        yield Path(tmp)
