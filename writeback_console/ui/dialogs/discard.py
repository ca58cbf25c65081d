"""The Discard dialog: stop retrying the selected Error rows, with a reason, after seeing how many it takes.

A discarded row is never sent again unless a person retries it; the reason is kept in the audit log and
shown in the row's timeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import operations
from writeback_console.domain import DISCARD_REASON_LIMIT, discard_decision, discard_reason_problem
from writeback_console.store import listing
from writeback_console.store.engine import read_session
from writeback_console.store.rows import WritebackRow, current_actor
from writeback_console.ui.dialogs import TaskGroup, count_text, errors
from writeback_console.ui.tasks import TaskRunner


@dataclass(frozen=True)
class DiscardPreview:
    """The selected rows: those a discard takes, and the others with why not."""

    discardable: list[WritebackRow] = field(default_factory=list)
    refused: list[tuple[WritebackRow, str]] = field(default_factory=list)


def load_discard_preview(factory: sessionmaker[Session], ids: Sequence[int]) -> DiscardPreview:
    with read_session(factory) as session:
        rows = listing.get_writebacks(session, ids)
    preview = DiscardPreview()
    for wid in dict.fromkeys(ids):
        row = rows.get(wid)
        if row is None:
            continue
        decision = discard_decision(row.state)
        if decision.allowed:
            preview.discardable.append(row)
        else:
            preview.refused.append((row, decision.reason))
    return preview


class DiscardDialog(QDialog):
    """Confirm and perform a discard of the selected writebacks.

    Signals:
        discarded(list): the ids that were discarded.
    """

    discarded = Signal(list)

    def __init__(
        self,
        factory: sessionmaker[Session],
        runner: TaskRunner,
        ids: Sequence[int],
        parent: QWidget | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Discard writebacks")
        self.resize(560, 260)
        self._factory = factory
        self._runner = TaskGroup(self, runner)
        self._ids = list(dict.fromkeys(ids))
        self._filter = dict(filter) if filter is not None else None
        self.preview: DiscardPreview | None = None
        self.result_: operations.DiscardResult | None = None
        self._working = False

        self.summary_label = QLabel(f"Looking at {count_text(len(self._ids), 'selected writeback')}…")
        self.summary_label.setWordWrap(True)
        self.refused_label = QLabel()
        self.refused_label.setWordWrap(True)
        self.refused_label.hide()
        self.reason_edit = QLineEdit()
        self.reason_edit.setObjectName("discardReason")
        self.reason_edit.setMaxLength(DISCARD_REASON_LIMIT)
        self.reason_edit.setPlaceholderText(
            "Why should these not be retried? (required, kept in the audit log)"
        )
        self.reason_edit.textChanged.connect(self._reason_changed)
        self.note_label = QLabel(
            "Discarded writebacks are never sent again by the dispatcher; a manual Retry undoes it and "
            "sends one once more. Their attempts and error history are kept."
        )
        self.note_label.setWordWrap(True)

        self.buttons = QDialogButtonBox()
        self.ok_button = QPushButton("Discard")
        self.ok_button.setEnabled(False)
        self.buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button.clicked.connect(self._discard)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.refused_label)
        layout.addWidget(QLabel("Reason:"))
        layout.addWidget(self.reason_edit)
        layout.addWidget(self.note_label)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

        self._task = self._runner.submit(
            load_discard_preview, factory, self._ids, on_done=self._show_preview, on_error=self._load_failed
        )

    def _show_preview(self, preview: DiscardPreview) -> None:
        self.preview = preview
        n = len(preview.discardable)
        selected = count_text(len(self._ids), "selected writeback")
        if n:
            self.summary_label.setText(f"{selected}: discard {count_text(n, 'Error row')}?")
            self.ok_button.setText(f"Discard {n:,}")
        else:
            self.summary_label.setText(f"{selected}: none can be discarded. Only Error rows can.")
        if preview.refused:
            shown = [f"{row.ref}: {reason}" for row, reason in preview.refused[:5]]
            more = len(preview.refused) - len(shown)
            self.refused_label.setText(
                f"Left as they are: {count_text(len(preview.refused), 'writeback')} — "
                + "; ".join(shown)
                + (f"; … and {more:,} more" if more > 0 else "")
            )
            self.refused_label.show()
        self._reason_changed(self.reason_edit.text())
        self.reason_edit.setFocus()

    def _load_failed(self, exc: BaseException) -> None:
        message, details = errors.describe_exception(exc)
        self.summary_label.setText(f"The selected writebacks could not be read. {message}")
        errors.show_error(self, "Discard writebacks", message, details)

    @Slot(str)
    def _reason_changed(self, text: str) -> None:
        problem = discard_reason_problem(text)
        ready = self.preview is not None and bool(self.preview.discardable) and not self._working
        self.ok_button.setEnabled(ready and problem is None)
        self.ok_button.setToolTip(problem or "")

    @Slot()
    def _discard(self) -> None:
        if self.preview is None or not self.preview.discardable:
            return
        reason = self.reason_edit.text()
        if discard_reason_problem(reason):
            return
        self._working = True
        self.ok_button.setEnabled(False)
        self.cancel_button.setEnabled(False)
        self.reason_edit.setEnabled(False)
        self._runner.submit(
            partial(
                operations.discard,
                self._factory,
                [r.id for r in self.preview.discardable],
                actor=current_actor(),
                reason=reason,
                filter=self._filter,
                skip_ineligible=True,
            ),
            on_done=self._done,
            on_error=self._failed,
        )

    def _done(self, result: operations.DiscardResult) -> None:
        self._working = False
        self.result_ = result
        self.cancel_button.setEnabled(True)
        text = f"Done: {count_text(len(result.discarded), 'writeback')} discarded."
        if result.skipped:
            verb = "was" if len(result.skipped) == 1 else "were"
            text += f" {count_text(len(result.skipped), 'row')} changed meanwhile and {verb} left alone."
        self.summary_label.setText(text)
        self.ok_button.hide()
        self.cancel_button.setText("Close")
        self.discarded.emit([wid for wid, _ref in result.discarded])

    def _failed(self, exc: BaseException) -> None:
        self._working = False
        self.cancel_button.setEnabled(True)
        self.reason_edit.setEnabled(True)
        self._reason_changed(self.reason_edit.text())
        self.summary_label.setText("The discard failed; nothing was changed.")
        errors.report_exception(self, "Discard writebacks", exc)

    def reject(self) -> None:
        if not self._working:
            super().reject()

    def done(self, result: int) -> None:
        self._task.cancel()
        super().done(result)


def ask_discard(
    factory: sessionmaker[Session],
    runner: TaskRunner,
    ids: Sequence[int],
    parent: QWidget | None = None,
    *,
    filter: Mapping[str, Any] | None = None,
) -> list[int] | None:
    """Run the Discard dialog modally; the discarded ids, or None if nothing was discarded."""
    dialog = DiscardDialog(factory, runner, ids, parent, filter=filter)
    outcome: list[list[int]] = []
    dialog.discarded.connect(lambda ids: outcome.append(list(ids)))
    dialog.exec()
    dialog.deleteLater()
    return outcome[0] if outcome else None
