"""The list's one sort-key table: every sort named, each resumable and backed by its own index."""

from __future__ import annotations

import typing

from sqlalchemy import Index

from writeback_console.store.listing import NULLABLE_SORTS, SORT_KEYS, SortField
from writeback_console.store.models import Writeback


def _index_columns(index: Index) -> tuple[str, ...]:
    """The index's columns by name; lower(email) counts as email, which is how that sort compares."""
    return tuple(
        str(e).removeprefix("writeback.").removeprefix("lower(").rstrip(")") for e in index.expressions
    )


def test_every_sort_has_its_keys_and_nothing_else_does() -> None:
    assert set(SORT_KEYS) == set(typing.get_args(SortField))


def test_every_sort_ends_in_a_unique_column_so_paging_can_resume_after_any_row() -> None:
    unique = {"id", "ref"}
    for sort, keys in SORT_KEYS.items():
        assert keys[-1] in unique, sort


def test_every_sort_is_backed_by_an_index_on_exactly_its_columns() -> None:
    indexes = {_index_columns(ix) for ix in Writeback.__table__.indexes}
    indexes |= {(c.name,) for c in Writeback.__table__.columns if c.unique or c.primary_key}
    for sort, keys in SORT_KEYS.items():
        assert keys in indexes, f"{sort}: no index on {keys}"


def test_only_sorts_on_a_column_that_may_be_empty_put_empty_values_last() -> None:
    assert {"email", "master_customer_id", "sent_at", "scheduled_for"} == NULLABLE_SORTS
