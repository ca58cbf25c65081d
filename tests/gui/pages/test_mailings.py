"""The Mailings page says where its recipients-known figure comes from: our table, when recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QFormLayout, QLabel
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import add_mailing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.ui.dialogs import schedule
from writeback_console.ui.pages.mailings import MailingsPage
from writeback_console.ui.tasks import TaskRunner


@pytest.fixture
def db(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_the_known_figure_says_it_is_from_when_the_mailing_was_recorded(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_mailing(db, remote=20, unknown=1, name="November News")
    page = MailingsPage(db, runner)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: page.table.topLevelItemCount() == 1, timeout=5000)
    header = page.table.headerItem()
    column = next(n for n in range(header.columnCount()) if header.text(n).startswith("Known when"))
    assert header.text(column) == "Known when recorded"
    assert "not asked again until the activity is sent" in header.toolTip(column)
    item = page.table.topLevelItem(0)
    assert item is not None and item.text(column) == "20"
    assert item.toolTip(column).startswith(
        "20 of 21 recipients were known in Personify360 when the mailing was recorded."
    )

    asked: list[str] = []
    monkeypatch.setattr(schedule, "confirm", lambda _parent, _title, text: asked.append(text) or False)
    page.table.setCurrentItem(item)
    page.send_now_action.trigger()
    (question,) = asked
    assert "20 of 21 recipients were known in Personify360 when the mailing was recorded" in question
    assert "fails as unknown" in question


def test_the_schedule_dialog_names_the_figure_the_same_way(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner
) -> None:
    mailing_id = add_mailing(db, remote=1, name="One")
    dialog = schedule.ScheduleDialog(db, runner, None, mailing_id=mailing_id)
    qtbot.addWidget(dialog)
    form = dialog.remote_value.parentWidget().layout()
    assert isinstance(form, QFormLayout)
    label = form.labelForField(dialog.remote_value)
    assert isinstance(label, QLabel) and label.text() == "Known in Personify360 when recorded:"


def test_send_now_sends_a_mailing_activity_left_new_on_its_own(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Send now that could not send (Personify360 down, the account switched off) leaves the activity
    New; Send now was then disabled ("already due at the next run"), so it could only wait for the
    next run, up to an interval away."""
    from writeback_console import operations
    from writeback_console.domain import Status

    mailing_id = add_mailing(db, remote=2, name="Left New")
    row = operations.send_mailing_activity_now(db, mailing_id, actor="staff@desk")
    page = MailingsPage(db, runner)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: page.table.topLevelItemCount() == 1, timeout=5000)
    page.table.setCurrentItem(page.table.topLevelItem(0))
    chosen = page.table.current_mailing()
    assert chosen is not None and chosen.activity_status is Status.NEW
    assert page.send_now_action.isEnabled()
    monkeypatch.setattr(schedule, "confirm", lambda *_args: True)
    with qtbot.waitSignal(page.send_requested, timeout=5000) as signal:
        page.send_now_action.trigger()
    assert signal.args == [[row.id]]
    assert "goes out now, on its own" in page.status_label.text()


def test_at_1024_pixels_the_mailing_activity_column_is_on_screen(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner
) -> None:
    """At 1,024 px (the page beside the navigation: about 770 px) each mailing's activity status shows."""
    add_mailing(
        db, remote=20, unknown=1, name="Advocacy Alert: Contact Your Legislators – Dec 1, 2026 – Final call"
    )
    page = MailingsPage(db, runner)
    qtbot.addWidget(page)
    page.resize(770, 600)
    page.show()
    qtbot.waitUntil(lambda: page.table.topLevelItemCount() == 1, timeout=5000)
    last = page.table.columnCount() - 1
    header = page.table.header()
    assert header.sectionViewportPosition(last) + 60 <= page.table.viewport().width()
