"""Which way is cheaper for a call whose cache hit owes a disclosure record: the hit or the call.

A hit that owes a record (:meth:`~wxdata.cache.core.Plan.hit_record`) writes it in a statement of
its own, a durable round trip to PostgreSQL like the read it replaces, whose record rides in the
read's own statement. From a backend outside the process (Redis, tiered) whether the hit is then
the cheaper way depends on what the function costs: a page with its total costs many times its
record, and a hit saves it; a lookup by key costs about its record, and a hit from Redis adds a
round trip to it. wxdata cannot know this of a function of one's own, so it measures:
:class:`Costs` keeps a moving average of what each way has cost, per cached function and backend,
and a call takes the way measured cheaper. Now and then a call takes the other way, so a change in
either cost is seen: as often as keeps what that costs within :data:`EXPLORE_BUDGET` of the chosen
way (the dearer the other way, the rarer), but at least once in :data:`EXPLORE_MAX` calls and at
most once in :data:`EXPLORE`. A hit from process memory is not weighed: it adds no round trip to
the record the call owes as well.

Taking the call instead of the hit is exactly a miss that stores nothing: the function runs (and
records its own reads, as on every miss); no value is served that the cache would not have served,
and every disclosure is recorded either way. A hit that owes no record (auditing off, a non-PHI
entity, an ``audited`` decorator owning the call) is never weighed: it is always served; so is
every hit with ``CACHE_WEIGH_RECORDED_HITS=false`` (where sparing the database the read matters
more than the caller's wait).

Pure: the shells (:mod:`wxdata.cache.decorator`, :mod:`wxdata.cache.aio`) time each way with a
monotonic clock and report the seconds; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import math

#: Samples of each way before the cheaper one is chosen (until then a call looks the cache up).
WARM = 8
#: The way not chosen is taken at most once in ``EXPLORE`` calls ...
EXPLORE = 32
#: ... and at least once in ``EXPLORE_MAX``, so both costs stay current.
EXPLORE_MAX = 1024
#: What keeping the other way measured may add to the chosen way's average cost, as a fraction of
#: it: a call taking the other way pays the difference, so it is taken once in
#: ``difference / (EXPLORE_BUDGET * chosen)`` calls (within the two bounds above).
EXPLORE_BUDGET = 0.02
#: The weight of a new sample in a way's moving average.
WEIGHT = 0.125


class Costs:
    """The measured cost of a hit (lookup and record) and of the call, for one function on one
    backend; :meth:`look_up` says which way the next call takes.

    Shared by the threads (or tasks) calling the function: a lost update under a race only
    changes an average by one sample, or when the other way is next taken by a call, never what a
    call may return.
    """

    __slots__ = ("call", "calls", "hit", "hits", "since", "turn")

    def __init__(self) -> None:
        self.hit = 0.0  # moving average of a hit's seconds
        self.call = 0.0  # moving average of the call's seconds
        self.hits = 0
        self.calls = 0
        self.turn = 0
        self.since = 0  # calls that took the chosen way since the other way was last taken

    def look_up(self) -> bool:
        """True: look the cache up (a hit is served); False: run the function, storing nothing.

        Until :data:`WARM` hits are measured, every call looks up; then, until as many calls are
        (each miss is one), every other call runs the function (it costs what the uncached read
        costs). Then a call takes the way whose average is lower (the hit when they are equal),
        but the other way once :func:`explore_interval` calls have taken this one.
        """
        self.turn += 1
        if self.hits < WARM:
            return True
        if self.calls < WARM:
            return self.turn % 2 == 1
        hit, call = self.hit, self.call
        cheaper_is_hit = hit <= call
        chosen, other = (hit, call) if cheaper_is_hit else (call, hit)
        self.since += 1
        if self.since < explore_interval(chosen, other):
            return cheaper_is_hit
        self.since = 0
        return not cheaper_is_hit

    def saw_hit(self, seconds: float) -> None:
        """A hit took ``seconds``: its lookup and its record."""
        self.hit = _averaged(self.hit, self.hits, seconds)
        self.hits += 1

    def saw_call(self, seconds: float) -> None:
        """The function took ``seconds`` (a miss's call, without storing its value, or a call
        taken instead of the hit)."""
        self.call = _averaged(self.call, self.calls, seconds)
        self.calls += 1


def _averaged(average: float, samples: int, seconds: float) -> float:
    """The moving average after one more sample: the plain mean until it holds 1 / WEIGHT
    samples (so the first ones are not weighed against a zero), then exponentially weighted."""
    seconds = max(0.0, seconds)
    if samples == 0:
        return seconds
    weight = max(WEIGHT, 1.0 / (samples + 1))
    return average + weight * (seconds - average)


def explore_interval(chosen: float, other: float) -> int:
    """Every how many calls the way not chosen (measured ``other`` seconds) is taken instead of the
    chosen one (``chosen``): so that the difference it pays, spread over the interval, stays
    within :data:`EXPLORE_BUDGET` of ``chosen``; at least :data:`EXPLORE`, at most
    :data:`EXPLORE_MAX`."""
    budget = EXPLORE_BUDGET * chosen
    if budget <= 0.0:
        return EXPLORE_MAX
    wanted = (other - chosen) / budget
    if wanted >= EXPLORE_MAX:
        return EXPLORE_MAX
    return max(EXPLORE, math.ceil(wanted))
