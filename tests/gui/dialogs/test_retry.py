"""The Retry dialog: only rows with automatic retries used up, grouped by error; one more attempt each."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, fail, item, minutes, run
from writeback_console import operations
from writeback_console.domain import Status
from writeback_console.store import audit_trail, listing
from writeback_console.store.rows import current_actor
from writeback_console.ui.dialogs.retry import RetryDialog
from writeback_console.ui.tasks import TaskRunner


class Clock:
    """Dispatcher runs ten minutes apart, so that every failure belongs to an earlier run."""

    def __init__(self) -> None:
        self.at = T0

    def tick(self) -> datetime:
        self.at += minutes(10)
        return self.at


def failing(factory: sessionmaker[Session], clock: Clock, message: str, runs: int) -> int:
    """A writeback that failed in ``runs`` dispatcher runs, the last time with ``message``."""
    (wid,) = enqueue(factory, item(email=f"{message[:3].lower()}{clock.at.minute}@example.org"))
    for _ in range(runs):
        at = clock.tick()
        assert [c.id for c in run(factory, at)] == [wid]
        fail(factory, wid, at + timedelta(seconds=5), message)
    return wid


@pytest.fixture
def rows(db: sessionmaker[Session]) -> dict[str, int]:
    clock = Clock()
    return {
        "timeout_1": failing(db, clock, "Personify360 did not answer within 30 s", 3),
        "timeout_2": failing(db, clock, "Personify360 did not answer within 30 s", 3),
        "invalid": failing(db, clock, "HTTP 400: Activity Code 'INFORMZ_UNSUB' is inactive.", 3),
        "attempts_left": failing(db, clock, "HTTP 500: boom", 1),
        "new": enqueue(db, item(email="new@example.org"))[0],
    }


def open_dialog(qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, ids: list[int]) -> RetryDialog:
    dialog = RetryDialog(db, runner, ids, filter={"statuses": ["error"]})
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=5000)
    return dialog


def test_only_rows_whose_automatic_retries_are_used_up_are_offered_grouped_by_error(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, rows: dict[str, int]
) -> None:
    dialog = open_dialog(qtbot, db, runner, list(rows.values()))
    preview = dialog.preview
    assert preview is not None
    groups = {message: sorted(r.id for r in group) for message, group in preview.eligible.items()}
    assert groups == {
        "Personify360 did not answer within … s": sorted([rows["timeout_1"], rows["timeout_2"]]),
        "HTTP 400: Activity Code … is inactive.": [rows["invalid"]],
    }
    # The tree shows one group per reason with its count, largest first, and the rows under it.
    tops = [dialog.eligible_tree.topLevelItem(i) for i in range(dialog.eligible_tree.topLevelItemCount())]
    assert [t.text(0) for t in tops if t is not None] == [
        "Personify360 did not answer within … s  (2)",
        "HTTP 400: Activity Code … is inactive.  (1)",
    ]
    assert tops[0] is not None and tops[0].childCount() == 2
    reasons = {row.id: reason for row, reason in preview.ineligible}
    assert reasons == {
        rows["attempts_left"]: "2 automatic retries are still to come",
        rows["new"]: "status is New, only Error or Discarded rows can be retried",
    }
    assert dialog.ineligible_tree.topLevelItemCount() == 2
    assert dialog.confirm_label.text() == "Retry 3 writebacks?"
    assert dialog.ok_button.isEnabled()


def test_retry_grants_one_more_attempt_keeps_history_and_audits(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, rows: dict[str, int]
) -> None:
    dialog = open_dialog(qtbot, db, runner, list(rows.values()))
    dialog.send_now_box.setChecked(True)
    with qtbot.waitSignal(dialog.retried, timeout=5000) as signal:
        dialog.ok_button.click()
    retried_ids, send_now = signal.args
    eligible = sorted([rows["timeout_1"], rows["timeout_2"], rows["invalid"]])
    assert sorted(retried_ids) == eligible and send_now is True
    assert dialog.confirm_label.text().startswith("Done: 3 writebacks queued again")
    with db() as session:
        for wid in eligible:
            row = listing.get_writeback(session, wid)
            assert (row.status, row.attempts, row.max_attempts) == (Status.NEW, 3, 4)
            assert len(listing.attempts_of(session, wid)) == 3
            (event,) = audit_trail.audit_of(session, wid)
            assert (event.action, event.actor, event.row_count) == ("retry", current_actor(), 3)
            assert event.filter == {"statuses": ["error"]}
        untouched = listing.get_writeback(session, rows["attempts_left"])
        assert (untouched.status, untouched.max_attempts) == (Status.ERROR, 3)
        assert audit_trail.audit_of(session, rows["attempts_left"]) == []


def test_nothing_eligible_leaves_ok_disabled(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, rows: dict[str, int]
) -> None:
    dialog = open_dialog(qtbot, db, runner, [rows["attempts_left"], rows["new"]])
    assert not dialog.ok_button.isEnabled()
    assert not dialog.send_now_box.isEnabled()
    assert dialog.confirm_label.text() == "Nothing to retry."


def test_messages_that_differ_only_in_emails_and_ids_make_one_group(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner
) -> None:
    clock = Clock()
    ids = [
        failing(db, clock, f"no Personify360 constituent has the email person{n}@example.org", 3)
        for n in range(6)
    ] + [failing(db, clock, f"Validation issues: Customer {n:012d}-0 does not exist.", 3) for n in range(4)]
    dialog = open_dialog(qtbot, db, runner, ids)
    assert dialog.preview is not None
    assert {reason: len(group) for reason, group in dialog.preview.eligible.items()} == {
        "no Personify360 constituent has the email …": 6,
        "Validation issues: Customer … does not exist.": 4,
    }
    assert "(2 groups)" in dialog.eligible_label.text()


def test_a_group_refused_the_same_way_every_time_is_warned_about_and_can_still_be_retried(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, rows: dict[str, int]
) -> None:
    dialog = open_dialog(qtbot, db, runner, [rows["invalid"], rows["timeout_1"]])
    tops = {t.text(0): t for t in (dialog.eligible_tree.topLevelItem(i) for i in range(2)) if t is not None}
    refused = tops["HTTP 400: Activity Code … is inactive.  (1)"]
    warning = refused.child(0)
    assert warning is not None and warning.text(0) == (
        "⚠ Failed 3 of 3 times with the same validation refusal: fix the cause first"
    )
    timeouts = tops["Personify360 did not answer within … s  (1)"]
    assert all("⚠" not in timeouts.child(i).text(0) for i in range(timeouts.childCount()))
    assert dialog.ok_button.isEnabled() and dialog.ok_button.text() == "Retry 2"


def test_references_are_shown_whole_and_the_count_reads_right_in_the_singular(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, rows: dict[str, int]
) -> None:
    dialog = open_dialog(qtbot, db, runner, [rows["invalid"], rows["new"]])
    dialog.resize(760, 520)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert "1 has used up its automatic retries and can be retried by hand; 1 cannot." in (
        dialog.summary_label.text()
    )
    group = dialog.eligible_tree.topLevelItem(0)
    assert group is not None
    child = next(
        group.child(i) for i in range(group.childCount()) if group.child(i).text(0).startswith("WB-")
    )
    rect = dialog.eligible_tree.visualItemRect(child)
    needed = dialog.eligible_tree.fontMetrics().horizontalAdvance(child.text(0))
    assert dialog.eligible_tree.columnWidth(0) - (rect.x() + dialog.eligible_tree.indentation()) >= needed


def test_a_discarded_row_is_offered_and_said_apart(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, rows: dict[str, int]
) -> None:
    operations.discard(db, [rows["attempts_left"]], actor="advisor", reason="member left")
    dialog = open_dialog(qtbot, db, runner, [rows["attempts_left"]])
    assert dialog.summary_label.text() == (
        "1 selected writeback: 1 was discarded and can be retried by hand."
    )
