"""The detail pane shows every field, the payload, the attempts and the timeline of a seeded row."""

from __future__ import annotations

import json

from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import Status
from writeback_console.store import queue
from writeback_console.store.queue import WritebackFilter
from writeback_console.ui.detail_pane import DetailPane
from writeback_console.ui.tasks import TaskRunner

Factory = sessionmaker[Session]


def known_error_row(factory: Factory) -> tuple[queue.WritebackRow, list[queue.AttemptRow]]:
    with factory() as session:
        flt = WritebackFilter(statuses=frozenset({Status.ERROR}), retry_available=True)
        for row in queue.iter_rows(session, flt):
            attempts = queue.attempts_of(session, row.id)
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
        http = pane.attempts.item(n, 4).text()
        assert http == (str(attempt.http_status) if attempt.http_status else "")
        assert (attempt.message or "").startswith(pane.attempts.item(n, 5).text().rstrip("…"))
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
            iter(queue.iter_rows(session, WritebackFilter(statuses=frozenset({Status.SENT})), limit=1))
        )
    pane = DetailPane(small_factory, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(sent.id)
    assert not pane.retry_button.isEnabled()
    assert pane.values["sent_at"].text() != "—"
    assert any(e[1] == "Sent to Personify360" for e in pane.timeline_items())
