"""Testing kit for applications built on wxdata (and for wxdata's own tests).

The pytest plugin (:mod:`wxdata.testing.plugin`, entry point ``pytest11``) provides ``wx_``
fixtures: a migrated database per test session, contexts per role and school, a seeded district,
an in-memory cache, an audit probe and a frozen clock. The helpers below work without pytest too:

- :func:`create_migrated_database`, :func:`clone_database`, :func:`drop_database`: databases on a
  server (a template migrated once, clones of it);
- :func:`assert_audited`: an audit record of an action, entity and subjects exists, with a field
  by field diff of the nearest records when not (student ids shown keyed-hashed, never raw);
- :class:`FrozenClock`: a fixed "now" for context stamping and context-age checks.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from wxdata.migrate import migrate
from wxdata.roles import install_scope_key

__all__ = [
    "AuditRecord",
    "FrozenClock",
    "assert_audited",
    "audit_mark",
    "clone_database",
    "configured_server_url",
    "create_migrated_database",
    "drop_database",
    "subject_tag",
    "unique_name",
    "with_database",
]


# --- databases ----------------------------------------------------------------------------------


def configured_server_url() -> str:
    """The superuser URL tests run on: ``WXDATA_TEST_DATABASE_URL``, else ``DATABASE_URL``, else
    the embedded PostgreSQL's (started, migrated; refused under ``WXDATA_ENV=production``)."""
    url = os.environ.get("WXDATA_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    from wxdata.embedded import embedded_url

    return embedded_url("postgres")


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    return make_conninfo(url, dbname=name)


def create_migrated_database(server_url: str, name: str, key: bytes) -> str:
    """Create database ``name`` on the server of ``server_url`` (a superuser URL), migrate it and
    install the scope ``key``; return its URL. Nothing is left behind when migrating fails."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            install_scope_key(conn, key)
    except BaseException:
        drop_database(server_url, name)
        raise
    return url


def clone_database(server_url: str, template: str, name: str) -> str:
    """Create database ``name`` as a copy of ``template`` (unused by any session); return its URL."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` (its sessions are ended) if it exists."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def unique_name(prefix: str) -> str:
    """``prefix`` plus 10 random hex digits: a database or role name no other run uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --- audit records ------------------------------------------------------------------------------

_TAG_KEY = secrets.token_bytes(32)  # per process: tags compare within a run, reveal nothing after


def subject_tag(subject: uuid.UUID | str) -> str:
    """A student id as shown in assertion messages: keyed-hashed (``s:`` + 10 hex digits)."""
    digest = hmac.new(_TAG_KEY, str(subject).encode(), hashlib.sha256).hexdigest()
    return f"s:{digest[:10]}"


@attrs.frozen(slots=True, kw_only=True)
class AuditRecord:
    """The fields of one ``audit_log`` row that :func:`assert_audited` matches on."""

    seq: int
    action: str
    entity: str
    entity_id: uuid.UUID | None
    subjects: frozenset[uuid.UUID] = attrs.field(
        repr=lambda subjects: repr(sorted(subject_tag(s) for s in subjects)))
    user_id: str | None
    request_id: str | None
    success: bool

    def describe(self) -> str:
        """One line, student ids keyed-hashed."""
        subjects = ",".join(sorted(subject_tag(s) for s in self.subjects)) or "-"
        return (f"seq={self.seq} action={self.action} entity={self.entity} subjects=[{subjects}] "
                f"success={self.success} request_id={self.request_id}")


_COLUMNS = ("seq, action, entity_type, entity_id, subject_student_id, subject_ids, user_id, "
            "request_id, success")


def _record(row: tuple[Any, ...]) -> AuditRecord:
    seq, action, entity, entity_id, subject, subject_ids, user_id, request_id, success = row
    subjects = set(subject_ids or ())
    if subject is not None:
        subjects.add(subject)
    return AuditRecord(seq=seq, action=action, entity=entity, entity_id=entity_id,
                       subjects=frozenset(subjects), user_id=user_id, request_id=request_id,
                       success=success)


def audit_mark(conn: psycopg.Connection[Any]) -> int:
    """The newest audit record's ``seq`` (0 when none): pass it as ``after=`` to look only at what
    happens next."""
    row = conn.execute("SELECT COALESCE(max(seq), 0) FROM audit_log").fetchone()
    return int(row[0]) if row is not None else 0


def _mismatches(record: AuditRecord, expected: dict[str, Any]) -> list[str]:
    out = []
    for field in ("action", "entity", "entity_id", "user_id", "request_id", "success"):
        want = expected.get(field)
        if want is not None and getattr(record, field) != want:
            out.append(f"{field}: expected {want}, recorded {getattr(record, field)}")
    subjects: frozenset[uuid.UUID] | None = expected.get("subjects")
    if subjects is not None:
        missing = subjects - record.subjects
        if missing:
            tags = ",".join(sorted(subject_tag(s) for s in missing))
            out.append(f"subjects: not named [{tags}]")
    return out


def assert_audited(
    conn: psycopg.Connection[Any], *, action: str, entity: str | None = None,
    entity_id: uuid.UUID | None = None, subjects: Iterable[uuid.UUID | str] | None = None,
    user_id: str | None = None,
    request_id: str | None = None, success: bool | None = None, after: int = 0,
    count: int | None = None, show: int = 10,
) -> list[AuditRecord]:
    """Assert that audit records of ``action`` (on ``entity``, row ``entity_id``, naming every one
    of ``subjects``, by ``user_id``, in ``request_id``, with ``success``; None matches anything)
    exist after seq ``after``; return them.

    ``count`` asks for exactly that many. On failure the :class:`AssertionError` lists the
    ``show`` newest records after ``after`` with, for each, the fields that differ (student ids
    keyed-hashed by :func:`subject_tag`, never raw).
    """
    wanted_subjects = None if subjects is None else frozenset(
        s if isinstance(s, uuid.UUID) else uuid.UUID(s) for s in subjects)
    expected: dict[str, Any] = {"action": action, "entity": entity, "entity_id": entity_id,
                                "user_id": user_id,
                                "request_id": request_id, "success": success,
                                "subjects": wanted_subjects}
    where = [sql.SQL("seq > %s")]
    params: list[Any] = [after]
    if request_id is not None:  # the records of one request: the diff then shows only those
        where.append(sql.SQL("request_id = %s"))
        params.append(request_id)
    rows = conn.execute(
        sql.SQL("SELECT {} FROM audit_log WHERE {} ORDER BY seq").format(
            sql.SQL(_COLUMNS), sql.SQL(" AND ").join(where)), params).fetchall()
    records = [_record(r) for r in rows]
    matched = [r for r in records if not _mismatches(r, expected)]
    if matched and (count is None or len(matched) == count):
        return matched
    described = " ".join(f"{k}={v}" for k, v in expected.items() if v is not None and k != "subjects")
    if wanted_subjects is not None:
        described += " subjects=[" + ",".join(sorted(subject_tag(s) for s in wanted_subjects)) + "]"
    lines = [f"expected {'exactly ' + str(count) if count is not None else 'an'} audit record(s): "
             f"{described}", f"matched: {len(matched)}"]
    scope = f"after seq {after}" + (f" in request {request_id}" if request_id is not None else "")
    if not records:
        lines.append(f"no audit record at all {scope}")
    else:
        lines.append(f"recorded {scope} (newest {min(show, len(records))} of {len(records)}):")
        for record in records[-show:]:
            lines.append(f"  {record.describe()}")
            lines.extend(f"      - {m}" for m in _mismatches(record, expected))
    raise AssertionError("\n".join(lines))


# --- frozen clock -------------------------------------------------------------------------------


class FrozenClock:
    """A fixed "now" (UTC) that moves only when told to.

    Installed (:meth:`install`), it is the time contexts' ages are measured against
    (``WXDATA_CONTEXT_MAX_AGE``) and the stamp of contexts built by the ``wx_context`` fixture.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("a frozen clock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        """The frozen time."""
        return self._now

    def advance(self, delta: timedelta | None = None, **parts: float) -> datetime:
        """Move forward by ``delta`` or ``timedelta(**parts)``; return the new time."""
        self._now += delta if delta is not None else timedelta(**parts)
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (aware)."""
        if when.tzinfo is None:
            raise ValueError("a frozen clock needs an aware datetime")
        self._now = when

    @contextmanager
    def install(self) -> Iterator[FrozenClock]:
        """Within the block, wxdata's context clock reads this clock."""
        from wxdata import context

        original = context._utcnow
        context._utcnow = self.now
        _active[:] = [self]
        try:
            yield self
        finally:
            context._utcnow = original
            _active.clear()


_active: list[FrozenClock] = []


def active_clock() -> FrozenClock | None:
    """The installed :class:`FrozenClock`, if any."""
    return _active[0] if _active else None
