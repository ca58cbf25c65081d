"""The Audit log page: an advisor finds yesterday's bulk retry with its filter and rows, narrows the log by
action, person and reference, and opens a row in the Writeback List."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, fail, item, minutes, run
from writeback_console import operations
from writeback_console.domain import AuditAction, Status, utcnow
from writeback_console.settings import AppSettings
from writeback_console.store import listing, switches
from writeback_console.store.audit_log import AuditFilter
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.models import AuditEvent
from writeback_console.ui.main_window import PAGE_AUDIT, PAGE_WRITEBACKS, MainWindow
from writeback_console.ui.pages.audit_log import AuditLogPage, AuditTableModel
from writeback_console.ui.tasks import TaskRunner

Factory = sessionmaker[Session]
INACTIVE = "Activity Code NEWS is inactive."


@pytest.fixture
def db(db_url: str) -> Iterator[Factory]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def yesterdays_bulk_retry(factory: Factory, n: int = 5) -> list[str]:
    """``n`` Error rows an advisor retried yesterday as "all matching"; their references in id order."""
    ids = enqueue(factory, *(item(email=f"p{k}@example.org") for k in range(n)))
    for attempt in range(3):
        at = T0 + minutes(10 * attempt + 1)
        run(factory, at)
        for wid in ids:
            fail(factory, wid, at + timedelta(seconds=5), message=INACTIVE)
    flt = listing.WritebackFilter(statuses=frozenset({Status.ERROR}), error_text="inactive")
    done = operations.act_on_matching(factory, flt, "retry", actor="advisor@desk")
    with write_transaction(factory) as session:
        session.execute(
            update(AuditEvent)
            .where(AuditEvent.id.in_(done.audit_event_ids))
            .values(at=utcnow() - timedelta(days=1))
        )
    with factory() as session:
        return [listing.get_writeback(session, wid).ref for wid in sorted(ids)]


def loaded(qtbot: QtBot, page: AuditLogPage, count: int) -> None:
    qtbot.waitUntil(lambda: not page.model.loading and len(page.model.entries) == count, timeout=5000)


def test_an_advisor_finds_yesterdays_bulk_retry_with_its_filter_and_rows(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    refs = yesterdays_bulk_retry(db)
    operations.set_account_switches(db, {switches.WRITEBACK_ENABLED: False}, actor="ann@desk")
    page = AuditLogPage(db, runner)
    qtbot.addWidget(page)
    page.start()
    loaded(qtbot, page, 2)

    # Newest first: the switch of today, then yesterday's retry; a setting shows what changed.
    model = page.model
    assert [model.index(r, 2).data() for r in range(2)] == ["Account setting", "Retry"]
    assert model.index(0, 3).data() == "—"
    assert model.index(0, 4).data() == "writeback_enabled for every account: not set → off"
    assert model.index(1, 1).data() == "advisor@desk"
    assert model.index(1, 3).data() == "5"
    assert model.index(1, 4).data().startswith('all matching: status=error, error contains "inactive"')

    page.table.selectRow(1)
    pane = page.entry_pane
    qtbot.waitUntil(lambda: pane.rows.count() == 5, timeout=5000)
    assert [pane.rows.item(n).text() for n in range(5)] == refs
    assert pane.filter_text.text() == 'all matching: status=error, error contains "inactive"'
    assert pane.who.text() == "advisor@desk" or pane.who.text().startswith("advisor@desk (database user")

    # Narrowed to yesterday, the retry alone is left.
    page.from_check.setChecked(True)
    page.to_check.setChecked(True)
    yesterday = page.to_date.date().addDays(-1)
    page.from_date.setDate(yesterday)
    page.to_date.setDate(yesterday)
    loaded(qtbot, page, 1)
    assert model.index(0, 2).data() == "Retry"


def test_the_log_narrows_by_action_person_and_reference(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    refs = yesterdays_bulk_retry(db, 2)
    operations.set_account_switches(db, {switches.WRITEBACK_ENABLED: False}, actor="ann@desk")
    page = AuditLogPage(db, runner)
    qtbot.addWidget(page)
    page.start()
    loaded(qtbot, page, 2)

    page.set_action(AuditAction.SETTING)
    loaded(qtbot, page, 1)
    assert page.model.index(0, 1).data() == "ann@desk"

    page.set_action(None)
    loaded(qtbot, page, 2)
    qtbot.keyClicks(page.person, "ADV")
    loaded(qtbot, page, 1)
    assert page.model.index(0, 2).data() == "Retry"

    page.clear_filters()
    loaded(qtbot, page, 2)
    qtbot.keyClicks(page.ref, refs[1].lower())
    loaded(qtbot, page, 1)
    assert page.model.index(0, 2).data() == "Retry"

    page.ref.setText("WB-NEVERGIVEN")
    page.apply_filters()
    loaded(qtbot, page, 0)
    assert page.table_stack.currentWidget() is page.empty
    assert page.empty.text() == "No audit entry matches the filter."


def test_the_log_is_read_a_page_at_a_time(qtbot: QtBot, db: Factory, runner: TaskRunner) -> None:
    for n in range(7):
        operations.set_account_switches(db, {switches.AUTO_MAILING_ACTIVITY_DAYS: n}, actor="ann")
    # The model alone: a view asks for more pages by itself until its viewport is full.
    model = AuditTableModel(db, runner, page_size=3)
    model.set_filter(AuditFilter())

    def has(count: int) -> None:
        qtbot.waitUntil(lambda: not model.loading and len(model.entries) == count, timeout=5000)

    has(3)
    assert model.canFetchMore()
    model.fetchMore()
    has(6)
    model.fetchMore()
    has(7)
    assert not model.canFetchMore()
    assert [model.index(r, 4).data().split(": ")[1] for r in (0, 6)] == ["5 → 6", "not set → 0"]


def test_opening_a_row_shows_it_in_the_writeback_list(
    qtbot: QtBot, db: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    refs = yesterdays_bulk_retry(db, 3)
    window = MainWindow(db, runner, AppSettings(), database_label="test", state_path=tmp_path / "w.ini")
    qtbot.addWidget(window)
    window.page_actions[PAGE_AUDIT].trigger()
    assert window.current_page() == PAGE_AUDIT
    page = window.audit_log
    loaded(qtbot, page, 1)
    pane = page.entry_pane
    qtbot.waitUntil(lambda: pane.rows.count() == 3, timeout=5000)

    pane.rows.setCurrentRow(1)
    pane.rows.setFocus()
    qtbot.keyClick(pane.rows, Qt.Key.Key_Return)

    assert window.current_page() == PAGE_WRITEBACKS
    listed = window.writebacks
    qtbot.waitUntil(lambda: [r.ref for r in listed.selected_rows()] == [refs[1]], timeout=5000)
    assert listed.filter_bar.search.text() == refs[1]

    window.show_page(PAGE_AUDIT)
    pane.rows.setCurrentRow(2)
    pane.open_button.click()
    qtbot.waitUntil(lambda: [r.ref for r in listed.selected_rows()] == [refs[2]], timeout=5000)
