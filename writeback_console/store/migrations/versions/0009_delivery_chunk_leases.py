"""Deliveries claimable in chunks, so several dispatchers share one big mailing.

- delivery: ``locked_by``, ``lease_expires_at`` (the database's clock) and ``lease_token`` (the fencing
  token, incremented by every claim) make a chunk of a mailing's recipients one dispatcher's, exactly as
  a writeback row is; ``uncertain_since`` is when the doubt whether a recipient's activity arrived arose,
  so it is looked for only once a slow write could have landed.
- The index on (writeback_id, status) gains ``id``: a chunk is the next pending recipients of a row in id
  order, read from the index.
- Unfinished recipients of rows that are Processing now were being sent without chunk leases: they are
  marked uncertain, so they are looked for before they are written.
- Only new columns and indexes: SQLite adds them in place, without a table rebuild.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("delivery", sa.Column("locked_by", sa.String(200), nullable=True))
    op.add_column("delivery", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("delivery", sa.Column("lease_token", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("delivery", sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_delivery_writeback_id_status_id", "delivery", ["writeback_id", "status", "id"])
    op.drop_index("ix_delivery_writeback_id_status", table_name="delivery")
    op.execute(
        "UPDATE delivery SET uncertain = TRUE WHERE status <> 'sent' AND writeback_id IN "
        "(SELECT id FROM writeback WHERE status = 'processing')"
    )


def downgrade() -> None:
    op.create_index("ix_delivery_writeback_id_status", "delivery", ["writeback_id", "status"])
    op.drop_index("ix_delivery_writeback_id_status_id", table_name="delivery")
    # SQLite rebuilds the table; it cannot reflect the expression index of a table it refers to.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table("delivery") as batch:
            batch.drop_column("uncertain_since")
            batch.drop_column("lease_token")
            batch.drop_column("lease_expires_at")
            batch.drop_column("locked_by")
