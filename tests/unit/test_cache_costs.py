"""Which way a call whose cache hit owes a record takes: properties of :class:`Costs` over any
sequence of measured costs (no server: the shells report the seconds, this is the choice)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from wxdata.cache.costs import EXPLORE, WARM, Costs, _averaged

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


@given(hit=_COST, call=_COST, jitter=st.floats(min_value=0.0, max_value=0.3),
       seed=st.integers(min_value=0, max_value=2**32))
def test_the_cheaper_way_is_taken_but_one_call_in_explore(hit: float, call: float, jitter: float,
                                                         seed: int) -> None:
    """When one way costs clearly less (by more than the scatter of both), every call after the
    warm-up takes it, but one in EXPLORE, which keeps the dearer way measured."""
    if max(hit, call) < 2.0 * min(hit, call):  # the scatter could reorder the averages
        hit, call = (hit, hit * 2.0) if hit < call else (call * 2.0, call)
    costs = Costs()
    warm = _drive(costs, hit, call, 4 * WARM, jitter, seed)
    assert costs.hits >= WARM and costs.calls >= WARM
    assert warm[:WARM] == [True] * WARM  # the hit is measured first
    after = _drive(costs, hit, call, 10 * EXPLORE, jitter, seed + 1)
    cheaper_is_hit = hit < call
    others = [way for way in after if way != cheaper_is_hit]
    assert len(others) == 10  # exactly the explorations
    for start in range(0, len(after), EXPLORE):  # and each window of EXPLORE calls has one
        assert sum(way != cheaper_is_hit for way in after[start:start + EXPLORE]) == 1


@given(seed=st.integers(min_value=0, max_value=2**32),
       ratio=st.floats(min_value=2.0, max_value=10.0))
def test_a_change_of_cost_is_followed(seed: int, ratio: float) -> None:
    """The function gets dearer than the hit (its data grew, the database is busy): the hit is
    taken again within a few explorations, and the call again when it is cheap again."""
    hit = 1e-3 * ratio
    costs = Costs()
    _drive(costs, hit, 1e-3, 20 * EXPLORE, 0.1, seed)
    assert sum(_drive(costs, hit, 1e-3, 4 * EXPLORE, 0.1, seed + 1)) == 4  # the call, but 4
    _drive(costs, hit, hit * ratio, 40 * EXPLORE, 0.1, seed + 2)
    assert sum(_drive(costs, hit, hit * ratio, 4 * EXPLORE, 0.1, seed + 3)) == 4 * EXPLORE - 4
    _drive(costs, hit, 1e-3, 40 * EXPLORE, 0.1, seed + 4)
    assert sum(_drive(costs, hit, 1e-3, 4 * EXPLORE, 0.1, seed + 5)) == 4


@given(samples=st.lists(_SECONDS, min_size=1, max_size=200))
def test_the_average_stays_within_what_was_measured(samples: list[float]) -> None:
    average = 0.0
    for n, seconds in enumerate(samples):
        average = _averaged(average, n, seconds)
        assert min(samples[:n + 1]) - 1e-9 <= average <= max(samples[:n + 1]) + 1e-9
    if len(samples) <= 8:  # the plain mean while it holds fewer than 1 / WEIGHT samples
        assert abs(average - sum(samples) / len(samples)) <= 1e-9 * max(1.0, max(samples))
