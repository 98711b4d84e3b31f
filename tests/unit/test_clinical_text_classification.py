"""The set of clinical free-text columns is fixed: the columns classified ``clinical_text=True``
are exactly the pinned list (``tests/clinical_text.py``), and each is PHI, neither filterable nor
sortable. That their text never reaches the audit trail is checked against the server in
``tests/integration/test_clinical_text_masking.py``."""

from __future__ import annotations

import wxdata.domains  # noqa: F401 - registers every entity
from tests.clinical_text import CLINICAL_TEXT
from wxdata.schema.spec import registered


def _declared() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for e in registered():
        names = tuple(c.name for c in e.columns if c.rules.clinical_text)
        if names:
            out[e.table] = names
    return out


def test_the_clinical_text_columns_are_exactly_the_pinned_list() -> None:
    declared = _declared()
    assert sorted(declared) == sorted(CLINICAL_TEXT), "entities with clinical text changed"
    for table, names in CLINICAL_TEXT.items():
        assert sorted(declared[table]) == sorted(names), f"{table}: clinical text columns changed"


def test_every_clinical_text_column_is_phi_free_text() -> None:
    for table, names in CLINICAL_TEXT.items():
        entity = next(e for e in registered() if e.table == table)
        for name in names:
            column = entity.by_name[name]
            assert column.data_class.value == "PHI", f"{table}.{name} is not PHI"
            assert not column.filterable and not column.sortable, f"{table}.{name} is queryable"
