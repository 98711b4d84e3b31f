"""The ``wxdata.testing`` pytest plugin, run as an application would run it: a small user test
module in its own pytest process (``pytester``), loading only the plugin, against the real
database server of this run (or the embedded one when none is configured). The kit's pure parts
(entry point, frozen clock, subject tags, record matching) are checked in
``tests/unit/test_testing_tools.py``.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from wxdata import embedded

ROOT = Path(__file__).resolve().parents[2]

USER_TESTS = textwrap.dedent('''
    import uuid

    import pytest

    from wxdata.context import context_age_error
    from wxdata.domains import students
    from wxdata.errors import ContextExpired, NotFound
    from wxdata.testing import subject_tag


    def test_nurse_reads_her_school_only(wx_conn, wx_district, wx_context, wx_audit):
        school_a, school_b = wx_district.school_ids
        nurse = wx_context(role="NURSE", school=school_a)
        mine, other = wx_district.students[school_a][0], wx_district.students[school_b][0]
        assert students.find_by_id(wx_conn, nurse, mine).unwrap().id == mine
        assert isinstance(students.find_by_id(wx_conn, nurse, other).failure(), NotFound)
        records = wx_audit.assert_audited(action="READ", entity="Student", subjects=[mine],
                                          user_id=nurse.user_id)
        assert all(other not in r.subjects for r in records)


    def test_missing_record_fails_with_a_diff(wx_conn, wx_district, wx_context, wx_audit):
        school = wx_district.school_ids[0]
        student = wx_district.students[school][1]
        nurse = wx_context(role="NURSE", school=school)
        students.find_by_id(wx_conn, nurse, student).unwrap()
        with pytest.raises(AssertionError) as failed:
            wx_audit.assert_audited(action="UPDATE", entity="Student", subjects=[student])
        message = str(failed.value)
        assert "action: expected UPDATE, recorded READ" in message
        assert subject_tag(student) in message
        assert str(student) not in message  # student ids only keyed-hashed
        with pytest.raises(AssertionError, match="not named"):
            wx_audit.assert_audited(action="READ", subjects=[uuid.uuid4()])


    def test_roles_and_schools(wx_context, wx_district):
        a, b = wx_district.school_ids
        admin = wx_context(role="DISTRICT_ADMIN", school=[a, b], purpose="OPERATIONS")
        assert admin.role.value == "DISTRICT_ADMIN" and admin.school_ids == {a, b}
        assert wx_context(role="SYSTEM").is_system
        assert wx_context().request_id != wx_context().request_id


    def test_fresh_database_is_empty(wx_fresh_database, wx_district, wx_context):
        import psycopg
        fresh = wx_fresh_database()
        with psycopg.connect(fresh.app_url, autocommit=True) as conn:
            count = students.count(conn, wx_context(role="SYSTEM"), {}).unwrap()
        assert count == 0


    def test_frozen_clock_expires_contexts(wx_clock, wx_context):
        ctx = wx_context(role="NURSE", school=uuid.uuid4())
        assert ctx.timestamp == wx_clock.now()
        assert context_age_error(ctx) is None
        wx_clock.advance(seconds=61)
        assert isinstance(context_age_error(ctx), ContextExpired)


    def test_memory_cache_serves_the_second_read(wx_cache, wx_conn, wx_district, wx_context):
        school = wx_district.school_ids[0]
        nurse = wx_context(role="NURSE", school=school)
        number = students.find_by_id(wx_conn, nurse, wx_district.students[school][2]).unwrap()
        first = students.find_by_student_number(wx_conn, nurse, number.student_number).unwrap()
        second = students.find_by_student_number(wx_conn, nurse, number.student_number).unwrap()
        assert first == second
        assert wx_cache.stats().hits >= 1
''')


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=source)
    env = {"PYTHONPATH": str(ROOT), "WXDATA_CONTEXT_MAX_AGE": "60", "WXDATA_ENV": "test",
           # pytester moves HOME: keep the embedded server (when no DATABASE_URL) the run's own
           "WXDATA_EMBEDDED_DIR": str(embedded.directory())}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return pytester.runpytest_subprocess("-p", "wxdata.testing.plugin", "-p", "no:cacheprovider",
                                             "-rs", *args, timeout=600)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_user_suite_runs_through_the_plugin(pytester: pytest.Pytester) -> None:
    result = _run(pytester, USER_TESTS)
    result.assert_outcomes(passed=6)


def test_caching_is_on_again_after_a_test_with_its_own_cache(pytester: pytest.Pytester) -> None:
    # no process cache is built before wx_cache installs its own: after it, the next use must
    # build one from the settings, not find caching turned off
    source = textwrap.dedent('''
        from wxdata.cache import MemoryCache, default_cache
        from wxdata.cache.invalidation import subscribed

        def test_with_its_own_cache(wx_cache):
            assert default_cache() is wx_cache and wx_cache in subscribed()

        def test_after_it(wx_context):
            built = default_cache()
            assert isinstance(built, MemoryCache) and built in subscribed()
    ''')
    result = _run(pytester, source)
    result.assert_outcomes(passed=2)


def test_a_test_that_misses_its_audit_record_fails(pytester: pytest.Pytester) -> None:
    source = textwrap.dedent('''
        from wxdata.domains import students

        def test_expects_an_export(wx_conn, wx_district, wx_context, wx_audit):
            school = wx_district.school_ids[0]
            nurse = wx_context(role="NURSE", school=school)
            students.find_by_id(wx_conn, nurse, wx_district.students[school][0]).unwrap()
            ids = [str(s) for per_school in wx_district.students.values() for s in per_school]
            with open("student-ids.txt", "w") as out:
                out.write("\\n".join(ids))
            wx_audit.assert_audited(action="EXPORT", entity="Student")
    ''')
    result = _run(pytester, source)
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "expected an audit record(s): action=EXPORT entity=Student" in output
    assert "action: expected EXPORT, recorded READ" in output
    student_ids = (pytester.path / "student-ids.txt").read_text().split("\n")
    assert len(student_ids) == 6
    assert re.search(r"subjects=\[s:[0-9a-f]{10}\]", output)
    assert not [s for s in student_ids if s in output]  # students only by keyed hash


def test_plugin_fixtures_are_all_prefixed(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "def test_nothing():\n    pass\n", "--fixtures")
    names = re.findall(r"^(\w+)(?: \[session scope\])? -- .*wxdata/testing/plugin.py", result.stdout.str(),
                       re.MULTILINE)
    assert {"wx_conn", "wx_context", "wx_district", "wx_cache", "wx_audit", "wx_clock",
            "wx_database", "wx_fresh_database"} <= set(names)
    assert all(n.startswith("wx_") for n in names)
