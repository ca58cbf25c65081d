"""Acting from the Writeback List: Discard, Select all N matching with Retry or Discard of every matching
row, the Top errors page opening the list on a reason, and the list at 1,024 x 700."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from tests.helpers.builders import T0, enqueue, fail, item, minutes, run
from writeback_console import operations
from writeback_console.domain import Status
from writeback_console.settings import AppSettings
from writeback_console.store import audit_trail, listing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.listing import WritebackFilter
from writeback_console.store.models import AuditEvent
from writeback_console.ui.composition_root import build_window
from writeback_console.ui.detail_pane import timeline
from writeback_console.ui.dialogs import discard, matching
from writeback_console.ui.dialogs.discard import DiscardDialog
from writeback_console.ui.dialogs.matching import MatchingActionDialog
from writeback_console.ui.main_window import PAGE_TOP_ERRORS, PAGE_WRITEBACKS, MainWindow
from writeback_console.ui.pages.top_errors import TopErrorsPage
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import Column
from writeback_console.ui.writeback_view import WritebackListPage

Factory = sessionmaker[Session]
NOT_FOUND = "Validation issues: Customer {:012d}-0 does not exist."
NO_EMAIL = "no Personify360 constituent has the email {}"


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[Factory]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def error_rows(factory: Factory, messages: list[str], *, runs: int = 3) -> list[int]:
    """Writebacks that failed in ``runs`` runs ten minutes apart, each time with its message."""
    ids = enqueue(factory, *[item(email=f"p{n}@example.org") for n in range(len(messages))])
    for k in range(runs):
        at = T0 + minutes(10 * k)
        assert len(run(factory, at)) == len(ids)
        for wid, message in zip(ids, messages, strict=True):
            fail(factory, wid, at + timedelta(seconds=5), message)
    return ids


def open_page(qtbot: QtBot, factory: Factory, runner: TaskRunner, page_size: int = 100) -> WritebackListPage:
    page = WritebackListPage(factory, runner, page_size=page_size)
    qtbot.addWidget(page)
    # Short, so that the table does not page on by itself to fill its height.
    page.table.setFixedHeight(60)
    page.start()
    wait_loaded(qtbot, page.model)
    qtbot.waitUntil(lambda: page.matching_rows() is not None, timeout=5000)
    return page


def status_of(factory: Factory, wid: int) -> Status:
    with factory() as session:
        return listing.get_writeback(session, wid).status


# --- discard ---------------------------------------------------------------------------------


def test_the_context_menu_offers_discard_and_the_dialog_discards_with_the_reason(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = error_rows(factory, [NOT_FOUND.format(1), NOT_FOUND.format(2)], runs=1)
    page = open_page(qtbot, factory, runner)
    page.table.select_ids(ids)
    row = page.model.row_at(0)
    assert row is not None
    asked: list[list[int]] = []
    monkeypatch.setattr(discard, "ask_discard", lambda _f, _r, chosen, *_a, **_k: asked.append(chosen))
    menu = page.context_menu_for(row)
    action = next(a for a in menu.actions() if a.text().startswith("Discard"))
    assert action.text() == "Discard selected (2)…"
    action.trigger()
    assert sorted(asked[0]) == sorted(ids)

    dialog = DiscardDialog(factory, runner, ids, filter={"statuses": ["error"]})
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=5000)
    assert dialog.summary_label.text() == "2 selected writebacks: discard 2 Error rows?"
    assert not dialog.ok_button.isEnabled()  # no reason yet
    dialog.reason_edit.setText("   ")
    assert not dialog.ok_button.isEnabled()
    dialog.reason_edit.setText("constituents merged in Personify360")
    with qtbot.waitSignal(dialog.discarded, timeout=5000) as done:
        dialog.ok_button.click()
    assert sorted(done.args[0]) == sorted(ids)
    assert [status_of(factory, i) for i in ids] == [Status.DISCARDED, Status.DISCARDED]
    with factory() as session:
        (entry,) = [e for e in audit_trail.audit_of(session, ids[0]) if e.action == "discard"]
    assert entry.filter == {"statuses": ["error"]}
    assert entry.detail == {"reason": "constituents merged in Personify360"}


def test_a_discarded_row_s_timeline_shows_the_reason_and_its_pill_is_discarded(
    qtbot: QtBot, factory: Factory, runner: TaskRunner
) -> None:
    (wid,) = error_rows(factory, [NOT_FOUND.format(1)], runs=1)
    operations.discard(factory, [wid], actor="advisor@desk", reason="member asked us to stop")
    page = open_page(qtbot, factory, runner)
    page.table.select_ids([wid])
    qtbot.waitUntil(lambda: page.detail.detail is not None, timeout=5000)
    assert page.detail.detail is not None
    last = timeline(page.detail.detail)[-1]
    assert (last.what, last.who, last.detail) == (
        "Discarded",
        "advisor@desk",
        "Reason: member asked us to stop",
    )
    assert not page.detail.discard_button.isEnabled() and page.detail.retry_button.isEnabled()
    spec = page.model.index(0, Column.STATUS).data(Qt.ItemDataRole.UserRole + 2)
    assert spec.status is Status.DISCARDED


def test_no_email_filter_for_a_row_without_an_email_and_a_filter_by_its_error(
    qtbot: QtBot, factory: Factory, runner: TaskRunner
) -> None:
    ids = error_rows(factory, [NOT_FOUND.format(1), NOT_FOUND.format(2), NO_EMAIL.format("x@y.org")], runs=1)
    page = open_page(qtbot, factory, runner)
    row = page.model.row_at(page.model.row_of_id(ids[0]) or 0)
    assert row is not None
    # Mailing activity has no email: no "Filter by email “”" for it.
    texts = [a.text() for a in page.context_menu_for(replace(row, email=None)).actions()]
    assert not any(t.startswith("Filter by email") for t in texts)
    menu = page.context_menu_for(row)
    by_error = next(a for a in menu.actions() if a.text().startswith("Filter by this error"))
    assert by_error.text() == "Filter by this error “Validation issues: Customer … does not exist.”"
    with qtbot.waitSignal(page.model.first_page_loaded, timeout=5000):
        by_error.trigger()
    wait_loaded(qtbot, page.model)
    assert sorted(r.id for r in page.model.loaded_rows()) == sorted(ids[:2])
    assert page.current_filter().statuses == {Status.ERROR}


# --- select all matching -------------------------------------------------------------------------


def test_select_all_n_matching_then_retry_all_of_them_in_batches_audited_with_the_filter(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = error_rows(factory, [NOT_FOUND.format(n) for n in range(12)])
    page = open_page(qtbot, factory, runner, page_size=5)
    assert page.model.rowCount() == 5
    page.table.selectAll()
    assert page.select_all_bar.isVisibleTo(page)
    assert page.select_all_label.text() == "All 5 loaded writebacks are selected."
    assert page.select_all_button.text() == "Select all 12 matching the filter"
    page.select_all_button.click()
    assert page.all_matching == page.current_filter() and page.selection_count() == 12
    assert page.select_all_label.text() == "All 12 writebacks matching the filter are selected."
    row = page.model.row_at(0)
    assert row is not None
    texts = [a.text() for a in page.context_menu_for(row).actions()]
    assert "Retry all matching (12)…" in texts and "Discard all matching (12)…" in texts

    dialogs: list[MatchingActionDialog] = []

    def run_dialog(f: Factory, r: TaskRunner, flt: WritebackFilter, action: str, parent: object) -> object:
        dialog = MatchingActionDialog(f, r, flt, action)
        qtbot.addWidget(dialog)
        dialogs.append(dialog)
        qtbot.waitUntil(lambda: dialog.preview is not None, timeout=5000)
        assert (
            dialog.summary_label.text()
            == "Retry all 12 writebacks matching the filter? Each gets exactly one more attempt."
        )
        with qtbot.waitSignal(dialog.finished_action, timeout=10_000) as finished:
            dialog.ok_button.click()
        return finished.args[0]

    monkeypatch.setattr(matching, "ask_matching_action", run_dialog)
    monkeypatch.setattr(operations, "MATCHING_BATCH", 5)
    page.request_retry(page.selected_ids())
    assert dialogs[0].summary_label.text() == "Done: 12 writebacks queued again for the next dispatcher run."
    assert all(status_of(factory, i) is Status.NEW for i in ids)
    with factory() as session:
        entries = session.scalars(select(AuditEvent).where(AuditEvent.action == "retry")).all()
    assert sum(e.row_count for e in entries) == 12
    assert all(e.filter == {"matching": True} for e in entries)
    assert page.all_matching is None


def test_acting_on_all_matching_is_refused_past_the_cap_with_how_to_narrow(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    error_rows(factory, [NOT_FOUND.format(n) for n in range(3)])
    monkeypatch.setattr(operations, "MATCHING_CAP", 2)
    dialog = MatchingActionDialog(factory, runner, WritebackFilter(), "discard")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=5000)
    assert dialog.summary_label.text().startswith("more than 2 rows match; one discard changes at most 2.")
    assert "Narrow the filter" in dialog.summary_label.text()
    dialog.reason_edit.setText("no longer needed")
    assert not dialog.ok_button.isEnabled()


def test_cancelling_all_matching_between_batches_keeps_what_was_done_and_says_so() -> None:
    result = operations.BulkResult("discard", 1_000, 0, 1, cancelled=True, audit_event_ids=[1])
    assert matching.done_text("discard", result, 12_345) == (
        "Cancelled: 1,000 writebacks of 12,345 were discarded; the rest are unchanged."
    )


def test_a_new_filter_or_a_smaller_selection_ends_select_all_matching(
    qtbot: QtBot, factory: Factory, runner: TaskRunner
) -> None:
    ids = error_rows(factory, [NOT_FOUND.format(n) for n in range(8)], runs=1)
    page = open_page(qtbot, factory, runner, page_size=3)
    page.table.selectAll()
    page.select_all_matching()
    assert page.all_matching is not None
    page.table.select_ids(ids[-1:])
    assert page.all_matching is None and not page.select_all_bar.isVisibleTo(page)
    page.table.selectAll()
    page.select_all_matching()
    page.filter_bar.set_text("p1")
    assert page.all_matching is None


# --- top errors ----------------------------------------------------------------------------------


def open_window(qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path) -> MainWindow:
    window = build_window(factory, AppSettings(), runner=runner, state_path=tmp_path / "w.ini")
    qtbot.addWidget(window)
    wait_loaded(qtbot, window.writebacks.model)
    return window


def test_top_errors_groups_by_reason_and_a_group_opens_the_list_filtered_to_it(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    missing = error_rows(factory, [NOT_FOUND.format(n) for n in range(5)], runs=1)
    unknown = error_rows(factory, [NO_EMAIL.format(f"who{n}@example.org") for n in range(3)], runs=1)
    window = open_window(qtbot, factory, runner, tmp_path)
    window.show_page(PAGE_TOP_ERRORS)
    page = window.top_errors
    assert isinstance(page, TopErrorsPage)
    qtbot.waitUntil(lambda: page.tree.topLevelItemCount() == 2, timeout=5000)
    first, second = page.tree.topLevelItem(0), page.tree.topLevelItem(1)
    assert first is not None and second is not None
    assert [first.text(c) for c in range(2)] == ["Validation issues: Customer … does not exist.", "5"]
    assert [second.text(c) for c in range(2)] == ["no Personify360 constituent has the email …", "3"]
    assert "8 writebacks in Error, in 2 reasons" in page.note.text()
    with qtbot.waitSignal(window.writebacks.model.first_page_loaded, timeout=5000):
        page.tree.itemActivated.emit(second, 0)
    wait_loaded(qtbot, window.writebacks.model)
    assert window.current_page() == PAGE_WRITEBACKS
    assert sorted(r.id for r in window.writebacks.model.loaded_rows()) == sorted(unknown)
    bar = window.writebacks.filter_bar
    assert bar.error_text.text() == "no Personify360 constituent has the email …"
    assert bar.selected_statuses() == {Status.ERROR}
    del missing
    window.close()


def test_the_top_errors_trend_compares_the_last_day_with_the_day_before(
    factory: Factory,
) -> None:
    from writeback_console.ui.pages.top_errors import top_errors

    ids = error_rows(factory, [NOT_FOUND.format(n) for n in range(3)], runs=1)
    del ids
    (group,) = top_errors(factory, T0 + timedelta(hours=30))
    assert (group.rows, group.last_day, group.day_before) == (3, 0, 3)
    (group,) = top_errors(factory, T0 + timedelta(hours=2))
    assert (group.rows, group.last_day, group.day_before) == (3, 3, 0)


# --- the list at 1,024 x 700 ---------------------------------------------------------------------


def test_at_1024_by_700_status_attempts_and_last_error_are_visible_without_scrolling(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    error_rows(factory, [NOT_FOUND.format(1) + " " + "and more words " * 20], runs=1)
    window = open_window(qtbot, factory, runner, tmp_path)
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    table = window.writebacks.table
    header = table.horizontalHeader()
    width = table.viewport().width()
    for column in (Column.STATUS, Column.ATTEMPTS):
        assert header.sectionViewportPosition(column) + header.sectionSize(column) <= width
    # Last error starts on screen with room to read the start of it; the rest is elided, whole in the tooltip.
    assert width - header.sectionViewportPosition(Column.LAST_ERROR) >= 150
    assert table.horizontalScrollBar().value() == 0
    index = window.writebacks.model.index(0, Column.LAST_ERROR)
    assert "and more words" in index.data(Qt.ItemDataRole.ToolTipRole)
    window.close()


def test_the_retry_action_counts_the_selection_as_it_changes(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    ids = error_rows(factory, [NOT_FOUND.format(n) for n in range(7)], runs=3)  # retries used up
    window = open_window(qtbot, factory, runner, tmp_path)
    page = window.writebacks
    page.table.select_ids(ids)
    assert window.retry_action.text() == "Retry selected (7)…"
    with qtbot.waitSignal(page.model.first_page_loaded, timeout=5000):
        page.filter_bar.set_text("p1")
    wait_loaded(qtbot, page.model)
    # "p1" matches one of the seven: the action counts what is still selected.
    assert page.selected_ids() == [ids[1]] and window.retry_action.text() == "Retry selected…"
    page.filter_bar.clear()
    wait_loaded(qtbot, page.model)
    page.table.select_ids(ids[:3])
    assert window.retry_action.text() == "Retry selected (3)…"
    window.close()


# --- the sort arrow ------------------------------------------------------------------------------


def _arrow_points_down(image: QImage, section: QRect) -> bool:
    """Whether the arrow drawn at the right of ``section`` is widest at its top (▼) rather than at its
    bottom (▲): the row of the arrow with the most dark pixels is in its upper half."""
    rows: list[tuple[int, int]] = []
    for y in range(section.top(), section.bottom()):
        dark = sum(
            1
            for x in range(section.right() - 24, section.right())
            if QColor(image.pixel(x, y)).lightness() < 120
        )
        if dark:
            rows.append((y, dark))
    assert rows, "no sort arrow drawn"
    widest = max(rows, key=lambda r: r[1])[0]
    return widest - rows[0][0] < rows[-1][0] - widest


def test_the_sort_arrow_points_the_way_the_rows_run(
    qtbot: QtBot, factory: Factory, runner: TaskRunner
) -> None:
    enqueue(factory, *[item(email=f"p{n}@example.org") for n in range(3)])
    page = open_page(qtbot, factory, runner)
    page.resize(900, 300)
    page.show()
    qtbot.waitExposed(page)
    header = page.table.horizontalHeader()
    for order, down in ((Qt.SortOrder.DescendingOrder, True), (Qt.SortOrder.AscendingOrder, False)):
        page.table.sortByColumn(Column.REF, order)
        wait_loaded(qtbot, page.model)
        refs = [r.ref for r in page.model.loaded_rows()]
        assert refs == sorted(refs, reverse=down)
        image = header.grab().toImage()
        section = QRect(
            header.sectionViewportPosition(Column.REF), 0, header.sectionSize(Column.REF), header.height()
        )
        assert _arrow_points_down(image, section) is down


def test_rows_that_arrive_while_all_matching_is_chosen_are_selected_too(
    qtbot: QtBot, factory: Factory, runner: TaskRunner
) -> None:
    error_rows(factory, [NOT_FOUND.format(n) for n in range(8)], runs=1)
    page = open_page(qtbot, factory, runner, page_size=3)
    page.table.selectAll()
    page.select_all_matching()
    page.model.fetchMore()
    wait_loaded(qtbot, page.model)
    assert page.model.rowCount() > 3 and len(page.selected_ids()) == page.model.rowCount()
    assert page.all_matching is not None and page.selection_count() == 8


def test_the_detail_pane_acts_on_its_own_row_even_when_all_matching_is_chosen(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = error_rows(factory, [NOT_FOUND.format(n) for n in range(6)], runs=1)
    page = open_page(qtbot, factory, runner, page_size=3)
    page.table.selectAll()
    page.select_all_matching()
    asked: list[list[int]] = []
    monkeypatch.setattr(discard, "ask_discard", lambda _f, _r, chosen, *_a, **_k: asked.append(chosen))
    monkeypatch.setattr(matching, "ask_matching_action", lambda *_a: pytest.fail("acted on all matching"))
    qtbot.waitUntil(lambda: page.detail.detail is not None, timeout=5000)
    assert page.detail.detail is not None
    shown = page.detail.detail.row.id
    page.detail.discard_button.click()
    assert asked == [[shown]] and shown in ids


# --- Retry and Discard only where they apply --------------------------------------------------------


def _row_actions(page: WritebackListPage) -> dict[str, tuple[str, bool]]:
    """The context menu's Retry and Discard entries of the current row: their text and whether enabled."""
    row = page.model.row_at(page.table.currentIndex().row())
    assert row is not None
    menu = page.context_menu_for(row)
    found = {a.text().split()[0]: (a.text(), a.isEnabled()) for a in menu.actions() if a.text()}
    return {"retry": found["Retry"], "discard": found["Discard"]}


