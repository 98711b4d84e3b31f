"""The ``wxdata.testing`` kit's pure parts: the plugin's ``pytest11`` entry point, the frozen
clock, keyed subject tags, and when an audit record matches an expectation. The plugin run as an
application runs it (its own pytest process, a real database) is checked in
``tests/integration/test_testing_plugin.py``."""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wxdata.testing import FrozenClock, subject_tag

ROOT = Path(__file__).resolve().parents[2]


def test_entry_point_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["pytest11"] == {
        "wxdata.testing.plugin": "wxdata.testing.plugin"}


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock()
    start = clock.now()
    assert clock.now() == start
    assert (clock.advance(minutes=5) - start).total_seconds() == 300
    with pytest.raises(ValueError, match="aware"):
        clock.set(start.replace(tzinfo=None))


def test_subject_tags_are_keyed_and_stable() -> None:
    student = uuid.uuid4()
    assert subject_tag(student) == subject_tag(str(student))
    assert subject_tag(student) != subject_tag(uuid.uuid4())
    assert str(student)[:8] not in subject_tag(student)


_ids = st.sets(st.uuids(), max_size=4)


@given(recorded=_ids, asked=_ids, action=st.sampled_from(["READ", "UPDATE"]),
       asked_action=st.sampled_from(["READ", "UPDATE", None]))
def test_a_record_matches_exactly_when_every_given_field_agrees(
    recorded: set[uuid.UUID], asked: set[uuid.UUID], action: str, asked_action: str | None,
) -> None:
    from wxdata.testing import AuditRecord, _mismatches

    record = AuditRecord(seq=1, action=action, entity="Student", entity_id=None,
                         subjects=frozenset(recorded), user_id="u-1", request_id="r-1", success=True)
    expected = {"action": asked_action, "subjects": frozenset(asked)}
    problems = _mismatches(record, expected)
    agrees = (asked_action in (None, action)) and asked <= recorded
    assert (problems == []) == agrees
    assert all(str(s) not in "".join(problems) for s in asked | recorded)  # keyed hashes only
