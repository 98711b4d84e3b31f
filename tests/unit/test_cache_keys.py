"""Cache keys: collision-free canonical calls, readable shapes, keyed hashes for PHI (pure tests)."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cache_support import keys
from wxdata import ExecutionContext, Role
from wxdata.cache import keys as K
from wxdata.cache.identity import function_identity
from wxdata.query.filters import Cond, Or
from wxdata.schema import HEALTH_RECORDS, SCHOOLS, STUDENTS

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _key(entity: Any, sensitive: bool, shape: K.KeyShape, *args: Any, fn: str = "m.find",
         part: str = "", **kwargs: Any) -> str:
    text = K.call_text(fn, K.fingerprint(entity), part, args, kwargs)
    return keys().key(entity, sensitive, shape, text)


def test_original_wrong_patient_bug_cannot_recur() -> None:
    """The original replaced every filter value by 'VALUE': {id: a} and {id: b} shared one key."""
    a, b = uuid.uuid4(), uuid.uuid4()
    for sensitive in (True, False):
        ka = _key(STUDENTS, sensitive, K.LIST, where={"id": a})
        kb = _key(STUDENTS, sensitive, K.LIST, where={"id": b})
        assert ka != kb
        assert _key(STUDENTS, sensitive, K.by_id(a), a) != _key(STUDENTS, sensitive, K.by_id(b), b)
    # the original hashFilters truncation: these two collided as 'eyJncmFkZSI6IjUi'
    s1 = _key(STUDENTS, True, K.LIST, where={"schoolId": "s1", "grade": "5"})
    s2 = _key(STUDENTS, True, K.LIST, where={"schoolId": "s2", "grade": "5"})
    assert s1 != s2
    assert _key(STUDENTS, True, K.LIST, {"filter": {"a": 1}}) != _key(
        STUDENTS, True, K.LIST, {"filter": {"b": 2}})


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"where": {"grade": "5"}}, {"where": {"grade": "6"}}),
        ({"where": {"grade": "5"}}, {"where": {"grade": {"in": ["5"]}}}),
        ({"where": Cond("last_name", "ilike", "smi")}, {"where": Cond("last_name", "like", "smi")}),
        ({"where": Or((Cond("grade", "eq", "5"),))}, {"where": Cond("grade", "eq", "5")}),
        ({"order_by": [("last_name", "asc")]}, {"order_by": [("last_name", "desc")]}),
        ({"order_by": ["last_name", "first_name"]}, {"order_by": ["first_name", "last_name"]}),
        ({"page": 1}, {"page": 2}),
        ({"limit": 20}, {"limit": 21}),
        ({"select": ("id", "grade")}, {"select": ("id", "grade", "first_name")}),
        ({"select": ("id", "grade")}, {"select": ("grade", "id")}),
        ({"include_deleted": False}, {"include_deleted": True}),
        ({"page": 1}, {"page": True}),
        ({"limit": 1}, {"limit": 1.0}),
        ({"x": "1"}, {"x": 1}),
        ({"x": Decimal("1")}, {"x": 1}),
        ({"x": Decimal("1.0")}, {"x": Decimal("1.00")}),
        ({"x": date(2020, 1, 1)}, {"x": datetime(2020, 1, 1)}),
        ({"x": datetime(2020, 1, 1, tzinfo=UTC)},
         {"x": datetime(2020, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}),
        ({"x": [1, 2]}, {"x": (1, 2)}),
        ({"x": {1, 2}}, {"x": frozenset({1, 2})}),
        ({"x": None}, {"x": "n"}),
        ({"x": "a,b"}, {"x": ["a", "b"]}),
        ({"x": ""}, {}),
    ],
)
def test_different_calls_never_share_a_key(left: dict[str, Any], right: dict[str, Any]) -> None:
    for sensitive in (True, False):
        assert _key(STUDENTS, sensitive, K.LIST, **left) != _key(STUDENTS, sensitive, K.LIST, **right)


def test_function_partition_entity_and_shape_are_in_the_key() -> None:
    sid = uuid.uuid4()
    base = _key(STUDENTS, True, K.by_id(sid), sid)
    assert base != _key(STUDENTS, True, K.by_id(sid), sid, fn="m.other")
    assert base != _key(STUDENTS, True, K.by_id(sid), sid, part="*")
    assert base != _key(HEALTH_RECORDS, True, K.by_id(sid), sid)
    assert base != _key(STUDENTS, True, K.LIST, sid)
    assert base != _key(STUDENTS, True, K.summary(sid, "visits"), sid)
    assert _key(STUDENTS, True, K.by_id(sid), sid) == base  # deterministic


def test_readable_shapes_for_reference_data_with_full_hash() -> None:
    sid = uuid.uuid4()
    by_id = _key(SCHOOLS, False, K.by_id(sid), sid)
    assert by_id.startswith(f"white-cross:school:{sid}:")
    assert HEX64.match(by_id.rsplit(":", 1)[1])
    listing = _key(SCHOOLS, False, K.LIST, where={"name": "x"})
    assert re.match(r"^white-cross:school:list:[0-9a-f]{64}$", listing)
    summary = _key(SCHOOLS, False, K.summary(sid, "enrollment"), sid)
    assert re.match(rf"^white-cross:school:{sid}:summary:enrollment:[0-9a-f]{{64}}$", summary)
    assert re.match(r"^white-cross:search:[0-9a-f]{64}$", _key(SCHOOLS, False, K.SEARCH, "abc"))
    # the digest is the plain SHA-256 of the canonical call, never truncated
    text = K.call_text("m.find", K.fingerprint(SCHOOLS), "", (sid,), {})
    assert by_id.endswith(hashlib.sha256(text).hexdigest())


def test_phi_keys_hold_no_identifier_and_are_keyed() -> None:
    sid = uuid.uuid4()
    secret_a, secret_b = b"a" * 32, b"b" * 32
    text = K.call_text("m.find", K.fingerprint(STUDENTS), "", (sid,), {"where": {"last_name": "Smith"}})
    ka = keys(secret=secret_a).key(STUDENTS, True, K.by_id(sid), text)
    kb = keys(secret=secret_b).key(STUDENTS, True, K.by_id(sid), text)
    assert re.match(r"^white-cross:student:id:[0-9a-f]{64}$", ka)
    assert str(sid) not in ka and sid.hex not in ka and "Smith" not in ka
    assert ka != kb  # keyed: nobody without CACHE_KEY can confirm a guess by hashing it
    assert ka == keys(secret=secret_a).key(STUDENTS, True, K.by_id(sid), text)  # stable across processes
    assert hashlib.sha256(text).hexdigest() not in ka
    summary = keys().key(STUDENTS, True, K.summary(sid, "visits"), text)
    assert re.match(r"^white-cross:student:summary:visits:[0-9a-f]{64}$", summary)


def test_prepared_hmac_is_rfc2104() -> None:
    for key in (b"k" * 16, b"k" * 64, b"k" * 100):
        mac = K.Hmac256(key)
        for msg in (b"", b"abc", b"x" * 1000):
            assert mac.hexdigest(msg) == hmac.new(key, msg, hashlib.sha256).hexdigest()
            assert mac.digest(msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_tags_and_tag_ids() -> None:
    sid = uuid.uuid4()
    assert K.student_tag(sid) == K.student_tag(sid.hex.upper()) == f"student:{sid}"
    assert K.row_tag(STUDENTS, str(sid)) == K.row_tag("Student", sid) == f"row:Student:{sid}"
    assert K.entity_tag(STUDENTS) == "entity:Student"
    kb = keys()
    tid = kb.tag_id(K.student_tag(sid))
    assert HEX64.match(tid) and str(sid) not in tid and tid == kb.tag_id(f"student:{sid}")
    assert kb.tag_id("entity:Student") != kb.tag_id("entity:HealthRecord")


def test_partition_mirrors_row_security_inputs() -> None:
    s1, s2 = uuid.uuid4(), uuid.uuid4()
    one = ExecutionContext(user_id="u1", role=Role.NURSE, school_ids={s1})
    other_user_same_schools = ExecutionContext(user_id="u2", role=Role.VIEWER, school_ids={s1})
    two = ExecutionContext(user_id="u1", role=Role.NURSE, school_ids={s1, s2})
    assert K.partition_of(one) == K.partition_of(other_user_same_schools)
    assert K.partition_of(one) != K.partition_of(two)
    assert K.partition_of(ExecutionContext(user_id="u1", role=Role.NURSE)) == ""
    assert K.partition_of(one.break_glass("unconscious student, allergy check")) == "*"
    assert K.needs_partition(STUDENTS) and K.needs_partition(HEALTH_RECORDS)
    assert not K.needs_partition(SCHOOLS)


def test_bad_arguments() -> None:
    with pytest.raises(K.UncacheableArgument):
        K.canonical(object())
    with pytest.raises(ValueError, match="key id"):
        keys().key(SCHOOLS, False, K.by_id("1' OR '1'='1"), b"call")
    with pytest.raises(ValueError, match="key id"):
        K.row_tag(STUDENTS, "1' OR '1'='1")
    with pytest.raises(ValueError, match="summary kind"):
        K.summary(uuid.uuid4(), "Bad Kind")


# --- property: canonical text is injective over typed values --------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
    st.text(max_size=8), st.binary(max_size=4), st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.dates(), st.datetimes(timezones=st.sampled_from([None, UTC, ZoneInfo("Europe/Paris"),
                                                        timezone(timedelta(hours=-5))])),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    ),
    max_leaves=8,
)


def _same(a: Any, b: Any) -> bool:
    """Equal values of identical types all the way down (floats compared bit for bit)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a.hex() == b.hex()
    if isinstance(a, datetime):
        return a == b and a.isoformat() == b.isoformat() and getattr(a.tzinfo, "key", None) == \
            getattr(b.tzinfo, "key", None)
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, frozenset):
        return {K.canonical(x) for x in a} == {K.canonical(y) for y in b}
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(_values, _values)
def test_canonical_text_is_injective(a: Any, b: Any) -> None:
    if K.canonical(a) == K.canonical(b):
        assert _same(a, b)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_canonical_text_keeps_mapping_order_and_ignores_set_order(a: Any) -> None:
    def rebuilt(v: Any, flip: bool) -> Any:
        if isinstance(v, dict):
            keys = list(reversed(list(v))) if flip else list(v)
            return {k: rebuilt(v[k], flip) for k in keys}
        if isinstance(v, set | frozenset):
            return type(v)(reversed(list(v)))
        if isinstance(v, list):
            return [rebuilt(x, flip) for x in v]
        if isinstance(v, tuple):
            return tuple(rebuilt(x, flip) for x in v)
        return v

    def orders(v: Any) -> Any:
        if isinstance(v, dict):
            return [(repr(k), orders(x)) for k, x in v.items()]
        if isinstance(v, list | tuple):
            return [orders(x) for x in v]
        return None

    assert K.canonical(rebuilt(a, False)) == K.canonical(a)
    flipped = rebuilt(a, True)
    assert (K.canonical(flipped) == K.canonical(a)) is (orders(flipped) == orders(a))


