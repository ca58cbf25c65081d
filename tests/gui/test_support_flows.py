"""Support in the assembled console, both ways: from a list row to the person in Personify360, and
from one of their activities back to its row in the Writeback List."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests.gui.test_console import services_for
from tests.helpers.builders import enqueue, item
from tests.helpers.simulator import MakeSimulator
from writeback_console.dispatch.summary import CycleSummary
from writeback_console.domain import Kind
from writeback_console.store import listing
from writeback_console.ui.composition_root import open_console
from writeback_console.ui.console import Console
from writeback_console.ui.main_window import PAGE_CONSTITUENTS, PAGE_WRITEBACKS


@pytest.fixture
def console(
    qtbot: QtBot, tmp_path: Path, sqlite_url: str, make_simulator: MakeSimulator
) -> Iterator[Console]:
    services = services_for(tmp_path, sqlite_url, make_simulator())
    console = open_console(services, state_path=tmp_path / "window.ini")
    qtbot.addWidget(console.window)
    yield console
    console.shut_down()
    services.close()


def test_support_goes_from_a_list_row_to_the_person_and_from_their_activity_back_to_the_row(
    qtbot: QtBot, console: Console
) -> None:
    (writeback_id,) = enqueue(console.services.factory, item(Kind.RESUBSCRIBE, "ann@example.org"))
    window = console.window
    page = window.writebacks
    page.reload()
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10_000)
    finished: list[CycleSummary] = []
    console.controller.worker.finished.connect(finished.append)
    window.run_now_requested.emit()
    qtbot.waitUntil(lambda: bool(finished), timeout=15_000)
    row = page.model.row_at(0)
    assert row is not None

    menu = page.context_menu_for(row)
    (look_up,) = [a for a in menu.actions() if a.text() == "Look up in Personify360"]
    look_up.trigger()
    viewer = console.constituents
    assert window.current_page() == PAGE_CONSTITUENTS
    qtbot.waitUntil(lambda: not viewer.busy and len(viewer.activities) == 1, timeout=10_000)
    assert viewer.email_edit.text() == "ann@example.org"

    viewer.open_queue_row_button.click()
    qtbot.waitUntil(
        lambda: window.current_page() == PAGE_WRITEBACKS and page.selected_ids() == [writeback_id],
        timeout=10_000,
    )


def test_a_row_without_an_email_cannot_be_looked_up(console: Console) -> None:
    page = console.window.writebacks
    (writeback_id,) = enqueue(console.services.factory, item(Kind.MAILING_ACTIVITY, mailing_id=None))
    with console.services.factory() as session:
        row = listing.get_writeback(session, writeback_id)
    (look_up,) = [a for a in page.context_menu_for(row).actions() if a.text() == "Look up in Personify360"]
    assert not look_up.isEnabled()
