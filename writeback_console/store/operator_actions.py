"""What people do to the queue: manual retry, discarding, scheduling and rescheduling mailing activity,
cancelling, and the automatic scheduling of mailing activity. Each records its audit entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from writeback_console.domain import (
    AuditAction,
    Kind,
    QueueState,
    RetryDecision,
    Status,
    discard_decision,
    discard_reason_problem,
    manual_retry_decision,
    utcnow,
)
from writeback_console.intake import WritebackInput
from writeback_console.store.audit_trail import record_audit
from writeback_console.store.lifecycle import enqueue
from writeback_console.store.listing import get_writeback
from writeback_console.store.models import ACTIVE_MAILING_STATUSES, Mailing, Setting, Writeback
from writeback_console.store.retention import pruned_mailing_ids
from writeback_console.store.rows import (
    DiscardRefused,
    NotFound,
    QueueError,
    Refusal,
    RetryRefused,
    RowsRefused,
    W,
    WritebackRow,
    chunks,
    rows_changed,
)
from writeback_console.store.switches import ALL_ACCOUNTS, AUTO_MAILING_ACTIVITY_DAYS


def _states(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, QueueState]]:
    found: dict[int, tuple[str, QueueState]] = {}
    for batch in chunks(list(ids)):
        for r in session.execute(
            select(
                W.id, W.ref, W.status, W.attempts, W.max_attempts, W.scheduled_for, W.next_attempt_at
            ).where(W.id.in_(batch))
        ):
            found[r.id] = (
                r.ref,
                QueueState(Status(r.status), r.attempts, r.max_attempts, r.scheduled_for, r.next_attempt_at),
            )
    return found


@dataclass(frozen=True, slots=True)
class RetryResult:
    retried: list[tuple[int, str]]
    skipped: list[Refusal]
    audit_event_id: int | None


def manual_retry(
    session: Session,
    ids: Sequence[int],
    *,
    actor: str,
    now: datetime | None = None,
    filter: Mapping[str, Any] | None = None,
    skip_ineligible: bool = False,
) -> RetryResult:
    """Grant exactly one more attempt to Error rows whose automatic retries are used up, and to
    Discarded rows (which undoes the discard).

    Rows that may not be retried are refused with the reason; unless ``skip_ineligible``, one such row
    refuses the whole request and nothing changes. The attempt history stays as it was.
    """
    changed, skipped, event = _act_on(
        session,
        ids,
        decide=manual_retry_decision,
        # The condition is repeated in SQL so that a row a dispatcher changed meanwhile is not touched.
        still=or_(
            and_(W.status == Status.ERROR.value, W.attempts >= W.max_attempts),
            W.status == Status.DISCARDED.value,
        ),
        values={"status": Status.NEW.value, "max_attempts": W.attempts + 1, "next_attempt_at": None},
        lost_reason="changed by someone else meanwhile",
        refused=RetryRefused,
        action=AuditAction.RETRY,
        detail={"granted_attempts": 1},
        actor=actor,
        now=now or utcnow(),
        filter=filter,
        skip_ineligible=skip_ineligible,
    )
    return RetryResult(changed, skipped, event)


def _act_on(
    session: Session,
    ids: Sequence[int],
    *,
    decide: Callable[[QueueState], RetryDecision],
    still: ColumnElement[bool],
    values: Mapping[str, Any],
    lost_reason: str,
    refused: type[RowsRefused],
    action: AuditAction,
    detail: Mapping[str, Any],
    actor: str,
    now: datetime,
    filter: Mapping[str, Any] | None,
    skip_ineligible: bool,
) -> tuple[list[tuple[int, str]], list[Refusal], int | None]:
    """A person's action on rows: each judged by ``decide``, changed where ``still`` holds, audited.

    A row ``decide`` refuses, or one that changed meanwhile (``still`` no longer true), refuses the whole
    action with ``refused`` unless ``skip_ineligible``: then it is skipped and named in the result.
    """
    wanted = list(dict.fromkeys(ids))
    states = _states(session, wanted)
    refusals = [Refusal(i, f"#{i}", "no such writeback") for i in wanted if i not in states]
    allowed: list[tuple[int, str]] = []
    for i in wanted:
        if i not in states:
            continue
        ref, state = states[i]
        decision = decide(state)
        if decision.allowed:
            allowed.append((i, ref))
        else:
            refusals.append(Refusal(i, ref, decision.reason))
    if refusals and not skip_ineligible:
        raise refused(refusals)
    refs = dict(allowed)
    changed: list[tuple[int, str]] = []
    for batch in chunks([i for i, _ in allowed]):
        changed_ids = (
            session.execute(
                update(Writeback)
                .where(W.id.in_(batch), still)
                .values(**values, updated_at=now, changed_by=actor)
                .returning(W.id)
            )
            .scalars()
            .all()
        )
        changed.extend((i, refs[i]) for i in sorted(changed_ids))
    changed_set = set(changed)
    lost = [Refusal(i, r, lost_reason) for i, r in allowed if (i, r) not in changed_set]
    if lost and not skip_ineligible:
        raise refused(lost)
    event = None
    if changed:
        event = record_audit(
            session, actor=actor, action=action, rows=changed, now=now, filter=filter, detail=dict(detail)
        )
    return changed, refusals + lost, event


@dataclass(frozen=True, slots=True)
class DiscardResult:
    discarded: list[tuple[int, str]]
    skipped: list[Refusal]
    audit_event_id: int | None


def discard(
    session: Session,
    ids: Sequence[int],
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
    filter: Mapping[str, Any] | None = None,
    skip_ineligible: bool = False,
) -> DiscardResult:
    """Stop retrying Error rows: they become Discarded, with the reason, until a person retries them.

    The attempts and their history stay as they were. Rows that may not be discarded are refused with
    the reason; unless ``skip_ineligible``, one such row refuses the whole request and nothing changes.
    The reason is kept in the audit entry, which the row's timeline shows beside the change.
    """
    problem = discard_reason_problem(reason)
    if problem:
        raise QueueError(problem)
    reason = reason.strip()
    changed, skipped, event = _act_on(
        session,
        ids,
        decide=discard_decision,
        # Only rows still in Error: one a dispatcher claimed meanwhile is being sent and is left alone.
        still=W.status == Status.ERROR.value,
        values={"status": Status.DISCARDED.value},
        lost_reason="picked up by a dispatcher meanwhile",
        refused=DiscardRefused,
        action=AuditAction.DISCARD,
        detail={"reason": reason},
        actor=actor,
        now=now or utcnow(),
        filter=filter,
        skip_ineligible=skip_ineligible,
    )
    return DiscardResult(changed, skipped, event)


def schedule_mailing_activity(
    session: Session,
    mailing_id: int,
    *,
    at: datetime | None,
    actor: str,
    now: datetime | None = None,
) -> WritebackRow:
    """Queue the mailing activity of a mailing: at the next run (``at`` None) or at a future time."""
    now = now or utcnow()
    mailing = session.get(Mailing, mailing_id)
    if mailing is None:
        raise NotFound(f"no mailing with id {mailing_id}")
    if at is not None and at <= now:
        raise QueueError(f"the time {at.isoformat()} has already passed; choose a time in the future")
    existing = session.execute(
        select(W.ref, W.status)
        .where(
            W.mailing_id == mailing_id,
            W.kind == Kind.MAILING_ACTIVITY.value,
            W.status.in_([s.value for s in (*ACTIVE_MAILING_STATUSES, Status.SENT)]),
        )
        .order_by(W.id.desc())
    ).first()
    if existing is not None:
        what = "retry" if Status(existing.status) in (Status.ERROR, Status.DISCARDED) else "reschedule"
        raise QueueError(
            f"mailing {mailing_id} already has mailing activity {existing.ref} "
            f"({Status(existing.status).label}); {what} that one instead"
            if Status(existing.status) is not Status.SENT
            else f"the mailing activity of mailing {mailing_id} was already sent ({existing.ref})"
        )
    item = WritebackInput(
        kind=Kind.MAILING_ACTIVITY,
        account=mailing.account,
        occurred_at=mailing.sent_at or now,
        mailing_id=mailing_id,
        scheduled_for=at,
        payload={"mailing_name": mailing.name},
    )
    try:
        # The database holds the line too: a second active row for one mailing is refused.
        with session.begin_nested():
            row = enqueue(session, item, now=now, actor=actor)
    except IntegrityError:
        raise QueueError(
            f"mailing {mailing_id} was given mailing activity by someone else at the same moment"
        ) from None
    record_audit(
        session,
        actor=actor,
        action=AuditAction.SCHEDULE if at else AuditAction.SEND_NOW,
        rows=[(row.id, row.ref)],
        now=now,
        detail={"mailing_id": mailing_id, "scheduled_for": at.isoformat() if at else None},
    )
    return row


def _mailing_activity_row(session: Session, writeback_id: int) -> WritebackRow:
    row = get_writeback(session, writeback_id)
    if row.kind is not Kind.MAILING_ACTIVITY:
        raise QueueError(f"{row.ref} is {row.kind.label}; only Mailing Activity can be scheduled")
    return row


def reschedule(
    session: Session, writeback_id: int, *, at: datetime | None, actor: str, now: datetime | None = None
) -> WritebackRow:
    """Move a waiting mailing activity to another time (``at`` None: send at the next run)."""
    now = now or utcnow()
    row = _mailing_activity_row(session, writeback_id)
    if row.status not in (Status.SCHEDULED, Status.NEW):
        raise QueueError(f"{row.ref} is {row.status.label}; only Scheduled or New rows can be rescheduled")
    if at is not None and at <= now:
        raise QueueError(f"the time {at.isoformat()} has already passed; choose a time in the future")
    status = Status.SCHEDULED if at is not None else Status.NEW
    detail = {
        "from": row.scheduled_for.isoformat() if row.scheduled_for else None,
        "to": at.isoformat() if at else None,
    }
    return _move(
        session, row, AuditAction.RESCHEDULE, detail, now=now, actor=actor, status=status, scheduled_for=at
    )


def cancel_scheduled(
    session: Session, writeback_id: int, *, actor: str, now: datetime | None = None
) -> WritebackRow:
    """Withdraw a Scheduled mailing activity before it goes out: it stays, as Cancelled, for good.

    Cancelled is a recorded state, never a delete: the row keeps its reference, its history and its
    recipients' deliveries, so automatic scheduling does not make the mailing's activity again, and if
    staff schedule it anew, recipients that already have their activity are not written twice.
    """
    now = now or utcnow()
    row = _mailing_activity_row(session, writeback_id)
    if row.status is not Status.SCHEDULED:
        raise QueueError(f"{row.ref} is {row.status.label}; only Scheduled rows can be cancelled")
    detail = {
        "mailing_id": row.mailing_id,
        "scheduled_for": row.scheduled_for.isoformat() if row.scheduled_for else None,
    }
    return _move(session, row, AuditAction.CANCEL, detail, now=now, actor=actor, status=Status.CANCELLED)


def _move(
    session: Session,
    row: WritebackRow,
    action: AuditAction,
    detail: Mapping[str, Any],
    *,
    now: datetime,
    actor: str,
    status: Status,
    **values: Any,
) -> WritebackRow:
    """Change a waiting row's status (and ``values``' columns) if it still has the status it was read
    with, and audit it; a dispatcher that claimed it meanwhile makes this a refusal."""
    done = rows_changed(
        session.execute(
            update(Writeback)
            .where(W.id == row.id, W.status == row.status.value)
            .values(status=status.value, updated_at=now, changed_by=actor, **values)
        )
    )
    if not done:
        raise QueueError(f"{row.ref} was picked up by a dispatcher meanwhile")
    record_audit(session, actor=actor, action=action, rows=[(row.id, row.ref)], now=now, detail=detail)
    return get_writeback(session, row.id)


def scheduled_activity_of(session: Session, mailing_id: int) -> int | None:
    """The id of the mailing's Scheduled mailing activity, if it has one."""
    return session.execute(
        select(W.id).where(
            W.mailing_id == mailing_id,
            W.kind == Kind.MAILING_ACTIVITY.value,
            W.status == Status.SCHEDULED.value,
        )
    ).scalar_one_or_none()


