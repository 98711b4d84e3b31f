"""Every Python example in README.md and docs/**/*.md runs, in order per page, against a real,
freshly migrated database (a clone of the suite's migrated template, reached as this run's
application role). See ``blocks.py`` for the rules and ``run_page.py`` for the prelude.

Pages that declare files (``title="pkg/mod.py"``, ``title="sql/NNNN_x.sql"``) get them written to a
temporary folder: the migrations are applied to the page's database with the project's own, the
Python files are importable by the page's examples, and ruff (the project's configuration) must
pass on them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.docs.blocks import ROOT, Block, blocks, page_id, pages
from wxdata.migrate import migrate, sql_dir

PAGES = {page_id(p): blocks(p) for p in pages()}
WITH_EXAMPLES = sorted(p for p, bs in PAGES.items() if any(b.lang == "python" for b in bs))
WITH_FILES = sorted(p for p, bs in PAGES.items() if any(b.title for b in bs))
#: The chain key of the examples' process (a test value, not a secret).
AUDIT_HMAC_KEY = "ZG9jcyBleGFtcGxlcyBhdWRpdCBjaGFpbiBrZXksIHRlc3Qgb25seQ=="


def _write_files(page: list[Block], into: Path) -> tuple[Path, list[Path]]:
    """Write the page's titled blocks under ``into``; returns the migration folder (the project's
    migrations plus the page's) and the Python files written."""
    migrations = into / "migrations"
    shutil.copytree(sql_dir(), migrations)
    written: list[Path] = []
    for block in page:
        if block.title is None:
            continue
        if block.lang == "sql":
            name = Path(block.title).name
            assert not (migrations / name).exists(), f"{block.label()}: {name} exists already"
            (migrations / name).write_text(block.code, encoding="utf-8")
        elif block.lang == "python":
            target = into / "files" / block.title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
            written.append(target)
    return migrations, written


def test_pages_with_examples_are_found() -> None:
    """The collector sees the pages (an empty collection would make every page test vacuous)."""
    assert "README.md" in WITH_EXAMPLES
    assert len(WITH_EXAMPLES) >= 10


@pytest.mark.parametrize("page", WITH_EXAMPLES)
def test_page_examples_run(
    page: str, fresh_database: Callable[[], str], app_url_for: Callable[[str], str],
    owner_url: str, tmp_path: Path,
) -> None:
    """The page's Python blocks run in order after the prelude, in a process of their own."""
    del owner_url  # requested so that this run's application role exists
    url = fresh_database()
    migrations, _ = _write_files(PAGES[page], tmp_path)
    with psycopg.connect(url, autocommit=True) as owner:
        migrate(owner, migrations)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REDIS_", "CACHE_", "DATABASE_REPLICA"))}
    env.update(
        DATABASE_URL=app_url_for(url), WXDATA_MIGRATION_URL=url, WXDATA_SQL_DIR=str(migrations),
        AUDIT_HMAC_KEY=AUDIT_HMAC_KEY, WXDATA_ENV="test",
        PYTHONPATH=os.pathsep.join([str(tmp_path / "files"), str(ROOT)]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tests.docs.run_page", page], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, f"{page}:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"


@pytest.mark.parametrize("page", WITH_FILES)
def test_page_files_pass_ruff(page: str, tmp_path: Path) -> None:
    """Modules a page tells the reader to write pass the project's ruff configuration."""
    _, written = _write_files(PAGES[page], tmp_path)
    assert written, f"{page} declares no Python file"
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"),
         *map(str, written)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_collector_reads_fences_titles_and_skips(tmp_path: Path) -> None:
    """Runnable, file and skipped blocks are told apart; list-item fences are dedented."""
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nx = 1\n```\n\n1. Step\n\n   ```python\n   y = x + 1\n   ```\n\n"
        '```python title="pkg/mod.py"\nZ = 3\n```\n\n```sql title="sql/0900_t.sql"\nSELECT 1;\n```\n\n'
        "<!-- example: skip needs a phone line -->\n```python\ndial()\n```\n\n"
        "<!-- example: skip -->\n```python\nhang_up()\n```\n\n```sh\nls\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.lang, b.title, b.runnable) for b in found] == [
        ("python", None, True), ("python", None, True), ("python", "pkg/mod.py", False),
        ("sql", "sql/0900_t.sql", False), ("python", None, False), ("python", None, False),
        ("sh", None, False),
    ]
    assert found[1].code == "y = x + 1\n"
    assert [b.skip_reason for b in found[4:6]] == ["needs a phone line", ""]
    page.write_text("```python\nx = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unclosed"):
        blocks(page)


#: Fence languages that are never run; anything else but ``python`` fails the test below, so a
#: Python block cannot escape the run by being fenced ``py``, ``python3`` or ``pycon``.
NOT_RUN = frozenset({"sh", "bash", "sql", "text", "ini", "toml", "yaml", "json", "console"})


def test_every_block_is_python_or_a_language_that_is_never_run() -> None:
    """No Python hides under another fence name."""
    for page in PAGES.values():
        for block in page:
            assert block.lang == "python" or block.lang in NOT_RUN, (
                f"{block.label()}: fence language {block.lang!r}")


def test_skips_name_a_reason() -> None:
    """A skipped block says why, and only Python blocks can be skipped."""
    for page in PAGES.values():
        for block in page:
            if block.skip_reason is not None:
                assert block.skip_reason, f"{block.label()}: skip without a reason"
                assert block.lang == "python", f"{block.label()}: skip marker on a {block.lang} block"


def test_readme_test_command_is_the_one_ci_runs() -> None:
    """The README's test command is what .ci/run runs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/python -m pytest" in readme
    # the command itself, unchanged: at most its output sent to a log and the run put in the
    # background or its status kept (CI runs it against two servers side by side)
    runs = [line for line in ci.splitlines() if re.fullmatch(
        r'( {4}| {8})?\.venv/bin/python -m pytest( > "\$logs/\w+\.log" 2>&1( &| \|\| status=\$\?))?',
        line)]
    assert len(runs) == 2, runs
