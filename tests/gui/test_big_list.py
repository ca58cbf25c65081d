"""On a million-row queue the list reads a few pages, never the whole table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import BIG_ROWS, wait_loaded
from writeback_console.domain import Status
from writeback_console.settings import AppSettings
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.listing import WritebackFilter
from writeback_console.ui.composition_root import build_window
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import PAGE_SIZE, Column
from writeback_console.ui.writeback_view import WritebackListPage

pytestmark = pytest.mark.slow

Factory = sessionmaker[Session]


@pytest.fixture
def big_factory(big_sqlite_url: str) -> Iterator[Factory]:
    engine = make_engine(big_sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_opening_the_list_fetches_only_a_few_pages(
    qtbot: QtBot, big_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = build_window(big_factory, AppSettings(), runner=runner, state_path=tmp_path / "w.ini")
    qtbot.addWidget(window)
    window.resize(1400, 1200)
    window.show()
    qtbot.waitExposed(window)
    model = window.writebacks.model
    wait_loaded(qtbot, model)
    qtbot.wait(300)  # room for the view to ask for more if it wanted to
    wait_loaded(qtbot, model)
    assert model.rowCount() == model.fetched_rows
    assert PAGE_SIZE <= model.fetched_rows <= 600
    qtbot.waitUntil(lambda: window.writebacks.matching_rows() == BIG_ROWS, timeout=30_000)
    assert f"of {BIG_ROWS:,} shown" in window.writebacks.filter_bar.summary.text()
    window.close()


def test_scrolling_to_the_end_reads_a_page_at_a_time(
    qtbot: QtBot, big_factory: Factory, runner: TaskRunner
) -> None:
    page = WritebackListPage(big_factory, runner)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    page.show()
    page.start()
    model = page.model
    wait_loaded(qtbot, model)
    for _ in range(10):
        page.table.scrollToBottom()
        qtbot.waitUntil(lambda: model.loading or not model.canFetchMore(), timeout=5000)
        wait_loaded(qtbot, model)
    assert model.canFetchMore()
    assert model.fetched_rows <= 12 * PAGE_SIZE
    assert model.rowCount() == model.fetched_rows


def test_jump_to_the_end_is_the_first_page_of_the_other_order(
    qtbot: QtBot, big_factory: Factory, runner: TaskRunner
) -> None:
    page = WritebackListPage(big_factory, runner)
    qtbot.addWidget(page)
    page.start()
    model = page.model
    wait_loaded(qtbot, model)
    page.table.sortByColumn(Column.CREATED, Qt.SortOrder.AscendingOrder)
    wait_loaded(qtbot, model)
    with big_factory() as session:
        oldest = listing.list_page(
            session, WritebackFilter(), sort="created_at", descending=False, limit=PAGE_SIZE
        )
    assert [r.id for r in model.loaded_rows()] == [r.id for r in oldest.rows]
    assert model.fetched_rows == 2 * PAGE_SIZE


def test_a_status_and_text_filter_on_a_million_rows_read_one_page(
    qtbot: QtBot, big_factory: Factory, runner: TaskRunner
) -> None:
    page = WritebackListPage(big_factory, runner)
    qtbot.addWidget(page)
    page.start()
    wait_loaded(qtbot, page.model)
    page.filter_bar.set_statuses([Status.ERROR])
    wait_loaded(qtbot, page.model)
    page.filter_bar.set_text("ann.")
    wait_loaded(qtbot, page.model)
    rows = page.model.loaded_rows()
    assert rows and all(r.status is Status.ERROR and (r.email or "").startswith("ann.") for r in rows)
    assert page.model.fetched_rows <= 3 * PAGE_SIZE
