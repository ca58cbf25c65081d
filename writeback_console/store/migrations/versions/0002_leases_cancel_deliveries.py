"""Leases held by their holder, cancel as a state, one delivery per recipient, remembered outages.

- writeback: ``lease_expires_at`` (set by the holder from the database's clock), ``lease_token`` (a
  fencing token), ``interruptions``; the Cancelled status; at most one active mailing-activity row per
  mailing; ids never reused on SQLite (AUTOINCREMENT).
- attempt: ``counted`` (an outage or a first interruption uses no attempt).
- delivery: one per mailing recipient (not per queue row) with its own idempotency ``ref``.
- audit_event_row: a foreign key to its writeback. Rows the previous version deleted on cancel come
  back as Cancelled rows from the audit record, so their history stays attached to them.
- remote_health: what dispatchers know about Personify360 as a whole.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_OLD_STATUSES = "status IN ('error', 'new', 'no_remote_recipients', 'processing', 'scheduled', 'sent')"
_NEW_STATUSES = (
    "status IN ('cancelled', 'error', 'new', 'no_remote_recipients', 'processing', 'scheduled', 'sent')"
)
_ACTIVE_MAILING = "kind = 'mailing_activity' AND status IN ('error', 'new', 'processing', 'scheduled')"
#: The lease the previous version used by default: rows it left in Processing keep at least that long.
_OLD_LEASE = timedelta(seconds=900)


@contextmanager
def _reflecting() -> Iterator[None]:
    # SQLite cannot reflect the lower(email) index; the migration recreates it by hand.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        yield


def _key(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _stored(value: datetime, sqlite: bool) -> Any:
    return value.replace(tzinfo=None) if sqlite else value


def _delivery_ref() -> str:
    return "WB-" + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def upgrade() -> None:
    with _reflecting():
        _upgrade()


def downgrade() -> None:
    with _reflecting():
        _downgrade()


def _upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    now = datetime.now(UTC)

    op.create_table(
        "remote_health",
        sa.Column("service", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint("state IN ('ok', 'outage', 'auth')", name=op.f("ck_remote_health_state")),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_remote_health")),
    )

    # --- writeback ----------------------------------------------------------------------------
    op.add_column("writeback", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("writeback", sa.Column("lease_token", sa.Integer(), server_default="0", nullable=False))
    op.add_column("writeback", sa.Column("interruptions", sa.Integer(), server_default="0", nullable=False))
    op.add_column("writeback", sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True))
    writeback = sa.table(
        "writeback",
        sa.column("id", sa.Integer()),
        sa.column("ref", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("status", sa.String()),
        sa.column("mailing_id", sa.Integer()),
        sa.column("locked_at", sa.DateTime()),
        sa.column("lease_expires_at", sa.DateTime()),
        sa.column("last_error", sa.Text()),
        sa.column("updated_at", sa.DateTime()),
    )
    # Rows the previous version left in Processing keep the lease it would have given them.
    for wid, locked_at in bind.execute(
        sa.select(writeback.c.id, writeback.c.locked_at).where(writeback.c.status == "processing")
    ).all():
        expires = (_utc(locked_at) or now) + _OLD_LEASE
        bind.execute(
            sa.update(writeback)
            .where(writeback.c.id == wid)
            .values(lease_expires_at=_stored(expires, sqlite))
        )
    # One rebuild on SQLite: the new checks, and AUTOINCREMENT so that no id is ever used twice.
    with op.batch_alter_table(
        "writeback", recreate="always" if sqlite else "auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_constraint(op.f("ck_writeback_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_writeback_status"), sa.text(_NEW_STATUSES))
        batch_op.create_check_constraint(
            op.f("ck_writeback_processing_has_lease"),
            sa.text("status <> 'processing' OR lease_expires_at IS NOT NULL"),
        )
    if sqlite:
        # The rebuild cannot carry an expression index over.
        op.execute("CREATE INDEX IF NOT EXISTS ix_writeback_email_lower ON writeback (lower(email), id)")

    # A mailing with two active rows (possible before the index existed) keeps one: the one a
    # dispatcher is working on, if any, otherwise the oldest. The others are cancelled, so nothing of
    # a holder's can be written to them any more (its writes require Processing).
    active = bind.execute(
        sa.select(writeback.c.id, writeback.c.mailing_id, writeback.c.status)
        .where(sa.text(_ACTIVE_MAILING), writeback.c.mailing_id.is_not(None))
        .order_by(writeback.c.mailing_id, writeback.c.id)
    ).all()
    by_mailing: dict[int, list[Any]] = {}
    for r in active:
        by_mailing.setdefault(r.mailing_id, []).append(r)
    for mid, group in by_mailing.items():
        if len(group) < 2:
            continue
        keep_id = next((r.id for r in group if r.status == "processing"), group[0].id)
        for r in group:
            if r.id == keep_id:
                continue
            bind.execute(
                sa.update(writeback)
                .where(writeback.c.id == r.id)
                .values(
                    status="cancelled",
                    locked_at=None,
                    lease_expires_at=None,
                    last_error=(
                        f"cancelled on upgrade: mailing {mid} already had an active mailing-activity row"
                    ),
                    updated_at=_stored(now, sqlite),
                )
            )
    op.create_index(
        "uq_writeback_active_mailing",
        "writeback",
        ["mailing_id"],
        unique=True,
        postgresql_where=sa.text(_ACTIVE_MAILING),
        sqlite_where=sa.text(_ACTIVE_MAILING),
    )

    # Rows the previous version deleted when staff cancelled them come back, as Cancelled.
    restored = _restore_cancelled(bind, sqlite, now)

    # --- attempt ------------------------------------------------------------------------------
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("counted", sa.Boolean(), server_default=sa.text("true"), nullable=False)
        )
    op.execute("UPDATE attempt SET counted = false WHERE outcome = 'interrupted'")

    # --- delivery -----------------------------------------------------------------------------
    delivery = sa.table(
        "delivery",
        sa.column("id", sa.Integer()),
        sa.column("writeback_id", sa.Integer()),
        sa.column("recipient_id", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("uncertain", sa.Boolean()),
        sa.column("ref", sa.String()),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ref", _key(16), nullable=True))
    rows = bind.execute(
        sa.select(
            delivery.c.id,
            delivery.c.recipient_id,
            delivery.c.status,
            delivery.c.uncertain,
            writeback.c.ref,
        )
        .join(writeback, writeback.c.id == delivery.c.writeback_id)
        .order_by(delivery.c.recipient_id, delivery.c.id)
    ).all()
    keep: dict[int, Any] = {}

    def rank(row: Any) -> tuple[int, int, int]:
        # One delivery per recipient: the one that arrived wins, then one that may have arrived (its
        # doubt, and the reference it was written with, must survive), then the latest.
        return (row.status == "sent", bool(row.uncertain), row.id)

    for row in rows:
        best = keep.get(row.recipient_id)
        if best is None or rank(row) > rank(best):
            keep[row.recipient_id] = row
    drop = [r.id for r in rows if keep[r.recipient_id].id != r.id]
    for start in range(0, len(drop), 500):
        bind.execute(sa.delete(delivery).where(delivery.c.id.in_(drop[start : start + 500])))
    for row in keep.values():
        # An activity that arrived, or may have, carries the row's reference: keep looking for that one.
        # One known not to have arrived can take a key of its own.
        legacy = row.status == "sent" or bool(row.uncertain)
        bind.execute(
            sa.update(delivery)
            .where(delivery.c.id == row.id)
            .values(ref=row.ref if legacy else _delivery_ref())
        )
    # The previous version deleted a cancelled row's deliveries with it: what it had written is not
    # known. Each recipient it may have reached is looked for under its reference before being sent.
    recipient = sa.table(
        "mailing_recipient",
        sa.column("id", sa.Integer()),
        sa.column("mailing_id", sa.Integer()),
        sa.column("master_customer_id", sa.String()),
    )
    for wid, ref, of_mailing in restored:
        if of_mailing is None:
            continue
        have = sa.select(delivery.c.recipient_id)
        missing = bind.execute(
            sa.select(recipient.c.id).where(
                recipient.c.mailing_id == of_mailing,
                recipient.c.master_customer_id.is_not(None),
                recipient.c.id.not_in(have),
            )
        ).scalars()
        for rid in missing:
            bind.execute(
                sa.insert(
                    sa.table(
                        "delivery",
                        sa.column("writeback_id", sa.Integer()),
                        sa.column("recipient_id", sa.Integer()),
                        sa.column("ref", sa.String()),
                        sa.column("status", sa.String()),
                        sa.column("attempts", sa.Integer()),
                        sa.column("uncertain", sa.Boolean()),
                        sa.column("updated_at", sa.DateTime()),
                    )
                ).values(
                    writeback_id=wid,
                    recipient_id=rid,
                    ref=ref,
                    status="error",
                    attempts=0,
                    uncertain=True,
                    updated_at=_stored(now, sqlite),
                )
            )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.alter_column("ref", existing_type=_key(16), nullable=False)
        batch_op.drop_constraint(op.f("uq_delivery_writeback_id_recipient_id"), type_="unique")
        batch_op.create_unique_constraint(op.f("uq_delivery_recipient_id"), ["recipient_id"])
        batch_op.create_index("ix_delivery_ref", ["ref"], unique=False)

    # --- audit --------------------------------------------------------------------------------
    with op.batch_alter_table(
        "audit_event", recreate="always" if sqlite else "auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        pass
    with op.batch_alter_table("audit_event_row", schema=None) as batch_op:
        batch_op.alter_column(
            "writeback_id",
            existing_type=sa.BigInteger(),
            type_=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            existing_nullable=False,
        )
        batch_op.create_foreign_key(
            op.f("fk_audit_event_row_writeback_id_writeback"), "writeback", ["writeback_id"], ["id"]
        )
    if sqlite:
        # Deleted rows' ids stay used: the sequence starts after every id an audit entry names.
        op.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'writeback', 0 "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'writeback')"
        )
        op.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT max(id) FROM writeback), 0), "
            "coalesce((SELECT max(writeback_id) FROM audit_event_row), 0)) WHERE name = 'writeback'"
        )


def _restore_cancelled(bind: sa.Connection, sqlite: bool, now: datetime) -> list[tuple[int, str, int | None]]:
    """Give every audit entry its own row back: repoint it, or rebuild a cancelled row it describes.

    Returns the rebuilt rows (id, reference, mailing).
    """
    audit_row = sa.table(
        "audit_event_row",
        sa.column("event_id", sa.Integer()),
        sa.column("writeback_id", sa.Integer()),
        sa.column("ref", sa.String()),
    )
    audit_event = sa.table(
        "audit_event",
        sa.column("id", sa.Integer()),
        sa.column("action", sa.String()),
        sa.column("detail", sa.JSON()),
    )
    wb = sa.table("writeback", sa.column("id", sa.Integer()), sa.column("ref", sa.String()))
    orphans = bind.execute(
        sa.select(audit_row.c.event_id, audit_row.c.writeback_id, audit_row.c.ref)
        .outerjoin(wb, sa.and_(wb.c.id == audit_row.c.writeback_id, wb.c.ref == audit_row.c.ref))
        .where(wb.c.id.is_(None))
    ).all()
    restored: list[tuple[int, str, int | None]] = []
    if not orphans:
        return restored
    cancelled: dict[str, dict[str, Any]] = {}
    for (detail,) in bind.execute(sa.select(audit_event.c.detail).where(audit_event.c.action == "cancel")):
        row = (detail or {}).get("writeback") if isinstance(detail, dict) else None
        if isinstance(row, dict) and isinstance(row.get("ref"), str):
            cancelled[row["ref"]] = row
    full = sa.Table("writeback", sa.MetaData(), autoload_with=bind)
    for event_id, old_id, ref in orphans:
        found = bind.execute(sa.select(wb.c.id).where(wb.c.ref == ref)).scalar_one_or_none()
        if found is None and ref in cancelled:
            found = _insert_cancelled(bind, full, cancelled[ref], old_id, sqlite, now)
            mailing_id = cancelled[ref].get("mailing_id")
            restored.append((found, ref, mailing_id if isinstance(mailing_id, int) else None))
        if found is None:
            bind.execute(
                sa.delete(audit_row).where(
                    audit_row.c.event_id == event_id, audit_row.c.writeback_id == old_id
                )
            )
        else:
            bind.execute(
                sa.update(audit_row)
                .where(audit_row.c.event_id == event_id, audit_row.c.writeback_id == old_id)
                .values(writeback_id=found)
            )
    return restored


def _insert_cancelled(
    bind: sa.Connection, table: sa.Table, data: dict[str, Any], old_id: int, sqlite: bool, now: datetime
) -> int:
    def when(name: str) -> Any:
        value = data.get(name)
        parsed = _utc(value.replace("Z", "+00:00")) if isinstance(value, str) else None
        return _stored(parsed, sqlite) if parsed is not None else None

    taken = bind.execute(sa.select(table.c.id).where(table.c.id == old_id)).scalar_one_or_none()
    values: dict[str, Any] = {
        "ref": data["ref"],
        "kind": data.get("kind", "mailing_activity"),
        "account": data.get("account") or "Main",
        "email": data.get("email"),
        "master_customer_id": data.get("master_customer_id"),
        "sub_customer_id": data.get("sub_customer_id"),
        "mailing_id": data.get("mailing_id"),
        "payload": data.get("payload") or {},
        "occurred_at": when("occurred_at") or _stored(now, sqlite),
        "status": "cancelled",
        "attempts": int(data.get("attempts") or 0),
        "max_attempts": max(int(data.get("max_attempts") or 3), int(data.get("attempts") or 0)),
        "scheduled_for": when("scheduled_for"),
        "delivery_uncertain": bool(data.get("delivery_uncertain")),
        "last_error": data.get("last_error"),
        "created_at": when("created_at") or _stored(now, sqlite),
        "updated_at": _stored(now, sqlite),
        "lease_token": 0,
        "interruptions": 0,
    }
    if taken is None:
        values["id"] = old_id
    inserted = bind.execute(sa.insert(table).values(values).returning(table.c.id)).scalar_one()
    return int(inserted)


def _downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table("audit_event_row", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_audit_event_row_writeback_id_writeback"), type_="foreignkey")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_ref")
        batch_op.drop_constraint(op.f("uq_delivery_recipient_id"), type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_delivery_writeback_id_recipient_id"), ["writeback_id", "recipient_id"]
        )
        batch_op.drop_column("ref")
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.drop_column("counted")
    # The previous version had no Cancelled status: it deleted such rows, keeping them in the audit log.
    op.execute(
        "DELETE FROM attempt WHERE writeback_id IN (SELECT id FROM writeback WHERE status = 'cancelled')"
    )
    op.execute(
        "DELETE FROM delivery WHERE writeback_id IN (SELECT id FROM writeback WHERE status = 'cancelled')"
    )
    op.execute("DELETE FROM writeback WHERE status = 'cancelled'")
    with op.batch_alter_table("writeback", recreate="always" if sqlite else "auto") as batch_op:
        batch_op.drop_index(
            "uq_writeback_active_mailing",
            postgresql_where=sa.text(_ACTIVE_MAILING),
            sqlite_where=sa.text(_ACTIVE_MAILING),
        )
        batch_op.drop_constraint(op.f("ck_writeback_processing_has_lease"), type_="check")
        batch_op.drop_constraint(op.f("ck_writeback_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_writeback_status"), sa.text(_OLD_STATUSES))
        batch_op.drop_column("uncertain_since")
        batch_op.drop_column("interruptions")
        batch_op.drop_column("lease_token")
        batch_op.drop_column("lease_expires_at")
    if sqlite:
        op.execute("CREATE INDEX IF NOT EXISTS ix_writeback_email_lower ON writeback (lower(email), id)")
    op.drop_table("remote_health")
