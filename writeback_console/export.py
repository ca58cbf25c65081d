"""The writebacks CSV advisors open in a spreadsheet: one format for the console's export and the CLI."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from writeback_console.store.rows import WritebackRow

#: The columns in order: who and what first, then the queue's account of it, the id last.
CSV_HEADER = (
    "ref",
    "created_at",
    "occurred_at",
    "kind",
    "status",
    "account",
    "email",
    "master_customer_id",
    "sub_customer_id",
    "mailing_id",
    "attempts",
    "max_attempts",
    "sent_at",
    "scheduled_for",
    "last_http_status",
    "last_error",
    "id",
)
#: A spreadsheet may run a cell starting with one of these as a formula; the full-width forms are
#: included because a spreadsheet that normalises input could read them as the ASCII ones. Text from
#: outside (emails, Personify360 error messages) must never run.
FORMULA_STARTS = frozenset("=+-@\t\r\n＝＋－＠")

Cell = str | int | float


def iso_utc(value: datetime | None) -> str:
    """ISO-8601 in UTC to the second, with Z: ``2026-11-20T10:00:00Z``; empty for no time."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="seconds") + "Z"


def formula_safe(value: object) -> Cell:
    """The value as a spreadsheet should show it: text that would start a formula gets a leading ``'``.

    Leading spaces do not hide a formula, so they are looked past. Numbers stay numbers.
    """
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.lstrip(" ")[:1] in FORMULA_STARTS else text


def csv_record(row: WritebackRow) -> list[Cell]:
    """One writeback as the cells of its CSV line, in CSV_HEADER's order."""
    values: dict[str, object] = {
        "ref": row.ref,
        "created_at": iso_utc(row.created_at),
        "occurred_at": iso_utc(row.occurred_at),
        "kind": row.kind.label,
        "status": row.status.label,
        "account": row.account,
        "email": row.email,
        "master_customer_id": row.master_customer_id,
        "sub_customer_id": row.sub_customer_id,
        "mailing_id": row.mailing_id,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "sent_at": iso_utc(row.sent_at),
        "scheduled_for": iso_utc(row.scheduled_for),
        "last_http_status": row.last_http_status,
        "last_error": row.last_error,
        "id": row.id,
    }
    return [formula_safe(values[name]) for name in CSV_HEADER]


def write_rows(rows: Iterable[WritebackRow], out: TextIO) -> int:
    """Write the header and then each row as it comes (nothing is held back); returns the rows written."""
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    written = 0
    for row in rows:
        writer.writerow(csv_record(row))
        written += 1
    return written
