"""The audit trail: who did what to which writebacks, with the filter they used."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from writeback_console.domain import AuditAction, Kind, Status
from writeback_console.store.models import AuditEvent, AuditEventRow, PrunedWriteback


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
    link_rows(session, int(event_id), rows)
    return int(event_id)


def link_rows(session: Session, event_id: int, rows: Sequence[tuple[int, str]]) -> None:
    """Link more rows to an entry already written (an import links each batch as it is added)."""
    if rows:
        session.execute(
            insert(AuditEventRow),
            [{"event_id": event_id, "writeback_id": i, "ref": r} for i, r in rows],
        )


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


def _listed(name: str, values: Any) -> str:
    chosen = [str(v) for v in values] if isinstance(values, list) else [str(values)]
    return f"{name}={chosen[0]}" if len(chosen) == 1 else f"{name} in ({', '.join(chosen)})"


def _condition(name: str, value: Any) -> str:
    """One condition of a recorded filter (``WritebackFilter.to_json``) as a person reads it."""
    if name in ("statuses", "kinds", "accounts"):
        return _listed(name[:-1] if name != "statuses" else "status", value)
    phrases = {
        "created_from": "created from {}",
        "created_to": "created before {}",
        "stuck_before": "in Processing since before {}",
        "text": 'search "{}"',
        "error_text": 'error contains "{}"',
        "mailing_id": "mailing {}",
        "retried": "retried before",
        "retry_available": "retry available",
        "reached": "reached {}",
        "reached_from": "reached from {}",
        "reached_to": "reached before {}",
        "failed_from": "an attempt failed from {}",
        "failed_to": "an attempt failed before {}",
    }
    if name in phrases:
        return phrases[name].format(value)
    return f"{name}={json.dumps(value, ensure_ascii=False)}"


def filter_words(recorded: Mapping[str, Any] | None) -> str:
    """The filter an action was taken under, e.g. ``all matching: status=error, error contains "…"``.

    "all matching" when the action was for every row matching the filter, "filter" when the rows were
    picked by hand in a list narrowed by it; empty when no filter was recorded.
    """
    if not recorded:
        return ""
    conditions = [_condition(n, v) for n, v in recorded.items() if n != "matching"]
    said = ", ".join(conditions) or "no condition (every row)"
    return f"all matching: {said}" if recorded.get("matching") else f"filter: {said}"


def detail_words(detail: Mapping[str, Any] | None) -> str:
    """What an audit entry's detail records, as ``name=value`` pairs a person reads."""
    if not detail:
        return ""
    return ", ".join(
        f"{n}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}" for n, v in detail.items()
    )


def entry_words(entry: AuditRow) -> str:
    """An audit entry's action, the filter it was taken under and its detail, on one line."""
    head = entry.action if entry.row_count == 1 else f"{entry.action} ({entry.row_count} rows)"
    said = [w for w in (filter_words(entry.filter), detail_words(entry.detail)) if w]
    return f"{head} {'; '.join(said)}" if said else head


@dataclass(frozen=True, slots=True)
class PrunedRow:
    """A writeback retention deleted, as its ``pruned_writeback`` line and its prune's audit entry say."""

    writeback_id: int
    ref: str
    kind: Kind
    status: Status
    mailing_id: int | None
    finished_at: datetime
    pruned_at: datetime
    pruned_by: str
    audit_event_id: int


def pruned_row(session: Session, key: int | str) -> PrunedRow | None:
    """The pruned writeback with this id or reference (any case), if one was pruned."""
    P = PrunedWriteback
    query = select(P, AuditEvent.at, AuditEvent.actor).join(AuditEvent, AuditEvent.id == P.audit_event_id)
    query = query.where(P.writeback_id == key if isinstance(key, int) else P.ref == key.strip().upper())
    found = session.execute(query).first()
    if found is None:
        return None
    p, at, actor = found
    return PrunedRow(
        p.writeback_id,
        p.ref,
        Kind(p.kind),
        Status(p.status),
        p.mailing_id,
        p.finished_at,
        at,
        actor,
        p.audit_event_id,
    )
