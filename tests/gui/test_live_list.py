"""The list stays live: what another console or a headless dispatcher changes shows within five seconds,
without F5, re-reading only the changed rows, with selection, scroll position and the detail pane kept.
On SQLite and on a shared PostgreSQL queue, with two consoles as two pages on two engines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from tests.helpers.builders import T0, enqueue, fail_runs, item, minutes
from writeback_console import operations
from writeback_console.domain import Status
from writeback_console.store.changes import ChangeFeed
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_view import WritebackListPage

Factory = sessionmaker[Session]
FIVE_SECONDS = 5_000


@pytest.fixture
def other_console(db_url: str) -> Iterator[Factory]:
    """A second console's connection to the same queue."""
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def status_of(page: WritebackListPage, wid: int) -> Status | None:
    n = page.model.row_of_id(wid)
    row = page.model.row_at(n) if n is not None else None
    return row.status if row else None


def test_a_retry_in_another_console_shows_within_five_seconds_and_the_selection_stays(
    qtbot: QtBot, factory: Factory, other_console: Factory, runner: TaskRunner
) -> None:
    (failing,) = enqueue(factory, item(email="failing@example.org"))
    fail_runs(factory, failing, 3)
    # Older rows, queued later: more than a page, with the failing row at the top (newest first).
    enqueue(factory, *(item(email=f"p{n:02d}@example.org") for n in range(29)), now=T0 - minutes(60))
    page = WritebackListPage(factory, runner, page_size=20)
    qtbot.addWidget(page)
    page.show()
    engine = factory.kw["bind"]
    feed = ChangeFeed(engine, poll_seconds=0.2)
    feed.start()
    try:
        assert feed.listening.wait(5)
        page.start()
        wait_loaded(qtbot, page.model)
        page.go_live(feed)
        page.table.select_ids([failing], current=failing)
        qtbot.waitUntil(lambda: page.detail.detail is not None, timeout=FIVE_SECONDS)
        assert status_of(page, failing) is Status.ERROR
        fetched = page.model.fetched_rows
        loaded = page.model.rowCount()

        operations.retry(other_console, [failing], actor="advisor@other-desk")

        qtbot.waitUntil(lambda: status_of(page, failing) is Status.NEW, timeout=FIVE_SECONDS)
        # Only the changed row was read again, not the page.
        assert page.model.fetched_rows == fetched
        assert page.model.rowCount() == loaded
        assert page.selected_ids() == [failing]
        detail = page.detail
        qtbot.waitUntil(
            lambda: detail.detail is not None and detail.detail.row.status is Status.NEW, timeout=FIVE_SECONDS
        )
        # The counts follow too, without F5.
        qtbot.waitUntil(
            lambda: "New  30" in page.filter_bar.status_buttons[Status.NEW].text(), timeout=FIVE_SECONDS
        )
    finally:
        page.stop_live()
        feed.stop()


def test_rows_queued_elsewhere_are_offered_not_pushed_under_the_reader(
    qtbot: QtBot, factory: Factory, other_console: Factory, runner: TaskRunner
) -> None:
    enqueue(factory, *(item(email=f"p{n:02d}@example.org") for n in range(5)))
    page = WritebackListPage(factory, runner)
    qtbot.addWidget(page)
    page.show()
    feed = ChangeFeed(factory.kw["bind"], poll_seconds=0.2)
    feed.start()
    try:
        assert feed.listening.wait(5)
        page.start()
        wait_loaded(qtbot, page.model)
        page.go_live(feed)
        before = page.model.rowCount()
        new_ids = enqueue(
            other_console, item(email="new1@example.org"), item(email="new2@example.org"), now=T0
        )
        qtbot.waitUntil(lambda: page.arrivals_bar.isVisibleTo(page), timeout=FIVE_SECONDS)
        assert page.arrivals_button.text().startswith("2 more writebacks now match the filter")
        assert page.model.rowCount() == before
        page.arrivals_button.click()
        qtbot.waitUntil(
            lambda: all(page.model.row_of_id(i) is not None for i in new_ids), timeout=FIVE_SECONDS
        )
        assert not page.arrivals_bar.isVisibleTo(page)
    finally:
        page.stop_live()
        feed.stop()