def auto_schedule_mailings(session: Session, *, now: datetime, actor: str) -> list[int]:
    """Scheduled mailing activity for mailings sent since automatic scheduling was switched on.

    The account setting says how many days after a mailing is sent its activity goes out; mailings
    created before the setting was turned on are left alone, so switching it on never floods the queue.
    A mailing that has mailing activity in any state — Cancelled included — is never given another:
    what staff cancelled stays cancelled; nor one whose activity retention pruned.
    """
    settings = session.scalars(select(Setting).where(Setting.key == AUTO_MAILING_ACTIVITY_DAYS)).all()
    by_account = {
        s.account: s for s in settings if isinstance(s.value, int) and not isinstance(s.value, bool)
    }
    if not by_account:
        return []
    has_activity = select(W.mailing_id).where(
        W.kind == Kind.MAILING_ACTIVITY.value, W.mailing_id.is_not(None)
    )
    candidates = session.execute(
        select(Mailing.id, Mailing.account, Mailing.name, Mailing.sent_at, Mailing.created_at).where(
            Mailing.sent_at.is_not(None),
            Mailing.id.not_in(has_activity),
            Mailing.id.not_in(pruned_mailing_ids()),
        )
    ).all()
    created: list[int] = []
    for m in candidates:
        setting = by_account.get(m.account) or by_account.get(ALL_ACCOUNTS)
        if setting is None or m.created_at < setting.updated_at:
            continue
        due = m.sent_at + timedelta(days=setting.value)
        item = WritebackInput(
            kind=Kind.MAILING_ACTIVITY,
            account=m.account,
            occurred_at=m.sent_at,
            mailing_id=m.id,
            scheduled_for=max(due, now),
            payload={"mailing_name": m.name},
        )
        try:
            # Another dispatcher or a person may schedule the same mailing at this moment; the
            # database keeps one, and this one is skipped.
            with session.begin_nested():
                row = enqueue(session, item, now=now, actor=actor)
        except IntegrityError:
            continue
        created.append(row.id)
        record_audit(
            session,
            actor=actor,
            action=AuditAction.AUTO_SCHEDULE,
            rows=[(row.id, row.ref)],
            now=now,
            detail={
                "mailing_id": m.id,
                "days_after_sent": setting.value,
                "scheduled_for": item.scheduled_for.isoformat() if item.scheduled_for else None,
            },
        )
    return created
