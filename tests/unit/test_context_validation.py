"""Execution contexts cannot be built invalid: ids, enums, addresses, break-glass reasons and roles,
SYSTEM only through ``system_context``; refusals name the field and rule, never the value. The age
rule is off unless configured; the audit command refuses a bad actor before connecting.
``tests/integration/test_contexts.py`` checks what contexts do where they reach the database."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Success

from tests.contexts import nurse
from wxdata import config
from wxdata.config import BREAK_GLASS_ELIGIBLE, ConfigError, load_settings
from wxdata.context import (
    ExecutionContext,
    Purpose,
    Role,
    context_age_error,
    system_context,
    validate_context,
)
from wxdata.errors import InvalidContext, ValidationFailed

# Characters that never occur in a refusal message, so "the value is not in the message" is a
# meaningful check (a reason of "a" would trivially occur in any English sentence).
_MARK = "αβγδεζηθικλμνξπρστφχψω"
_BLANK = " \t\n\r\u00a0\u2003"
ALLOWED = (Role.NURSE, Role.ADMIN)
NOT_ALLOWED = tuple(r for r in Role if r not in ALLOWED and r is not Role.SYSTEM)

user_ids = st.from_regex(r"\A[A-Za-z0-9._:@/+=-]{1,128}\Z")
good_reasons = st.text(alphabet=_MARK + _BLANK, min_size=20, max_size=200).filter(
    lambda r: sum(not c.isspace() for c in r) >= 20)
short_reasons = st.builds(
    lambda marks, blanks: "".join(a + b for a, b in zip(marks, blanks, strict=False)) + blanks,
    st.text(alphabet=_MARK, max_size=19), st.text(alphabet=_BLANK, max_size=40))


def refusal(**kw: Any) -> InvalidContext:
    with pytest.raises(InvalidContext) as raised:
        ExecutionContext(**{"user_id": "u-1", "role": Role.NURSE, **kw})
    built = ExecutionContext.build(**{"user_id": "u-1", "role": Role.NURSE, **kw})
    assert isinstance(built.failure(), ValidationFailed)
    assert built.failure().errors == raised.value.errors
    return raised.value


# --- break-glass ----------------------------------------------------------------------------------


def test_the_empty_reason_attack_is_refused() -> None:
    """Formerly ``ctx.break_glass("")`` gave a bypassing context; now it cannot be built."""
    for reason in ("", "   ", "x", "\x00" * 30, "see chart"):
        with pytest.raises(InvalidContext) as raised:
            nurse().break_glass(reason)
        assert [e.field for e in raised.value.errors] == ["break_glass_reason"]


@given(reason=short_reasons, role=st.sampled_from(ALLOWED))
def test_short_or_blank_reasons_are_refused_without_echo(reason: str, role: Role) -> None:
    error = refusal(role=role, break_glass_reason=reason, purpose=Purpose.EMERGENCY)
    assert [e.field for e in error.errors] == ["break_glass_reason"]
    assert all(c not in str(error) for c in reason if not c.isspace())


@given(reason=good_reasons, cut=st.integers(min_value=0, max_value=199))
def test_reasons_with_nul_are_refused(reason: str, cut: int) -> None:
    bad = reason[:cut] + "\x00" + reason[cut:]
    error = refusal(break_glass_reason=bad)
    assert [e.field for e in error.errors] == ["break_glass_reason"]
    assert all(c not in str(error) for c in reason if not c.isspace())


@given(reason=good_reasons, role=st.sampled_from(NOT_ALLOWED))
def test_roles_not_allowed_break_glass_are_refused(reason: str, role: Role) -> None:
    error = refusal(role=role, break_glass_reason=reason)
    assert [e.field for e in error.errors] == ["role"]
    assert "break-glass" in error.errors[0].rule
    assert all(c not in str(error) for c in reason if not c.isspace())


@given(reason=good_reasons, role=st.sampled_from(ALLOWED), user=user_ids,
       ip=st.ip_addresses().map(str))
def test_valid_break_glass_contexts_are_accepted(reason: str, role: Role, user: str,
                                                 ip: str) -> None:
    ctx = ExecutionContext(user_id=user, role=role, ip_address=ip).break_glass(reason)
    assert ctx.is_break_glass and ctx.purpose is Purpose.EMERGENCY
    assert ctx.break_glass_reason == reason
    assert validate_context(ctx) == Success(ctx)
    assert reason not in repr(ctx)  # the reason may hold PHI


def test_break_glass_rules_follow_the_settings() -> None:
    strict = attrs.evolve(config.settings(), break_glass_min_reason=40,
                          break_glass_roles=frozenset({"COUNSELOR"}))
    previous = config.configure(strict)
    try:
        with pytest.raises(InvalidContext):
            nurse().break_glass("anaphylaxis in the gym, chart needed")  # role, and 31 < 40
        counselor = ExecutionContext(user_id="u-c", role=Role.COUNSELOR)
        with pytest.raises(InvalidContext):
            counselor.break_glass("anaphylaxis in the gym, chart needed")
        assert counselor.break_glass("anaphylaxis in the gym, the allergy chart is needed now"
                                     ).is_break_glass
    finally:
        config.configure(previous)


def test_break_glass_settings_are_validated() -> None:
    assert load_settings({}).break_glass_min_reason == 20
    assert load_settings({}).break_glass_roles == frozenset({"NURSE", "ADMIN"})
    assert load_settings({"WXDATA_BREAK_GLASS_ROLES": "none"}).break_glass_roles == frozenset()
    assert load_settings({"WXDATA_BREAK_GLASS_ROLES": "nurse, counselor"}).break_glass_roles == {
        "NURSE", "COUNSELOR"}
    for env, name in (({"WXDATA_BREAK_GLASS_MIN_REASON": "3"}, "WXDATA_BREAK_GLASS_MIN_REASON"),
                      ({"WXDATA_BREAK_GLASS_MIN_REASON": "many"}, "WXDATA_BREAK_GLASS_MIN_REASON"),
                      ({"WXDATA_BREAK_GLASS_ROLES": "NURSE,VIEWER"}, "WXDATA_BREAK_GLASS_ROLES"),
                      ({"WXDATA_BREAK_GLASS_ROLES": "SYSTEM"}, "WXDATA_BREAK_GLASS_ROLES"),
                      ({"WXDATA_CONTEXT_MAX_AGE": "-1"}, "WXDATA_CONTEXT_MAX_AGE")):
        with pytest.raises(ConfigError, match=name):
            load_settings(env)
    assert set(BREAK_GLASS_ELIGIBLE) == {r.value for r in Role} - {"VIEWER", "SYSTEM"}


# --- roles, SYSTEM --------------------------------------------------------------------------------


@given(role=st.one_of(st.text(alphabet=_MARK + string.digits, min_size=1, max_size=30),
                     st.sampled_from(["nurse", "system", "Nurse", "root", "superuser", "NURSE\x00"])))
def test_unknown_roles_are_refused_without_echo(role: str) -> None:
    error = refusal(role=role)
    assert [e.field for e in error.errors] == ["role"]
    assert role not in str(error)


@given(purpose=st.text(alphabet=_MARK + string.digits + "_", min_size=1, max_size=30))
def test_unknown_purposes_are_refused(purpose: str) -> None:
    assert [e.field for e in refusal(purpose=purpose).errors] == ["purpose"]


@given(claim=st.sampled_from(["SYSTEM", Role.SYSTEM]),
       purpose=st.sampled_from(["SYSTEM", Purpose.SYSTEM, Purpose.TREATMENT]),
       capability=st.sampled_from([None, object()]))
def test_system_cannot_be_claimed(claim: Any, purpose: Any, capability: Any) -> None:
    if capability is None:
        error = refusal(role=claim, purpose=purpose)
    else:  # a forged capability object is not the private one
        with pytest.raises(InvalidContext) as raised:
            ExecutionContext(user_id="u-1", role=claim, purpose=purpose, capability=capability)
        error = raised.value
    assert "role" in {e.field for e in error.errors}
    with pytest.raises(InvalidContext):
        attrs.evolve(nurse(), role=claim)


def test_system_purpose_is_reserved_too() -> None:
    assert [e.field for e in refusal(purpose="SYSTEM").errors] == ["purpose"]


def test_system_context_is_the_only_system_context() -> None:
    sys_ctx = system_context("nightly")
    assert sys_ctx.is_system and sys_ctx.role is Role.SYSTEM
    renamed = attrs.evolve(sys_ctx, user_id="ops-job")  # keeps its capability
    assert renamed.is_system
    with pytest.raises(InvalidContext):  # the SYSTEM purpose goes with the SYSTEM role only
        attrs.evolve(sys_ctx, role=Role.NURSE)
    assert not attrs.evolve(sys_ctx, role=Role.NURSE, purpose=Purpose.OPERATIONS).is_system
    with pytest.raises(InvalidContext):
        sys_ctx.break_glass("the scheduler does not break glass, ever, at all")
    assert isinstance(ExecutionContext.build(user_id="u", role="SYSTEM").failure(),
                      ValidationFailed)


@given(role=st.sampled_from([r.value for r in Role if r is not Role.SYSTEM]))
def test_role_names_are_converted(role: str) -> None:
    assert ExecutionContext(user_id="u-1", role=role).role is Role(role)


# --- other fields ---------------------------------------------------------------------------------


@given(user=st.one_of(st.just(""), st.text(alphabet=_MARK + " ", min_size=1, max_size=40),
                      st.text(min_size=129, max_size=140)))
def test_bad_user_ids_are_refused_without_echo(user: str) -> None:
    error = ExecutionContext.build(user_id=user, role="NURSE").failure()
    assert [e.field for e in error.errors] == ["user_id"]
    assert user.strip() == "" or user not in error.message


@given(ip=st.text(alphabet=_MARK + "0123456789.:", min_size=1, max_size=30).filter(
    lambda s: any(c in _MARK for c in s)))
def test_bad_ip_addresses_are_refused(ip: str) -> None:
    assert [e.field for e in refusal(ip_address=ip).errors] == ["ip_address"]


@given(field=st.sampled_from(["user_agent", "user_name"]), text=st.text(max_size=20))
def test_nul_in_free_text_is_refused(field: str, text: str) -> None:
    assert [e.field for e in refusal(**{field: text + "\x00"}).errors] == [field]


#: Characters that state nothing: spaces, punctuation, symbols, control and format characters
#: (zero-width spaces, byte-order marks, soft hyphens) and combining marks, never NUL or a
#: surrogate (refused by rules of their own).
_WORDLESS = st.characters(blacklist_categories=("L", "N", "Cs"), blacklist_characters="\x00")


@given(reason=st.text(alphabet=_WORDLESS, min_size=20, max_size=300),
       letters=st.text(alphabet=_MARK, max_size=19), role=st.sampled_from(ALLOWED),
       data=st.data())
def test_reasons_with_too_few_letters_or_digits_are_refused(
        reason: str, letters: str, role: Role, data: st.DataObject) -> None:
    """However long, a reason needs WXDATA_BREAK_GLASS_MIN_REASON letters or digits: 25
    zero-width spaces, control characters, a line of dots or combining marks state no reason."""
    at = data.draw(st.integers(min_value=0, max_value=len(reason)))
    mixed = reason[:at] + letters + reason[at:]
    error = refusal(role=role, break_glass_reason=mixed, purpose=Purpose.EMERGENCY)
    assert [e.field for e in error.errors] == ["break_glass_reason"]
    assert "letters or digits" in error.errors[0].rule
    assert all(c not in str(error) for c in letters)


def test_invisible_reasons_are_refused() -> None:
    for blank in ("\u200b", "\ufeff", "\u2060", "\u00ad", "\x01", "\u0301", " \u200b", ".",
                  "\u00a0", "\u3000"):
        with pytest.raises(InvalidContext) as raised:
            nurse().break_glass(blank * 30)
        assert [e.field for e in raised.value.errors] == ["break_glass_reason"]


@given(field=st.sampled_from(["user_agent", "user_name", "break_glass_reason"]),
       before=st.text(alphabet=_MARK, min_size=20, max_size=40),
       surrogate=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
       after=st.text(alphabet=_MARK, max_size=20))
def test_free_text_postgresql_cannot_store_is_refused_without_echo(
        field: str, before: str, surrogate: str, after: str) -> None:
    """A lone surrogate (``json.loads('"\\ud800"')`` yields one from an ordinary request body)
    cannot be encoded for PostgreSQL: refused when the context is built, naming the field."""
    extra = {"purpose": Purpose.EMERGENCY} if field == "break_glass_reason" else {}
    error = refusal(**{field: before + surrogate + after}, **extra)
    assert [e.field for e in error.errors] == [field]
    assert "valid Unicode" in error.errors[0].rule
    assert before not in str(error) and surrogate not in str(error)


@given(surrogate=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
       name=st.booleans())
def test_metadata_postgresql_cannot_store_is_refused(surrogate: str, name: bool) -> None:
    pair = (surrogate, "v") if name else ("k", "x" + surrogate)
    error = refusal(metadata=(pair,))
    assert [e.field for e in error.errors] == ["metadata"]


def test_build_names_missing_and_unknown_fields() -> None:
    errors = ExecutionContext.build(user_id="u", bogus=1).failure().errors
    assert {(e.field, e.rule) for e in errors} == {("bogus", "is not a context field"),
                                                   ("role", "is required")}
    assert isinstance(refusal(school_ids=["not-a-uuid"]), InvalidContext)
    assert isinstance(refusal(timestamp=datetime(2024, 1, 1)), InvalidContext)


# --- maximum context age, the command line --------------------------------------------------------


def test_age_rule_is_off_by_default() -> None:
    old = nurse(timestamp=datetime.now(UTC) - timedelta(days=3))
    assert config.settings().context_max_age_seconds is None
    assert context_age_error(old) is None


def test_audit_cli_refuses_a_bad_actor_without_echo(capsys: pytest.CaptureFixture[str]) -> None:
    from wxdata.cli import main

    code = main(["audit", "--database-url", "postgresql://nobody@127.0.0.1:1/none",
                 "--actor", "bad actor ω", "retention"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--actor must be" in err and "bad actor" not in err
