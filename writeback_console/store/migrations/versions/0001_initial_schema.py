"""Initial schema: writebacks, attempts, mailings, recipients, deliveries, audit, settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    # Byte-wise collation on PostgreSQL, as in the models: prefix ranges must mean "starts with".
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_at", ["at"], unique=False)

    op.create_table(
        "mailing",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("informz_mailing_id", sa.String(length=64), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailing")),
    )
    with op.batch_alter_table("mailing", schema=None) as batch_op:
        batch_op.create_index("ix_mailing_account_sent_at", ["account", "sent_at"], unique=False)
        batch_op.create_index("ix_mailing_sent_at", ["sent_at"], unique=False)

    op.create_table(
        "setting",
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("account", "key", name=op.f("pk_setting")),
    )
    op.create_table(
        "audit_event_row",
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("writeback_id", sa.BigInteger(), nullable=False),
        sa.Column("ref", _key(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["audit_event.id"],
            name=op.f("fk_audit_event_row_event_id_audit_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "writeback_id", name=op.f("pk_audit_event_row")),
    )
    with op.batch_alter_table("audit_event_row", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_row_writeback_id", ["writeback_id"], unique=False)

    op.create_table(
        "mailing_recipient",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mailing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("master_customer_id", sa.String(length=24), nullable=True),
        sa.Column("sub_customer_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clicks", sa.JSON(), nullable=False),
        sa.Column("bounced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bounce_reason", sa.String(length=500), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailing.id"],
            name=op.f("fk_mailing_recipient_mailing_id_mailing"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailing_recipient")),
        sa.UniqueConstraint("mailing_id", "email", name=op.f("uq_mailing_recipient_mailing_id_email")),
    )
    with op.batch_alter_table("mailing_recipient", schema=None) as batch_op:
        batch_op.create_index("ix_mailing_recipient_mailing_id", ["mailing_id", "id"], unique=False)

    op.create_table(
        "writeback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ref", _key(16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("email", _key(254), nullable=True),
        sa.Column("master_customer_id", _key(24), nullable=True),
        sa.Column("sub_customer_id", sa.Integer(), nullable=True),
        sa.Column("mailing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(length=200), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_from", sa.String(length=24), nullable=True),
        sa.Column("delivery_uncertain", sa.Boolean(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_http_status", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('interests', 'invalid_email', 'mailing_activity', 'resubscribe', 'unsubscribe')",
            name=op.f("ck_writeback_kind"),
        ),
        sa.CheckConstraint(
            "status <> 'scheduled' OR scheduled_for IS NOT NULL", name=op.f("ck_writeback_scheduled_has_time")
        ),
        sa.CheckConstraint(
            "status <> 'sent' OR sent_at IS NOT NULL", name=op.f("ck_writeback_sent_has_time")
        ),
        sa.CheckConstraint(
            "status IN ('error', 'new', 'no_remote_recipients', 'processing', 'scheduled', 'sent')",
            name=op.f("ck_writeback_status"),
        ),
        sa.CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name=op.f("ck_writeback_attempts")),
        sa.CheckConstraint(
            "status NOT IN ('new', 'scheduled') OR attempts < max_attempts",
            name=op.f("ck_writeback_waiting_has_attempt_left"),
        ),
        sa.ForeignKeyConstraint(["mailing_id"], ["mailing.id"], name=op.f("fk_writeback_mailing_id_mailing")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writeback")),
        sa.UniqueConstraint("ref", name=op.f("uq_writeback_ref")),
    )
    with op.batch_alter_table("writeback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_writeback_account_created_at", ["account", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_writeback_attempts", ["attempts", "id"], unique=False)
        batch_op.create_index("ix_writeback_created_at", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_writeback_email_lower", [sa.text("lower(email)"), "id"], unique=False)
        batch_op.create_index("ix_writeback_scheduled_for", ["scheduled_for", "id"], unique=False)
        batch_op.create_index("ix_writeback_kind_created_at", ["kind", "created_at", "id"], unique=False)
        batch_op.create_index("ix_writeback_mailing_id", ["mailing_id"], unique=False)
        batch_op.create_index("ix_writeback_master_customer_id", ["master_customer_id", "id"], unique=False)
        batch_op.create_index(
            "ix_writeback_open",
            ["status", "next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('error', 'new', 'processing', 'scheduled')"),
            sqlite_where=sa.text("status IN ('error', 'new', 'processing', 'scheduled')"),
        )
        batch_op.create_index("ix_writeback_sent_at", ["sent_at", "id"], unique=False)
        batch_op.create_index("ix_writeback_status_created_at", ["status", "created_at", "id"], unique=False)

    op.create_table(
        "attempt",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("writeback_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("dispatcher", sa.String(length=200), nullable=True),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["writeback_id"],
            ["writeback.id"],
            name=op.f("fk_attempt_writeback_id_writeback"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempt")),
        sa.UniqueConstraint("writeback_id", "number", name=op.f("uq_attempt_writeback_id_number")),
    )
    op.create_table(
        "delivery",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("writeback_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activity_id", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["mailing_recipient.id"],
            name=op.f("fk_delivery_recipient_id_mailing_recipient"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["writeback_id"],
            ["writeback.id"],
            name=op.f("fk_delivery_writeback_id_writeback"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
        sa.UniqueConstraint(
            "writeback_id", "recipient_id", name=op.f("uq_delivery_writeback_id_recipient_id")
        ),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_writeback_id_status", ["writeback_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_writeback_id_status")

    op.drop_table("delivery")
    op.drop_table("attempt")
    with op.batch_alter_table("writeback", schema=None) as batch_op:
        batch_op.drop_index("ix_writeback_status_created_at")
        batch_op.drop_index("ix_writeback_sent_at")
        batch_op.drop_index(
            "ix_writeback_open",
            postgresql_where=sa.text("status IN ('error', 'new', 'processing', 'scheduled')"),
            sqlite_where=sa.text("status IN ('error', 'new', 'processing', 'scheduled')"),
        )
        batch_op.drop_index("ix_writeback_master_customer_id")
        batch_op.drop_index("ix_writeback_mailing_id")
        batch_op.drop_index("ix_writeback_kind_created_at")
        batch_op.drop_index("ix_writeback_scheduled_for")
        batch_op.drop_index("ix_writeback_email_lower")
        batch_op.drop_index("ix_writeback_created_at")
        batch_op.drop_index("ix_writeback_attempts")
        batch_op.drop_index("ix_writeback_account_created_at")

    op.drop_table("writeback")
    with op.batch_alter_table("mailing_recipient", schema=None) as batch_op:
        batch_op.drop_index("ix_mailing_recipient_mailing_id")

    op.drop_table("mailing_recipient")
    with op.batch_alter_table("audit_event_row", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_row_writeback_id")

    op.drop_table("audit_event_row")
    op.drop_table("setting")
    with op.batch_alter_table("mailing", schema=None) as batch_op:
        batch_op.drop_index("ix_mailing_sent_at")
        batch_op.drop_index("ix_mailing_account_sent_at")

    op.drop_table("mailing")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_at")

    op.drop_table("audit_event")
