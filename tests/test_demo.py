"""`wxdata demo` runs in CI: every step must hold against the configured server."""

from __future__ import annotations

from wxdata.demo import STEPS, run


def test_demo_every_step_holds(server_url) -> None:
    lines: list[str] = []
    assert run(server_url, out=lines.append) == 0
    text = "\n".join(lines)
    assert f"{len(STEPS)}/{len(STEPS)} steps held" in text
    assert "FAILED" not in text
    assert "Imani" in text  # the demo shows its synthetic patient; no real data exists here
