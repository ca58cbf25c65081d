"""Retry or Discard every writeback matching the list's filter: the count first (with the cap), then the
action in batches off the GUI thread, with progress, and a Cancel that stops between batches (what was
done stays done, and the dialog says how much)."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import operations
from writeback_console.domain import DISCARD_REASON_LIMIT, discard_reason_problem
from writeback_console.store.listing import WritebackFilter
from writeback_console.store.rows import current_actor
from writeback_console.ui.dialogs import TaskGroup, count_text, errors
from writeback_console.ui.tasks import TaskRunner

SAMPLE = 5
VERBS = {"retry": ("Retry", "retried", "Retrying"), "discard": ("Discard", "discarded", "Discarding")}


def done_text(action: str, result: operations.BulkResult, total: int | None) -> str:
    """What an action on all matching rows did, in words (also when it was cancelled part-way)."""
    _, past, _ = VERBS[action]
    done = count_text(result.changed, "writeback")
    if result.cancelled:
        of = f" of {total:,}" if total is not None else ""
        verb = "was" if result.changed == 1 else "were"
        text = f"Cancelled: {done}{of} {verb} {past}; the rest are unchanged."
    else:
        text = f"Done: {done} {past}."
        if action == "retry":
            text = f"Done: {done} queued again for the next dispatcher run."
    if result.skipped:
        verb = "was" if result.skipped == 1 else "were"
        text += f" {count_text(result.skipped, 'row')} changed meanwhile and {verb} left alone."
    return text


class MatchingActionDialog(QDialog):
    """Confirm, then perform, a retry or a discard of every row matching a filter.

    Signals:
        finished_action(object): the ``operations.BulkResult`` once the work stopped (done or cancelled).
    """

    finished_action = Signal(object)

    def __init__(
        self,
        factory: sessionmaker[Session],
        runner: TaskRunner,
        flt: WritebackFilter,
        action: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        title, _, _ = VERBS[action]
        self.setWindowTitle(f"{title} all matching writebacks")
        self.resize(560, 280)
        self._factory = factory
        self._runner = TaskGroup(self, runner)
        self.filter = flt
        self.action = action
        self.preview: operations.MatchingPreview | None = None
        self.progress: operations.BulkProgress | None = None
        self.result_: operations.BulkResult | None = None

        self.summary_label = QLabel("Counting the writebacks matching the filter…")
        self.summary_label.setWordWrap(True)
        self.sample_label = QLabel()
        self.sample_label.setWordWrap(True)
        self.reason_edit = QLineEdit()
        self.reason_edit.setObjectName("discardReason")
        self.reason_edit.setMaxLength(DISCARD_REASON_LIMIT)
        self.reason_edit.setPlaceholderText(
            "Why should these not be retried? (required, kept in the audit log)"
        )
        self.reason_edit.textChanged.connect(self._update_ok)
        self.reason_edit.setVisible(action == "discard")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.note_label = QLabel(
            f"Done in batches of {operations.MATCHING_BATCH:,}, each recorded in the audit log with the "
            "filter; Cancel stops after the batch under way, and what was done stays done."
        )
        self.note_label.setWordWrap(True)

        self.buttons = QDialogButtonBox()
        self.ok_button = QPushButton(title)
        self.ok_button.setEnabled(False)
        self.buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button.clicked.connect(self._start)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.sample_label)
        layout.addWidget(self.reason_edit)
        layout.addWidget(self.bar)
        layout.addWidget(self.note_label)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

        # The worker only counts; this timer carries the count to the dialog on the GUI thread.
        self.progress_poll = QTimer(self)
        self.progress_poll.setObjectName("matching_progress_poll")
        self.progress_poll.setInterval(100)
        self.progress_poll.timeout.connect(self._show_progress)

        self._task = self._runner.submit(
            partial(operations.preview_matching, factory, flt, action, sample=SAMPLE),
            on_done=self._counted,
            on_error=self._count_failed,
        )

    # -- the count ------------------------------------------------------------------------------

    def _counted(self, preview: operations.MatchingPreview) -> None:
        self.preview = preview
        self.bar.hide()
        title, past, _ = VERBS[self.action]
        if preview.count > operations.MATCHING_CAP:
            self.summary_label.setText(operations.too_many_message(preview.count, self.action))
        elif preview.count == 0:
            self.summary_label.setText(
                f"No writeback matching the filter can be {past} now"
                + (" (only Error rows can be discarded)." if self.action == "discard" else ".")
            )
        else:
            self.summary_label.setText(
                f"{title} all {count_text(preview.count, 'writeback')} matching the filter?"
                + (" Each gets exactly one more attempt." if self.action == "retry" else "")
            )
            refs = ", ".join(r.ref for r in preview.sample)
            more = preview.count - len(preview.sample)
            self.sample_label.setText(f"Among them: {refs}" + (f" and {more:,} more" if more > 0 else ""))
            self.ok_button.setText(f"{title} {preview.count:,}")
        self._update_ok()
        if self.action == "discard":
            self.reason_edit.setFocus()

    def _count_failed(self, exc: BaseException) -> None:
        self.bar.hide()
        message, details = errors.describe_exception(exc)
        self.summary_label.setText(f"The matching writebacks could not be counted. {message}")
        errors.show_error(self, self.windowTitle(), message, details)

    @Slot()
    def _update_ok(self) -> None:
        preview = self.preview
        ready = (
            preview is not None
            and 0 < preview.count <= operations.MATCHING_CAP
            and self.progress is None
            and (self.action != "discard" or discard_reason_problem(self.reason_edit.text()) is None)
        )
        self.ok_button.setEnabled(ready)

    # -- the work -------------------------------------------------------------------------------

    @Slot()
    def _start(self) -> None:
        if self.preview is None or self.progress is not None:
            return
        self.progress = operations.BulkProgress()
        self.progress.total = self.preview.count
        self.ok_button.setEnabled(False)
        self.reason_edit.setEnabled(False)
        self.bar.setRange(0, max(self.preview.count, 1))
        self.bar.setValue(0)
        self.bar.show()
        self.cancel_button.setText("Cancel")
        self.progress_poll.start()
        self._show_progress()
        self._runner.submit(
            partial(
                operations.act_on_matching,
                self._factory,
                self.filter,
                self.action,
                actor=current_actor(),
                reason=self.reason_edit.text() if self.action == "discard" else None,
                progress=self.progress,
            ),
            on_done=self._done,
            on_error=self._failed,
        )

    @Slot()
    def _show_progress(self) -> None:
        job = self.progress
        if job is None:
            return
        total = job.total or 0
        self.bar.setMaximum(max(total, 1))
        self.bar.setValue(min(job.done + job.skipped, max(total, 1)))
        _, past, doing = VERBS[self.action]
        if job.cancel_requested.is_set():
            self.summary_label.setText(f"Stopping after this batch… {job.done:,} {past} so far.")
        else:
            self.summary_label.setText(f"{doing}… {job.done:,} of {total:,} {past}.")

    def _done(self, result: operations.BulkResult) -> None:
        total = self.progress.total if self.progress is not None else None
        self._end()
        self.result_ = result
        self.summary_label.setText(done_text(self.action, result, total))
        self.finished_action.emit(result)

    def _failed(self, exc: BaseException) -> None:
        job = self.progress
        self._end()
        message, details = errors.describe_exception(exc)
        _, past, _ = VERBS[self.action]
        done = job.done if job is not None else 0
        self.summary_label.setText(
            f"It stopped: {message} {count_text(done, 'writeback')} {'was' if done == 1 else 'were'} {past} "
            "before that and stay so."
        )
        errors.show_error(self, self.windowTitle(), message, details)
        if job is not None and done:
            self.finished_action.emit(
                operations.BulkResult(self.action, done, job.skipped, 0, cancelled=True, audit_event_ids=[])
            )

    def _end(self) -> None:
        self.progress_poll.stop()
        self.bar.hide()
        self.note_label.hide()
        self.ok_button.hide()
        self.cancel_button.setText("Close")
        self.cancel_button.setEnabled(True)

    def reject(self) -> None:
        job = self.progress
        if job is not None and self.result_ is None and self.progress_poll.isActive():
            # Under way: Cancel asks the worker to stop between batches; the dialog closes after.
            job.cancel_requested.set()
            self.cancel_button.setEnabled(False)
            self._show_progress()
            return
        super().reject()

    def done(self, result: int) -> None:
        self._task.cancel()
        super().done(result)


def ask_matching_action(
    factory: sessionmaker[Session],
    runner: TaskRunner,
    flt: WritebackFilter,
    action: str,
    parent: QWidget | None = None,
) -> operations.BulkResult | None:
    """Run the dialog modally; what was done (also when cancelled part-way), or None when nothing was."""
    dialog = MatchingActionDialog(factory, runner, flt, action, parent)
    outcome: list[operations.BulkResult] = []
    dialog.finished_action.connect(outcome.append)
    dialog.exec()
    dialog.deleteLater()
    return outcome[0] if outcome else None
