"""Synthetic, deterministic data across every domain (``wxdata seed``).

Rows are generated from the entity specs themselves — kinds, lengths, choices, patterns, ranges,
references — with a few overrides that make the core domains read like a real district (plausible
synthetic names, ages that match grades, clinical dates in order). The same ``--seed`` gives the same
data. Rows are validated like any write, then loaded with COPY through ``bulk_create`` in batches.
"""

from __future__ import annotations

import argparse
import random
import re
import string
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache, partial, reduce
from typing import Any, NoReturn

import attrs
import psycopg
from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from wxdata import crud
from wxdata.context import ExecutionContext, Role, system_context
from wxdata.errors import DataError, FieldError, ValidationFailed
from wxdata.schema.spec import Column, Entity, Kind, registered
from wxdata.schema.validate import validate_create

FIRST_NAMES = (
    "Avery", "Blake", "Carmen", "Dalia", "Emeka", "Farah", "Gideon", "Hana", "Idris", "Juno",
    "Kiran", "Lena", "Mateo", "Nadia", "Oren", "Priya", "Quinn", "Rosa", "Soren", "Tala",
    "Uma", "Viktor", "Wren", "Xiomara", "Yusuf", "Zara", "Ilse", "Noor", "Teo", "Maren",
)
LAST_NAMES = (
    "Abara", "Bellweather", "Castellano", "Dunmore", "Eskildsen", "Fairbanks", "Greaves",
    "Holloway", "Ikeda", "Jaramillo", "Kowalczyk", "Lindqvist", "Mbeki", "Nakashima", "Okafor",
    "Pemberton", "Quintero", "Rasmussen", "Szabo", "Thorne", "Umarov", "Valdivia", "Whitlock",
    "Xu", "Yilmaz", "Zelenko", "O'Connell", "de la Cruz", "Van Dijk", "St. Clair",
)
WORDS = (
    "routine", "follow-up", "mild", "seasonal", "observed", "reported", "resolved", "stable",
    "monitor", "referral", "screening", "annual", "acute", "chronic", "reviewed", "plan",
)
GRADES = ("K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12")
STATES = ("CA", "TX", "NY", "WA", "IL", "MA", "CO", "GA", "OR", "MN")
TODAY = date(2026, 9, 1)


@attrs.frozen(slots=True)
class SeedReport:
    """How many rows of each entity were loaded, and how fast."""

    rows: Mapping[str, int]
    seconds: float
    #: Generated rows that failed validation (a generator bug: none are expected).
    skipped: Mapping[str, int]
    #: True when the district of this seed existed already (nothing was written).
    already_seeded: bool = False
    #: The code of the seed's district.
    district: str = ""

    @property
    def total(self) -> int:
        """All rows loaded."""
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        """Load rate over the whole run."""
        return self.total / self.seconds if self.seconds > 0 else 0.0


# --- values from column rules -----------------------------------------------------------------

_CANDIDATES: tuple[Callable[[random.Random], str], ...] = (
    lambda r: " ".join(r.choice(WORDS) for _ in range(r.randint(1, 4))),
    lambda r: "".join(r.choices(string.digits, k=10)),
    lambda r: f"+1555{r.randint(1_000_000, 9_999_999)}",
    lambda r: f"{r.choice('JKLMRSZ')}{r.randint(0, 99):02d}.{r.randint(0, 9)}",
    lambda r: f"MR-{r.randint(0, 99_999_999):08d}",
    lambda r: r.choice(STATES),
    lambda r: f"{r.randint(10_000, 99_999)}",
    lambda r: f"user{r.randint(0, 10**9)}@example.org",
    lambda r: f"https://files.example.org/{r.getrandbits(64):016x}",
    lambda r: f"{r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
    lambda r: "".join(r.choices(string.ascii_uppercase + string.digits, k=8)),
)


def _matching(pattern: str, rng: random.Random) -> str | None:
    """A plausible value fully matching ``pattern``, from a few candidate shapes (or None)."""
    rx = re.compile(pattern)
    for make in _CANDIDATES:
        value = make(rng)
        if rx.fullmatch(value):
            return value
    return None