def _sample(conn: Any, ctx: Any, x: str) -> Any:
    return ("a", 1.5, None) if x in frozenset({"x", "y", "z", "w"}) else (lambda: x)


def test_function_identity_is_stable_across_processes() -> None:
    """Redis keys are shared by processes: the identity must not depend on hash seeds or addresses."""
    code = ("from tests.unit.test_cache_keys import _sample; "
            "from wxdata.cache.identity import function_identity; "
            "print(function_identity(_sample, 'name'))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=root, env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip()
        for seed in (1, 2, 3)
    }
    assert outs == {function_identity(_sample, "name")}


def test_different_functions_under_one_name_never_share_keys() -> None:
    def factory(school: uuid.UUID) -> Any:
        def read(conn: Any, ctx: Any, page: int) -> Any:
            return (school, page)

        return read

    a, b = uuid.uuid4(), uuid.uuid4()
    assert function_identity(factory(a), "read") != function_identity(factory(b), "read")
    assert function_identity(factory(a), "read") == function_identity(factory(a), "read")

    def other(conn: Any, ctx: Any, page: int) -> Any:
        return (page, page)

    assert function_identity(other, "read") != function_identity(factory(a), "read")


def test_bound_methods_of_different_entities_differ() -> None:
    from wxdata.domains import health_records, students

    assert function_identity(students.find_by_id, "find") != function_identity(
        health_records.find_by_id, "find")


