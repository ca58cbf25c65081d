"""Mailing recipients are found by email in any case, for support's lookup of one person.

The constituent viewer and ``lookup`` list the mailing-activity rows of every mailing a person received,
which starts from ``lower(email)`` on ``mailing_recipient``: without this index that is a scan of every
recipient of every mailing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_mailing_recipient_email_lower", "mailing_recipient", [sa.text("lower(email)"), "id"])


def downgrade() -> None:
    op.drop_index("ix_mailing_recipient_email_lower", table_name="mailing_recipient")
