"""SQL that writes an audit record in the same statement as the read or write it describes.

Snapshots and diffs are computed by PostgreSQL from the rows the statement actually read or wrote,
by value (``IS DISTINCT FROM`` on the typed columns: dates, numerics, JSON and arrays compare as
values), and each field is rendered through the redaction policy of :mod:`wxdata.audit.redact`:
secrets become a marker, clinical free text a mask, everything else ``to_jsonb``. The text depends
only on the entity spec and the column lists, so it is compiled once per shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from wxdata.audit.record import CONTEXT_COLUMNS, ID_COLUMNS, RECORD_COLUMNS, _p
from wxdata.audit.redact import MASK, SECRET_MARK, column_policy
from wxdata.schema.spec import Entity, Kind

_CHUNK = 40  # jsonb_build_object takes at most 100 arguments


def _literal(text: str) -> str:
    """A jsonb string literal for a constant marker (markers are fixed ASCII, no quotes)."""
    assert text.isascii() and "'" not in text and '"' not in text
    return f"'\"{text}\"'::jsonb"


#: SQL twins of :func:`wxdata.audit.redact.scrub` / ``is_secret_name`` (``sql/0020_audit_redaction.sql``).
SCRUB_FUNCTION = "wxdata_audit_scrub"
SECRET_NAME_FUNCTION = "wxdata_audit_secret_name"  # noqa: S105 - a function name


def scrub_expr(ref: str) -> str:
    """The jsonb ``ref`` with every secret-named key's value replaced by the marker, at any depth."""
    return f"{SCRUB_FUNCTION}({ref})"


def field_expr(entity: Entity[Any], name: str, ref: str) -> str:
    """The redacted jsonb of one field of a row reference (``s."name"``).

    Rendered as :func:`wxdata.audit.redact.redact_value` renders it in Python: secrets as the
    marker, clinical text as the mask, decimals as exact strings, JSON with secret keys scrubbed.
    """
    column = entity.by_name.get(name)
    policy = column_policy(column, name)
    if policy == "secret":
        return _literal(SECRET_MARK)
    if policy == "mask":
        return f"CASE WHEN {ref} IS NULL THEN 'null'::jsonb ELSE {_literal(MASK)} END"
    if column is not None and column.kind is Kind.DECIMAL:
        return f"to_jsonb(({ref})::text)"
    if column is not None and column.kind is Kind.JSON:
        return scrub_expr(f"to_jsonb({ref})")
    return f"to_jsonb({ref})"


