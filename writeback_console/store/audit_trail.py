"""The audit trail: who did what to which writebacks, with the filter they used."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from writeback_console.domain import AuditAction
from writeback_console.store.models import AuditEvent, AuditEventRow


def record_audit(
    session: Session,
    *,
    actor: str,
    action: AuditAction,
    rows: Sequence[tuple[int, str]],
    now: datetime,
    filter: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
    row_count: int | None = None,
) -> int:
    """Write who did what to which rows; ``row_count`` for bulk actions that link no rows one by one."""
    event_id = session.execute(
        insert(AuditEvent)
        .values(
            at=now,
            actor=actor,
            action=AuditAction(action).value,
            row_count=len(rows) if row_count is None else row_count,
            filter=dict(filter) if filter is not None else None,
            detail=dict(detail) if detail is not None else None,
        )
        .returning(AuditEvent.id)
    ).scalar_one()
    if rows:
        session.execute(
            insert(AuditEventRow),
            [{"event_id": event_id, "writeback_id": i, "ref": r} for i, r in rows],
        )
    return int(event_id)


@dataclass(frozen=True, slots=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    row_count: int
    filter: Mapping[str, Any] | None
    detail: Mapping[str, Any] | None


def audit_of(session: Session, writeback_id: int) -> list[AuditRow]:
    query = (
        select(AuditEvent)
        .join(AuditEventRow, AuditEventRow.event_id == AuditEvent.id)
        .where(AuditEventRow.writeback_id == writeback_id)
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    return [
        AuditRow(e.at, e.actor, e.action, e.row_count, e.filter, e.detail) for e in session.scalars(query)
    ]
