"""MkDocs hook: publish the charts the benchmark suite wrote to ``benchmarks/results/``.

The PNGs are produced by ``benchmarks/report.py`` (``render_chart`` / ``render_scaling``) when
``python -m benchmarks`` runs; the site serves them as ``img/benchmarks/<name>.png`` straight from
that folder, so the docs never hold a second copy that could drift from the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def on_files(files: Files, config: Any) -> Files:
    """Add every chart of ``benchmarks/results/`` to the site."""
    for png in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"img/benchmarks/{png.name}", abs_src_path=str(png)))
    return files
