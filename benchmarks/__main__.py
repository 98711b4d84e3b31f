"""``python -m benchmarks``: run the suite (see benchmarks/README.md and ``--help``)."""

from __future__ import annotations

import sys

from benchmarks.common import run_cli

if __name__ == "__main__":
    sys.exit(run_cli())
