"""The writeback row as the store hands it out, the store's errors, and what every store module shares.

Every function of the store works in a caller's session and never commits: the caller owns the unit of
work. Anything that claims or changes rows on SQLite runs inside
:func:`writeback_console.store.engine.write_transaction`, which takes the write lock at BEGIN (SQLite has
no ``FOR UPDATE``).
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.engine import CursorResult

from writeback_console.domain import Kind, QueueState, Status
from writeback_console.store.models import Attempt, Delivery, Writeback

W = Writeback.__table__.c
WRITEBACK_TABLE = cast(Table, Writeback.__table__)
ATTEMPT_TABLE = cast(Table, Attempt.__table__)
DELIVERY_TABLE = cast(Table, Delivery.__table__)


#: Ids per statement, well under SQLite's and psycopg's parameter limits.
CHUNK = 500
EXCERPT_LIMIT = 2000
MESSAGE_LIMIT = 4000


def current_actor() -> str:
    """Who is doing a manual action: the operating-system user on this host."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some service environments
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def dispatcher_identity() -> str:
    """The lease holder name of this process: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class QueueError(Exception):
    """A queue operation was refused; the message says why in words for the user."""


class NotFound(QueueError):
    pass


@dataclass(frozen=True, slots=True)
class Refusal:
    id: int
    ref: str
    reason: str


class RowsRefused(QueueError):
    """Some of the rows an action was asked for cannot take it; nothing was changed."""

    VERB = "changed"

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        lines = [f"{r.ref}: {r.reason}" for r in refusals[:20]]
        if len(refusals) > 20:
            lines.append(f"… and {len(refusals) - 20:,} more")
        rows = "1 row" if len(refusals) == 1 else f"{len(refusals):,} rows"
        super().__init__(f"{rows} cannot be {self.VERB}:\n  " + "\n  ".join(lines))
        self.refusals = list(refusals)


class RetryRefused(RowsRefused):
    """Some of the rows asked for cannot be retried now; nothing was changed."""

    VERB = "retried"


class DiscardRefused(RowsRefused):
    """Some of the rows asked for cannot be discarded; nothing was changed."""

    VERB = "discarded"


@dataclass(frozen=True, slots=True)
class WritebackRow:
    """A writeback as plain data, safe to hand to another thread or print."""

    id: int
    ref: str
    kind: Kind
    account: str
    email: str | None
    master_customer_id: str | None
    sub_customer_id: int | None
    mailing_id: int | None
    status: Status
    attempts: int
    max_attempts: int
    occurred_at: datetime
    scheduled_for: datetime | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    last_http_status: int | None
    locked_by: str | None
    locked_at: datetime | None
    delivery_uncertain: bool
    created_at: datetime
    updated_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    #: Until when the dispatcher holding a Processing row has it (the database's clock).
    lease_expires_at: datetime | None = None
    #: Since when an earlier write may have arrived (see ``delivery_uncertain``).
    uncertain_since: datetime | None = None
    #: Mailing activity: (recipients whose activity arrived, recipients known in Personify360), where read
    #: (``store.progress``: the list reads it for rows being sent, the detail for any). Not a column.
    progress: tuple[int, int] | None = None

    @property
    def state(self) -> QueueState:
        return QueueState(
            self.status,
            self.attempts,
            self.max_attempts,
            self.scheduled_for,
            self.next_attempt_at,
            self.uncertain_since,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat().replace("+00:00", "Z")
        data["payload"] = dict(self.payload)
        return data


#: The columns a WritebackRow is read from: its fields, in order.
ROW_COLUMNS = tuple(W[f.name] for f in fields(WritebackRow) if f.name in W)


def row_from(r: Any) -> WritebackRow:
    m = dict(r._mapping)
    m["kind"] = Kind(m["kind"])
    m["status"] = Status(m["status"])
    m["delivery_uncertain"] = bool(m["delivery_uncertain"])
    m["payload"] = m["payload"] or {}
    return WritebackRow(**m)


def chunks(items: Sequence[int], size: int = CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rows_changed(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (``Session.execute`` is typed as returning a plain Result)."""
    return int(cast("CursorResult[Any]", result).rowcount)


def cut(text: str | None, limit: int) -> str | None:
    """Text from outside (Personify360's answers) as the database will take it: no NUL, not too long."""
    if text is None:
        return None
    # PostgreSQL refuses NUL in text; a server may well send one.
    text = text.replace("\x00", "\u2400")
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


#: The length of delivery.activity_id, and of a constituent id, in the schema.
ACTIVITY_ID_LIMIT = 64
CUSTOMER_ID_LIMIT = 24


def fits(text: str | None, limit: int) -> bool:
    return text is not None and len(text) <= limit and "\x00" not in text
