"""Retention: old Sent and No Remote Recipients writebacks may be deleted, their audit kept for good.

- pruned_writeback: one short line per deleted writeback (its id, reference, kind, status, mailing,
  when it finished, and the prune's audit entry), so that an audit entry, a reference read off a CRM360
  activity, or automatic scheduling still find what the row was.
- audit_event_row: no foreign key to writeback any more. Ids are never reused (``sqlite_autoincrement``,
  a sequence on PostgreSQL), so an entry whose row was pruned cannot come to point at another one; it
  points at its pruned_writeback line instead.
- audit_event: ``action`` may be ``prune``.
- SQLite rebuilds audit_event and audit_event_row (no trigger or expression index on either); the
  writeback table is not touched, so its triggers and indexes stay as they are.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_ACTIONS = (
    "action IN ('auto_schedule', 'cancel', 'discard', 'enqueue', 'import', 'reschedule', 'retry', "
    "'schedule', 'send_now', 'setting')"
)
_NEW_ACTIONS = (
    "action IN ('auto_schedule', 'cancel', 'discard', 'enqueue', 'import', 'prune', 'reschedule', "
    "'retry', 'schedule', 'send_now', 'setting')"
)
_FK = "fk_audit_event_row_writeback_id_writeback"


def _key(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


@contextmanager
def _batch(table: str, sqlite: bool, **table_kwargs: bool) -> Iterator[BatchOperations]:
    # Reflecting the foreign key reads writeback too, whose lower(email) index SQLite cannot reflect;
    # the writeback table itself is not rebuilt, so the index stays.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table(
            table, recreate="always" if sqlite else "auto", table_kwargs=table_kwargs
        ) as batch:
            yield batch


def _actions(actions: str, sqlite: bool) -> None:
    with _batch("audit_event", sqlite, sqlite_autoincrement=True) as batch:
        batch.drop_constraint(op.f("ck_audit_event_action"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_event_action"), sa.text(actions))


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "pruned_writeback",
        sa.Column(
            "writeback_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("ref", _key(16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("mailing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_event_id"],
            ["audit_event.id"],
            name=op.f("fk_pruned_writeback_audit_event_id_audit_event"),
        ),
        sa.PrimaryKeyConstraint("writeback_id", name=op.f("pk_pruned_writeback")),
        sa.UniqueConstraint("ref", name=op.f("uq_pruned_writeback_ref")),
    )
    op.create_index("ix_pruned_writeback_mailing_id", "pruned_writeback", ["mailing_id"])
    with _batch("audit_event_row", sqlite) as batch:
        batch.drop_constraint(_FK, type_="foreignkey")
    _actions(_NEW_ACTIONS, sqlite)


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    pruned = bind.execute(sa.text("SELECT count(*) FROM pruned_writeback")).scalar()
    if pruned:
        raise RuntimeError(
            f"{pruned:,} writeback(s) were pruned; their audit entries point at rows the previous version "
            "requires to exist, so it cannot keep them; nothing was changed"
        )
    _actions(_OLD_ACTIONS, sqlite)
    with _batch("audit_event_row", sqlite) as batch:
        batch.create_foreign_key(_FK, "writeback", ["writeback_id"], ["id"])
    op.drop_index("ix_pruned_writeback_mailing_id", table_name="pruned_writeback")
    op.drop_table("pruned_writeback")
