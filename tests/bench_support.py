"""What the benchmarks' smoke tests share."""

from __future__ import annotations

import psycopg


def bench_databases(server_url: str) -> set[str]:
    """The databases on the server that the self-contained benchmarks create and must drop
    (``wxdata_bench_scope_*``): compared before and after a run."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        return {r[0] for r in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'wxdata_bench_scope_%'")}
