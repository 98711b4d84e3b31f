"""The signed scope's verifier answers as its definition for every token, signed or not.

``wxdata_scope_schools()`` is what row security calls: NULL (every school) for a verified bypass
token, the verified schools otherwise, ``'{}'`` for anything that does not verify. Its definition
is the claims function ``wxdata_scope_claims()`` (kept installed) mapped the same way. The
verifier is written as one function for speed; these tests generate tokens of every shape --
signed with the database's key or not, well formed or not, fresh, stale or from the future,
granting bypass or schools, with fields missing, extra or shifted -- and require the same answer
(or the same error) from both, in the same transaction (the same ``now()``).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_SCOPE_KEY
from wxdata.tx.token import sign

Conn = psycopg.Connection[Any]

NIL = uuid.UUID(int=0)

DEFINITION = """
SELECT CASE WHEN c.bypass IS TRUE THEN NULL
            ELSE array_remove(array_remove(coalesce(c.school_ids, '{}'::uuid[]), NULL),
                              '00000000-0000-0000-0000-000000000000'::uuid) END
  FROM wxdata_scope_claims() c"""

# \x01-\x04 are the templates' own markers below; PostgreSQL's text holds no \x00
_CHARS = st.characters(codec="utf-8", exclude_characters="\x00\x01\x02\x03\x04")
_TEXT = st.text(_CHARS, max_size=12)

# where a token is issued: (an end of the key's window or now, seconds from it); the past end is
# max_age_seconds + skew_seconds before now(), the future end skew_seconds after
_OFFSETS = st.one_of(st.tuples(st.sampled_from(["past", "future"]), st.integers(-4, 4)),
                     st.tuples(st.just("now"), st.integers(-400, 400)))
Offset = tuple[str, int]

_SCHOOLS = st.one_of(
    st.lists(st.one_of(st.uuids(), st.just(NIL)), max_size=4).map(
        lambda ids: ",".join(map(str, ids))),
    st.sampled_from(["", ",", "not-a-uuid", f"{NIL},", f",{uuid.uuid4()}"]),
)


_DEFECTS = ["none"] * 6 + ["version", "issued", "flag", "fields", "mac", "everything"]


@st.composite
def _tokens(draw: st.DrawFn) -> tuple[str | None, Offset | None]:
    """A token (None: not set) and, for tokens whose issue time is an offset, that offset.

    Most are built as wxdata builds them, issued around both ends of the window, with at most one
    defect (a field, the field count or the MAC), so verified and refused answers both abound."""
    shape = draw(st.sampled_from(["built"] * 8 + ["random", "none"]))
    if shape == "none":
        return None, None
    if shape == "random":
        return draw(st.one_of(_TEXT, st.text(_CHARS, min_size=70, max_size=140))), None
    defect = draw(st.sampled_from(_DEFECTS))
    bad = {d for d in _DEFECTS[6:]} if defect == "everything" else {defect}
    fields: list[str] = [
        draw(st.sampled_from(["2", "", "01", "1 "])) if "version" in bad else "1",
        draw(st.sampled_from(["", "x", "-5", "1e3", "0" * 13, " 1"])) if "issued" in bad
        else draw(st.sampled_from(["\x02", "\x02", "\x04"])),  # now() + offset, in the test
        draw(st.sampled_from(["2", "", "00", "true"])) if "flag" in bad
        else draw(st.sampled_from(["0", "0", "0", "1"])),
        draw(_SCHOOLS),
        draw(st.sampled_from(["NURSE", "ADMIN", "", "a|b"])),
        draw(_TEXT),
    ]
    if "fields" in bad:
        fields = [*fields, draw(_TEXT)][:draw(st.sampled_from([1, 2, 3, 4, 5, 7]))]
    mac = draw(st.sampled_from(["flip", "short", "random"])) if "mac" in bad else "sign"
    return ("\x01".join(fields) + "\x03" + mac,
            draw(_OFFSETS))


def _answer(conn: Conn, query: str) -> tuple[str, Any]:
    try:
        with conn.transaction():  # a savepoint: an error leaves the outer transaction usable
            row = conn.execute(query).fetchone()
    except psycopg.Error as exc:
        return "error", exc.sqlstate
    assert row is not None
    return "value", list(row[0]) if row[0] is not None else None


def _materialise(template: str, offset: Offset | None, now: int, window: tuple[int, int]) -> str:
    """The token a template stands for, issued at ``offset`` (now() in whole seconds is ``now``,
    ``window`` the key's maximum age and skew)."""
    fields, _, mac = template.partition("\x03")
    anchor, delta = offset or ("now", 0)
    issued = now + delta + {"past": -(window[0] + window[1]), "future": window[1], "now": 0}[anchor]
    # \x02: the issue time; \x04: the same, zero-padded to the twelve digits allowed
    message = "|".join(str(issued) if f == "\x02" else f"{issued:012d}" if f == "\x04" else f
                       for f in fields.split("\x01"))
    good = sign(TEST_SCOPE_KEY, message)
    tail = {"sign": good, "flip": ("0" if good[0] != "0" else "1") + good[1:],
            "short": good[:63], "random": uuid.uuid4().hex * 2}[mac]
    return f"{message}|{tail}"


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=_tokens())
# signed messages of three fields (no schools field), long enough to be read: nothing granted
@example(token=("1\x01\x04\x011\x03sign", ("now", 0)))
@example(token=("1\x01\x04\x010\x03sign", ("now", 0)))
# signed, on either side of both ends of the window (now() is whole seconds plus a fraction)
@example(token=("1\x01\x02\x010\x01\x01NURSE\x01u\x03sign", ("past", 1)))
@example(token=("1\x01\x02\x010\x01\x01NURSE\x01u\x03sign", ("past", 0)))
@example(token=("1\x01\x02\x011\x01\x01NURSE\x01u\x03sign", ("future", 0)))
@example(token=("1\x01\x02\x011\x01\x01NURSE\x01u\x03sign", ("future", 1)))
def test_the_verifier_answers_as_its_definition_for_every_token(
        admin_conn: Conn, token: tuple[str | None, Offset | None]) -> None:
    template, offset = token
    with admin_conn.transaction():
        row = admin_conn.execute(
            "SELECT floor(extract(epoch FROM now()))::bigint, max_age_seconds, skew_seconds"
            " FROM wxdata_scope_key").fetchone()
        assert row is not None
        value = template
        if template is not None and "\x03" in template:
            value = _materialise(template, offset, int(row[0]), (int(row[1]), int(row[2])))
        admin_conn.execute("SELECT set_config('app.scope_token', %s, true)", (value or "",))
        answer = _answer(admin_conn, "SELECT wxdata_scope_schools()")
        assert answer == _answer(admin_conn, DEFINITION)
    event("every school" if answer == ("value", None) else "an error" if answer[0] == "error"
          else "schools" if answer[1] else "nothing")


def test_a_fresh_signed_token_is_verified_and_a_tampered_one_is_not(admin_conn: Conn) -> None:
    """The generated space holds both outcomes: a valid token grants its schools (not '{}'),
    bypass grants everything, and the same token with one changed character grants nothing."""
    school = uuid.uuid4()
    with admin_conn.transaction():
        row = admin_conn.execute("SELECT extract(epoch FROM now())::bigint").fetchone()
        assert row is not None
        answers = {}
        for name, flag, schools in (("schools", "0", f"{school},{NIL}"), ("bypass", "1", "")):
            message = f"1|{row[0]}|{flag}|{schools}|NURSE|u-1"
            for variant, mac in (("signed", sign(TEST_SCOPE_KEY, message)),
                                 ("tampered", sign(TEST_SCOPE_KEY, message + "x"))):
                admin_conn.execute("SELECT set_config('app.scope_token', %s, true)",
                                   (f"{message}|{mac}",))
                answers[name, variant] = _answer(admin_conn, "SELECT wxdata_scope_schools()")
    assert answers["schools", "signed"] == ("value", [school])
    assert answers["bypass", "signed"] == ("value", None)
    assert answers["schools", "tampered"] == ("value", [])
    assert answers["bypass", "tampered"] == ("value", [])
