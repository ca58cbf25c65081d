"""Which writebacks changed, told by the database itself, so every console's list stays live.

- PostgreSQL: statement triggers on writeback send ``NOTIFY writeback_change`` with the ids the
  statement inserted, changed or deleted (``*`` when there are too many for one notification).
  Notifications are delivered when the transaction commits, in commit order, and never for one that
  rolled back.
- SQLite: there is no NOTIFY. Row triggers append each changed id to ``writeback_change`` (its ``seq``
  grows with every change, and SQLite has one writer at a time, so ``seq`` order is commit order); a
  console notices new entries through ``PRAGMA data_version`` and reads those past the last it saw.
  The dispatcher trims the table to its newest entries. On PostgreSQL the table stays empty.
- Only what a person sees counts as a change: a lease renewal (``locked_at``, ``lease_expires_at``) is
  not one. A later migration that rebuilds the writeback table on SQLite must create the triggers again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The columns a screen shows or filters by; a change to any of them is a change of the row.
SEEN_COLUMNS = (
    "email, master_customer_id, sub_customer_id, payload, status, attempts, max_attempts, scheduled_for, "
    "next_attempt_at, locked_by, delivery_uncertain, sent_at, last_error, last_http_status, updated_at, "
    "changed_by"
)

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER tr_writeback_change_insert AFTER INSERT ON writeback
    BEGIN
        INSERT INTO writeback_change (writeback_id) VALUES (NEW.id);
    END
    """,
    f"""
    CREATE TRIGGER tr_writeback_change_update AFTER UPDATE OF {SEEN_COLUMNS} ON writeback
    BEGIN
        INSERT INTO writeback_change (writeback_id) VALUES (NEW.id);
    END
    """,
    """
    CREATE TRIGGER tr_writeback_change_delete AFTER DELETE ON writeback
    BEGIN
        INSERT INTO writeback_change (writeback_id) VALUES (OLD.id);
    END
    """,
)
TRIGGER_NAMES = ("tr_writeback_change_insert", "tr_writeback_change_update", "tr_writeback_change_delete")

#: A notification carries at most 8,000 bytes; past this many ids it says "*" (re-read what is shown).
MAX_NOTIFIED_IDS = 400

POSTGRESQL_FUNCTION = f"""
    CREATE FUNCTION writeback_change_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        ids text;
    BEGIN
        IF TG_OP = 'DELETE' THEN
            SELECT CASE WHEN count(*) > {MAX_NOTIFIED_IDS} THEN '*' ELSE string_agg(id::text, ',') END
            INTO ids FROM old_rows;
        ELSE
            SELECT CASE WHEN count(*) > {MAX_NOTIFIED_IDS} THEN '*' ELSE string_agg(id::text, ',') END
            INTO ids FROM new_rows;
        END IF;
        IF ids IS NOT NULL THEN
            PERFORM pg_notify('writeback_change', ids);
        END IF;
        RETURN NULL;
    END
    $$
"""


def _seen(alias: str) -> str:
    """The seen columns of one side of an update, as a row (json has no equality: compared as text)."""
    columns = (c.strip() for c in SEEN_COLUMNS.split(","))
    return "(" + ", ".join(f"{alias}.{c}::text" if c == "payload" else f"{alias}.{c}" for c in columns) + ")"


# An UPDATE trigger with transition tables cannot name columns: a statement that changed only leases
# is recognised by comparing the rows it changed.
POSTGRESQL_UPDATE_FUNCTION = f"""
    CREATE FUNCTION writeback_change_notify_update() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        ids text;
    BEGIN
        SELECT CASE WHEN count(*) > {MAX_NOTIFIED_IDS} THEN '*' ELSE string_agg(n.id::text, ',') END
        INTO ids
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE {_seen("n")} IS DISTINCT FROM {_seen("o")};
        IF ids IS NOT NULL THEN
            PERFORM pg_notify('writeback_change', ids);
        END IF;
        RETURN NULL;
    END
    $$
"""
POSTGRESQL_TRIGGERS = (
    """
    CREATE TRIGGER tr_writeback_change_insert AFTER INSERT ON writeback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION writeback_change_notify()
    """,
    """
    CREATE TRIGGER tr_writeback_change_update AFTER UPDATE ON writeback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION writeback_change_notify_update()
    """,
    """
    CREATE TRIGGER tr_writeback_change_delete AFTER DELETE ON writeback
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION writeback_change_notify()
    """,
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "writeback_change",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("writeback_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_writeback_change")),
        sqlite_autoincrement=True,
    )
    statements = (
        SQLITE_TRIGGERS if sqlite else (POSTGRESQL_FUNCTION, POSTGRESQL_UPDATE_FUNCTION, *POSTGRESQL_TRIGGERS)
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in TRIGGER_NAMES:
        op.execute(
            f"DROP TRIGGER IF EXISTS {name}" if sqlite else f"DROP TRIGGER IF EXISTS {name} ON writeback"
        )
    if not sqlite:
        op.execute("DROP FUNCTION IF EXISTS writeback_change_notify_update()")
        op.execute("DROP FUNCTION IF EXISTS writeback_change_notify()")
    op.drop_table("writeback_change")