def _text(rng: random.Random, column: Column) -> str:
    limit = column.rules.max_length or 200
    name = column.name
    if "email" in name:
        return f"{name[:8]}{rng.randint(0, 10**9)}@example.org"[:limit]
    if "phone" in name:
        return f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"[:limit]
    if name.endswith("first_name"):
        return rng.choice(FIRST_NAMES)[:limit]
    if name.endswith("last_name"):
        return rng.choice(LAST_NAMES)[:limit]
    if name.endswith("name") or name in ("title", "allergen", "condition", "vaccine_name"):
        return (rng.choice(WORDS).capitalize() + " " + rng.choice(WORDS))[:limit]
    if "url" in name:
        return f"https://files.example.org/{uuid.UUID(int=rng.getrandbits(128)).hex}"[:limit]
    if "code" in name or "number" in name:
        return f"{name[:3].upper()}-{rng.randint(0, 10**8):08d}"[:limit]
    words = rng.randint(2, 9 if limit > 60 else 3)
    return " ".join(rng.choice(WORDS) for _ in range(words))[:limit]


def column_value(column: Column, rng: random.Random) -> Any:
    """A plausible value satisfying the column's declared kind and rules (no references)."""
    rules = column.rules
    if rules.choices:
        if column.kind is Kind.TEXT_ARRAY:
            return rng.sample(list(rules.choices), k=min(len(rules.choices), rng.randint(1, 2)))
        return rng.choice(rules.choices)
    if rules.pattern is not None:
        return _matching(rules.pattern, rng)
    low = rules.minimum if rules.minimum is not None else 0
    high = rules.maximum if rules.maximum is not None else max(low, 0) + 100
    kind = column.kind
    if kind is Kind.TEXT:
        return _text(rng, column)
    if kind is Kind.INT:
        return rng.randint(int(low), int(high))
    if kind is Kind.FLOAT:
        return round(rng.uniform(float(low), float(high)), 2)
    if kind is Kind.DECIMAL:
        return Decimal(f"{rng.uniform(float(low), float(high)):.2f}")
    if kind is Kind.BOOL:
        return rng.random() < 0.3
    if kind is Kind.DATE:
        return TODAY - timedelta(days=rng.randint(0, 720))
    if kind is Kind.DATETIME:
        return datetime(2026, 8, 31, 12, tzinfo=UTC) - timedelta(minutes=rng.randint(0, 720 * 1440))
    if kind is Kind.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)
    if kind is Kind.TEXT_ARRAY:
        return [rng.choice(WORDS) for _ in range(rng.randint(0, 3))]
    if kind is Kind.UUID_ARRAY:
        return []
    return {"source": "seed", "n": rng.randint(0, 9)}


def _student(rng: random.Random, school: Mapping[str, Any], nurse: uuid.UUID | None,
             n: int) -> dict[str, Any]:
    grade_index = rng.randrange(len(GRADES))
    age = 5 + grade_index + rng.choice((0, 0, 1))
    born = TODAY - timedelta(days=365 * age + rng.randint(0, 364))
    return {
        "student_number": f"S{school['code'][-6:]}-{n:06d}",
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        "date_of_birth": born,
        "grade": GRADES[grade_index],
        "gender": rng.choice(("MALE", "FEMALE", "OTHER", "PREFER_NOT_TO_SAY")),
        "medical_record_num": f"MR-{rng.randint(0, 99_999_999):08d}" if rng.random() < 0.7 else None,
        "is_active": rng.random() < 0.96,
        "enrollment_date": TODAY - timedelta(days=rng.randint(0, 365 * max(1, grade_index))),
        "nurse_id": nurse,
        "school_id": school["id"],
        "district_id": school["district_id"],
    }


def _health_record(rng: random.Random, student_id: uuid.UUID) -> dict[str, Any]:
    from wxdata.schema.health_records import RecordType

    kind = rng.choice(list(RecordType))
    recorded = TODAY - timedelta(days=rng.randint(0, 700))
    follow = rng.random() < 0.2
    return {
        "student_id": student_id,
        "record_type": kind.value,
        "title": f"{kind.value.replace('_', ' ').title()} visit",
        "description": " ".join(rng.choice(WORDS) for _ in range(8)),
        "record_date": recorded,
        "provider": f"Dr. {rng.choice(LAST_NAMES)}",
        "diagnosis": rng.choice((None, "seasonal allergies", "minor sprain", "viral infection")),
        "follow_up_required": follow,
        "follow_up_date": recorded + timedelta(days=rng.randint(7, 60)) if follow else None,
        "is_confidential": rng.random() < 0.1,
    }


# --- the plan ---------------------------------------------------------------------------------


def _ordered(entities: Iterable[Entity[Any]]) -> list[Entity[Any]]:
    """Entities in an order where every referenced table comes first (self-references ignored)."""
    pending = {e.table: e for e in entities}
    done: list[Entity[Any]] = []
    placed: set[str] = set()
    while pending:
        progressed = False
        for table, e in sorted(pending.items()):
            refs = {c.rules.references for c in e.columns if c.rules.references}
            refs.discard(table)
            if all(r in placed or r not in pending for r in refs):
                done.append(e)
                placed.add(table)
                del pending[table]
                progressed = True
        if not progressed:  # a reference cycle: break it deterministically
            table = sorted(pending)[0]
            done.append(pending.pop(table))
            placed.add(table)
    return done


