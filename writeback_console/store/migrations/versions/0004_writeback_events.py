"""Every status transition becomes an event row, written by the database in the transaction of the change.

- writeback: ``changed_by``, who made the last change (a person, or the dispatcher holding the row).
- writeback_event: one row per transition (writeback, from, to, when, by whom, attempt count), indexed
  for a row's timeline and for counts over time.
- Triggers on writeback (SQLite triggers; a PL/pgSQL function on PostgreSQL) insert the event for every
  insert and every change of ``status``, so no path that changes a status can forget its event. A later
  migration that rebuilds the writeback table on SQLite must create the triggers again.
- Rows already in the queue get one event each: their status as found at the upgrade, by "upgrade"; the
  history before it stays in their attempts and the audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "writeback_id, from_status, to_status, at, actor, attempt"

SQLITE_TRIGGERS = (
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

POSTGRESQL_TRIGGERS = (
    f"""
    CREATE FUNCTION writeback_event_record() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO writeback_event ({_COLUMNS})
            VALUES (NEW.id, NULL, NEW.status, NEW.updated_at, NEW.changed_by, NEW.attempts);
        ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
            INSERT INTO writeback_event ({_COLUMNS})
            VALUES (NEW.id, OLD.status, NEW.status, NEW.updated_at, NEW.changed_by, NEW.attempts);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER tr_writeback_event AFTER INSERT OR UPDATE OF status ON writeback
    FOR EACH ROW EXECUTE FUNCTION writeback_event_record()
    """,
)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.add_column("writeback", sa.Column("changed_by", sa.String(length=200), nullable=True))
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "writeback_event",
        sa.Column("id", big_id, primary_key=True),
        sa.Column("writeback_id", big_id, nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=True),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["writeback_id"],
            ["writeback.id"],
            name=op.f("fk_writeback_event_writeback_id_writeback"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writeback_event")),
        sqlite_autoincrement=True,
    )
    op.execute(
        f"INSERT INTO writeback_event ({_COLUMNS}) "
        "SELECT id, NULL, status, updated_at, 'upgrade', attempts FROM writeback ORDER BY id"
    )
    op.create_index("ix_writeback_event_writeback_id", "writeback_event", ["writeback_id", "id"])
    op.create_index("ix_writeback_event_to_status_at", "writeback_event", ["to_status", "at"])
    op.create_index("ix_writeback_event_at", "writeback_event", ["at"])
    for statement in SQLITE_TRIGGERS if sqlite else POSTGRESQL_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS tr_writeback_event_update")
        op.execute("DROP TRIGGER IF EXISTS tr_writeback_event_insert")
    else:
        op.execute("DROP TRIGGER IF EXISTS tr_writeback_event ON writeback")
        op.execute("DROP FUNCTION IF EXISTS writeback_event_record()")
    op.drop_table("writeback_event")
    # Natively on SQLite (3.35 and later): rebuilding the table would lose its lower(email) index.
    op.execute("ALTER TABLE writeback DROP COLUMN changed_by")
