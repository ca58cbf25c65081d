"""The triggers' functions run as the owner of the tables, whoever changes a writeback.

A trigger function runs with the rights of the user whose statement fired it. Under the roles of
``sql/postgresql/roles.sql`` nobody but the owner may write ``writeback_event`` or the status counts, so
the functions that do (the status history of 0004, the counters of 0007, the change feed of 0010) become
``SECURITY DEFINER``, owned by the owner, with a fixed ``search_path`` (the schema of the tables, then
``pg_temp``) so that no caller can slip a table of its own in front of them. This holds whether or not
the role script is run. PostgreSQL only; nothing to do on SQLite.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Every trigger function on ``writeback``.
TRIGGER_FUNCTIONS = (
    "writeback_event_record",
    "status_count_inserted",
    "status_count_deleted",
    "status_count_updated",
    "writeback_change_notify",
    "writeback_change_notify_update",
)


def _alter_each(change: str) -> None:
    """``ALTER FUNCTION`` each trigger function in the schema it was made in; ``%2$I`` is that schema."""
    names = ", ".join(f"'{name}'" for name in TRIGGER_FUNCTIONS)
    op.execute(
        f"""
        DO $$
        DECLARE f record;
        BEGIN
            FOR f IN
                SELECT p.oid::regprocedure AS signature, n.nspname AS schema
                FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE p.proname IN ({names}) AND n.nspname = current_schema()
            LOOP
                EXECUTE format('ALTER FUNCTION %1$s {change}', f.signature, f.schema);
            END LOOP;
        END
        $$
        """
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _alter_each("SECURITY DEFINER SET search_path = %2$I, pg_temp")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _alter_each("SECURITY INVOKER RESET search_path")
