"""Long statements with their placeholders numbered once, not parsed again on every execution.

psycopg finds a statement's ``%(name)s`` placeholders with a regular expression and caches what it
found per statement text, but only for statements of at most 4,096 bytes binding at most 50
parameters: a longer statement is parsed again on every execution, at a cost that grows with its
length. wxdata's audited statements carry their record, so an update of more than a few columns
is past that bound: each updated column adds its before, after and change expressions to the
record.

:func:`numbered` turns such a statement into the form psycopg's raw cursor sends as it is
(PostgreSQL's own ``$1``, ``$2`` placeholders, one per distinct name in order of first appearance,
the values as a list in that order), once per statement text; the drivers send it that way. What
the server receives is what psycopg would have sent: the same text with the same numbering, the
same values, each adapted the same way (psycopg's automatic format).

The drivers ask only for statements past the length bound: none of wxdata's own statements binds
more than 50 parameters while under it (its widest, an audited update of every column of its
widest entity, binds 45; a unit test checks them all), and a shorter statement that did would
still go to psycopg, correct, only parsed per call.

Only statements psycopg would parse on every execution are numbered, and only when every ``%`` in
them begins a ``%(name)s`` placeholder (wxdata's compiled statements are written so) and no
placeholder is followed by a digit (its number would run into it): a statement with any other use
of ``%`` (``%s``, ``%b``, ``%%``...), not ASCII, or not given its parameters as a ``dict`` holding
every name, is left to psycopg as it is.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import attrs

#: psycopg parses the placeholders of a statement longer than this (bytes) on every execution.
PARSED_EACH_TIME_BYTES = 4096
#: ... or of one binding more parameters than this.
PARSED_EACH_TIME_PARAMS = 50

_NAMED = re.compile(r"%\(([^)]+)\)s")
_BEFORE_DIGIT = re.compile(r"%\([^)]+\)s[0-9]")


@attrs.frozen(slots=True)
class Numbered:
    """A statement with ``$n`` placeholders: ``names[n - 1]`` is the parameter ``$n`` binds."""

    query: bytes
    names: tuple[str, ...]


def numbered(sql: object, params: object) -> tuple[bytes, list[Any]] | None:
    """``sql`` with numbered placeholders and ``params``' values in their order, when psycopg
    would parse ``sql`` on every execution and it can be numbered (module docstring); else None.
    """
    if type(sql) is not str or type(params) is not dict:
        return None
    if len(sql) <= PARSED_EACH_TIME_BYTES and len(params) <= PARSED_EACH_TIME_PARAMS:
        return None
    form = numbering(sql)
    if form is None:
        return None
    try:
        return form.query, [params[name] for name in form.names]
    except KeyError:  # a name not given: psycopg says which
        return None


@functools.lru_cache(maxsize=1024)
def numbering(sql: str) -> Numbered | None:
    """``sql`` with each ``%(name)s`` replaced by ``$n`` (one number per distinct name, in order
    of first appearance), or None when ``sql`` holds another use of ``%``, a placeholder followed
    by a digit, or is not ASCII."""
    if not sql.isascii():
        return None
    found = _NAMED.findall(sql)
    if sql.count("%") != len(found):  # a % that does not begin a %(name)s placeholder
        return None
    if _BEFORE_DIGIT.search(sql):  # "$1" then "0" would read as "$10"
        return None
    numbers: dict[str, int] = {}
    for name in found:
        numbers.setdefault(name, len(numbers) + 1)
    query = _NAMED.sub(lambda m: f"${numbers[m.group(1)]}", sql)
    return Numbered(query.encode("ascii"), tuple(numbers))


__all__ = ["PARSED_EACH_TIME_BYTES", "PARSED_EACH_TIME_PARAMS", "Numbered", "numbered", "numbering"]
