"""Retention on SQLite and PostgreSQL: which rows a prune deletes, which it never does, in batches, with
the audit kept, the totals exact and automatic scheduling not fooled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, fail, fail_runs, item, run, send, token_of
from writeback_console import operations
from writeback_console.domain import Kind, Status
from writeback_console.store import audit_trail, counters, listing, operator_actions, recording, switches
from writeback_console.store.engine import read_session, write_transaction
from writeback_console.store.models import Attempt, AuditEvent, Delivery, PrunedWriteback, WritebackEvent
from writeback_console.store.rows import NotFound, QueueError

Factory = sessionmaker[Session]
#: Every row below finished at T0; a prune "today" with 180 days finds them 200 days old.
TODAY = T0 + timedelta(days=200)
ADVISOR = "advisor"


@dataclass(frozen=True)
class Queue:
    """One writeback in every status, all of them finished or last changed at T0 or just after."""

    ids: dict[Status, int]


def _mailing_activity(factory: Factory, mailing: int, **extra: object) -> int:
    [wid] = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing, **extra))
    return wid


def _no_remote_recipients(factory: Factory, at: datetime) -> int:
    wid = _mailing_activity(factory, add_mailing(factory, remote=0, unknown=2, name="Nobody known"))
    run(factory, at)
    with write_transaction(factory) as session:
        assert recording.mark_no_remote_recipients(session, wid, token=token_of(session, wid), now=at)
    return wid


def _sent(factory: Factory, email: str, at: datetime) -> int:
    [wid] = enqueue(factory, item(email=email), now=at)
    run(factory, at)
    send(factory, wid, at + timedelta(seconds=5))
    return wid


@pytest.fixture
def queue(factory: Factory) -> Queue:
    ids: dict[Status, int] = {}
    ids[Status.DISCARDED] = enqueue(factory, item(email="discarded@example.org"))[0]
    fail_runs(factory, ids[Status.DISCARDED], 3)
    with write_transaction(factory) as session:
        operator_actions.discard(session, [ids[Status.DISCARDED]], actor=ADVISOR, reason="gone", now=T0)
    ids[Status.SENT] = _sent(factory, "sent@example.org", T0 + timedelta(hours=1))
    ids[Status.ERROR] = enqueue(factory, item(email="error@example.org"))[0]
    run(factory, T0 + timedelta(hours=2))
    fail(factory, ids[Status.ERROR], T0 + timedelta(hours=2), retry_after=timedelta(days=1))
    ids[Status.PROCESSING] = enqueue(factory, item(email="processing@example.org"))[0]
    run(factory, T0 + timedelta(hours=3))
    ids[Status.SCHEDULED] = _mailing_activity(
        factory, add_mailing(factory, remote=1, name="Later"), scheduled_for=T0 + timedelta(days=1)
    )
    cancelled = _mailing_activity(
        factory, add_mailing(factory, remote=1, name="Cancelled"), scheduled_for=T0 + timedelta(days=1)
    )
    with write_transaction(factory) as session:
        operator_actions.cancel_scheduled(session, cancelled, actor="staff", now=T0)
    ids[Status.CANCELLED] = cancelled
    ids[Status.NO_REMOTE_RECIPIENTS] = _no_remote_recipients(factory, T0 + timedelta(hours=4))
    ids[Status.NEW] = enqueue(factory, item(email="new@example.org"))[0]
    with read_session(factory) as session:
        for status, wid in ids.items():
            assert listing.get_writeback(session, wid).status is status
    return Queue(ids)


def _exists(factory: Factory, wid: int) -> bool:
    with read_session(factory) as session:
        try:
            listing.get_writeback(session, wid)
        except NotFound:
            return False
        return True


def _prune(factory: Factory, days: int = 180, **extra: object) -> operations.PruneResult:
    return operations.prune(factory, days, actor=ADVISOR, now=TODAY, **extra)  # type: ignore[arg-type]


# --- which rows ------------------------------------------------------------------------------------


def test_prune_deletes_sent_writebacks_sent_before_the_cutoff_and_keeps_later_ones(
    factory: Factory, queue: Queue
) -> None:
    recent = _sent(factory, "recent@example.org", TODAY - timedelta(days=179))
    result = _prune(factory)
    assert result.deleted == {Status.SENT: 1, Status.NO_REMOTE_RECIPIENTS: 1}
    assert not _exists(factory, queue.ids[Status.SENT])
    assert _exists(factory, recent)


def test_prune_deletes_no_remote_recipients_rows_by_when_they_became_so(factory: Factory) -> None:
    # Created long ago, finished recently: its age counts from when it became No Remote Recipients.
    mailing = add_mailing(factory, remote=0, unknown=1)
    [wid] = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing), now=T0 - timedelta(days=300))
    finished = TODAY - timedelta(days=10)
    run(factory, finished)
    with write_transaction(factory) as session:
        assert recording.mark_no_remote_recipients(session, wid, token=token_of(session, wid), now=finished)
    assert _prune(factory).total == 0 and _exists(factory, wid)
    assert operations.prune(factory, 7, actor=ADVISOR, now=TODAY).deleted == {Status.NO_REMOTE_RECIPIENTS: 1}
    assert not _exists(factory, wid)


def test_prune_never_deletes_error_rows(factory: Factory, queue: Queue) -> None:
    _prune(factory)
    assert _exists(factory, queue.ids[Status.ERROR])


def test_prune_never_deletes_new_rows(factory: Factory, queue: Queue) -> None:
    _prune(factory)
    assert _exists(factory, queue.ids[Status.NEW])


def test_prune_never_deletes_scheduled_rows(factory: Factory, queue: Queue) -> None:
    _prune(factory)
    assert _exists(factory, queue.ids[Status.SCHEDULED])


def test_prune_never_deletes_processing_rows(factory: Factory, queue: Queue) -> None:
    _prune(factory)
    assert _exists(factory, queue.ids[Status.PROCESSING])


def test_prune_keeps_cancelled_rows_which_automatic_scheduling_relies_on(
    factory: Factory, queue: Queue
) -> None:
    _prune(factory)
    assert _exists(factory, queue.ids[Status.CANCELLED])


def test_prune_keeps_discarded_rows_which_a_manual_retry_can_still_undo(
    factory: Factory, queue: Queue
) -> None:
    _prune(factory)
    assert _exists(factory, queue.ids[Status.DISCARDED])


def test_prune_keeps_mailing_activity_whose_deliveries_record_what_each_recipient_got(
    factory: Factory,
) -> None:
    mailing = add_mailing(factory, remote=2)
    wid = _mailing_activity(factory, mailing)
    run(factory, T0)
    with write_transaction(factory) as session:
        from writeback_console.store import deliveries

        deliveries.prepare_deliveries(session, wid, mailing, now=T0)
        session.execute(text("UPDATE delivery SET status = 'sent', sent_at = :t"), {"t": T0})
    send(factory, wid, T0)
    assert operations.preview_prune(factory, 180, now=TODAY).total == 0
    assert _prune(factory).total == 0 and _exists(factory, wid)
    with read_session(factory) as session:
        assert session.execute(select(func.count()).select_from(Delivery)).scalar_one() == 2


def test_prune_refuses_an_age_under_seven_days(factory: Factory, queue: Queue) -> None:
    with pytest.raises(QueueError, match="shorter than the 7 days"):
        operations.prune(factory, 6, actor=ADVISOR, now=TODAY)
    assert _exists(factory, queue.ids[Status.SENT])


# --- what goes with them, and what stays -----------------------------------------------------------


def _count(factory: Factory, model: type, **where: int) -> int:
    with read_session(factory) as session:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return int(session.execute(query).scalar_one())


def test_prune_takes_the_attempts_and_history_of_pruned_rows_and_keeps_those_of_kept_rows(
    factory: Factory, queue: Queue
) -> None:
    sent, error = queue.ids[Status.SENT], queue.ids[Status.ERROR]
    assert _count(factory, Attempt, writeback_id=sent) == 1
    _prune(factory)
    assert _count(factory, Attempt, writeback_id=sent) == 0
    assert _count(factory, WritebackEvent, writeback_id=sent) == 0
    assert _count(factory, Attempt, writeback_id=error) == 1
    assert _count(factory, WritebackEvent, writeback_id=error) == 3


def test_prune_keeps_every_audit_entry_and_says_what_the_pruned_row_was(factory: Factory) -> None:
    [wid] = enqueue(factory, item(email="audited@example.org"))
    ref = fail_and_retry_then_send(factory, wid)
    with read_session(factory) as session:
        before = audit_trail.audit_of(session, wid)
    assert [e.action for e in before] == ["retry"]
    result = _prune(factory)
    assert result.total == 1
    with read_session(factory) as session:
        assert audit_trail.audit_of(session, wid) == before
        pruned = audit_trail.pruned_row(session, ref.lower())
        assert audit_trail.pruned_row(session, wid) == pruned
        [event] = session.execute(
            select(AuditEvent.id, AuditEvent.row_count, AuditEvent.detail).where(AuditEvent.action == "prune")
        ).all()
    assert pruned is not None
    assert (pruned.ref, pruned.kind, pruned.status) == (ref, Kind.UNSUBSCRIBE, Status.SENT)
    assert (pruned.pruned_by, pruned.pruned_at, pruned.audit_event_id) == (ADVISOR, TODAY, event.id)
    assert event.row_count == 1
    assert event.detail == {
        "older_than_days": 180,
        "cutoff": (TODAY - timedelta(days=180)).isoformat(),
        "sent": 1,
    }


def fail_and_retry_then_send(factory: Factory, wid: int) -> str:
    at = fail_runs(factory, wid, 3)
    with write_transaction(factory) as session:
        [(_id, ref)] = operator_actions.manual_retry(session, [wid], actor=ADVISOR, now=at).retried
    run(factory, at + timedelta(minutes=10))
    send(factory, wid, at + timedelta(minutes=11))
    return ref


def test_ids_of_pruned_rows_are_never_given_to_new_ones(factory: Factory, queue: Queue) -> None:
    newest = max(queue.ids.values())
    _sent(factory, "last@example.org", T0 + timedelta(hours=5))
    _prune(factory)
    [fresh] = enqueue(factory, item(email="fresh@example.org"))
    with read_session(factory) as session:
        pruned_ids = set(session.scalars(select(PrunedWriteback.writeback_id)))
    assert fresh > newest + 1 and fresh not in pruned_ids


# --- batches and totals ----------------------------------------------------------------------------


def test_prune_deletes_in_batches_each_its_own_audited_transaction(factory: Factory) -> None:
    for n in range(7):
        _sent(factory, f"p{n}@example.org", T0 + timedelta(minutes=n))
    seen: list[int] = []
    result = _prune(factory, batch_size=3, on_batch=lambda p: seen.append(p.total))
    assert result.total == 7 and result.batches == 3 and seen == [3, 6, 7]
    with read_session(factory) as session:
        counts = session.scalars(select(AuditEvent.row_count).where(AuditEvent.action == "prune")).all()
    assert sorted(counts) == [1, 3, 3] and len(result.audit_event_ids) == 3


def test_a_stopped_prune_keeps_what_it_did_and_leaves_the_rest(factory: Factory) -> None:
    for n in range(5):
        _sent(factory, f"p{n}@example.org", T0 + timedelta(minutes=n))
    batches: list[int] = []
    result = _prune(
        factory, batch_size=2, on_batch=lambda p: batches.append(p.total), should_stop=lambda: bool(batches)
    )
    assert result.total == 2 and result.more_left
    assert operations.preview_prune(factory, 180, now=TODAY).counts[Status.SENT] == 3


def test_the_status_totals_stay_exact_after_a_prune(factory: Factory, queue: Queue) -> None:
    for n in range(5):
        _sent(factory, f"p{n}@example.org", T0 + timedelta(minutes=n))
    _prune(factory, batch_size=2)
    with read_session(factory) as session:
        kept = counters.totals(session)
        real = dict.fromkeys(Status, 0)
        for status, n in session.execute(text("SELECT status, count(*) FROM writeback GROUP BY status")):
            real[Status(status)] = int(n)
        assert counters.pending_deltas(session) == 0
    assert kept == real and real[Status.SENT] == 0 and real[Status.ERROR] == 1


def test_the_preview_counts_what_a_prune_would_delete_and_changes_nothing(
    factory: Factory, queue: Queue
) -> None:
    preview = operations.preview_prune(factory, 180, now=TODAY)
    assert preview.counts == {Status.SENT: 1, Status.NO_REMOTE_RECIPIENTS: 1}
    assert preview.cutoff == TODAY - timedelta(days=180) and not preview.capped
    assert _exists(factory, queue.ids[Status.SENT])
    assert operations.preview_prune(factory, 365, now=TODAY).total == 0


# --- automatic scheduling ------------------------------------------------------------------------


def test_automatic_scheduling_does_not_give_a_pruned_mailing_activity_back(factory: Factory) -> None:
    with write_transaction(factory) as session:
        switches.set_setting(
            session, switches.AUTO_MAILING_ACTIVITY_DAYS, 0, actor="staff", now=T0 - timedelta(days=1)
        )
    wid = _no_remote_recipients(factory, T0)
    assert _prune(factory).deleted == {Status.NO_REMOTE_RECIPIENTS: 1}
    with write_transaction(factory) as session:
        assert operator_actions.auto_schedule_mailings(session, now=TODAY, actor="dispatcher") == []
    assert not _exists(factory, wid)


def test_a_pruned_rows_reference_is_never_queued_again(factory: Factory, queue: Queue) -> None:
    # Importing an old file a second time must not write its writebacks to Personify360 again.
    with read_session(factory) as session:
        ref = listing.get_writeback(session, queue.ids[Status.SENT]).ref
    _prune(factory)
    with pytest.raises(QueueError, match=f"reference {ref} is already in use"):
        enqueue(factory, item(email="sent@example.org", ref=ref))
