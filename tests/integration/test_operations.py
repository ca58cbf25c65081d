"""The operations both front ends call: each one transaction, audited, refusing with nothing changed."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import add_mailing, enqueue, fail_runs, item, row
from writeback_console import operations
from writeback_console.domain import AuditAction, Kind, Status, utcnow
from writeback_console.settings import AppSettings, PasswordStore, load_settings
from writeback_console.store import audit_trail, listing, switches
from writeback_console.store.models import AuditEvent
from writeback_console.store.rows import DiscardRefused, QueueError, RetryRefused

Factory = sessionmaker[Session]
ACTOR = "advisor.one"


def audit_actions(factory: Factory, writeback_id: int) -> list[tuple[str, str]]:
    with factory() as session:
        return [(e.actor, e.action) for e in audit_trail.audit_of(session, writeback_id)]


def audit_count(factory: Factory) -> int:
    with factory() as session:
        return int(session.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def exhausted(factory: Factory, email: str = "ann@example.org") -> int:
    """An Error row whose three automatic attempts are used up."""
    [wid] = enqueue(factory, item(email=email))
    fail_runs(factory, wid, 3)
    assert row(factory, wid).status is Status.ERROR and row(factory, wid).attempts == 3
    return wid


def test_enqueue_by_hand_is_audited_with_the_person(factory: Factory) -> None:
    queued = operations.enqueue(factory, item(), actor=ACTOR)
    assert queued.status is Status.NEW
    assert audit_actions(factory, queued.id) == [(ACTOR, AuditAction.ENQUEUE.value)]


def test_retry_grants_one_attempt_and_records_who(factory: Factory) -> None:
    wid = exhausted(factory)
    result = operations.retry(factory, [wid], actor=ACTOR)
    assert [i for i, _ in result.retried] == [wid]
    assert row(factory, wid).max_attempts == 4
    assert (ACTOR, AuditAction.RETRY.value) in audit_actions(factory, wid)


def test_retry_with_one_ineligible_row_changes_nothing_unless_asked_to_skip(factory: Factory) -> None:
    wid = exhausted(factory)
    [fresh] = enqueue(factory, item(email="bob@example.org"))
    before = audit_count(factory)
    with pytest.raises(RetryRefused):
        operations.retry(factory, [wid, fresh], actor=ACTOR)
    assert row(factory, wid).max_attempts == 3 and audit_count(factory) == before
    result = operations.retry(factory, [wid, fresh], actor=ACTOR, skip_ineligible=True)
    assert [i for i, _ in result.retried] == [wid]
    assert [r.id for r in result.skipped] == [fresh]


def test_retry_matching_takes_only_retryable_rows_of_the_filter_and_records_it(factory: Factory) -> None:
    ann, bob = exhausted(factory, "ann@example.org"), exhausted(factory, "bob@example.org")
    enqueue(factory, item(email="ann.new@example.org"))
    flt = listing.WritebackFilter(text="ann")
    result = operations.retry_matching(factory, flt, actor=ACTOR)
    assert [i for i, _ in result.retried] == [ann]
    assert row(factory, bob).max_attempts == 3
    with factory() as session:
        [entry] = [e for e in audit_trail.audit_of(session, ann) if e.action == AuditAction.RETRY.value]
    assert entry.filter is not None and entry.filter["text"] == "ann"
    with pytest.raises(QueueError, match="no row matching the filter can be retried now"):
        operations.retry_matching(factory, listing.WritebackFilter(text="nobody"), actor=ACTOR)


def test_scheduling_tells_the_recipients_and_rescheduling_moves_the_same_row(factory: Factory) -> None:
    mailing = add_mailing(factory, remote=3, unknown=2)
    at = utcnow() + timedelta(days=1)
    done = operations.schedule_mailing_activity(factory, mailing, at=at, actor=ACTOR)
    assert (done.recipients, done.remote_recipients) == (5, 3)
    assert done.row.status is Status.SCHEDULED and done.row.kind is Kind.MAILING_ACTIVITY
    later = at + timedelta(hours=2)
    moved = operations.reschedule(factory, done.row.id, at=later, actor=ACTOR)
    assert moved.id == done.row.id and moved.status is Status.SCHEDULED and moved.scheduled_for == later
    actions = [a for _, a in audit_actions(factory, done.row.id)]
    assert actions == [AuditAction.SCHEDULE.value, AuditAction.RESCHEDULE.value]


def test_send_now_brings_a_scheduled_activity_forward_instead_of_making_a_second(factory: Factory) -> None:
    mailing = add_mailing(factory, remote=2)
    scheduled = operations.schedule_mailing_activity(
        factory, mailing, at=utcnow() + timedelta(days=3), actor=ACTOR
    ).row
    now = operations.send_mailing_activity_now(factory, mailing, actor=ACTOR)
    assert now.id == scheduled.id and now.status is Status.NEW and now.scheduled_for is None
    other = add_mailing(factory, remote=1, name="Other")
    fresh = operations.send_mailing_activity_now(factory, other, actor=ACTOR)
    assert fresh.mailing_id == other and fresh.status is Status.NEW
    assert audit_actions(factory, fresh.id) == [(ACTOR, AuditAction.SEND_NOW.value)]


def test_cancel_keeps_the_row_as_cancelled_and_refuses_a_second_time(factory: Factory) -> None:
    mailing = add_mailing(factory, remote=1)
    scheduled = operations.schedule_mailing_activity(
        factory, mailing, at=utcnow() + timedelta(days=1), actor=ACTOR
    ).row
    assert operations.cancel(factory, scheduled.id, actor=ACTOR).status is Status.CANCELLED
    before = audit_count(factory)
    with pytest.raises(QueueError, match="only Scheduled rows can be cancelled"):
        operations.cancel(factory, scheduled.id, actor=ACTOR)
    assert audit_count(factory) == before and row(factory, scheduled.id).status is Status.CANCELLED


def test_account_switches_are_changed_together_or_not_at_all(factory: Factory) -> None:
    assert operations.account_switches(factory) == operations.AccountSwitches(True, None)
    changes = {switches.WRITEBACK_ENABLED: False, switches.AUTO_MAILING_ACTIVITY_DAYS: 7}
    operations.set_account_switches(factory, changes, actor=ACTOR)
    assert operations.account_switches(factory) == operations.AccountSwitches(False, 7)
    for bad, words in (
        ({switches.WRITEBACK_ENABLED: True, switches.AUTO_MAILING_ACTIVITY_DAYS: 366}, "from 0 to 365"),
        ({switches.WRITEBACK_ENABLED: True, switches.AUTO_MAILING_ACTIVITY_DAYS: True}, "not True"),
        ({switches.WRITEBACK_ENABLED: "yes"}, "on or off"),
        ({switches.WRITEBACK_ENABLED: True, "colour": "red"}, "no account switch called colour"),
    ):
        with pytest.raises(QueueError, match=words):
            operations.set_account_switches(factory, bad, actor=ACTOR)
        assert operations.account_switches(factory) == operations.AccountSwitches(False, 7)


def test_saving_settings_keeps_the_password_when_only_the_url_changes(
    factory: Factory, tmp_path: Path
) -> None:
    store = PasswordStore(tmp_path / "secrets.json", use_keyring=False)
    path = tmp_path / "settings.json"
    first = AppSettings(service_root_url="https://p360.example.org/odata", user="svc")
    operations.save_all_settings(
        operations.SettingsChange(first, "s3cret"), store=store, path=path, actor=ACTOR
    )
    moved = AppSettings(service_root_url="https://p360-new.example.org/odata", user="svc", concurrency=8)
    change = operations.SettingsChange(
        moved,
        previous=(first.service_root_url, first.user),
        account_changes={switches.WRITEBACK_ENABLED: False},
    )
    with pytest.raises(ValueError, match="kept in the database"):
        operations.save_all_settings(change, store=store, path=path, actor=ACTOR)
    assert load_settings(path, environ={}) == first  # nothing of a refused save was kept
    operations.save_all_settings(change, store=store, path=path, actor=ACTOR, factory=factory)
    assert load_settings(path, environ={}) == moved
    assert store.get(moved.service_root_url, "svc", environ={}) == "s3cret"
    assert operations.account_switches(factory).writeback_enabled is False


def test_export_writes_the_list_in_its_order_and_a_cancel_keeps_the_older_file(
    factory: Factory, tmp_path: Path
) -> None:
    enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(5)))
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "out.csv"
    assert operations.export_csv(factory, listing.WritebackFilter(), target, sort="id", descending=False) == 5
    with target.open(newline="", encoding="utf-8-sig") as f:
        emails = [r["email"] for r in csv.DictReader(f)]
    assert emails == [f"p{n}@example.org" for n in range(5)]
    kept = target.read_bytes()
    progress = operations.ExportProgress()
    progress.cancel_requested.set()
    with pytest.raises(operations.ExportCancelled):
        operations.export_csv(factory, listing.WritebackFilter(), target, progress=progress)
    assert target.read_bytes() == kept
    assert sorted(p.name for p in folder.iterdir()) == ["out.csv"]


def test_discard_is_one_audited_action_with_its_reason(factory: Factory) -> None:
    wid = exhausted(factory)
    result = operations.discard(factory, [wid], actor=ACTOR, reason="duplicate of WB-1")
    assert [i for i, _ in result.discarded] == [wid]
    assert row(factory, wid).status is Status.DISCARDED
    with factory() as session:
        [entry] = [e for e in audit_trail.audit_of(session, wid) if e.action == AuditAction.DISCARD.value]
    assert (entry.actor, entry.detail) == (ACTOR, {"reason": "duplicate of WB-1"})


def test_discard_refused_for_one_row_changes_none(factory: Factory) -> None:
    wid = exhausted(factory)
    [fresh] = enqueue(factory, item(email="bob@example.org"))
    before = audit_count(factory)
    with pytest.raises(DiscardRefused, match="1 row cannot be discarded"):
        operations.discard(factory, [wid, fresh], actor=ACTOR, reason="no longer wanted")
    assert row(factory, wid).status is Status.ERROR and audit_count(factory) == before


def test_acting_on_all_matching_goes_in_batches_each_audited_with_the_filter(factory: Factory) -> None:
    ids = [exhausted(factory, f"ann{n}@example.org") for n in range(5)]
    other = exhausted(factory, "bob@example.org")
    flt = listing.WritebackFilter(text="ann")
    assert operations.preview_matching(factory, flt, "retry").count == 5
    progress = operations.BulkProgress()
    done = operations.act_on_matching(factory, flt, "retry", actor=ACTOR, progress=progress, batch_size=2)
    assert (done.changed, done.skipped, done.batches, done.cancelled) == (5, 0, 3, False)
    assert (progress.total, progress.done) == (5, 5)
    assert (
        all(row(factory, i).status is Status.NEW for i in ids) and row(factory, other).status is Status.ERROR
    )
    with factory() as session:
        entries = session.scalars(select(AuditEvent).where(AuditEvent.id.in_(done.audit_event_ids))).all()
    assert [e.row_count for e in entries] == [2, 2, 1]
    assert all(e.filter == {"text": "ann", "matching": True} for e in entries)


def test_acting_on_all_matching_stops_between_batches_when_cancelled_and_keeps_what_was_done(
    factory: Factory,
) -> None:
    ids = [exhausted(factory, f"ann{n}@example.org") for n in range(4)]
    # The person presses Cancel while the first batch is being done.
    done = operations.act_on_matching(
        factory,
        listing.WritebackFilter(text="ann"),
        "discard",
        actor=ACTOR,
        reason="stop these",
        batch_size=3,
        on_batch=lambda progress: progress.cancel_requested.set(),
    )
    assert (done.changed, done.batches, done.cancelled) == (3, 1, True)
    assert [row(factory, i).status for i in ids] == [Status.DISCARDED] * 3 + [Status.ERROR]


def test_acting_on_all_matching_refuses_past_the_cap_before_changing_anything(factory: Factory) -> None:
    ids = [exhausted(factory, f"ann{n}@example.org") for n in range(3)]
    before = audit_count(factory)
    with pytest.raises(QueueError, match=r"more than 2 rows match; one retry changes at most 2\. Narrow"):
        operations.act_on_matching(factory, listing.WritebackFilter(), "retry", actor=ACTOR, cap=2)
    assert audit_count(factory) == before and all(row(factory, i).status is Status.ERROR for i in ids)


def test_discard_of_all_matching_takes_only_error_rows(factory: Factory) -> None:
    wid = exhausted(factory)
    [fresh] = enqueue(factory, item(email="ann.new@example.org"))
    flt = listing.WritebackFilter(text="ann")
    preview = operations.preview_matching(factory, flt, "discard")
    assert (preview.count, [r.id for r in preview.sample]) == (1, [wid])
    assert operations.preview_matching(
        factory, listing.WritebackFilter(statuses=frozenset({Status.NEW})), "discard"
    ) == operations.MatchingPreview(0, [])
    operations.discard_matching(factory, flt, actor=ACTOR, reason="cleanup")
    assert row(factory, wid).status is Status.DISCARDED and row(factory, fresh).status is Status.NEW
