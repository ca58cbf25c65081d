"""Staff act where the row is: Reschedule and Cancel on a mailing activity from the detail pane, the
list's context menu and the Queue menu; the Schedule dialog opens on the row's mailing; what happened
is confirmed in local time and UTC, and the row is selected. Actions on other pages refresh the list."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtGui import QAction
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import add_mailing, enqueue, item
from writeback_console.confirmations import schedule_confirmation
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.settings import AppSettings, PasswordStore, save_settings
from writeback_console.store import listing, operator_actions
from writeback_console.store.engine import write_transaction
from writeback_console.store.rows import WritebackRow
from writeback_console.ui.composition_root import open_console, start_services
from writeback_console.ui.console import Console
from writeback_console.ui.detail_pane import EMPTY_HINT
from writeback_console.ui.dialogs import errors, schedule
from writeback_console.ui.dialogs.schedule import ScheduleDialog, ScheduleOutcome, to_qdatetime
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_view import WritebackListPage

Factory = sessionmaker[Session]


@dataclass
class Desk:
    console: Console
    factory: Factory
    mailing_id: int
    scheduled_id: int
    other_id: int

    @property
    def page(self) -> WritebackListPage:
        return self.console.window.writebacks


def later(days: float) -> datetime:
    return (utcnow() + timedelta(days=days)).replace(second=0, microsecond=0)


@pytest.fixture
def desk(qtbot: QtBot, tmp_path: Path, sqlite_url: str) -> Iterator[Desk]:
    """A console (no dispatcher) over a queue with one Scheduled mailing activity and one other row."""
    settings_path = tmp_path / "settings.json"
    save_settings(AppSettings(service_root_url="https://personify.invalid/svc", user="u"), settings_path)
    store = PasswordStore(fallback=tmp_path / "credentials.json", use_keyring=False)
    services = start_services(sqlite_url, settings_path=settings_path, password_store=store)
    factory = services.factory
    mailing_id = add_mailing(factory, remote=2, name="December Newsletter")
    with write_transaction(factory) as session:
        scheduled_id = operator_actions.schedule_mailing_activity(
            session, mailing_id, at=later(3), actor="staff"
        ).id
    (other_id,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org"))
    console = open_console(services, state_path=tmp_path / "window.ini", dispatcher=False)
    qtbot.addWidget(console.window)
    page = console.window.writebacks
    qtbot.waitUntil(lambda: page.model.rowCount() == 2 and not page.model.loading, timeout=5000)
    yield Desk(console, factory, mailing_id, scheduled_id, other_id)
    services.runner.wait(5000)
    services.close()


def select(qtbot: QtBot, desk: Desk, writeback_id: int) -> None:
    page = desk.page
    page.table.select_ids([writeback_id], current=writeback_id)
    qtbot.waitUntil(
        lambda: page.detail.detail is not None and page.detail.detail.row.id == writeback_id, timeout=5000
    )


def stored(desk: Desk, writeback_id: int) -> WritebackRow:
    with desk.factory() as session:
        return listing.get_writeback(session, writeback_id)


def menu_action(desk: Desk, writeback_id: int, text: str) -> QAction:
    row = desk.page.model.row_at(desk.page.model.row_of_id(writeback_id) or 0)
    assert row is not None and row.id == writeback_id
    menu = desk.page.context_menu_for(row)
    return next(a for a in menu.actions() if a.text() == text)


def answering(monkeypatch: pytest.MonkeyPatch, answer: bool) -> list[str]:
    questions: list[str] = []

    def confirm(_parent: object, _title: str, text: str) -> bool:
        questions.append(text)
        return answer

    monkeypatch.setattr(schedule, "confirm", confirm)
    return questions


def dialog_choosing(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, at: datetime
) -> tuple[list[int | None], list[ScheduleDialog]]:
    """Replace the modal Schedule dialog by the real one, shown without a modal loop, that chooses ``at``
    and presses its OK button (Schedule, Schedule again or Reschedule, whichever it offers)."""
    asked: list[int | None] = []
    dialogs: list[ScheduleDialog] = []

    def ask(
        factory: Factory, runner: TaskRunner, parent: object = None, mailing_id: int | None = None
    ) -> ScheduleOutcome | None:
        asked.append(mailing_id)
        dialog = ScheduleDialog(factory, runner, None, mailing_id)
        qtbot.addWidget(dialog)
        dialogs.append(dialog)
        qtbot.waitUntil(lambda: dialog.table.current_id() == mailing_id, timeout=5000)
        dialog.at_radio.setChecked(True)
        dialog.at_edit.setDateTime(to_qdatetime(at))
        dialog.ok_button.click()
        qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=5000)
        return dialog.outcome

    monkeypatch.setattr(schedule, "ask_schedule", ask)
    return asked, dialogs


def test_a_scheduled_row_offers_reschedule_and_cancel_where_it_is(qtbot: QtBot, desk: Desk) -> None:
    window, pane = desk.console.window, desk.page.detail
    select(qtbot, desk, desk.scheduled_id)
    assert pane.reschedule_button.isVisibleTo(pane) and pane.reschedule_button.isEnabled()
    assert pane.cancel_button.isVisibleTo(pane) and pane.cancel_button.isEnabled()
    assert menu_action(desk, desk.scheduled_id, "Reschedule…").isEnabled()
    assert menu_action(desk, desk.scheduled_id, "Cancel scheduled…").isEnabled()
    assert window.reschedule_action.isEnabled() and window.cancel_scheduled_action.isEnabled()
    queue_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Queue")
    assert {window.reschedule_action, window.cancel_scheduled_action} <= set(queue_menu.actions())

    select(qtbot, desk, desk.other_id)
    assert not pane.reschedule_button.isVisibleTo(pane) and not pane.cancel_button.isVisibleTo(pane)
    other = desk.page.model.row_at(desk.page.model.row_of_id(desk.other_id) or 0)
    assert other is not None
    texts = [a.text() for a in desk.page.context_menu_for(other).actions()]
    assert "Reschedule…" not in texts and "Cancel scheduled…" not in texts
    assert not window.reschedule_action.isEnabled() and not window.cancel_scheduled_action.isEnabled()


def test_reschedule_from_the_context_menu_opens_the_row_s_mailing_and_confirms_local_time_and_utc(
    qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = later(5)
    asked, dialogs = dialog_choosing(qtbot, monkeypatch, at)
    select(qtbot, desk, desk.scheduled_id)
    menu_action(desk, desk.scheduled_id, "Reschedule…").trigger()
    assert asked == [desk.mailing_id]
    assert dialogs[0].outcome is not None and dialogs[0].outcome.action == "rescheduled"
    assert stored(desk, desk.scheduled_id).scheduled_for == at
    ref = stored(desk, desk.scheduled_id).ref
    message = desk.console.window.statusBar().currentMessage()
    assert message == f"{schedule_confirmation('Rescheduled', at)} · {ref}"
    assert "UTC" in message
    # The row stays selected, and the pane reads it again with its new time.
    assert desk.page.selected_ids() == [desk.scheduled_id]
    qtbot.waitUntil(
        lambda: desk.page.detail.detail is not None and desk.page.detail.detail.row.scheduled_for == at,
        timeout=5000,
    )


def test_reschedule_from_the_detail_pane_and_the_queue_menu_open_the_same_dialog(
    qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = later(4), later(6)
    select(qtbot, desk, desk.scheduled_id)
    asked, _ = dialog_choosing(qtbot, monkeypatch, first)
    desk.page.detail.reschedule_button.click()
    assert asked == [desk.mailing_id] and stored(desk, desk.scheduled_id).scheduled_for == first
    asked, _ = dialog_choosing(qtbot, monkeypatch, second)
    desk.console.window.reschedule_action.trigger()
    assert asked == [desk.mailing_id] and stored(desk, desk.scheduled_id).scheduled_for == second


def test_cancel_from_the_detail_pane_asks_first_and_the_list_shows_it_cancelled(
    qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    questions = answering(monkeypatch, True)
    select(qtbot, desk, desk.scheduled_id)
    ref = stored(desk, desk.scheduled_id).ref
    desk.page.detail.cancel_button.click()
    assert len(questions) == 1 and ref in questions[0] and "December Newsletter" in questions[0]
    qtbot.waitUntil(lambda: stored(desk, desk.scheduled_id).status is Status.CANCELLED, timeout=5000)
    page = desk.page

    def shown() -> Status | None:
        row = page.model.row_at(page.model.row_of_id(desk.scheduled_id) or 0)
        return row.status if row is not None else None

    qtbot.waitUntil(lambda: shown() is Status.CANCELLED, timeout=5000)
    qtbot.waitUntil(lambda: page.detail.values["status"].text().startswith("Cancelled"), timeout=5000)
    assert not page.detail.cancel_button.isVisibleTo(page.detail)
    assert desk.console.window.statusBar().currentMessage().startswith(f"{ref} cancelled")
    assert not desk.console.window.cancel_scheduled_action.isEnabled()


def test_declining_to_cancel_from_the_queue_menu_changes_nothing(
    qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    questions = answering(monkeypatch, False)
    select(qtbot, desk, desk.scheduled_id)
    desk.console.window.cancel_scheduled_action.trigger()
    menu_action(desk, desk.scheduled_id, "Cancel scheduled…").trigger()
    assert len(questions) == 2
    desk.console.services.runner.wait(2000)
    assert stored(desk, desk.scheduled_id).status is Status.SCHEDULED


def test_a_cancel_the_queue_refuses_is_explained_and_the_list_shows_the_row_as_it_is(
    qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering(monkeypatch, True)
    shown: list[str] = []
    monkeypatch.setattr(errors, "show_error", lambda _p, _t, message, _d="": shown.append(message))
    select(qtbot, desk, desk.scheduled_id)
    # Another console sends it now meanwhile: it is New, no longer Scheduled.
    with write_transaction(desk.factory) as session:
        operator_actions.reschedule(session, desk.scheduled_id, at=None, actor="other desk")
    desk.page.detail.cancel_button.click()
    qtbot.waitUntil(lambda: bool(shown), timeout=5000)
    assert "only Scheduled rows can be cancelled" in shown[0]
    qtbot.waitUntil(lambda: desk.page.detail.values["status"].text().startswith("New"), timeout=5000)


def test_schedule_from_a_cancelled_row_opens_its_mailing_and_selects_the_new_row(
    qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    with write_transaction(desk.factory) as session:
        operator_actions.cancel_scheduled(session, desk.scheduled_id, actor="staff")
    desk.page.reload()
    qtbot.waitUntil(lambda: not desk.page.model.loading, timeout=5000)
    select(qtbot, desk, desk.scheduled_id)
    at = later(2)
    asked, dialogs = dialog_choosing(qtbot, monkeypatch, at)
    desk.console.window.schedule_action.trigger()
    assert asked == [desk.mailing_id]
    outcome = dialogs[0].outcome
    assert outcome is not None and outcome.action == "scheduled" and outcome.writeback_id != desk.scheduled_id
    assert desk.console.window.statusBar().currentMessage().startswith(schedule_confirmation("Scheduled", at))
    qtbot.waitUntil(lambda: desk.page.selected_ids() == [outcome.writeback_id], timeout=5000)
    assert stored(desk, outcome.writeback_id).scheduled_for == at


def test_schedule_with_nothing_chosen_opens_the_dialog_on_no_mailing(
    qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int | None] = []

    def ask(_f: object, _r: object, _parent: object = None, mailing_id: int | None = None) -> None:
        asked.append(mailing_id)

    monkeypatch.setattr(schedule, "ask_schedule", ask)
    select(qtbot, desk, desk.other_id)
    desk.console.window.schedule_action.trigger()
    assert asked == [None]


def cancel_from_the_mailings_page(qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    answering(monkeypatch, True)
    mailings = desk.console.mailings
    desk.console.window.show_page("mailings")
    qtbot.waitUntil(lambda: mailings.table.topLevelItemCount() == 1, timeout=5000)
    mailings.table.setCurrentItem(mailings.table.topLevelItem(0))
    mailings.cancel_chosen()
    qtbot.waitUntil(lambda: stored(desk, desk.scheduled_id).status is Status.CANCELLED, timeout=5000)
    desk.console.window.show_page("writeback_list")


def test_a_cancel_on_the_mailings_page_refreshes_the_list_row_and_the_pane(
    qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    select(qtbot, desk, desk.scheduled_id)
    cancel_from_the_mailings_page(qtbot, desk, monkeypatch)
    page = desk.page
    shown: Callable[[], WritebackRow | None] = lambda: page.model.row_at(  # noqa: E731
        page.model.row_of_id(desk.scheduled_id) or 0
    )
    qtbot.waitUntil(lambda: (r := shown()) is not None and r.status is Status.CANCELLED, timeout=5000)
    qtbot.waitUntil(lambda: page.detail.values["status"].text().startswith("Cancelled"), timeout=5000)


def test_a_row_cancelled_on_the_mailings_page_leaves_a_scheduled_only_list_and_the_pane_empties(
    qtbot: QtBot, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = desk.page
    page.filter_bar.set_statuses([Status.SCHEDULED])
    qtbot.waitUntil(lambda: not page.model.loading and page.model.rowCount() == 1, timeout=5000)
    select(qtbot, desk, desk.scheduled_id)
    cancel_from_the_mailings_page(qtbot, desk, monkeypatch)
    qtbot.waitUntil(lambda: page.model.rowCount() == 0 and not page.model.loading, timeout=5000)
    qtbot.waitUntil(lambda: page.detail.stack.currentIndex() == 0, timeout=5000)
    assert page.detail.hint.text() == EMPTY_HINT
    page.filter_bar.clear()
    qtbot.waitUntil(lambda: not page.model.loading and page.model.rowCount() == 2, timeout=5000)
    assert page.detail.hint.text() == EMPTY_HINT
