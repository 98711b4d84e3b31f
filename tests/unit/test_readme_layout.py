"""The README's layout section names every public module and package of ``wxdata`` and every
top-level folder it lists exists: the map matches the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layout() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block is not None, "the layout section has no text block"
    return block.group(1)


def _named(layout: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][\w.]*/?", layout))


def test_every_public_module_and_package_is_on_the_map() -> None:
    names = _named(_layout())
    package = ROOT / "wxdata"
    public = {p.name for p in package.iterdir()
              if not p.name.startswith(("_", ".")) and p.name != "sql"
              and (p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__"))}
    missing = {n for n in public if (n + "/" if (package / n).is_dir() else n) not in names}
    assert not missing, f"README layout does not name: {sorted(missing)}"


def test_every_folder_on_the_map_exists() -> None:
    layout = _layout()
    for line in layout.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        first = line.split()[0]
        if not first.endswith("/"):
            continue
        path = (ROOT / "wxdata" / first) if indent else (ROOT / first)
        assert path.is_dir(), f"the layout names {first}, which does not exist"
