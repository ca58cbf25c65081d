"""The Writeback List model: paging, SQL filters and sorts via the filter bar, stale results, refreshes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import load_everything, wait_loaded
from tests.helpers.builders import T0, enqueue, item, run
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.listing import WritebackFilter
from writeback_console.store.rows import WritebackRow
from writeback_console.ui.filter_bar import FilterBar, local_midnight_utc
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import COLUMNS, Column, ListQuery, WritebackTableModel
from writeback_console.ui.writeback_view import WritebackListPage

Factory = sessionmaker[Session]


def all_rows(factory: Factory, flt: WritebackFilter, **order: Any) -> list[WritebackRow]:
    with factory() as session:
        return list(listing.iter_rows(session, flt, **order))


def make_model(factory: Factory, runner: TaskRunner, page_size: int = 100) -> WritebackTableModel:
    return WritebackTableModel(factory, runner, page_size=page_size)


def test_model_passes_the_qt_model_tester_when_loaded(
    qtbot: QtBot, qtmodeltester: ModelTester, small_factory: Factory, runner: TaskRunner
) -> None:
    model = make_model(small_factory, runner)
    model.set_query(ListQuery())
    load_everything(qtbot, model)
    assert model.rowCount() == 1500
    qtmodeltester.check(model, force_py=True)


def test_model_passes_the_qt_model_tester_while_pages_arrive(
    qtbot: QtBot, qtmodeltester: ModelTester, small_factory: Factory, runner: TaskRunner
) -> None:
    model = make_model(small_factory, runner)
    model.set_query(ListQuery())
    wait_loaded(qtbot, model)
    # check() calls fetchMore; the page arrives afterwards and the tester watches the insertion.
    qtmodeltester.check(model, force_py=True)
    wait_loaded(qtbot, model)
    assert model.rowCount() == 200


def test_pages_follow_list_page_and_keep_the_cursor(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    model = make_model(small_factory, runner)
    model.set_query(ListQuery())
    wait_loaded(qtbot, model)
    with small_factory() as session:
        first = listing.list_page(session, WritebackFilter(), limit=100)
        second = listing.list_page(session, WritebackFilter(), after=first.next_cursor, limit=100)
    assert [r.id for r in model.loaded_rows()] == [r.id for r in first.rows]
    assert model.canFetchMore()
    model.fetchMore()
    model.fetchMore()  # a second call while the page is in flight asks for nothing more
    wait_loaded(qtbot, model)
    assert [r.id for r in model.loaded_rows()] == [r.id for r in first.rows + second.rows]
    assert model.fetched_rows == 200
    assert model.pages_fetched == 2


def test_cells_show_attempts_of_max_and_the_mailing_for_mailing_activity(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    model = make_model(small_factory, runner)
    model.set_query(ListQuery(WritebackFilter(kinds=frozenset({Kind.MAILING_ACTIVITY}))))
    wait_loaded(qtbot, model)
    row = model.row_at(0)
    assert row is not None
    assert model.data(model.index(0, Column.ATTEMPTS)) == f"{row.attempts}/{row.max_attempts}"
    assert model.data(model.index(0, Column.EMAIL)).startswith("Mailing")
    assert model.data(model.index(0, Column.STATUS)) == row.status.label
    assert model.headerData(Column.LAST_ERROR, Qt.Orientation.Horizontal) == "Last error"


# --- filters: what the filter bar builds gives the rows iter_rows gives ----------------------------


def _statuses(bar: FilterBar) -> WritebackFilter:
    bar.set_statuses([Status.ERROR, Status.PROCESSING])
    return WritebackFilter(statuses=frozenset({Status.ERROR, Status.PROCESSING}))


def _kind(bar: FilterBar) -> WritebackFilter:
    bar.set_kinds([Kind.INVALID_EMAIL, Kind.INTERESTS])
    return WritebackFilter(kinds=frozenset({Kind.INVALID_EMAIL, Kind.INTERESTS}))


def _account(bar: FilterBar) -> WritebackFilter:
    bar.set_account("Foundation")
    return WritebackFilter(accounts=frozenset({"Foundation"}))


def _created_range(bar: FilterBar) -> WritebackFilter:
    start, end = date.today() - timedelta(days=60), date.today() - timedelta(days=30)
    bar.set_created_range(start, end)
    return WritebackFilter(
        created_from=local_midnight_utc(start), created_to=local_midnight_utc(end + timedelta(days=1))
    )


def _email_text(bar: FilterBar) -> WritebackFilter:
    bar.set_text("Ann.")
    return WritebackFilter(text="Ann.")


def _constituent_text(bar: FilterBar) -> WritebackFilter:
    bar.set_text("000000001")
    return WritebackFilter(text="000000001")


def _mailing_text(bar: FilterBar) -> WritebackFilter:
    bar.set_text("renewal")
    return WritebackFilter(text="renewal")


def _like_metacharacters(bar: FilterBar) -> WritebackFilter:
    bar.set_text("%_")
    return WritebackFilter(text="%_")


def _retried(bar: FilterBar) -> WritebackFilter:
    bar.set_flags(retried=True)
    return WritebackFilter(retried=True)


def _retry_available(bar: FilterBar) -> WritebackFilter:
    bar.set_flags(retry_available=True)
    return WritebackFilter(retry_available=True)


def _combined(bar: FilterBar) -> WritebackFilter:
    bar.set_statuses([Status.SENT])
    bar.set_kinds([Kind.UNSUBSCRIBE])
    bar.set_account("Main")
    bar.set_flags(retried=True)
    return WritebackFilter(
        statuses=frozenset({Status.SENT}),
        kinds=frozenset({Kind.UNSUBSCRIBE}),
        accounts=frozenset({"Main"}),
        retried=True,
    )


FILTERS = [
    _statuses,
    _kind,
    _account,
    _created_range,
    _email_text,
    _constituent_text,
    _mailing_text,
    _like_metacharacters,
    _retried,
    _retry_available,
    _combined,
]


@pytest.mark.parametrize("apply", FILTERS, ids=lambda f: f.__name__.strip("_"))
def test_each_filter_gives_the_rows_iter_rows_gives(
    qtbot: QtBot, seeded_factory: Factory, runner: TaskRunner, apply: Any
) -> None:
    page = WritebackListPage(seeded_factory, runner, page_size=250)
    qtbot.addWidget(page)
    page.start()
    wait_loaded(qtbot, page.model)
    expected_filter = apply(page.filter_bar)
    assert page.current_filter() == expected_filter
    load_everything(qtbot, page.model)
    expected = all_rows(seeded_factory, expected_filter)
    assert [r.id for r in page.model.loaded_rows()] == [r.id for r in expected]
    if apply is not _like_metacharacters:
        assert expected, "the seeded data should give the filter something to find"


def test_stuck_filter_is_processing_rows_whose_lease_ran_out(
    qtbot: QtBot, seeded_factory: Factory, runner: TaskRunner
) -> None:
    page = WritebackListPage(seeded_factory, runner, lease_seconds=900, page_size=250)
    qtbot.addWidget(page)
    before = utcnow()
    page.filter_bar.set_flags(stuck=True)
    load_everything(qtbot, page.model)
    flt = page.current_filter()
    assert flt.stuck_before is not None
    # Judged by the lease each row's holder stored, not by this console's own lease setting.
    assert before <= flt.stuck_before <= utcnow()
    expected = all_rows(seeded_factory, WritebackFilter(stuck_before=flt.stuck_before))
    assert expected
    assert [r.id for r in page.model.loaded_rows()] == [r.id for r in expected]
    assert {r.status for r in page.model.loaded_rows()} == {Status.PROCESSING}


def test_status_buttons_show_live_counts_under_the_other_filters(
    qtbot: QtBot, seeded_factory: Factory, runner: TaskRunner
) -> None:
    page = WritebackListPage(seeded_factory, runner)
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.counts_changed, timeout=10_000):
        page.filter_bar.set_kinds([Kind.UNSUBSCRIBE])
    with seeded_factory() as session:
        counts = listing.count_by_status(session, WritebackFilter(kinds=frozenset({Kind.UNSUBSCRIBE})))
    for status, button in page.filter_bar.status_buttons.items():
        assert button.text() == f"{status.label}  {counts[status]:,}"


# --- sorting -------------------------------------------------------------------------------------


SORTABLE = [c for c, spec in COLUMNS.items() if spec.sort is not None]


@pytest.mark.parametrize("column", SORTABLE, ids=lambda c: c.name.lower())
@pytest.mark.parametrize(
    "order", [Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder], ids=["asc", "desc"]
)
def test_sorting_by_each_column_matches_list_page(
    qtbot: QtBot, seeded_factory: Factory, runner: TaskRunner, column: Column, order: Qt.SortOrder
) -> None:
    model = make_model(seeded_factory, runner)
    model.set_query(ListQuery())
    wait_loaded(qtbot, model)
    model.sort(column, order)
    wait_loaded(qtbot, model)
    model.fetchMore()
    wait_loaded(qtbot, model)
    sort = COLUMNS[column].sort
    assert sort is not None
    descending = order == Qt.SortOrder.DescendingOrder
    assert model.query.sort == sort and model.query.descending == descending
    with seeded_factory() as session:
        first = listing.list_page(session, WritebackFilter(), sort=sort, descending=descending, limit=100)
        second = listing.list_page(
            session, WritebackFilter(), sort=sort, descending=descending, after=first.next_cursor, limit=100
        )
    assert [r.id for r in model.loaded_rows()] == [r.id for r in first.rows + second.rows]


def test_last_error_is_not_sortable_and_clicking_it_changes_nothing(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    page = WritebackListPage(small_factory, runner)
    qtbot.addWidget(page)
    page.start()
    wait_loaded(qtbot, page.model)
    generation = page.model.generation
    page.table.sortByColumn(Column.LAST_ERROR, Qt.SortOrder.AscendingOrder)
    assert page.model.generation == generation
    assert page.table.horizontalHeader().sortIndicatorSection() == Column.CREATED


def test_clicking_a_header_sorts_in_sql(qtbot: QtBot, small_factory: Factory, runner: TaskRunner) -> None:
    page = WritebackListPage(small_factory, runner)
    qtbot.addWidget(page)
    page.start()
    wait_loaded(qtbot, page.model)
    page.table.sortByColumn(Column.EMAIL, Qt.SortOrder.AscendingOrder)
    wait_loaded(qtbot, page.model)
    assert (page.model.query.sort, page.model.query.descending) == ("email", False)
    emails = [r.email.lower() for r in page.model.loaded_rows() if r.email]
    assert emails == sorted(emails)


# --- stale results, refresh, reload, select ------------------------------------------------------


def test_results_of_an_older_filter_are_discarded(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    model = make_model(small_factory, runner)
    shown: list[list[int]] = []
    model.first_page_loaded.connect(lambda _keep: shown.append([r.id for r in model.loaded_rows()]))
    model.set_query(ListQuery(WritebackFilter(statuses=frozenset({Status.SENT}))))
    model.set_query(ListQuery(WritebackFilter(statuses=frozenset({Status.ERROR}))))
    wait_loaded(qtbot, model)
    qtbot.wait(50)  # time for a stray result of the first query to arrive, if one were going to
    runner.wait()
    qtbot.wait(20)
    expected = all_rows(small_factory, WritebackFilter(statuses=frozenset({Status.ERROR})))[:100]
    assert shown == [[r.id for r in expected]]
    assert {r.status for r in model.loaded_rows()} == {Status.ERROR}


def test_filter_as_you_type_queries_once_after_a_pause(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    page = WritebackListPage(small_factory, runner)
    qtbot.addWidget(page)
    page.start()
    wait_loaded(qtbot, page.model)
    generation = page.model.generation
    qtbot.keyClicks(page.filter_bar.search, "mary")
    assert page.model.generation == generation  # nothing yet: the throttle waits for a pause
    assert page.filter_bar.text_throttle.isActive()
    qtbot.waitUntil(lambda: page.model.generation == generation + 1, timeout=2000)
    wait_loaded(qtbot, page.model)
    qtbot.wait(400)
    assert page.model.generation == generation + 1
    assert page.current_filter().text == "mary"


def test_refresh_rows_rereads_rows_keeping_selection_and_scroll(
    qtbot: QtBot, sqlite_url: str, runner: TaskRunner
) -> None:
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    ids = enqueue(factory, *[item(email=f"p{n}@example.org") for n in range(300)])
    page = WritebackListPage(factory, runner)
    qtbot.addWidget(page)
    page.resize(1000, 500)
    page.show()
    page.start()
    wait_loaded(qtbot, page.model)
    target = ids[-5]  # newest first: near the top
    page.table.select_ids([target], current=target)
    page.table.verticalScrollBar().setValue(2)
    scroll = page.table.verticalScrollBar().value()
    row = page.model.row_of_id(target)
    assert row is not None
    assert page.model.data(page.model.index(row, Column.STATUS)) == "New"

    run(factory, T0 + timedelta(minutes=1))  # a dispatcher run claims every New row
    with qtbot.waitSignal(page.model.rows_refreshed, timeout=5000) as signal:
        page.refresh_rows([target])
    assert signal.args == [[target]]
    assert page.model.data(page.model.index(row, Column.STATUS)) == "Processing"
    assert page.selected_ids() == [target]
    assert page.table.verticalScrollBar().value() == scroll
    engine.dispose()


def test_reload_keeps_the_selection_by_id(qtbot: QtBot, sqlite_url: str, runner: TaskRunner) -> None:
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    ids = enqueue(factory, *[item(email=f"p{n}@example.org") for n in range(50)])
    page = WritebackListPage(factory, runner)
    qtbot.addWidget(page)
    page.start()
    wait_loaded(qtbot, page.model)
    page.table.select_ids([ids[10], ids[20]])
    enqueue(factory, item(email="newcomer@example.org"))  # shifts every row down by one
    with qtbot.waitSignal(page.model.first_page_loaded, timeout=5000) as signal:
        page.reload()
    assert signal.args == [True]
    assert sorted(page.selected_ids()) == sorted([ids[10], ids[20]])
    assert page.model.rowCount() == 51
    engine.dispose()


def test_select_ref_searches_for_the_ref_alone_and_selects_it(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    wanted = all_rows(small_factory, WritebackFilter(statuses=frozenset({Status.ERROR})))[7]
    page = WritebackListPage(small_factory, runner)
    qtbot.addWidget(page)
    page.filter_bar.set_statuses([Status.SENT])  # must not hide the ref
    wait_loaded(qtbot, page.model)
    page.select_ref(wanted.ref.lower())
    qtbot.waitUntil(lambda: page.selected_ids() == [wanted.id], timeout=5000)
    assert page.filter_bar.search.text() == wanted.ref
    assert page.current_filter() == WritebackFilter(text=wanted.ref)
    qtbot.waitUntil(lambda: page.detail.writeback_id == wanted.id, timeout=5000)


def test_a_failing_query_is_reported_and_not_retried_in_a_loop(
    qtbot: QtBot, tmp_path: Any, runner: TaskRunner
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")  # no tables at all
    model = make_model(make_session_factory(engine), runner)
    with qtbot.waitSignal(model.load_failed, timeout=5000) as signal:
        model.set_query(ListQuery())
    assert "could not be read" in signal.args[0]
    assert not model.canFetchMore(QModelIndex())
    engine.dispose()


def test_set_query_without_running_only_remembers(small_factory: Factory, runner: TaskRunner) -> None:
    model = make_model(small_factory, runner)
    model.set_query(replace(ListQuery(), sort="ref"), run=False)
    assert model.query.sort == "ref"
    assert not model.loading


def test_the_sent_scheduled_column_shows_a_whole_due_date(
    qtbot: QtBot, sqlite_url: str, runner: TaskRunner
) -> None:
    from tests.helpers.builders import add_mailing
    from writeback_console.store import operator_actions
    from writeback_console.store.engine import write_transaction

    db = make_session_factory(make_engine(sqlite_url))
    mailing_id = add_mailing(db, remote=2)
    with write_transaction(db) as session:
        due = datetime(utcnow().year + 1, 12, 28, 23, 58, tzinfo=UTC)
        operator_actions.schedule_mailing_activity(session, mailing_id, at=due, actor="staff")
    page = WritebackListPage(db, runner)
    qtbot.addWidget(page)
    page.resize(1440, 900)
    page.show()
    qtbot.waitUntil(lambda: not page.model.loading and page.model.rowCount() == 1, timeout=5000)
    table = page.table
    text = page.model.index(0, Column.SENT).data()
    assert text.startswith("due ")
    assert table.columnWidth(Column.SENT) >= table.sizeHintForColumn(Column.SENT)
