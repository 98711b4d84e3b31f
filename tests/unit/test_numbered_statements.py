"""Long statements sent with numbered placeholders: the same text, numbering and values psycopg
would have sent, and nothing numbered that psycopg must read itself.

:func:`wxdata.core.numbered.numbered` replaces each ``%(name)s`` with ``$n`` (one number per
distinct name, in order of first appearance) and lists the values in that order. For any
statement made of text without ``%`` and named placeholders, the numbered text read back with the
names in place of the numbers is the statement itself, and the values are the named ones. A
statement with any other use of ``%``, a placeholder followed by a digit (its number would run
into it), not ASCII, short enough for psycopg to cache its parse, or missing a parameter is not
numbered.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wxdata.core.numbered import (
    PARSED_EACH_TIME_BYTES,
    PARSED_EACH_TIME_PARAMS,
    numbered,
    numbering,
)

_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126,
                                       blacklist_characters="%$"), max_size=40)
_NAME = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)
_RUNS_INTO_A_DIGIT = re.compile(r"%\([^)]+\)s[0-9]")
_PAD = "-" * (PARSED_EACH_TIME_BYTES + 1)  # long enough to be parsed on every execution


@st.composite
def _statement(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A long statement of text and ``%(name)s`` placeholders (names may repeat), and its names
    in order of appearance."""
    names = draw(st.lists(_NAME, min_size=0, max_size=12))
    chunks = [draw(_TEXT) for _ in range(len(names) + 1)]
    sql = "".join(c + f"%({n})s" for c, n in zip(chunks, names, strict=False)) + chunks[-1]
    return "'" + _PAD + "' " + sql, names


@given(_statement(), st.data())
def test_a_numbered_statement_is_the_named_one_with_its_values_in_order(
    case: tuple[str, list[str]], data: st.DataObject,
) -> None:
    sql, names = case
    if _RUNS_INTO_A_DIGIT.search(sql):
        assert numbering(sql) is None  # "$1" then "0" would read as "$10": left to psycopg
        return
    values = {n: data.draw(st.integers() | st.text(max_size=3) | st.none()) for n in names}
    extra = {"unused_" + str(i): i for i in range(data.draw(st.integers(0, 3)))}
    form = numbered(sql, {**values, **extra})
    assert form is not None
    query, bound = form
    distinct = list(dict.fromkeys(names))
    assert len(bound) == len(distinct)
    # each $n is the n-th distinct name; reading the names back gives the statement itself
    text = query.decode("ascii")
    assert re.sub(r"\$(\d+)", lambda m: f"%({distinct[int(m.group(1)) - 1]})s", text) == sql
    assert bound == [values[n] for n in distinct]
    assert numbering(sql) is numbering(sql)  # made once per text


@given(_statement())
def test_the_numbers_are_those_of_first_appearance(case: tuple[str, list[str]]) -> None:
    sql, names = case
    form = numbering(sql)
    if _RUNS_INTO_A_DIGIT.search(sql):
        assert form is None
        return
    assert form is not None
    assert form.names == tuple(dict.fromkeys(names))
    numbers = [int(n) for n in re.findall(rb"\$(\d+)", form.query)]
    assert numbers == [form.names.index(n) + 1 for n in names]


@pytest.mark.parametrize("other", ["%s", "%b", "%t", "%%", "%(x)b", "%(x)t", "% ", "50%"])
def test_any_other_use_of_percent_is_left_to_psycopg(other: str) -> None:
    sql = f"SELECT '{_PAD}', %(a)s, {other}"
    assert numbering(sql) is None
    assert numbered(sql, {"a": 1, "x": 2}) is None


def test_text_around_the_placeholders_is_sent_as_written() -> None:
    """A ``$`` of the statement's own (a dollar-quoted body, say) reaches the server unchanged,
    as psycopg leaves it."""
    form = numbered(f"SELECT $q${_PAD}$q$, %(a)s, '$1'", {"a": 7})
    assert form == (f"SELECT $q${_PAD}$q$, $1, '$1'".encode(), [7])


def test_a_placeholder_followed_by_a_digit_is_left_to_psycopg() -> None:
    assert numbered(f"SELECT '{_PAD}', %(a)s0", {"a": 1}) is None


def test_a_statement_that_is_not_ascii_is_left_to_psycopg() -> None:
    assert numbered(f"SELECT '{_PAD}é', %(a)s", {"a": 1}) is None


def test_a_statement_psycopg_caches_is_left_to_it() -> None:
    short = "SELECT %(a)s"
    assert numbered(short, {"a": 1}) is None
    many = " + ".join(f"%(p{i})s" for i in range(PARSED_EACH_TIME_PARAMS + 1))
    params: dict[str, Any] = {f"p{i}": i for i in range(PARSED_EACH_TIME_PARAMS + 1)}
    form = numbered("SELECT " + many, params)
    assert form is not None and form[1] == list(range(PARSED_EACH_TIME_PARAMS + 1))


def test_a_missing_parameter_is_left_to_psycopg_to_name() -> None:
    assert numbered(f"SELECT '{_PAD}', %(a)s, %(b)s", {"a": 1}) is None


def test_parameters_not_given_as_a_dict_are_left_to_psycopg() -> None:
    assert numbered(f"SELECT '{_PAD}', %(a)s", [1]) is None
    assert numbered(b"SELECT 1", {"a": 1}) is None


def test_every_statement_binding_more_than_psycopg_caches_is_past_the_length_bound() -> None:
    """The drivers number a statement on its length alone: none of wxdata's creates and updates
    (every column of every entity, audited and not) binds more parameters than psycopg caches its
    parse for while being short enough to be left to it."""
    import uuid

    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.audit.record import AuditAction
    from wxdata.core.auditing import _riding
    from wxdata.core.writes import _insert_statement, _update_statement
    from wxdata.schema.spec import registered

    ctx = ExecutionContext(user_id="u", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           school_ids={uuid.uuid4()}, request_id="r")
    checked = 0
    for entity in registered():
        writable = tuple(c.name for c in entity.columns if c.rules.writable)
        create = _riding(ctx, entity, AuditAction.CREATE).shape
        update = _riding(ctx, entity, AuditAction.UPDATE).shape
        for sql in (_insert_statement(entity, writable, writable, create),
                    _insert_statement(entity, writable, None, create),
                    _update_statement(entity, writable, True, update, False, True),
                    _update_statement(entity, writable, True, update, True),
                    _update_statement(entity, writable, True, None)):
            names = set(re.findall(r"%\(([^)]+)\)s", sql))
            assert len(names) <= PARSED_EACH_TIME_PARAMS or len(sql) > PARSED_EACH_TIME_BYTES, \
                entity.name
            checked += 1
    assert checked == 5 * len(registered())
