"""Attempt outcomes, delivery statuses and audit actions are checked by the database.

Each column may hold only the values its enum names (``AttemptOutcome``, ``DeliveryStatus``,
``AuditAction``); ``remote_health.state`` was checked from the start. A database holding any other value
is not changed, and the upgrade says which values in which column it found.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The values as of this revision; a later enum member comes with its own migration.
_CHECKS: dict[str, tuple[str, str, tuple[str, ...], bool]] = {
    # table: (constraint, column, allowed values, NULL allowed)
    "attempt": (
        "ck_attempt_outcome",
        "outcome",
        ("error", "interrupted", "no_remote_recipients", "outage", "sent", "stopped"),
        True,
    ),
    "delivery": ("ck_delivery_status", "status", ("error", "pending", "sent"), False),
    "audit_event": (
        "ck_audit_event_action",
        "action",
        (
            "auto_schedule",
            "cancel",
            "enqueue",
            "import",
            "reschedule",
            "retry",
            "schedule",
            "send_now",
            "setting",
        ),
        False,
    ),
}


def _condition(column: str, values: tuple[str, ...], nullable: bool) -> str:
    listed = f"{column} IN ({', '.join(repr(v) for v in values)})"
    return f"{column} IS NULL OR {listed}" if nullable else listed


@contextmanager
def _batch(table: str, sqlite: bool) -> Iterator[BatchOperations]:
    """Alter a table; SQLite rebuilds it, reflecting its neighbours (whose lower(email) index it cannot
    read, and which it does not touch)."""
    kwargs = {"sqlite_autoincrement": True} if table == "audit_event" else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table(
            table, recreate="always" if sqlite else "auto", table_kwargs=kwargs
        ) as batch:
            yield batch


def upgrade() -> None:
    bind = op.get_bind()
    strays = []
    for table, (_name, column, values, nullable) in _CHECKS.items():
        found = bind.execute(
            sa.text(
                f"SELECT DISTINCT {column} FROM {table} WHERE NOT ({_condition(column, values, nullable)})"
            )
        ).scalars()
        strays += [f"{table}.{column} = {value!r}" for value in found]
    if strays:
        raise RuntimeError(
            "the queue holds values this version does not know, so nothing was changed: " + ", ".join(strays)
        )
    sqlite = bind.dialect.name == "sqlite"
    for table, (name, column, values, nullable) in _CHECKS.items():
        with _batch(table, sqlite) as batch:
            batch.create_check_constraint(op.f(name), sa.text(_condition(column, values, nullable)))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, (name, _column, _values, _nullable) in _CHECKS.items():
        with _batch(table, sqlite) as batch:
            batch.drop_constraint(op.f(name), type_="check")