def _object(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return "'{}'::jsonb"
    chunks = []
    for i in range(0, len(pairs), _CHUNK):
        part = pairs[i : i + _CHUNK]
        chunks.append("jsonb_build_object(" + ",".join(f"'{k}',{v}" for k, v in part) + ")")
    return "||".join(chunks)


def snapshot_expr(entity: Entity[Any], columns: Iterable[str], alias: str = "s") -> str:
    """A redacted jsonb snapshot of the named columns of row ``alias``."""
    return _object([(c, field_expr(entity, c, f'{alias}."{c}"')) for c in columns])


def diff_expr(entity: Entity[Any], columns: Iterable[str], new: str = "s", old_prefix: str = "_o_") -> str:
    """jsonb ``{field: {before, after}}`` of the columns that changed by value (redacted)."""
    items = []
    for c in columns:
        n, o = f'{new}."{c}"', f'{new}."{old_prefix}{c}"'
        policy = column_policy(entity.by_name.get(c), c)
        if policy == "secret":  # record only that it was set (or changed, when readable)
            marker = _literal(SECRET_MARK)
            body = f"jsonb_build_object('before',{marker},'after',{marker},'changed',true)"
            if c in entity.column_names:  # read back: compare by value like any other column
                body = f"CASE WHEN {n} IS DISTINCT FROM {o} THEN {body} END"
            items.append(f"('{c}',{body})")
            continue
        body = (
            f"jsonb_build_object('before',{field_expr(entity, c, o)},"
            f"'after',{field_expr(entity, c, n)}"
            + (",'changed',true)" if policy != "keep" else ")")
        )
        items.append(f"('{c}',CASE WHEN {n} IS DISTINCT FROM {o} THEN {body} END)")
    if not items:
        return "'{}'::jsonb"
    return (
        "(SELECT COALESCE(jsonb_object_agg(k,v),'{}'::jsonb) FROM (VALUES "
        + ",".join(items)
        + ") d(k,v) WHERE v IS NOT NULL)"
    )


def _ids(pk: str, subject: str | None, alias: str = "s") -> str:
    subject_expr = f'{alias}."{subject}"' if subject else "NULL::uuid"
    return (
        f'CASE WHEN count({alias}."{pk}")=1 THEN (array_agg({alias}."{pk}"))[1] END,'
        f'COALESCE(array_agg({alias}."{pk}") FILTER (WHERE {alias}."{pk}" IS NOT NULL),'
        f"'{{}}'::uuid[]),"
        f"CASE WHEN count(DISTINCT {subject_expr})=1 THEN (array_agg({subject_expr}))[1] END,"
        f"COALESCE(array_agg(DISTINCT {subject_expr}) FILTER (WHERE {subject_expr} IS NOT NULL),"
        f"'{{}}'::uuid[])"
    )


_HEAD = (*CONTEXT_COLUMNS, *RECORD_COLUMNS)
_INSERT_COLS = ",".join((*_HEAD, *ID_COLUMNS))


@lru_cache(maxsize=4096)
def ride_read(entity: Entity[Any], source_sql: str, out_columns: tuple[str, ...],
              hit: str | None = None) -> str:
    """Wrap a SELECT so one READ record (ids and subjects of the rows returned) rides with it."""
    cols = ",".join(f'"{c}"' for c in out_columns)
    where = f' WHERE s."{hit}"' if hit else ""
    return (
        f"WITH s AS ({source_sql}), a AS (INSERT INTO audit_log ({_INSERT_COLS}) "
        f"SELECT {','.join(_p(c) for c in _HEAD)},{_ids(entity.pk, entity.subject)} "
        f'FROM s{where} HAVING count(s."{entity.pk}")>0) SELECT {cols} FROM s'
    )


@lru_cache(maxsize=4096)
def ride_write(
    entity: Entity[Any],
    source_sql: str,
    out_columns: tuple[str, ...],
    new_columns: tuple[str, ...] = (),
    old_columns: tuple[str, ...] = (),
    diff_columns: tuple[str, ...] = (),
) -> str:
    """Wrap an INSERT/UPDATE/DELETE ... RETURNING so its record rides in the same statement.

    ``new_columns`` go to ``new_values`` as a snapshot (create), ``old_columns`` to
    ``previous_values`` (delete), ``diff_columns`` are diffed against ``_o_<name>`` columns of the
    source (update). The record's ``changes``/``previous_values``/``new_values`` parameters are
    replaced by these SQL expressions; the other record fields stay bound.
    """
    cols = ",".join(f'"{c}"' for c in out_columns)
    exprs: dict[str, str] = {}
    derived: list[str] = []  # computed once per row in a CTE, however often the record uses them
    if new_columns:
        derived.append(f"{snapshot_expr(entity, new_columns)} AS _new")
        exprs["new_values"] = exprs["changes"] = "s._new"  # a create's changes are its snapshot
    if old_columns:
        exprs["previous_values"] = snapshot_expr(entity, old_columns)
    source_cte = f"s AS ({source_sql})"
    from_clause = "FROM s"
    if diff_columns:
        derived.append(f"{diff_expr(entity, diff_columns)} AS _diff")
        exprs["changes"] = "s._diff"
        exprs["previous_values"] = (
            "(SELECT COALESCE(jsonb_object_agg(key, value->'before'),'{}'::jsonb) "
            "FROM jsonb_each(s._diff))"
        )
        exprs["new_values"] = (
            "(SELECT COALESCE(jsonb_object_agg(key, value->'after'),'{}'::jsonb) "
            "FROM jsonb_each(s._diff))"
        )
    if derived:
        # MATERIALIZED: an inlined CTE would copy each expression into every place it is used
        # (a diff into changes, previous_values and new_values: three evaluations per row)
        source_cte += f", d AS MATERIALIZED (SELECT s.*, {','.join(derived)} FROM s)"
        from_clause = "FROM d s"
    values = ",".join(exprs.get(c, _p(c)) for c in _HEAD)
    ids = ",".join(
        (
            f's."{entity.pk}"',
            f'ARRAY[s."{entity.pk}"]',
            f's."{entity.subject}"' if entity.subject else "NULL::uuid",
            f'ARRAY[s."{entity.subject}"]' if entity.subject else "'{}'::uuid[]",
        )
    )
    return (
        f"WITH {source_cte}, a AS (INSERT INTO audit_log ({_INSERT_COLS}) "
        f"SELECT {values},{ids} {from_clause}) SELECT {cols} FROM s"
    )


@lru_cache(maxsize=1024)
def ride_bulk(entity: Entity[Any], source_sql: str) -> str:
    """Wrap a multi-row write ... RETURNING id(, subject) so one BULK record lists every id."""
    return (
        f"WITH s AS ({source_sql}), a AS (INSERT INTO audit_log ({_INSERT_COLS}) "
        f"SELECT {','.join(_p(c) for c in _HEAD)},{_ids(entity.pk, entity.subject)} FROM s "
        f'HAVING count(s."{entity.pk}")>0) SELECT count(*) FROM s'
    )
