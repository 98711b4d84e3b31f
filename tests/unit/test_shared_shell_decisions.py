"""The pure decisions both shells (sync and async) build connections, pools and routers with.

No server: :func:`wxdata.db.connection_options` and :func:`wxdata.db.pool_options` decide the
arguments of every connection and pool; :class:`wxdata.replicas.servers.Routing` keeps the
checkout accounting of both routers. Checked by properties over their inputs.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from wxdata.config import load_settings
from wxdata.db import _UNSET, connection_options, pool_options
from wxdata.errors import Unavailable
from wxdata.pool_metrics import LaneHealth
from wxdata.replicas.config import RouterConfig
from wxdata.replicas.servers import Routing, retire, servers
from wxdata.tx.decorators import UNRECORDED

URL = "postgresql://app@db.example:5432/wx"
_THRESHOLDS = st.sampled_from([_UNSET, None]) | st.integers(min_value=0, max_value=100)


@given(pooled=st.booleans(), threshold=_THRESHOLDS)
def test_connections_are_autocommit_and_never_named_behind_a_pooler(
    pooled: bool, threshold: int | None
) -> None:
    config = load_settings({"DATABASE_URL": URL,
                            "DB_POOLER": "transaction" if pooled else "none"})
    if pooled and threshold is not _UNSET and threshold is not None:
        with pytest.raises(ValueError, match="prepare_threshold"):
            connection_options(config, threshold)
        return
    options = connection_options(config, threshold)
    assert options["autocommit"] is True
    if pooled:
        assert options["prepare_threshold"] is None
    elif threshold is _UNSET:
        assert "prepare_threshold" not in options
    else:
        assert options["prepare_threshold"] == threshold


@given(pooled=st.booleans(), min_size=st.none() | st.integers(0, 50),
       max_size=st.none() | st.integers(1, 50), name=st.text(min_size=1, max_size=20))
def test_pool_options_take_the_arguments_else_the_settings(
    pooled: bool, min_size: int | None, max_size: int | None, name: str
) -> None:
    config = load_settings({"DATABASE_URL": URL, "DB_POOL_MIN": "3", "DB_POOL_MAX": "7",
                            "DB_POOLER": "transaction" if pooled else "none"})
    options = pool_options(None, config, min_size, max_size, name)
    assert options["min_size"] == (3 if min_size is None else min_size)
    assert options["max_size"] == (7 if max_size is None else max_size)
    assert options["name"] == name and "db.example" in options["conninfo"]
    assert options["kwargs"]["autocommit"] is True
    assert ("prepare_threshold" in options["kwargs"]) == pooled


@given(st.lists(st.tuples(st.floats(0, 10), st.booleans()), max_size=30))
def test_checkout_accounting_balances(checkouts: list[tuple[float, bool]]) -> None:
    primary, replicas = servers(URL, [URL])
    server = replicas[0]
    for _ in checkouts:
        Routing.taken(server)
    assert server.in_flight == len(checkouts)
    for seconds, broken in checkouts:
        Routing.given_back(server, seconds, broken)
    assert server.in_flight == 0
    assert server.counters["usage_us"] == sum(int(s * 1_000_000) for s, _ in checkouts)
    assert server.counters["errors"] == sum(broken for _, broken in checkouts)
    assert primary.counters["errors"] == 0


@given(st.lists(st.booleans(), max_size=20))
def test_skips_are_counted_by_kind_and_a_timeout_asks_for_a_check(timeouts: list[bool]) -> None:
    _, (server,) = servers(URL, [URL])
    server.next_check = 99.0
    for timed_out in timeouts:
        Routing.skipped(server, timed_out=timed_out)
    assert server.counters["skip_timeout"] == sum(timeouts)
    assert server.counters["skip_unreachable"] == len(timeouts) - sum(timeouts)
    assert server.next_check == (0.0 if any(timeouts) else 99.0)


def test_unavailable_is_a_failure_counted_on_the_primary_and_retire_detaches() -> None:
    primary, replicas = servers(URL, [URL])
    routing = Routing.of(RouterConfig(), primary, replicas)
    answer = routing.unavailable("primary unreachable or pool exhausted")
    assert isinstance(answer, Failure) and isinstance(answer.failure(), Unavailable)
    assert primary.counters["errors"] == 1
    primary.probe = probe = object()
    assert retire(primary) == (None, probe)
    assert primary.pool is None and primary.probe is None
    assert routing.health(LaneHealth()).servers[0].errors == 1


_OUTCOMES = st.sampled_from(["ok", "unavailable", "unrecorded", "broken"])


@given(st.lists(_OUTCOMES, min_size=1, max_size=4), st.sampled_from([None, "read_your_writes"]))
def test_a_read_is_rerun_only_when_the_replica_failed_and_its_fallback_counts_once(
    outcomes: list[str], reason: str | None
) -> None:
    primary, replicas = servers(URL, [URL] * len(outcomes))
    routing = Routing.of(RouterConfig(), primary, replicas)
    exclude: set[str] = set()
    for server, outcome in zip(replicas, outcomes, strict=True):
        result = {"ok": Success(1), "unavailable": Failure(Unavailable(reason="gone")),
                  "unrecorded": Failure(UNRECORDED), "broken": Success(1)}[outcome]
        retry = routing.settle_read(server, result, outcome == "broken", exclude, reason)
        assert retry == (outcome in ("unavailable", "broken"))
        assert (server.name in exclude) == retry
        assert server.counters["reads"] == (0 if retry else 1)
        if not retry:
            break
    failed = len(exclude)
    assert routing.fallbacks["replica_failed"] == failed
    served_first = failed == 0 and reason is not None
    assert routing.fallbacks.get(reason or "", 0) == (1 if served_first else 0)
    # the primary is the last resort: a read there is never re-run
    assert not routing.settle_read(primary, Failure(Unavailable(reason="x")), True, exclude, None)
