"""The example FastAPI service's request context (examples/fastapi_service), without a server: it
is built from the request headers as the library's ``ExecutionContext``, and bad headers are
refused without their values. The service against the real database is checked in
``tests/integration/test_example_fastapi.py``."""

from __future__ import annotations

import json
import uuid

from examples.fastapi_service.context import context_from_headers
from wxdata import ExecutionContext


def test_the_context_comes_from_headers_and_bad_headers_are_refused_without_values() -> None:
    school = uuid.uuid4()
    ctx = context_from_headers({"x-user-id": "u-1", "x-role": "NURSE",
                                "x-school-id": f"{school}", "x-request-id": "r-1"}, "10.0.0.1")
    assert ctx.map(lambda c: (c.user_id, c.role.value, c.school_ids, c.ip_address)).unwrap() == (
        "u-1", "NURSE", frozenset({school}), "10.0.0.1")
    for headers in ({"x-user-id": "u-1", "x-role": "NURSE"},  # no school
                    {"x-user-id": "u-1", "x-role": "NURSE", "x-school-id": "not-a-uuid"},
                    {"x-user-id": "u 1;drop", "x-role": "NURSE", "x-school-id": str(school)},
                    {"x-user-id": "u-1", "x-role": "SYSTEM", "x-school-id": str(school)}):
        failed = context_from_headers(headers, None)
        text = json.dumps(failed.failure().to_dict(), default=str)
        assert "drop" not in text and "not-a-uuid" not in text


def test_the_example_context_type_is_the_library_one() -> None:
    ctx = context_from_headers({"x-user-id": "u", "x-role": "ADMIN",
                                "x-school-id": str(uuid.uuid4())}, None).unwrap()
    assert isinstance(ctx, ExecutionContext) and ctx.request_id and ctx.request_id.startswith("req-")
