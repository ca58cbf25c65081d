"""Who made each status change, as the database knows them: ``writeback_event.db_user``.

``actor`` is what the writer says of itself (a person's name, a dispatcher's host and process), copied
from ``writeback.changed_by``, which every role that changes rows writes. On PostgreSQL ``db_user`` is
the server's ``session_user`` (a default no role may name, since only the owner's trigger functions
insert events), so a history entry names the login that really made the change. Events from before
this migration have none (NULL), rather than the migrating user's name. SQLite has one user: NULL.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added without a default first: a default given with the column would be written into every
    # existing event as the migrating user.
    op.add_column("writeback_event", sa.Column("db_user", sa.String(200), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE writeback_event ALTER COLUMN db_user SET DEFAULT session_user")


def downgrade() -> None:
    # SQLite drops the column in place (3.35 and later): rebuilding writeback_event would trip over
    # writeback's triggers, which name it.
    op.execute("ALTER TABLE writeback_event DROP COLUMN db_user")
