"""`wxdata demo` runs in CI: every step must hold against the configured server."""

from __future__ import annotations

import json

import pytest

from wxdata.cli import main
from wxdata.demo import STEPS, run


def test_demo_every_step_holds(server_url) -> None:
    lines: list[str] = []
    assert run(server_url, out=lines.append) == 0
    text = "\n".join(lines)
    assert f"{len(STEPS)}/{len(STEPS)} steps held" in text
    assert "FAILED" not in text
    assert "Imani" in text  # the demo shows its synthetic patient; no real data exists here


def test_demo_json_reports_each_step(server_url, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--database-url", server_url, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["held"] == body["total"] == len(STEPS)
    assert [s["step"] for s in body["steps"]] == list(range(1, len(STEPS) + 1))
    assert all(s["held"] for s in body["steps"])


def test_cache_step_fails_when_caching_is_off() -> None:
    from wxdata.cache import using_cache
    from wxdata.demo import Demo, StepFailed, step_cache_stats

    with using_cache(None):
        lines: list[str] = []
        demo = Demo(conn=None, owner=None, url="", out=lines.append)  # type: ignore[arg-type]
        with pytest.raises(StepFailed, match="caching is enabled"):
            step_cache_stats(demo)
        assert lines == []  # nothing shown for a step that did not hold