_CORE = ("districts", "schools", "users", "students", "health_records")


def _generic_row(e: Entity[Any], rng: random.Random, ids: Mapping[str, list[uuid.UUID]],
                 student: uuid.UUID | None, school: Mapping[str, Any]) -> dict[str, Any] | None:
    row: dict[str, Any] = {}
    for column in (*e.columns, *e.secrets):
        if not column.writable:
            continue
        ref = column.rules.references
        if ref is not None:
            if ref == "students" and student is not None:
                row[column.name] = student
            elif ref == "schools":
                row[column.name] = school["id"]
            elif ref == "districts":
                row[column.name] = school["district_id"]
            elif ids.get(ref):
                row[column.name] = rng.choice(ids[ref])
            elif column.nullable:
                row[column.name] = None
            else:
                return None
            continue
        if column.nullable and rng.random() < 0.25:
            continue
        value = ("$2b$12$" + "".join(rng.choices(string.ascii_letters + string.digits, k=53))
                 if column.secret_field else column_value(column, rng))
        if value is None and not column.nullable:
            return None
        if value is not None:
            row[column.name] = value
    return row


def _unique_keys(entity: Entity[Any]) -> list[tuple[str, ...]]:
    """The entity's unique keys: unique columns (secrets included) and ``unique_together``."""
    single = [(c.name,) for c in (*entity.columns, *entity.secrets) if c.rules.unique]
    return [*single, *entity.unique_together]


def _key_values(keys: list[tuple[str, ...]], row: Mapping[str, Any]
                ) -> list[tuple[int, tuple[Any, ...]]]:
    """The row's values of each unique key (keys holding a NULL never collide)."""
    values = [(i, tuple(row.get(c) for c in key)) for i, key in enumerate(keys)]
    return [(i, v) for i, v in values if None not in v]


def _valid_row(e: Entity[Any], rng: random.Random, ids: Mapping[str, list[uuid.UUID]],
               student: uuid.UUID | None, school: Mapping[str, Any],
               taken: set[tuple[int, tuple[Any, ...]]] | None = None, tag: str = ""
               ) -> dict[str, Any] | None:
    """A generated row that passes the entity's validation and whose unique keys are not
    ``taken`` yet (a few attempts: cross-field rules, small key spaces such as one preference
    row per user and school). None when no such row came up: the entity gets fewer rows."""
    keys = _unique_keys(e)
    for _ in range(12):
        row = _generic_row(e, rng, ids, student, school)
        if row is not None and tag:
            _tagged(e, row, tag)
        if row is None or not is_successful(validate_create(e, row)):
            continue
        values = _key_values(keys, row)
        if taken is not None and taken.intersection(values):
            continue
        if taken is not None:
            taken.update(values)
        return row
    return None


def _tagged(e: Entity[Any], row: dict[str, Any], tag: str) -> None:
    """Suffix the seed's tag to free-text unique columns: unique across the whole database, so
    another seed's district must not reuse the value."""
    for column in (*e.columns, *e.secrets):
        rules = column.rules
        value = row.get(column.name)
        if (rules.unique and column.kind is Kind.TEXT and isinstance(value, str)
                and rules.pattern is None and not rules.choices):
            limit = rules.max_length or 200
            row[column.name] = f"{value[: max(0, limit - len(tag) - 1)]} {tag}".strip()[:limit]


def _check_counts(schools: int, students: int, seed: int, per_student: int,
                  batch_size: int) -> DataError | None:
    errors = tuple(FieldError(name, rule) for name, bad, rule in (
        ("schools", schools < 1, "must be at least 1"),
        ("students", students < 1, "must be at least 1"),
        ("seed", not 0 <= seed <= 9999, "must be between 0 and 9999"),
        ("per_student", per_student < 0, "must be 0 or more"),
        ("batch_size", batch_size < 1, "must be at least 1"),
    ) if bad)
    return ValidationFailed("Seed", errors) if errors else None


