"""The context statement applies exactly the context's settings, the timeouts and the token.

Built once per context, key, timeouts and second and shared, it must still say, for every context,
what the context says: each ``app.*`` setting, the per-transaction timeouts behind a pooler, and
the token signed for that second (empty without a key), one placeholder per value, the names
written in as wxdata's own constants. Row-level security acting on it against a real server is
checked in ``tests/integration/test_row_security.py`` and ``test_contexts.py``.
"""

from __future__ import annotations

import re
import uuid

import attrs
from hypothesis import given
from hypothesis import strategies as st

from wxdata.config import configure, load_settings
from wxdata.context import ExecutionContext, Purpose, Role, context_settings, system_context
from wxdata.tx.scope import context_statement, transaction_timeouts
from wxdata.tx.token import scope_token

_NAME = re.compile(r"set_config\('([a-z_.]+)', %s, true\)")

user_ids = st.from_regex(r"\A[A-Za-z0-9._:@/+=-]{1,64}\Z")
contexts = st.one_of(
    st.builds(
        lambda user, role, purpose, schools, request: ExecutionContext(
            user_id=user, role=role, purpose=purpose, school_ids=frozenset(schools),
            request_id=request),
        user_ids, st.sampled_from([r for r in Role if r is not Role.SYSTEM]),
        st.sampled_from([p for p in Purpose if p is not Purpose.SYSTEM]), st.sets(st.uuids(), max_size=4),
        st.none() | st.from_regex(r"\A[a-z0-9-]{1,32}\Z")),
    st.builds(lambda name: system_context(name), st.from_regex(r"\A[a-z]{1,16}\Z")),
)


def _applied(sql: str, values: tuple[str, ...]) -> dict[str, str]:
    names = _NAME.findall(sql)
    assert sql == "SELECT " + ",".join(f"set_config('{n}', %s, true)" for n in names)
    assert len(names) == len(values) == sql.count("%s") == len(set(names))
    return dict(zip(names, values, strict=True))


@given(contexts, st.none() | st.binary(min_size=32, max_size=32),
       st.integers(min_value=1_700_000_000, max_value=2_000_000_000), st.booleans(),
       st.integers(0, 86_400_000), st.integers(0, 86_400_000))
def test_the_statement_applies_the_context_the_timeouts_and_the_token(
    ctx: ExecutionContext, key: bytes | None, now: int, pooled: bool, statement: int, idle: int,
) -> None:
    config = attrs.evolve(load_settings({}), pooler="transaction" if pooled else "none",
                          statement_timeout_ms=statement, idle_in_transaction_timeout_ms=idle)
    previous = configure(config)
    try:
        sql, values = context_statement(ctx, key, now + 0.75)
        expected = {**context_settings(ctx), **transaction_timeouts(config),
                    "app.scope_token": scope_token(ctx, key, now) if key is not None else ""}
        assert _applied(sql, values) == expected
        assert context_statement(ctx, key, now) == (sql, values)  # the same second: the same
        if key is not None:  # the next second: a token of its own, the rest unchanged
            later = _applied(*context_statement(ctx, key, now + 1))
            assert later == {**expected, "app.scope_token": scope_token(ctx, key, now + 1)}
            assert later["app.scope_token"] != expected["app.scope_token"]
    finally:
        configure(previous)


def test_a_shared_statement_cannot_be_changed_by_a_caller() -> None:
    ctx = ExecutionContext(user_id="u-1", role=Role.NURSE, school_ids={uuid.uuid4()})
    _, values = context_statement(ctx, b"k" * 32, 1_800_000_000)
    assert isinstance(values, tuple)
    assert context_statement(ctx, b"k" * 32, 1_800_000_000)[1] is values


def test_the_same_context_and_second_under_other_timeouts_gets_its_own_statement() -> None:
    """Cached per context and second, the statement still follows the settings it is built
    under: the same call direct, then behind a pooler, then direct again."""
    ctx = ExecutionContext(user_id="u-2", role=Role.NURSE, school_ids={uuid.uuid4()})
    direct = attrs.evolve(load_settings({}), pooler="none")
    applied = []
    for config in (direct, attrs.evolve(direct, pooler="transaction"), direct):
        previous = configure(config)
        try:
            applied.append(_applied(*context_statement(ctx, b"k" * 32, 1_800_000_000)))
        finally:
            configure(previous)
    assert "statement_timeout" not in applied[0] and applied[0] == applied[2]
    assert applied[1] == {**applied[0], "statement_timeout": "30000",
                          "idle_in_transaction_session_timeout": "30000"}
