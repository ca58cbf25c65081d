"""The writebacks CSV: formula-safe cells, times in UTC with Z, rows written as they come."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from writeback_console.domain import Kind, Status
from writeback_console.export import CSV_HEADER, csv_record, formula_safe, write_rows
from writeback_console.store.rows import WritebackRow

T0 = datetime(2026, 11, 20, 9, 0, 5, 123456, tzinfo=UTC)


def row(n: int = 1, **changes: object) -> WritebackRow:
    base = WritebackRow(
        id=n,
        ref=f"WB-{n:06d}",
        kind=Kind.UNSUBSCRIBE,
        account="Main",
        email=f"a{n}@example.org",
        master_customer_id="000000001475",
        sub_customer_id=0,
        mailing_id=None,
        status=Status.ERROR,
        attempts=2,
        max_attempts=5,
        occurred_at=T0,
        scheduled_for=None,
        next_attempt_at=None,
        sent_at=None,
        last_error="HTTP 500: Save failed.",
        last_http_status=500,
        locked_by=None,
        locked_at=None,
        delivery_uncertain=False,
        created_at=T0,
        updated_at=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://x","y")',
        "@SUM(1+1)",
        "+1",
        "-2",
        "\t=1+1",
        "\r=1+1",
        "\n=1+1",
        "  =1+1",
        "＝1+1",
        "＋1",
        "－1",
        "＠SUM(1)",
    ],
)
def test_text_that_would_start_a_formula_gets_a_leading_apostrophe(text: str) -> None:
    assert formula_safe(text) == "'" + text


@pytest.mark.parametrize("text", ["WB-123", "ann@example.org", "HTTP 500: x=1", " a = b", "", "'quoted"])
def test_ordinary_text_is_left_as_it_is(text: str) -> None:
    assert formula_safe(text) == text


def test_numbers_stay_numbers_and_none_is_empty() -> None:
    assert formula_safe(-2) == -2
    assert formula_safe(500) == 500
    assert formula_safe(None) == ""


def test_times_are_iso_8601_utc_with_z() -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    cells = dict(zip(CSV_HEADER, csv_record(row(created_at=local, sent_at=None)), strict=True))
    assert cells["created_at"] == cells["occurred_at"] == "2026-11-20T09:00:05Z"
    assert cells["sent_at"] == ""
    assert (cells["kind"], cells["status"]) == ("Unsubscribe", "Error")


def test_rows_are_written_as_they_come_not_gathered_first() -> None:
    out = io.StringIO()
    seen: list[int] = []

    def rows() -> Iterator[WritebackRow]:
        for n in range(1, 4):
            # Everything before this row is already in the stream when it is asked for.
            seen.append(out.getvalue().count("\n"))
            yield row(n)

    assert write_rows(rows(), out) == 3
    assert seen == [1, 2, 3]
    lines = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert tuple(lines[0]) == CSV_HEADER
    assert [line[CSV_HEADER.index("ref")] for line in lines[1:]] == ["WB-000001", "WB-000002", "WB-000003"]
