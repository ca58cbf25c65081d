"""Exact per-status totals kept by the database in the transaction of every change, read in O(1).

- status_count: the number of writebacks per status, kind and Informz account, as of the last fold (a
  few dozen rows: the list's status, kind and account filters are counted from it, exactly).
- status_count_delta (written on PostgreSQL only): what each statement changed since, one row per
  status it touched. Every writer appends its own rows, so concurrent transactions never wait on one
  counter row (which would serialise every claim, record and retry, and could deadlock them).
  ``counters.fold`` adds the deltas into status_count now and then; a reader sums the two, which one
  statement sees consistently.
- SQLite has one writer at a time, so its triggers update status_count directly, row by row.
- Triggers fire on insert, on delete and on a change of status; a later migration that rebuilds the
  writeback table on SQLite must create them again (as 0006 does for the event triggers).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite_bump(row: str, by: str) -> str:
    return (
        f"INSERT INTO status_count (status, kind, account, total) "
        f"VALUES ({row}.status, {row}.kind, {row}.account, {by}) "
        f"ON CONFLICT (status, kind, account) DO UPDATE SET total = total + ({by});"
    )


SQLITE_TRIGGERS = (
    f"""
    CREATE TRIGGER tr_status_count_insert AFTER INSERT ON writeback
    BEGIN
        {_sqlite_bump("NEW", "1")}
    END
    """,
    f"""
    CREATE TRIGGER tr_status_count_delete AFTER DELETE ON writeback
    BEGIN
        {_sqlite_bump("OLD", "-1")}
    END
    """,
    f"""
    CREATE TRIGGER tr_status_count_update AFTER UPDATE OF status, kind, account ON writeback
    WHEN OLD.status IS NOT NEW.status OR OLD.kind IS NOT NEW.kind OR OLD.account IS NOT NEW.account
    BEGIN
        {_sqlite_bump("OLD", "-1")}
        {_sqlite_bump("NEW", "1")}
    END
    """,
)
SQLITE_TRIGGER_NAMES = ("tr_status_count_insert", "tr_status_count_delete", "tr_status_count_update")

# Statement-level triggers with transition tables: one delta row per status a statement changed,
# however many rows it touched (a claim of 500 rows adds two).
POSTGRESQL_FUNCTIONS = (
    """
    CREATE FUNCTION status_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO status_count_delta (status, kind, account, delta)
        SELECT status, kind, account, count(*) FROM new_rows GROUP BY status, kind, account;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION status_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO status_count_delta (status, kind, account, delta)
        SELECT status, kind, account, -count(*) FROM old_rows GROUP BY status, kind, account;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION status_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO status_count_delta (status, kind, account, delta)
        SELECT status, kind, account, sum(n) FROM (
            SELECT status, kind, account, -1 AS n FROM old_rows
            UNION ALL
            SELECT status, kind, account, 1 FROM new_rows
        ) AS changed
        GROUP BY status, kind, account
        HAVING sum(n) <> 0;
        RETURN NULL;
    END
    $$
    """,
)
POSTGRESQL_TRIGGERS = (
    """
    CREATE TRIGGER tr_status_count_insert AFTER INSERT ON writeback
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION status_count_inserted()
    """,
    """
    CREATE TRIGGER tr_status_count_delete AFTER DELETE ON writeback
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION status_count_deleted()
    """,
    """
    CREATE TRIGGER tr_status_count_update AFTER UPDATE ON writeback
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION status_count_updated()
    """,
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "status_count",
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("status", "kind", "account", name=op.f("pk_status_count")),
    )
    # Written only on PostgreSQL; on SQLite it stays empty, so that both read the totals alike.
    op.create_table(
        "status_count_delta",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_count_delta")),
    )
    if not sqlite:
        # Creating a trigger locks writers out of the table until this transaction commits, so the
        # count below and the triggers agree exactly however busy the queue is.
        for statement in (*POSTGRESQL_FUNCTIONS, *POSTGRESQL_TRIGGERS):
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.execute(
        "INSERT INTO status_count (status, kind, account, total) "
        "SELECT status, kind, account, count(*) FROM writeback GROUP BY status, kind, account"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON writeback")
        for function in ("status_count_inserted", "status_count_deleted", "status_count_updated"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table("status_count_delta")
    op.drop_table("status_count")
