"""PHI-safe logging without a server: ``sql_shape`` leaves no literal, number or comment of a
statement (properties over quoted text in every quoting style) and keeps identifiers, casts and
placeholders; the guard on the database libraries' loggers keeps an error's description, never its
text. Logging over a real workload is checked in ``tests/integration/test_observability.py`` and
``tests/integration/test_log_safety.py``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.log_capture import Capture, capture_all, texts
from wxdata.observability import sql_shape


@pytest.fixture
def captured() -> Iterator[Capture]:
    """Root and the libraries' loggers at DEBUG, every record kept."""
    with capture_all() as handler:
        yield handler


# --- the shape of a statement ---------------------------------------------------------------------


_TAIL = " AND b = %(p0)s AND c = $1"


def _standard(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _escaped(text: str) -> str:
    return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _dollar(text: str) -> str:
    tag = "q"
    while f"${tag}$" in text or text.endswith(f"${tag}"):
        tag += "q"
    return f"${tag}${text}${tag}$"


@settings(max_examples=300, deadline=None)
@given(text=st.text(), quote=st.sampled_from([_standard, _escaped, _dollar]))
def test_a_literal_at_the_end_leaves_only_a_placeholder(text: str, quote: Any) -> None:
    assert sql_shape("SELECT * FROM t WHERE a = " + quote(text)) == "SELECT * FROM t WHERE a = ?"


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_characters="\\")),
       quote=st.sampled_from([_standard, _escaped, _dollar]))
def test_a_literal_in_the_middle_leaves_the_rest_intact(text: str, quote: Any) -> None:
    shape = sql_shape("SELECT * FROM t WHERE a = " + quote(text) + _TAIL)
    assert shape == "SELECT * FROM t WHERE a = ?" + _TAIL


@settings(max_examples=200, deadline=None)
@given(number=st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
       comment=st.text(st.characters(blacklist_characters="\n*/")))
def test_numbers_and_comments_never_survive(number: float, comment: str) -> None:
    shape = sql_shape(f"SELECT x1, {abs(number)!r} -- {comment}\nFROM t /* {comment} */")
    assert shape == "SELECT x1, ? ? FROM t ?"


def test_shape_keeps_identifiers_casts_and_placeholders() -> None:
    assert sql_shape('SELECT "first_name", e.x FROM "students" e WHERE id = %(_id)s::uuid '
                     "AND d > '2014-05-17'::date LIMIT 20") == (
        'SELECT "first_name", e.x FROM "students" e WHERE id = %(_id)s::uuid AND d > ?::date '
        "LIMIT ?")
    assert sql_shape("SELECT 'unterminated Ada") == "SELECT ?"
    assert sql_shape(b"SELECT 'Ada'") == "SELECT ?"
    assert sql_shape("x" * 50 + " 'v'", limit=20) == "x" * 19 + "…"


# --- the libraries' loggers -----------------------------------------------------------------------


def test_library_logger_records_lose_exception_text(captured: Capture) -> None:
    """psycopg formats an error's text into some warnings; the guard keeps only its description."""
    sentinel = f"ZQPHI{uuid.uuid4().hex[:12].upper()}"
    error = psycopg.errors.UniqueViolation(f"Key (student_number)=({sentinel}) already exists")
    logging.getLogger("psycopg").warning("error ignored exiting %r: %s", "<pipeline>", error)
    try:
        raise ValueError(sentinel)
    except ValueError:
        logging.getLogger("psycopg.pool").exception("error in a pool task")
    mine = [r for r in captured.records if r.name in ("psycopg", "psycopg.pool")]
    assert len(mine) == 2
    assert "UniqueViolation sqlstate=23505" in mine[0].getMessage()
    assert "ValueError" in mine[1].getMessage()
    assert [r.name for r in mine if any(sentinel in t for t in texts(r))] == []