def test_retry_and_discard_are_offered_only_for_rows_a_person_may_retry_or_discard(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    used_up = error_rows(factory, [NOT_FOUND.format(1), NOT_FOUND.format(2)], runs=3)
    retrying, discarded = error_rows(factory, [NOT_FOUND.format(3), NOT_FOUND.format(4)], runs=1)
    operations.discard(factory, [discarded], actor="ann", reason="duplicate")
    (new,) = enqueue(factory, item(email="new@example.org"))
    window = open_window(qtbot, factory, runner, tmp_path)
    page = window.writebacks

    page.table.select_ids([new], current=new)
    assert not window.retry_action.isEnabled()
    assert _row_actions(page) == {
        "retry": ("Retry selected (0)…", False),
        "discard": ("Discard selected (0)…", False),
    }
    page.table.select_ids([retrying], current=retrying)  # Error with automatic retries still to come
    assert not window.retry_action.isEnabled()
    assert _row_actions(page) == {
        "retry": ("Retry selected (0)…", False),
        "discard": ("Discard selected (1)…", True),
    }
    page.table.select_ids([discarded], current=discarded)
    assert window.retry_action.isEnabled() and window.retry_action.text() == "Retry selected…"
    assert _row_actions(page)["discard"] == ("Discard selected (0)…", False)

    everything = [*used_up, retrying, discarded, new]
    page.table.select_ids(everything, current=new)
    # Five selected: the used-up Error rows and the Discarded one may be retried; the Error rows discarded.
    assert window.retry_action.text() == "Retry selected (3)…"
    assert _row_actions(page) == {
        "retry": ("Retry selected (3)…", True),
        "discard": ("Discard selected (3)…", True),
    }

    # Retried elsewhere (another console, the command line): once the rows are read again, the counts follow.
    operations.retry(factory, used_up, actor="bob")
    with qtbot.waitSignal(page.model.rows_refreshed, timeout=5000):
        page.refresh_rows(used_up)
    assert sorted(page.selected_ids()) == sorted(everything)
    assert window.retry_action.text() == "Retry selected (1)…"
    assert _row_actions(page) == {
        "retry": ("Retry selected (1)…", True),
        "discard": ("Discard selected (1)…", True),
    }
    window.close()
