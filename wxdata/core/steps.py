"""Composition of plans: run a sub-plan that suspends (a unit of work) around another plan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from wxdata.core.effects import Plan, Suspend

T = TypeVar("T")


def enter(sub: Plan[Any]) -> Plan[Any]:
    """Forward ``sub``'s effects until it suspends; return the value it suspended with."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = sub.send(answer) if error is None else sub.throw(error)
        except StopIteration:
            raise RuntimeError("a scope plan ended before its block ran") from None
        if type(effect) is Suspend:
            return effect.value
        error = None
        try:
            answer = yield effect
        except BaseException as exc:  # noqa: BLE001 - forwarded to the sub-plan
            answer, error = None, exc


def leave(sub: Plan[Any], exc: BaseException | None) -> Plan[None]:
    """Resume a suspended ``sub`` (with the block's exception, if any) and forward its effects
    to the end. Returns when ``sub`` ends normally (an exception it swallowed stays swallowed);
    raises what it raises."""
    answer: Any = None
    error: BaseException | None = exc
    while True:
        try:
            effect = sub.send(answer) if error is None else sub.throw(error)
        except StopIteration:
            return
        if type(effect) is Suspend:
            raise RuntimeError("a scope plan suspended twice")
        error = None
        try:
            answer = yield effect
        except BaseException as e:  # noqa: BLE001 - forwarded to the sub-plan
            answer, error = None, e


def within(sub: Plan[Any], inner: Callable[[Any], Plan[T]]) -> Plan[T | None]:
    """``with``-statement semantics for plans: enter ``sub``, run ``inner(value)``, leave ``sub``.

    Answers ``inner``'s value, or None when ``sub`` swallowed the exception ``inner`` raised.
    """
    value = yield from enter(sub)
    try:
        out = yield from inner(value)
    except BaseException as exc:  # noqa: BLE001 - handed to the sub-plan, which re-raises or not
        yield from leave(sub, exc)
        return None
    yield from leave(sub, None)
    return out
