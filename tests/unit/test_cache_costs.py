"""Which way a call whose cache hit owes a record takes: properties of :class:`Costs` over any
sequence of measured costs (no server: the shells report the seconds, this is the choice)."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from wxdata.cache.costs import (
    EXPLORE,
    EXPLORE_BUDGET,
    EXPLORE_MAX,
    WARM,
    Costs,
    _averaged,
    explore_interval,
)

_SECONDS = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
_COST = st.floats(min_value=1e-6, max_value=1.0, allow_nan=False)


def _drive(costs: Costs, hit: float, call: float, turns: int, jitter: float,
           seed: int) -> list[bool]:
    """``turns`` calls: each takes the way ``costs`` chooses and reports what that way cost (its
    cost, scattered by up to ``jitter`` of it); the ways taken (True: the cache was looked up)."""
    rng = random.Random(seed)
    ways: list[bool] = []
    for _ in range(turns):
        look = costs.look_up()
        ways.append(look)
        spent = (hit if look else call) * (1 + rng.uniform(-jitter, jitter))
        (costs.saw_hit if look else costs.saw_call)(spent)
    return ways


@given(samples=st.lists(_SECONDS, max_size=WARM - 1))
def test_every_call_looks_up_until_the_hit_is_measured(samples: list[float]) -> None:
    costs = Costs()
    for seconds in samples:
        costs.saw_call(seconds * 1000)  # however cheap the call was measured
        assert costs.look_up()
        costs.saw_hit(seconds)
    assert costs.look_up()


def _explorations(ways: list[bool], cheaper_is_hit: bool) -> list[int]:
    """The positions of the calls that took the way not chosen."""
    return [n for n, way in enumerate(ways) if way != cheaper_is_hit]


@given(chosen=_COST, dearer_by=st.floats(min_value=0.0, max_value=1e4))
def test_exploring_costs_at_most_its_budget_and_no_less_often_than_it_allows(
        chosen: float, dearer_by: float) -> None:
    """The interval spreads what a call taking the dearer way pays (the difference) so that it
    adds at most EXPLORE_BUDGET to the chosen way's cost, and is the shortest that does, within
    [EXPLORE, EXPLORE_MAX]."""
    other = chosen * (1.0 + dearer_by)
    interval = explore_interval(chosen, other)
    assert EXPLORE <= interval <= EXPLORE_MAX
    budget = EXPLORE_BUDGET * chosen
    if interval < EXPLORE_MAX:
        assert (other - chosen) / interval <= budget * (1 + 1e-9)
    if interval > EXPLORE:
        assert (other - chosen) / (interval - 1) > budget * (1 - 1e-9)
    assert explore_interval(chosen, other * 2) >= interval  # a dearer way: never more often


def test_an_unmeasurable_chosen_way_explores_as_rarely_as_allowed() -> None:
    assert explore_interval(0.0, 1.0) == EXPLORE_MAX
    assert explore_interval(1.0, 1.0) == EXPLORE  # two ways alike: both kept current


@given(hit=_COST, call=_COST, seed=st.integers(min_value=0, max_value=2**32))
def test_the_cheaper_way_is_taken_and_the_other_once_an_interval(hit: float, call: float,
                                                               seed: int) -> None:
    """Exact costs: after the warm-up every call takes the cheaper way (the hit when equal), but
    one call each explore_interval calls, which keeps the dearer way measured."""
    costs = Costs()
    _drive(costs, hit, call, 4 * WARM, 0.0, seed)
    assert costs.hits >= WARM and costs.calls >= WARM
    after = _drive(costs, hit, call, 3 * EXPLORE_MAX, 0.0, seed + 1)
    cheaper_is_hit = hit <= call
    interval = explore_interval(*((hit, call) if cheaper_is_hit else (call, hit)))
    taken = _explorations(after, cheaper_is_hit)
    assert len(taken) >= 2
    assert all(b - a == interval for a, b in itertools.pairwise(taken))
    assert taken[0] < interval


@given(hit=_COST, call=_COST, jitter=st.floats(min_value=0.0, max_value=0.3),
       seed=st.integers(min_value=0, max_value=2**32))
def test_under_scatter_the_cheaper_way_is_taken_but_rarely_the_other(
        hit: float, call: float, jitter: float, seed: int) -> None:
    """When one way costs clearly less (by more than the scatter of both), every call after the
    warm-up takes it, but now and then the other: never twice within EXPLORE calls, never more
    than EXPLORE_MAX calls apart."""
    if max(hit, call) < 2.0 * min(hit, call):  # the scatter could reorder the averages
        hit, call = (hit, hit * 2.0) if hit < call else (call * 2.0, call)
    costs = Costs()
    warm = _drive(costs, hit, call, 4 * WARM, jitter, seed)
    assert warm[:WARM] == [True] * WARM  # the hit is measured first
    after = _drive(costs, hit, call, 3 * EXPLORE_MAX, jitter, seed + 1)
    taken = _explorations(after, hit < call)
    gaps = [b - a for a, b in zip([-1, *taken], [*taken, len(after)], strict=False)]
    assert len(taken) >= 2
    assert all(EXPLORE <= gap <= EXPLORE_MAX for gap in gaps[1:-1])
    assert gaps[0] <= EXPLORE_MAX and gaps[-1] <= EXPLORE_MAX


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32),
       ratio=st.floats(min_value=2.0, max_value=10.0))
def test_a_change_of_cost_is_followed(seed: int, ratio: float) -> None:
    """The function gets dearer than the hit (its data grew, the database is busy): the hit is
    taken from the next calls on; when the function is cheap again, the call is taken again
    within twenty explorations (its average moves an eighth of the way at each)."""
    hit = 1e-3 * ratio
    costs = Costs()
    _drive(costs, hit, 1e-3, 4 * EXPLORE_MAX, 0.1, seed)
    window = _drive(costs, hit, 1e-3, 4 * EXPLORE, 0.1, seed + 1)
    assert sum(window) <= 4  # the call, but the rare look-up
    _drive(costs, hit, hit * ratio, 2 * EXPLORE, 0.1, seed + 2)  # the call is measured each time
    window = _drive(costs, hit, hit * ratio, 4 * EXPLORE, 0.1, seed + 3)
    assert len(window) - sum(window) <= 4  # the hit, but the rare call
    rng, explored = random.Random(seed + 4), 0
    for _ in range(20 * EXPLORE_MAX):
        if costs.call < costs.hit:
            break
        look = costs.look_up()
        explored += not look
        spent = (hit if look else 1e-3) * (1 + rng.uniform(-0.1, 0.1))
        (costs.saw_hit if look else costs.saw_call)(spent)
    assert costs.call < costs.hit and explored <= 20
    # at the crossing the two averages are within the samples' scatter of each other, so the
    # choice may go either way for a few calls (at no cost: both ways cost the same then) while
    # the call's average comes down to what the call now costs
    _drive(costs, hit, 1e-3, 2 * EXPLORE, 0.1, seed + 5)
    window = _drive(costs, hit, 1e-3, 4 * EXPLORE, 0.1, seed + 6)
    assert sum(window) <= 4


@given(samples=st.lists(_SECONDS, min_size=1, max_size=200))
def test_the_average_stays_within_what_was_measured(samples: list[float]) -> None:
    average = 0.0
    for n, seconds in enumerate(samples):
        average = _averaged(average, n, seconds)
        assert min(samples[:n + 1]) - 1e-9 <= average <= max(samples[:n + 1]) + 1e-9
    if len(samples) <= 8:  # the plain mean while it holds fewer than 1 / WEIGHT samples
        assert abs(average - sum(samples) / len(samples)) <= 1e-9 * max(1.0, max(samples))
