"""The Discarded status: an Error an advisor stopped retrying, with a reason, until a person retries it.

- writeback: ``status`` may be ``discarded``. A discarded mailing activity still holds its mailing's one
  active row (``uq_writeback_active_mailing``), so retrying it can never meet a second row for the
  mailing. The dispatcher's partial index ``ix_writeback_open`` does not change: a Discarded row is not
  for any dispatcher.
- audit_event: ``action`` may be ``discard`` (the reason is kept in its detail).
- SQLite rebuilds the writeback table, which loses its status-history triggers and its lower(email)
  index; both are made again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUSES = (
    "status IN ('cancelled', 'error', 'new', 'no_remote_recipients', 'processing', 'scheduled', 'sent')"
)
_NEW_STATUSES = (
    "status IN ('cancelled', 'discarded', 'error', 'new', 'no_remote_recipients', 'processing', "
    "'scheduled', 'sent')"
)
_OLD_ACTIVE = "kind = 'mailing_activity' AND status IN ('error', 'new', 'processing', 'scheduled')"
_NEW_ACTIVE = (
    "kind = 'mailing_activity' AND status IN ('discarded', 'error', 'new', 'processing', 'scheduled')"
)
_OLD_ACTIONS = (
    "action IN ('auto_schedule', 'cancel', 'enqueue', 'import', 'reschedule', 'retry', 'schedule', "
    "'send_now', 'setting')"
)
_NEW_ACTIONS = (
    "action IN ('auto_schedule', 'cancel', 'discard', 'enqueue', 'import', 'reschedule', 'retry', "
    "'schedule', 'send_now', 'setting')"
)

# As migration 0004 made them; the SQLite rebuild drops a table's triggers with the old table.
_COLUMNS = "writeback_id, from_status, to_status, at, actor, attempt"
_SQLITE_TRIGGERS = (
    f"""
    CREATE TRIGGER tr_writeback_event_insert AFTER INSERT ON writeback
    BEGIN
        INSERT INTO writeback_event ({_COLUMNS})
        VALUES (NEW.id, NULL, NEW.status, NEW.updated_at, NEW.changed_by, NEW.attempts);
    END
    """,
    f"""
    CREATE TRIGGER tr_writeback_event_update AFTER UPDATE OF status ON writeback
    WHEN OLD.status IS NOT NEW.status
    BEGIN
        INSERT INTO writeback_event ({_COLUMNS})
        VALUES (NEW.id, OLD.status, NEW.status, NEW.updated_at, NEW.changed_by, NEW.attempts);
    END
    """,
)


@contextmanager
def _batch(table: str, sqlite: bool) -> Iterator[BatchOperations]:
    # SQLite cannot reflect the lower(email) index; it is made again by hand after the rebuild.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table(
            table, recreate="always" if sqlite else "auto", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            yield batch


def _change(statuses: str, active: str, actions: str, old_active: str) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TRIGGER IF EXISTS tr_writeback_event_update")
        op.execute("DROP TRIGGER IF EXISTS tr_writeback_event_insert")
    op.drop_index(
        "uq_writeback_active_mailing",
        table_name="writeback",
        postgresql_where=sa.text(old_active),
        sqlite_where=sa.text(old_active),
    )
    with _batch("writeback", sqlite) as batch:
        batch.drop_constraint(op.f("ck_writeback_status"), type_="check")
        batch.create_check_constraint(op.f("ck_writeback_status"), sa.text(statuses))
    op.create_index(
        "uq_writeback_active_mailing",
        "writeback",
        ["mailing_id"],
        unique=True,
        postgresql_where=sa.text(active),
        sqlite_where=sa.text(active),
    )
    with _batch("audit_event", sqlite) as batch:
        batch.drop_constraint(op.f("ck_audit_event_action"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_event_action"), sa.text(actions))
    if sqlite:
        op.execute("CREATE INDEX IF NOT EXISTS ix_writeback_email_lower ON writeback (lower(email), id)")
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def upgrade() -> None:
    _change(_NEW_STATUSES, _NEW_ACTIVE, _NEW_ACTIONS, _OLD_ACTIVE)


def downgrade() -> None:
    bind = op.get_bind()
    discarded = bind.execute(sa.text("SELECT count(*) FROM writeback WHERE status = 'discarded'")).scalar()
    discards = bind.execute(sa.text("SELECT count(*) FROM audit_event WHERE action = 'discard'")).scalar()
    if discarded or discards:
        raise RuntimeError(
            f"the queue holds {discarded:,} discarded row(s) and {discards:,} discard audit entries, which "
            "the previous version cannot keep; nothing was changed (retry the discarded rows first)"
        )
    _change(_OLD_STATUSES, _OLD_ACTIVE, _OLD_ACTIONS, _NEW_ACTIVE)