def district_code(seed: int) -> str:
    """The code of the district that ``seed`` generates (what makes a re-run detectable)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    return f"D{seed:04d}{rng.randint(0, 9999):04d}"


def seed(
    conn: psycopg.Connection[Any],
    ctx: ExecutionContext,
    *,
    schools: int = 3,
    students: int = 300,
    seed: int = 7,
    per_student: int = 2,
    batch_size: int = 5000,
    progress: Callable[[str, int, int], None] | None = None,
) -> Result[SeedReport, DataError]:
    """Generate and load a district: schools, nurses, students and rows of every domain.

    All or nothing: everything is loaded in one transaction, so a failure leaves no district
    behind. Idempotent: when the district of ``seed`` exists already nothing is written and the
    report says ``already_seeded``. Counts are checked before anything is written
    (``ValidationFailed`` naming them).
    """
    from wxdata.domains import health_records as hr_domain  # noqa: F401 - registers entities
    from wxdata.schema import DISTRICTS
    from wxdata.tx import run_in_scope

    problem = _check_counts(schools, students, seed, per_student, batch_size)
    if problem is not None:
        return Failure(problem)
    started = time.perf_counter()
    code = district_code(seed)

    def load_unless(present: bool) -> Result[SeedReport, DataError]:
        if present:
            return Success(SeedReport({}, time.perf_counter() - started, {}, already_seeded=True,
                                      district=code))
        return run_in_scope(conn, ctx, lambda: _load_all(
            conn, ctx, schools=schools, students=students, seed=seed, per_student=per_student,
            batch_size=batch_size, progress=progress, started=started), retries=0)

    return crud.exists(conn, ctx, DISTRICTS, {"code": code}, include_deleted=True).bind(load_unless)


def _load_all(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, *, schools: int, students: int,
    seed: int, per_student: int, batch_size: int,
    progress: Callable[[str, int, int], None] | None, started: float,
) -> Result[SeedReport, DataError]:
    from wxdata.schema import DISTRICTS, HEALTH_RECORDS, SCHOOLS, STUDENTS, USERS

    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    loaded: dict[str, int] = {}
    skipped: dict[str, int] = {}
    ids: dict[str, list[uuid.UUID]] = {}
    tag = f"{seed:04d}{rng.randint(0, 9999):04d}"

    def loaded_chunk(entity: Entity[Any], new_ids: Iterable[uuid.UUID], count: int, done: int,
                     total: int) -> None:
        ids.setdefault(entity.table, []).extend(new_ids)
        loaded[entity.name] = loaded.get(entity.name, 0) + count
        if progress is not None:
            progress(entity.name, done, total)

    def load(entity: Entity[Any], rows: list[dict[str, Any]]) -> Result[None, DataError]:
        good: list[dict[str, Any]] = []
        keys = _unique_keys(entity)
        seen: set[tuple[int, tuple[Any, ...]]] = set()
        for r in rows:
            values = _key_values(keys, r)
            if is_successful(validate_create(entity, r)) and not seen.intersection(values):
                good.append(r)
                seen.update(values)
            else:
                skipped[entity.name] = skipped.get(entity.name, 0) + 1

        def chunk(start: int) -> Result[None, DataError]:
            rows = good[start : start + batch_size]
            return crud.bulk_create(conn, ctx, entity, rows).map(
                lambda new_ids: loaded_chunk(entity, new_ids, len(rows), start + len(rows),
                                             len(good)))

        return _in_order(partial(chunk, start) for start in range(0, len(good), batch_size))

    def school_info() -> list[dict[str, Any]]:
        return [{"id": sid, "district_id": ids["districts"][0], "code": f"S{tag}{i:02d}"}
                for i, sid in enumerate(ids["schools"])]

    def schools_and_nurses() -> Result[None, DataError]:
        district = ids["districts"][0]
        school_rows = [
            {"name": f"{rng.choice(LAST_NAMES)} {kind} School", "code": f"S{tag}{i:02d}",
             "district_id": district, "state": "CA", "total_enrollment": students // schools}
            for i, kind in zip(range(schools), ("Elementary", "Middle", "High") * schools,
                               strict=False)]
        return load(SCHOOLS, school_rows).bind(lambda _: load(USERS, [
            {"email": f"nurse{tag}.{i}@example.org", "first_name": rng.choice(FIRST_NAMES),
             "last_name": rng.choice(LAST_NAMES), "role": Role.NURSE.value,
             "password_hash": "$2b$12$" + "n" * 53, "school_id": ids["schools"][i % schools],
             "district_id": district} for i in range(schools)]))

    def students_and_records() -> Result[None, DataError]:
        info = school_info()
        student_rows = [_student(rng, info[n % schools], ids["users"][n % schools], n)
                        for n in range(students)]
        return load(STUDENTS, student_rows).bind(lambda _: load(HEALTH_RECORDS, [
            _health_record(rng, sid) for sid in ids["students"] for _ in range(per_student)
        ]) if per_student else Success(None))

    @cache
    def school_of() -> dict[uuid.UUID, Mapping[str, Any]]:
        info = school_info()
        return {sid: info[n % schools] for n, sid in enumerate(ids["students"])}

    def other_entity(e: Entity[Any]) -> Result[None, DataError]:
        student_ids = ids["students"]
        targets: list[tuple[uuid.UUID | None, Mapping[str, Any]]]
        if e.subject is not None and e.by_name[e.subject].rules.references == "students":
            targets = [(sid, school_of()[sid])
                       for sid in student_ids[: max(1, len(student_ids) // 2)]]
        else:
            info = school_info()
            targets = [(None, info[i % schools]) for i in range(max(5, schools * 3))]
        taken: set[tuple[int, tuple[Any, ...]]] = set()
        rows = [r for sid, where in targets
                if (r := _valid_row(e, rng, ids, sid, where, taken, tag)) is not None]
        return load(e, rows) if rows else Success(None)

    district_rows = [{"name": f"Synthetic District {tag}", "code": f"D{tag}", "state": "CA"}]
    return _in_order((
        partial(load, DISTRICTS, district_rows),
        schools_and_nurses,
        students_and_records,
        *(partial(other_entity, e) for e in _ordered(registered()) if e.table not in _CORE),
    )).map(lambda _: SeedReport(loaded, time.perf_counter() - started, skipped, district=f"D{tag}"))


def _in_order(steps: Iterable[Callable[[], Result[None, DataError]]]) -> Result[None, DataError]:
    """Run ``steps`` one after another, none after the first that fails (its failure is the result)."""
    start: Result[None, DataError] = Success(None)
    return reduce(lambda done, step: done.bind(lambda _: step()), steps, start)


def _cmd_seed(args: argparse.Namespace) -> int:
    from wxdata._cli import CliError, Exit, Progress, data_error, progress_wanted, to_json
    from wxdata.db import connect
    from wxdata.migrate import MigrationError, migrate

    progress = Progress(not args.quiet and progress_wanted(bool(getattr(args, "verbose", False))))
    entities: set[str] = set()

    def show(name: str, done: int, total: int) -> None:
        entities.add(name)
        progress.update(f"seeding: {len(entities)} entities, {name} {done:,}/{total:,} rows",
                        force=done >= total and name == "Student")

    with connect(args.database_url) as conn:
        try:
            migrate(conn)
        except MigrationError as exc:
            raise CliError(Exit.USAGE, f"the database schema cannot be brought up to date: "
                           f"{exc}", "run `wxdata migrate` as the owner role") from None
        result = seed(conn, system_context("seed"), schools=args.schools, students=args.students,
                      seed=args.seed, per_student=args.per_student, progress=show)
    progress.done()

    def refused(error: DataError) -> NoReturn:
        raise data_error(error, "nothing was written; fix the cause and re-run")

    report = result.lash(refused).unwrap()
    if report.skipped:  # a generator bug: say so, on stderr, without hiding the data loaded
        print("warning: generated rows failed validation and were left out: " + ", ".join(
            f"{k}={v}" for k, v in sorted(report.skipped.items())), file=sys.stderr)
    if args.json:
        print(to_json({"district": report.district, "already_seeded": report.already_seeded,
                       "rows": dict(report.rows), "total": report.total,
                       "seconds": round(report.seconds, 3), "skipped": dict(report.skipped)}))
    elif report.already_seeded:
        print(f"already seeded: district {report.district} (seed {args.seed}) exists; nothing "
              f"written (use another --seed for more data)")
    else:
        print(f"seeded district {report.district}: {report.total} rows across "
              f"{len(report.rows)} entities in {report.seconds:.1f} s "
              f"({report.rows_per_second:,.0f} rows/s)")
    return Exit.OK


def register(sub: Any) -> None:
    """Add ``wxdata seed``."""
    from wxdata._cli import at_least

    p = sub.add_parser(
        "seed", help="generate deterministic synthetic data across the domains",
        description="Load a synthetic district in one transaction (all or nothing). The same "
                    "--seed gives the same data; re-running it reports 'already seeded'.")
    p.add_argument("--schools", type=at_least(1), default=3, help="schools (at least 1)")
    p.add_argument("--students", type=at_least(1), default=300, help="students (at least 1)")
    p.add_argument("--per-student", type=at_least(0), default=2,
                   help="health records per student")
    p.add_argument("--seed", type=_seed_number, default=7, help="0..9999 (default 7)")
    p.add_argument("--database-url", default=None, help="override DATABASE_URL")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_seed)


def _seed_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not 0 <= value <= 9999:
        raise argparse.ArgumentTypeError(f"must be between 0 and 9999, not {value}")
    return value
