"""The Schedule Mailing Activity dialog and the Mailings page: schedule, refuse the past, warn, cancel,
and schedule a cancelled one again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import add_mailing
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.store import audit_trail, listing, operator_actions
from writeback_console.store.engine import write_transaction
from writeback_console.ui.dialogs import schedule
from writeback_console.ui.dialogs.schedule import ScheduleDialog, to_qdatetime
from writeback_console.ui.pages.mailings import MailingsPage
from writeback_console.ui.tasks import TaskRunner


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def open_dialog(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, mailing_id: int
) -> ScheduleDialog:
    dialog = ScheduleDialog(db, runner, None, mailing_id=mailing_id)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.table.current_id() == mailing_id, timeout=5000)
    return dialog


def mailing(db: sessionmaker[Session], mailing_id: int) -> listing.MailingRow:
    with db() as session:
        (row,) = [m for m in listing.list_mailings(session) if m.id == mailing_id]
        return row


def scheduled(db: sessionmaker[Session], mailing_id: int, at: datetime) -> int:
    with write_transaction(db) as session:
        return operator_actions.schedule_mailing_activity(session, mailing_id, at=at, actor="test").id


def cancelled(db: sessionmaker[Session], mailing_id: int, at: datetime) -> int:
    wid = scheduled(db, mailing_id, at)
    with write_transaction(db) as session:
        return operator_actions.cancel_scheduled(session, wid, actor="test").id


def test_shows_the_counts_and_creates_a_scheduled_row_at_the_chosen_time(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner
) -> None:
    mailing_id = add_mailing(db, remote=3, unknown=2, name="November Newsletter")
    add_mailing(db, remote=1, name="Other mailing")
    dialog = open_dialog(qtbot, db, runner, mailing_id)
    assert dialog.recipients_value.text() == "5"
    assert dialog.remote_value.text() == "3"
    assert not dialog.warning_label.isVisibleTo(dialog)
    at = minute(utcnow() + timedelta(days=2))
    dialog.at_radio.setChecked(True)
    dialog.at_edit.setDateTime(to_qdatetime(at))
    assert dialog.ok_button.text() == "Schedule"
    with qtbot.waitSignal(dialog.scheduled, timeout=5000) as signal:
        dialog.ok_button.click()
    with db() as session:
        row = listing.get_writeback(session, signal.args[0])
    assert (row.kind, row.status, row.mailing_id, row.scheduled_for) == (
        Kind.MAILING_ACTIVITY,
        Status.SCHEDULED,
        mailing_id,
        at,
    )
    assert dialog.outcome == schedule.ScheduleOutcome("scheduled", row.id, send_now=False)


def test_a_past_time_is_refused_and_nothing_is_written(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner
) -> None:
    mailing_id = add_mailing(db, remote=3)
    dialog = open_dialog(qtbot, db, runner, mailing_id)
    dialog.at_radio.setChecked(True)
    dialog.at_edit.setDateTime(to_qdatetime(utcnow() - timedelta(hours=1)))
    with qtbot.assertNotEmitted(dialog.scheduled, wait=100):
        dialog.ok_button.click()
    assert dialog.error_label.isVisibleTo(dialog)
    assert "has already passed; choose a time in the future" in dialog.error_label.text()
    assert mailing(db, mailing_id).activity_id is None


def test_send_now_queues_for_the_next_run_and_asks_for_one(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner
) -> None:
    mailing_id = add_mailing(db, remote=3)
    dialog = open_dialog(qtbot, db, runner, mailing_id)
    dialog.now_radio.setChecked(True)
    assert dialog.ok_button.text() == "Send now"
    with qtbot.waitSignals([dialog.scheduled, dialog.send_requested], timeout=5000):
        dialog.ok_button.click()
    assert mailing(db, mailing_id).activity_status is Status.NEW


def test_warns_when_the_mailing_will_end_as_no_remote_recipients(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner
) -> None:
    mailing_id = add_mailing(db, remote=0, unknown=4, name="Nobody known")
    dialog = open_dialog(qtbot, db, runner, mailing_id)
    assert dialog.warning_label.isVisibleTo(dialog)
    assert "will end as No Remote Recipients" in dialog.warning_label.text()
    assert "4 recipients" in dialog.warning_label.text()
    # A warning, not a refusal: staff may still send it, and the outcome is then recorded as final.
    assert dialog.ok_button.isEnabled()


def test_reschedule_a_scheduled_activity(qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner) -> None:
    mailing_id = add_mailing(db, remote=2)
    wid = scheduled(db, mailing_id, minute(utcnow() + timedelta(days=1)))
    dialog = open_dialog(qtbot, db, runner, mailing_id)
    assert dialog.ok_button.text() == "Reschedule"
    assert dialog.cancel_activity_button.isEnabled()
    later = minute(utcnow() + timedelta(days=3))
    dialog.at_edit.setDateTime(to_qdatetime(later))
    with qtbot.waitSignal(dialog.scheduled, timeout=5000) as signal:
        dialog.ok_button.click()
    assert signal.args == [wid]
    with db() as session:
        row = listing.get_writeback(session, wid)
        assert (row.status, row.scheduled_for) == (Status.SCHEDULED, later)
        assert [e.action for e in audit_trail.audit_of(session, wid)] == ["schedule", "reschedule"]


def test_cancel_asks_first_and_then_keeps_the_activity_as_cancelled(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailing_id = add_mailing(db, remote=2)
    wid = scheduled(db, mailing_id, minute(utcnow() + timedelta(days=1)))
    dialog = open_dialog(qtbot, db, runner, mailing_id)
    questions: list[str] = []
    answer = False

    def confirm(_parent: object, _title: str, text: str) -> bool:
        questions.append(text)
        return answer

    monkeypatch.setattr(schedule, "confirm", confirm)
    with qtbot.assertNotEmitted(dialog.cancelled, wait=100):
        dialog.cancel_activity_button.click()
    assert mailing(db, mailing_id).activity_id == wid
    answer = True
    with qtbot.waitSignal(dialog.cancelled, timeout=5000) as signal:
        dialog.cancel_activity_button.click()
    assert signal.args == [wid]
    assert len(questions) == 2 and "Cancel the mailing activity" in questions[0]
    after = mailing(db, mailing_id)
    assert (after.activity_id, after.activity_status) == (wid, Status.CANCELLED)
    assert dialog.outcome == schedule.ScheduleOutcome("cancelled", wid, send_now=False)


def test_a_cancelled_activity_is_shown_and_can_be_scheduled_again(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner
) -> None:
    mailing_id = add_mailing(db, remote=2, name="Spring Gala")
    due = minute(utcnow() + timedelta(days=2))
    old = cancelled(db, mailing_id, due)
    dialog = open_dialog(qtbot, db, runner, mailing_id)
    assert dialog.activity_value.text().startswith("⊗ Cancelled (was due ")
    note = dialog.warning_label.text()
    assert "was cancelled" in note and "not written twice" in note
    assert dialog.warning_label.isVisibleTo(dialog)
    # Scheduling again is offered, at the cancelled time while that is still ahead; cancelling is not.
    assert dialog.ok_button.isEnabled() and dialog.ok_button.text() == "Schedule again"
    assert not dialog.cancel_activity_button.isVisibleTo(dialog)
    assert dialog.at_radio.isChecked() and dialog.chosen_time() == due
    dialog.now_radio.setChecked(True)
    assert dialog.ok_button.text() == "Send now"
    dialog.at_radio.setChecked(True)
    with qtbot.waitSignal(dialog.scheduled, timeout=5000) as signal:
        dialog.ok_button.click()
    (new,) = signal.args
    assert new != old
    with db() as session:
        assert listing.get_writeback(session, old).status is Status.CANCELLED
        again = listing.get_writeback(session, new)
        assert (again.status, again.scheduled_for, again.mailing_id) == (Status.SCHEDULED, due, mailing_id)
    assert mailing(db, mailing_id).activity_id == new


def test_search_filters_mailings_by_name(qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner) -> None:
    first = add_mailing(db, remote=1, name="Spring Gala 100% sold")
    add_mailing(db, remote=1, name="Weekly Update")
    dialog = open_dialog(qtbot, db, runner, first)
    assert dialog.table.topLevelItemCount() == 2
    dialog.search_edit.setText("100%")
    qtbot.waitUntil(lambda: dialog.table.topLevelItemCount() == 1, timeout=5000)
    assert dialog.table.current_id() == first


def test_mailings_page_actions_follow_the_activity_status(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = add_mailing(db, remote=2, name="Free")
    waiting = add_mailing(db, remote=2, name="Waiting")
    wid = scheduled(db, waiting, minute(datetime.now(UTC) + timedelta(days=1)))
    page = MailingsPage(db, runner)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: page.table.topLevelItemCount() == 2, timeout=5000)

    def choose(mailing_id: int) -> None:
        for i in range(page.table.topLevelItemCount()):
            item = page.table.topLevelItem(i)
            if item is not None and page.table._rows[int(item.data(0, 256))].id == mailing_id:
                page.table.setCurrentItem(item)

    choose(free)
    states = [a.isEnabled() for a in (page.schedule_action, page.send_now_action, page.reschedule_action)]
    assert [*states, page.cancel_action.isEnabled()] == [True, True, False, False]
    choose(waiting)
    states = [a.isEnabled() for a in (page.schedule_action, page.send_now_action, page.reschedule_action)]
    assert [*states, page.cancel_action.isEnabled()] == [False, True, True, True]

    monkeypatch.setattr(schedule, "confirm", lambda *_args: True)
    with qtbot.waitSignal(page.cancelled, timeout=5000) as signal:
        page.cancel_action.trigger()
    assert signal.args == [wid]

    def shown_cancelled() -> bool:
        chosen = page.table.current_mailing()
        return chosen is not None and chosen.activity_status is Status.CANCELLED

    qtbot.waitUntil(shown_cancelled, timeout=5000)
    states = [a.isEnabled() for a in (page.schedule_action, page.send_now_action, page.reschedule_action)]
    assert [*states, page.cancel_action.isEnabled()] == [True, True, False, False]
    choose(free)
    with qtbot.waitSignals([page.scheduled, page.send_requested], timeout=5000):
        page.send_now_action.trigger()
    assert mailing(db, free).activity_status is Status.NEW


def test_cancelling_on_the_mailings_page_leaves_it_shown_as_cancelled_to_schedule_again(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailing_id = add_mailing(db, remote=2, name="Autumn Appeal")
    wid = scheduled(db, mailing_id, minute(utcnow() + timedelta(days=1)))
    page = MailingsPage(db, runner)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: page.table.topLevelItemCount() == 1, timeout=5000)
    page.table.setCurrentItem(page.table.topLevelItem(0))
    schedule_button, send_button, reschedule_button, cancel_button = page.action_buttons
    assert schedule_button.text() == "Schedule…" and cancel_button.isEnabled()

    monkeypatch.setattr(schedule, "confirm", lambda *_args: True)
    with qtbot.waitSignal(page.cancelled, timeout=5000):
        cancel_button.click()
    qtbot.waitUntil(lambda: row_text(page).startswith("⊗ Cancelled"), timeout=5000)
    assert wid_in(row_text(page)) == ref_of(db, wid)
    assert "stays listed as Cancelled" in page.status_label.text()
    # The Schedule button now offers to schedule it again; there is nothing left to move or cancel.
    assert schedule_button.text() == "Schedule again…" and schedule_button.isEnabled()
    assert send_button.isEnabled()
    assert not reschedule_button.isEnabled() and not cancel_button.isEnabled()

    asked: list[int | None] = []

    def ask(_f: object, _r: object, _parent: object, chosen: int | None = None) -> None:
        asked.append(chosen)

    monkeypatch.setattr(schedule, "ask_schedule", ask)
    schedule_button.click()
    assert asked == [mailing_id]

    made: list[int] = []
    page.scheduled.connect(made.append)
    with qtbot.waitSignals([page.scheduled, page.send_requested], timeout=5000):
        send_button.click()
    (new,) = made
    qtbot.waitUntil(lambda: row_text(page).startswith("● New"), timeout=5000)
    assert schedule_button.text() == "Schedule…" and not schedule_button.isEnabled()
    with db() as session:
        assert listing.get_writeback(session, wid).status is Status.CANCELLED
        assert listing.get_writeback(session, new).status is Status.NEW


def row_text(page: MailingsPage) -> str:
    """The mailing-activity cell of the page's chosen mailing."""
    item = page.table.currentItem()
    return "" if item is None else item.text(len(page.table.COLUMNS) - 1)


def wid_in(text: str) -> str:
    return text.rsplit(" · ", 1)[-1]


def ref_of(db: sessionmaker[Session], writeback_id: int) -> str:
    with db() as session:
        return listing.get_writeback(session, writeback_id).ref


def test_the_mailing_activity_column_shows_its_whole_text(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner
) -> None:
    mailing_id = add_mailing(db, remote=2, name="Member Update – Nov 17, 2026 " * 3)
    scheduled(db, mailing_id, minute(utcnow() + timedelta(days=1)))
    dialog = open_dialog(qtbot, db, runner, mailing_id)
    dialog.resize(820, 600)
    dialog.show()
    qtbot.waitExposed(dialog)
    table = dialog.table
    item = table.currentItem()
    assert item is not None and item.text(5).startswith("◷ Scheduled for ")
    assert table.columnWidth(5) >= table.sizeHintForColumn(5)
    assert item.toolTip(5) == item.text(5)