_ITEMS = st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=4), min_size=2,
                         max_size=6)


@given(_ITEMS, st.randoms(use_true_random=False))
def test_dicts_are_keyed_in_insertion_order(items: dict[str, Any], rnd: Any) -> None:
    """Equal dicts in another order are other calls (a sort spec); in the same order, one."""
    order = list(items)
    rnd.shuffle(order)
    other = {k: items[k] for k in order}
    assert other == items
    assert (K.canonical(other) == K.canonical(items)) is (order == list(items))
    assert K.canonical(dict(items)) == K.canonical(items)
    nested = K.canonical({"sort": other}) == K.canonical({"sort": items})
    assert nested is (order == list(items))


@given(st.sets(st.integers(), min_size=2, max_size=8))
def test_sets_are_keyed_whatever_their_iteration_order(values: set[int]) -> None:
    backwards = set(reversed(list(values)))
    assert K.canonical(backwards) == K.canonical(values)
    assert K.canonical(frozenset(backwards)) == K.canonical(frozenset(values))


@given(st.permutations(["a", "b", "c"]))
def test_the_memoised_signature_agrees_with_the_key_for_keyword_order(order: list[str]) -> None:
    """A ``**kwargs`` function sees its keywords in call order: the memo's signature keeps it, as
    the canonical text of the bound ``kwargs`` dict does."""
    first = {k: 1 for k in ["a", "b", "c"]}
    called = {k: 1 for k in order}
    same_sig = K.fast_signature((), first) == K.fast_signature((), called)
    same_text = K.canonical(first) == K.canonical(called)
    assert same_sig is same_text is (order == ["a", "b", "c"])
