"""The detail pane shows every field, the payload, the attempts and the timeline of a row."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, fail, item, minutes, run, token_of
from writeback_console.domain import Kind, Status
from writeback_console.store import listing, operator_actions, recording
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.listing import WritebackFilter
from writeback_console.store.rows import WritebackRow
from writeback_console.ui.detail_pane import (
    COUNTED_COLUMN,
    HTTP_COLUMN,
    MESSAGE_COLUMN,
    DetailPane,
)
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_view import WritebackListPage

Factory = sessionmaker[Session]


def known_error_row(factory: Factory) -> tuple[WritebackRow, list[listing.AttemptRow]]:
    with factory() as session:
        flt = WritebackFilter(statuses=frozenset({Status.ERROR}), retry_available=True)
        for row in listing.iter_rows(session, flt):
            attempts = listing.attempts_of(session, row.id)
            if len(attempts) >= 3 and any(a.http_status for a in attempts):
                return row, attempts
    raise AssertionError("the seed has no error row with three attempts")


def test_detail_pane_shows_the_attempts_of_a_seeded_error_row(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    row, attempts = known_error_row(small_factory)
    pane = DetailPane(small_factory, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(row.id)
    assert pane.title.text() == row.ref
    assert pane.values["ref"].text() == row.ref
    assert pane.values["attempts"].text().startswith(f"{row.attempts} of {row.max_attempts}")
    assert "manual retry available" in pane.values["attempts"].text()
    assert pane.retry_button.isEnabled()
    assert json.loads(pane.payload.toPlainText()) == dict(row.payload)

    assert pane.attempts.rowCount() == len(attempts)
    for n, attempt in enumerate(attempts):
        assert pane.attempts.item(n, 0).text().startswith(str(attempt.number))
        http = pane.attempts.item(n, HTTP_COLUMN).text()
        assert http == (str(attempt.http_status) if attempt.http_status else "")
        assert (attempt.message or "").startswith(pane.attempts.item(n, MESSAGE_COLUMN).text().rstrip("…"))
        assert pane.attempts.item(n, COUNTED_COLUMN).text() == "counted"
    assert pane.tabs.tabText(2) == f"Attempts ({len(attempts)})"
    # The last attempt is selected and its whole message and response are readable below.
    assert (attempts[-1].message or "—") in pane.attempt_text.toPlainText()

    events = pane.timeline_items()
    assert events[0][1] == "Queued"
    assert [e[1] for e in events if e[1].startswith("Attempt")] == [f"Attempt {a.number}" for a in attempts]


def test_detail_pane_ignores_a_result_for_a_row_no_longer_wanted(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    row, _ = known_error_row(small_factory)
    pane = DetailPane(small_factory, runner)
    qtbot.addWidget(pane)
    pane.show_writeback(row.id)
    pane.show_writeback(None)
    runner.wait()
    qtbot.wait(50)
    assert pane.detail is None
    assert pane.stack.currentIndex() == 0


def test_retry_button_is_offered_only_when_retries_are_used_up(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    with small_factory() as session:
        sent = next(
            iter(listing.iter_rows(session, WritebackFilter(statuses=frozenset({Status.SENT})), limit=1))
        )
    pane = DetailPane(small_factory, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(sent.id)
    assert not pane.retry_button.isEnabled()
    assert pane.values["sent_at"].text() != "—"
    assert any(e[1] == "Sent to Personify360" for e in pane.timeline_items())


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Factory]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def history_with_free_tries(factory: Factory) -> int:
    """A writeback with five attempts in its history of which three counted.

    1 Personify360 unavailable (put back), 2 failed, 3 its dispatcher died (the first time: free),
    4 its dispatcher died again (counts), 5 failed: automatic retries used up.
    """
    (wid,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org"))
    run(factory, T0)
    with write_transaction(factory) as session:
        outage = recording.PutBack(
            wid, token_of(session, wid), T0 + timedelta(seconds=2), "outage", "HTTP 503", http_status=503
        )
        assert recording.put_back(session, [outage]) == {wid}
    run(factory, T0 + minutes(10))
    fail(factory, wid, T0 + minutes(10) + timedelta(seconds=5))
    for started in (T0 + minutes(20), T0 + minutes(60)):
        assert [c.id for c in run(factory, started)] == [wid]
        with write_transaction(factory) as session:
            # The lease of a claim runs fifteen minutes; thirty later its holder is taken to be gone.
            assert recording.recover_expired_leases(session, now=started + minutes(30)) == [wid]
    run(factory, T0 + minutes(100))
    fail(factory, wid, T0 + minutes(100) + timedelta(seconds=5))
    return wid


def test_attempts_that_did_not_count_say_why(qtbot: QtBot, db: Factory, runner: TaskRunner) -> None:
    wid = history_with_free_tries(db)
    pane = DetailPane(db, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(wid)
    assert pane.detail is not None and pane.detail.row.attempts == 3
    words = [pane.attempts.item(n, COUNTED_COLUMN).text() for n in range(pane.attempts.rowCount())]
    assert words == [
        "did not count: Personify360 was unavailable",
        "counted",
        "did not count: the dispatcher stopped while sending",
        "counted: the dispatcher stopped again",
        "counted",
    ]
    # Five entries but three attempts: the tab, the attempts field and the timeline say why.
    assert pane.tabs.tabText(2) == "Attempts (5, 2 did not count)"
    assert pane.values["attempts"].text() == (
        "3 of 3 — automatic retries used up, manual retry available; "
        "2 more tries in the history did not count"
    )
    attempts = [e[1] for e in pane.timeline_items() if e[1].startswith("Attempt")]
    assert attempts == [
        "Attempt 1 (did not count)",
        "Attempt 2",
        "Attempt 3 (did not count)",
        "Attempt 4",
        "Attempt 5",
    ]
    pane.attempts.selectRow(0)
    assert "Did not count: Personify360 was unavailable" in pane.attempt_text.toPlainText()
    assert [a["counted"] for a in pane.detail.to_json()["attempts"]] == [False, True, False, True, True]


def test_a_cancelled_mailing_activity_says_it_was_cancelled(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    mailing_id = add_mailing(db, remote=2)
    due = T0 + timedelta(days=3)
    with write_transaction(db) as session:
        wid = operator_actions.schedule_mailing_activity(
            session, mailing_id, at=due, actor="staff", now=T0
        ).id
        operator_actions.cancel_scheduled(session, wid, actor="staff", now=T0 + minutes(5))
    pane = DetailPane(db, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(wid)
    spec = pane.pill.spec()
    assert spec is not None and spec.status is Status.CANCELLED and spec.struck
    assert pane.values["status"].text().startswith("Cancelled by staff, was due ")
    assert pane.values["scheduled_for"].text().endswith("(cancelled)")
    assert not pane.retry_button.isEnabled()
    assert [e[1] for e in pane.timeline_items()][-1] == "Schedule cancelled"


def test_the_timeline_is_the_row_s_status_history_with_who_made_each_change(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    from tests.helpers.builders import DISPATCHER, send
    from writeback_console.store import lifecycle

    with write_transaction(db) as session:
        wid = lifecycle.enqueue(session, item(), now=T0, actor="importer@desk").id
    for n in range(3):
        run(db, T0 + minutes(10 * n + 1))
        fail(db, wid, T0 + minutes(10 * n + 2), message=f"HTTP 500 number {n + 1}")
    with write_transaction(db) as session:
        operator_actions.manual_retry(session, [wid], actor="advisor@desk", now=T0 + minutes(40))
    run(db, T0 + minutes(41))
    send(db, wid, T0 + minutes(42))
    pane = DetailPane(db, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(wid)
    items = pane.timeline_items()
    assert [(what, who) for _when, what, who, _detail in items] == [
        ("Queued", "importer@desk"),
        ("Attempt 1", DISPATCHER),
        ("Failed", DISPATCHER),
        ("Attempt 2", DISPATCHER),
        ("Failed", DISPATCHER),
        ("Attempt 3", DISPATCHER),
        ("Failed", DISPATCHER),
        ("Retry granted", "advisor@desk"),
        ("Attempt 4 (manual)", DISPATCHER),
        ("Sent to Personify360", DISPATCHER),
    ]
    assert items[2][3] == "HTTP 500 number 1" and items[6][3] == "HTTP 500 number 3"
    assert pane.tabs.tabText(pane.tabs.indexOf(pane.timeline)) == "Timeline (10)"


def error_rows_with_equal_attempts(factory: Factory) -> tuple[WritebackRow, WritebackRow, int]:
    """Two seeded Error rows with the same number of attempts (at least two)."""
    seen: dict[int, WritebackRow] = {}
    with factory() as session:
        for row in listing.iter_rows(session, WritebackFilter(statuses=frozenset({Status.ERROR}))):
            n = len(listing.attempts_of(session, row.id))
            if n < 2:
                continue
            if n in seen:
                return seen[n], row, n
            seen[n] = row
    raise AssertionError("the seed has no two error rows with as many attempts")


def attempt_header(pane: DetailPane) -> str:
    return pane.attempt_text.toPlainText().splitlines()[0] if pane.attempt_text.toPlainText() else ""


def test_attempts_tab_shows_the_newest_attempt_of_each_row_and_any_attempt_clicked(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    first, second, count = error_rows_with_equal_attempts(small_factory)
    pane = DetailPane(small_factory, runner)
    qtbot.addWidget(pane)
    pane.resize(1000, 500)
    pane.show()
    pane.tabs.setCurrentIndex(2)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(first.id)
    # An older attempt of the first row is being read when the user moves to the next row.
    pane.attempts.selectRow(0)
    pane.attempts.selectRow(count - 1)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(second.id)
    assert pane.detail is not None and pane.detail.row.id == second.id
    # The highlighted attempt is the newest one, and it is the one shown.
    assert [i.row() for i in pane.attempts.selectionModel().selectedRows()] == [count - 1]
    newest = pane.detail.attempts[-1]
    assert attempt_header(pane).startswith(f"Attempt {newest.number} by")
    assert (newest.message or "—") in pane.attempt_text.toPlainText()

    # Clicking an attempt shows it, the highlighted one included.
    viewport = pane.attempts.viewport()
    for n in (0, count - 1, count - 1):
        pane.attempt_text.setPlainText("")
        rect = pane.attempts.visualRect(pane.attempts.model().index(n, 1))
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
        assert attempt_header(pane).startswith(f"Attempt {pane.detail.attempts[n].number} by")


def test_refreshing_a_row_keeps_the_attempt_being_read(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    row, attempts = known_error_row(small_factory)
    pane = DetailPane(small_factory, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(row.id)
    pane.attempts.selectRow(0)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.refresh()
    assert [i.row() for i in pane.attempts.selectionModel().selectedRows()] == [0]
    assert attempt_header(pane).startswith(f"Attempt {attempts[0].number} by")


def delete_writeback(factory: Factory, writeback_id: int) -> None:
    """The row goes from the database behind the console's back (another console's database, a purge)."""
    from sqlalchemy import delete

    from writeback_console.store.models import Writeback

    with write_transaction(factory) as session:
        session.execute(delete(Writeback).where(Writeback.id == writeback_id))


def list_page(qtbot: QtBot, factory: Factory, runner: TaskRunner) -> WritebackListPage:
    page = WritebackListPage(factory, runner)
    qtbot.addWidget(page)
    page.start()
    qtbot.waitUntil(lambda: page.model.rowCount() > 0 and not page.model.loading, timeout=5000)
    return page


def select_and_wait(qtbot: QtBot, page: WritebackListPage, writeback_id: int) -> None:
    with qtbot.waitSignal(page.detail.loaded, timeout=5000):
        page.table.select_ids([writeback_id], current=writeback_id)


def test_a_row_that_vanishes_leaves_the_list_and_the_pane_asks_for_a_selection(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    ids = enqueue(db, *(item(Kind.RESUBSCRIBE, f"p{n}@example.org") for n in range(3)))
    page = list_page(qtbot, db, runner)
    select_and_wait(qtbot, page, ids[1])
    ref = page.detail.detail.row.ref if page.detail.detail else ""
    messages: list[str] = []
    page.status_message.connect(messages.append)
    delete_writeback(db, ids[1])
    # A dispatcher run reports the row as changed: the list and the pane read it again.
    page.refresh_rows([ids[1]])
    qtbot.waitUntil(lambda: page.model.row_of_id(ids[1]) is None, timeout=5000)
    qtbot.waitUntil(lambda: page.detail.hint.text().startswith("Select a writeback"), timeout=5000)
    assert page.detail.stack.currentIndex() == 0 and page.detail.writeback_id is None
    assert any(ref in m and "no longer in the queue" in m for m in messages)
    # Whatever happens next, the pane never names the internal id.
    page.filter_bar.clear()
    page.filter_bar.set_text("p0@example.org")
    qtbot.waitUntil(lambda: not page.model.loading and page.model.rowCount() == 1, timeout=5000)
    for text in [page.detail.hint.text(), *messages]:
        assert "no writeback" not in text and str(ids[1]) not in text.replace(ref, "")
    assert page.detail.hint.text().startswith("Select a writeback")


def test_a_row_that_fails_to_load_is_named_by_its_reference_and_the_next_choice_clears_it(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    ids = enqueue(db, *(item(Kind.RESUBSCRIBE, f"p{n}@example.org") for n in range(2)))
    pane = DetailPane(db, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(ids[0])
    ref = pane.detail.row.ref if pane.detail else ""
    delete_writeback(db, ids[0])
    with qtbot.waitSignal(pane.vanished, timeout=5000):
        pane.refresh()
    assert pane.hint.text() == f"{ref} is no longer in the queue."
    pane.show_writeback(None)
    assert pane.hint.text().startswith("Select a writeback")


def test_an_error_row_with_attempts_left_says_when_its_automatic_retry_is_due(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    from writeback_console.domain import utcnow
    from writeback_console.ui.detail_pane import next_retry_text

    (wid,) = enqueue(db, item())
    failed_at = utcnow()
    run(db, failed_at - timedelta(seconds=1))
    fail(db, wid, failed_at, retry_after=timedelta(minutes=10))
    pane = DetailPane(db, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(wid)
    shown = pane.values["next_attempt_at"].text()
    assert shown.endswith("or the first run after it") and shown != ""
    with db() as session:
        row = listing.get_writeback(session, wid)
    assert next_retry_text(row, failed_at + timedelta(minutes=11)) == "at the next dispatcher run"
    assert next_retry_text(dataclasses.replace(row, attempts=row.max_attempts), failed_at) == ""


def test_a_row_that_fails_to_load_again_is_still_named_by_its_reference(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    """After one failed read (the database away for a run, a row it cannot read) the next refresh forgot
    the reference: "This writeback could not be read", then "The writeback shown is no longer…"."""
    from sqlalchemy import text

    (wid,) = enqueue(db, item(Kind.RESUBSCRIBE, "p0@example.org"))
    pane = DetailPane(db, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(wid)
    ref = pane.detail.row.ref if pane.detail else ""
    with write_transaction(db) as session:
        session.execute(text("UPDATE writeback SET payload = '{unreadable' WHERE id = :id"), {"id": wid})
    for _ in range(2):
        pane.refresh()
        qtbot.waitUntil(lambda: "could not be read" in pane.hint.text(), timeout=5000)
        assert pane.hint.text().startswith(f"{ref} could not be read")
        pane.hint.setText("")
    delete_writeback(db, wid)
    with qtbot.waitSignal(pane.vanished, timeout=5000) as signal:
        pane.refresh()
    assert signal.args == [wid, ref]
    assert pane.hint.text() == f"{ref} is no longer in the queue."


def test_a_granted_retry_on_the_timeline_says_the_filter_it_was_granted_under(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    from writeback_console import operations

    (wid,) = enqueue(db, item())
    for n in range(3):
        run(db, T0 + minutes(10 * n + 1))
        fail(db, wid, T0 + minutes(10 * n + 2), message="Activity Code NEWS is inactive.")
    flt = WritebackFilter(statuses=frozenset({Status.ERROR}), error_text="is inactive")
    operations.act_on_matching(db, flt, "retry", actor="advisor@desk")
    pane = DetailPane(db, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(wid)
    granted = [e for e in pane.timeline_items() if e[1] == "Retry granted"]
    assert [e[3] for e in granted] == ['all matching: status=error, error contains "is inactive"']


def test_the_attempts_and_timeline_columns_fit_what_they_hold(
    qtbot: QtBot, db: Factory, runner: TaskRunner
) -> None:
    service = "svc-informz@p360.example.org"
    (wid,) = enqueue(db, item())
    for n in range(3):
        run(db, T0 + minutes(10 * n + 1))
        fail(db, wid, T0 + minutes(10 * n + 2), message="HTTP 500")
    with write_transaction(db) as session:
        operator_actions.discard(session, [wid], actor=service, reason="member left", now=T0 + minutes(40))
        operator_actions.manual_retry(session, [wid], actor=service, now=T0 + minutes(41))
    run(db, T0 + minutes(42))
    fail(db, wid, T0 + minutes(43), message="HTTP 500 again")
    pane = DetailPane(db, runner)
    qtbot.addWidget(pane)
    pane.resize(1100, 400)
    pane.show()
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(wid)
    attempts, header = pane.attempts, pane.attempts.horizontalHeader()
    assert attempts.item(3, 0).text() == "4 (manual)"
    for column in range(MESSAGE_COLUMN):
        wanted = max(attempts.sizeHintForColumn(column), header.sectionSizeHint(column))
        assert attempts.columnWidth(column) >= wanted, attempts.horizontalHeaderItem(column).text()
    assert header.defaultAlignment() & Qt.AlignmentFlag.AlignLeft
    timeline = pane.timeline
    assert ["Retry granted (discard undone)", service] in [e[1:3] for e in pane.timeline_items()]
    for column in range(3):
        assert timeline.columnWidth(column) >= timeline.sizeHintForColumn(column), column
