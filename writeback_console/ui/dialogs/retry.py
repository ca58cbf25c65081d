"""The manual Retry dialog: the selected writebacks grouped by the reason of their last error (what varies
from row to row, such as emails and ids, left out), with a warning on a group that Personify360 refused
the same way every time, and a confirmation with the count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import operations
from writeback_console.domain import Status, manual_retry_decision
from writeback_console.error_groups import NO_MESSAGE as NO_REASON
from writeback_console.error_groups import error_reason, repeated_refusal_warning
from writeback_console.store import listing
from writeback_console.store.engine import read_session
from writeback_console.store.rows import WritebackRow, current_actor
from writeback_console.ui.dialogs import TaskGroup, count_text, errors
from writeback_console.ui.status_style import local_text, status_color, status_text
from writeback_console.ui.tasks import TaskRunner

#: Rows shown under one error or in the not-eligible list: a tree of 50,000 items helps nobody and
#: costs seconds to build; the counts stay exact.
MAX_ROWS_SHOWN = 200
NO_MESSAGE = "(no error message recorded)"
#: Room for a whole reference in the tree's first column, whatever the font.
REF_SAMPLE = "WB-WWWWWWWWWW"


@dataclass(frozen=True)
class RetryPreview:
    """The selected rows sorted into what a manual retry would do with them (plain data)."""

    #: Reason of the last error → the eligible rows that failed with it, largest group first.
    eligible: dict[str, list[WritebackRow]] = field(default_factory=dict)
    #: Reason → the warning for a group Personify360 refused the same way every time.
    warnings: dict[str, str] = field(default_factory=dict)
    #: Rows a manual retry would leave alone, with the reason in words.
    ineligible: list[tuple[WritebackRow, str]] = field(default_factory=list)
    #: Ids that no longer exist (cancelled or removed since they were selected).
    missing: list[int] = field(default_factory=list)

    @property
    def eligible_ids(self) -> list[int]:
        return [row.id for rows in self.eligible.values() for row in rows]


def _reason(row: WritebackRow) -> str:
    reason = error_reason(row.last_error)
    return NO_MESSAGE if reason == NO_REASON else reason


def load_retry_preview(factory: sessionmaker[Session], ids: Sequence[int]) -> RetryPreview:
    """Sort ``ids`` into eligible rows grouped by the reason of their last error and ineligible rows with
    reasons, and warn of groups that were refused the same way every time."""
    with read_session(factory) as session:
        rows = listing.get_writebacks(session, ids)
        groups: dict[str, list[WritebackRow]] = {}
        ineligible: list[tuple[WritebackRow, str]] = []
        for wid in dict.fromkeys(ids):
            row = rows.get(wid)
            if row is None:
                continue
            decision = manual_retry_decision(row.state)
            if decision.allowed:
                groups.setdefault(_reason(row), []).append(row)
            else:
                ineligible.append((row, decision.reason))
        failures = listing.failure_messages(session, [r.id for group in groups.values() for r in group])
    ordered = dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    warnings = {}
    for reason, group in ordered.items():
        warning = repeated_refusal_warning([(r.attempts, failures.get(r.id, [])) for r in group])
        if warning:
            warnings[reason] = warning
    return RetryPreview(ordered, warnings, ineligible, [i for i in dict.fromkeys(ids) if i not in rows])


#: The data of a group's warning line in the tree (rows carry their id there).
WARNING_ROLE_VALUE = -1


def eligible_text(preview: RetryPreview) -> str:
    """``1 has used up its automatic retries and can be retried by hand``, in the right number, with the
    discarded ones said apart."""
    rows = [r for group in preview.eligible.values() for r in group]
    discarded = sum(1 for r in rows if r.status is Status.DISCARDED)
    exhausted = len(rows) - discarded
    parts = []
    if exhausted:
        parts.append(
            f"{exhausted:,} {'has' if exhausted == 1 else 'have'} used up "
            f"{'its' if exhausted == 1 else 'their'} automatic retries"
        )
    if discarded:
        parts.append(f"{discarded:,} {'was' if discarded == 1 else 'were'} discarded")
    if len(parts) == 1:
        return f"{parts[0]} and can be retried by hand"
    return f"{parts[0]} and {parts[1]}; all {len(rows):,} can be retried by hand"


class RetryDialog(QDialog):
    """Confirm and perform a manual retry of the selected writebacks.

    Signals:
        retried(list, bool): the ids that were granted one more attempt, and whether the user asked to
            start a dispatcher run now.
    """

    retried = Signal(list, bool)

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
        self.setWindowTitle("Retry writebacks")
        self.resize(760, 520)
        self._factory = factory
        # Every result comes back through the group, which drops it once this widget is gone.
        self._runner = TaskGroup(self, runner)
        self._ids = list(dict.fromkeys(ids))
        self._filter = dict(filter) if filter is not None else None
        self.preview: RetryPreview | None = None
        self.result_: operations.RetryResult | None = None
        self._retrying = False

        self.summary_label = QLabel(f"Looking at {count_text(len(self._ids), 'selected writeback')}…")
        self.summary_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)

        self.eligible_tree = QTreeWidget()
        self.eligible_tree.setHeaderLabels(["Reason / writeback", "Kind", "Email", "Attempts", "Failed"])
        self.eligible_tree.setRootIsDecorated(True)
        self.eligible_tree.setUniformRowHeights(False)
        self.eligible_tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.eligible_tree.header()
        header.setStretchLastSection(False)
        # The reason spans the row; under it the reference is never cut, and the email takes the rest.
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        ref_width = self.eligible_tree.fontMetrics().horizontalAdvance(REF_SAMPLE)
        self.eligible_tree.setColumnWidth(0, ref_width + 2 * self.eligible_tree.indentation() + 16)
        self.eligible_label = QLabel("<b>Will be retried</b>")

        self.ineligible_tree = QTreeWidget()
        self.ineligible_tree.setHeaderLabels(["Writeback", "Status", "Attempts", "Why not"])
        self.ineligible_tree.setRootIsDecorated(False)
        self.ineligible_tree.setUniformRowHeights(True)
        self.ineligible_tree.header().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.ineligible_tree.header().setStretchLastSection(False)
        self.ineligible_label = QLabel("<b>Not eligible</b> — left as they are")

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.eligible_label)
        top_layout.addWidget(self.eligible_tree)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.ineligible_label)
        bottom_layout.addWidget(self.ineligible_tree)
        self.ineligible_panel = bottom
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)

        self.confirm_label = QLabel()
        font = self.confirm_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.confirm_label.setFont(font)
        self.note_label = QLabel("Each writeback gets exactly one more attempt; its error history is kept.")
        self.note_label.setWordWrap(True)
        self.send_now_box = QCheckBox("Send them now (only these; nothing else is retried)")

        self.buttons = QDialogButtonBox()
        self.ok_button = QPushButton("Retry")
        self.ok_button.setDefault(True)
        self.buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button.clicked.connect(self._retry)
        self.buttons.rejected.connect(self.reject)
        self.ok_button.setEnabled(False)
        self.send_now_box.setEnabled(False)

        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.progress)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.confirm_label)
        layout.addWidget(self.note_label)
        layout.addWidget(self.send_now_box)
        layout.addWidget(self.buttons)

        self._task = self._runner.submit(
            load_retry_preview, factory, self._ids, on_done=self._show_preview, on_error=self._load_failed
        )

    # -- loading --------------------------------------------------------------------------------

    def _show_preview(self, preview: RetryPreview) -> None:
        self.preview = preview
        self.progress.hide()
        eligible = preview.eligible_ids
        self.eligible_tree.clear()
        for reason, rows in preview.eligible.items():
            group = QTreeWidgetItem([f"{reason}  ({len(rows):,})"])
            example = (rows[0].last_error or "").strip()
            group.setToolTip(
                0, f"{reason}\n\nFor example: {example}" if example and example != reason else reason
            )
            group.setFirstColumnSpanned(True)
            font = group.font(0)
            font.setBold(True)
            group.setFont(0, font)
            warning = preview.warnings.get(reason)
            if warning:
                note = QTreeWidgetItem([f"⚠ {warning}"])
                note.setData(0, Qt.ItemDataRole.UserRole, WARNING_ROLE_VALUE)
                note.setForeground(0, status_color(Status.ERROR))
                note.setToolTip(
                    0,
                    "Personify360 refused these writebacks for the same reason on every attempt; sending "
                    "them again unchanged will most likely be refused again. Fix the cause (the "
                    "constituent, the activity code) in Personify360 first; the retry is still allowed.",
                )
                group.addChild(note)
            for row in rows[:MAX_ROWS_SHOWN]:
                child = QTreeWidgetItem(
                    [
                        row.ref,
                        row.kind.label,
                        row.email or "",
                        f"{row.attempts}/{row.max_attempts}",
                        local_text(row.updated_at),
                    ]
                )
                child.setData(0, Qt.ItemDataRole.UserRole, row.id)
                group.addChild(child)
            if len(rows) > MAX_ROWS_SHOWN:
                group.addChild(QTreeWidgetItem([f"… and {len(rows) - MAX_ROWS_SHOWN:,} more"]))
            self.eligible_tree.addTopLevelItem(group)
            # Spans take only once the item is in the tree.
            group.setFirstColumnSpanned(True)
            first = group.child(0)
            if first is not None and first.data(0, Qt.ItemDataRole.UserRole) == WARNING_ROLE_VALUE:
                first.setFirstColumnSpanned(True)
        # Open the groups when they are few enough to read at a glance.
        if len(preview.eligible) <= 5:
            self.eligible_tree.expandAll()
        for column in (1, 3, 4):
            self.eligible_tree.resizeColumnToContents(column)

        self.ineligible_tree.clear()
        for row, reason in preview.ineligible[:MAX_ROWS_SHOWN]:
            item = QTreeWidgetItem(
                [row.ref, status_text(row.status), f"{row.attempts}/{row.max_attempts}", reason]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, row.id)
            self.ineligible_tree.addTopLevelItem(item)
        for wid in preview.missing[:MAX_ROWS_SHOWN]:
            self.ineligible_tree.addTopLevelItem(
                QTreeWidgetItem([f"#{wid}", "", "", "no longer in the queue"])
            )
        left_off = len(preview.ineligible) + len(preview.missing) - MAX_ROWS_SHOWN
        if left_off > 0:
            self.ineligible_tree.addTopLevelItem(QTreeWidgetItem([f"… and {left_off:,} more"]))
        for column in range(3):
            self.ineligible_tree.resizeColumnToContents(column)
        not_eligible = len(preview.ineligible) + len(preview.missing)
        self.ineligible_panel.setVisible(not_eligible > 0)
        self.ineligible_label.setText(
            f"<b>Not eligible: {count_text(not_eligible, 'writeback')}</b> — left as they are"
        )
        self.eligible_label.setText(
            f"<b>Will be retried: {count_text(len(eligible), 'writeback')}</b>, "
            f"grouped by the reason of the last error ({count_text(len(preview.eligible), 'group')})"
        )

        selected = count_text(len(self._ids), "selected writeback")
        if eligible:
            self.summary_label.setText(
                f"{selected}: {eligible_text(preview)}"
                + (f"; {not_eligible:,} cannot." if not_eligible else ".")
            )
            self.confirm_label.setText(f"Retry {count_text(len(eligible), 'writeback')}?")
            self.ok_button.setText(f"Retry {len(eligible):,}")
            self.ok_button.setEnabled(True)
            self.send_now_box.setEnabled(True)
        else:
            self.summary_label.setText(
                f"{selected}: none can be retried by hand. Only Error rows whose automatic retries are "
                "used up, and Discarded rows, can be retried."
            )
            self.confirm_label.setText("Nothing to retry.")
            self.note_label.hide()

    def _load_failed(self, exc: BaseException) -> None:
        self.progress.hide()
        message, details = errors.describe_exception(exc)
        self.summary_label.setText(f"The selected writebacks could not be read. {message}")
        self.confirm_label.setText("Nothing to retry.")
        errors.show_error(self, "Retry writebacks", message, details)

    # -- retrying -------------------------------------------------------------------------------

    @Slot()
    def _retry(self) -> None:
        if self.preview is None or not self.preview.eligible_ids:
            return
        self._retrying = True
        self.ok_button.setEnabled(False)
        self.send_now_box.setEnabled(False)
        self.cancel_button.setEnabled(False)
        self.progress.show()
        self.confirm_label.setText(f"Retrying {count_text(len(self.preview.eligible_ids), 'writeback')}…")
        # Rows that changed since the preview are skipped and named, not a refusal of the whole retry.
        self._runner.submit(
            partial(
                operations.retry,
                self._factory,
                self.preview.eligible_ids,
                actor=current_actor(),
                filter=self._filter,
                skip_ineligible=True,
            ),
            on_done=self._retry_done,
            on_error=self._retry_failed,
        )

    def _retry_done(self, result: operations.RetryResult) -> None:
        self._retrying = False
        self.cancel_button.setEnabled(True)
        self.result_ = result
        self.progress.hide()
        send_now = self.send_now_box.isChecked()
        done = count_text(len(result.retried), "writeback")
        when = "now, on their own" if send_now else "at the next dispatcher run"
        text = f"Done: {done} queued again; they go out {when}."
        changed = [r for r in result.skipped if r.reason == "changed by someone else meanwhile"]
        if changed:
            verb = "was" if len(changed) == 1 else "were"
            text += f" {count_text(len(changed), 'row')} changed meanwhile and {verb} left alone."
        self.confirm_label.setText(text)
        self.note_label.hide()
        self.ok_button.hide()
        self.cancel_button.setText("Close")
        self.cancel_button.setDefault(True)
        self.retried.emit([wid for wid, _ref in result.retried], send_now)

    def _retry_failed(self, exc: BaseException) -> None:
        self._retrying = False
        self.cancel_button.setEnabled(True)
        self.progress.hide()
        self.ok_button.setEnabled(True)
        self.send_now_box.setEnabled(True)
        self.confirm_label.setText("The retry failed; nothing was changed.")
        errors.report_exception(self, "Retry writebacks", exc)

    def reject(self) -> None:
        # A retry under way finishes first: its result is the only way to learn what it changed.
        if not self._retrying:
            super().reject()

    def done(self, result: int) -> None:
        # Closing while the preview still loads must not let its late result touch a deleted dialog.
        self._task.cancel()
        super().done(result)


def ask_retry(
    factory: sessionmaker[Session],
    runner: TaskRunner,
    ids: Sequence[int],
    parent: QWidget | None = None,
    *,
    filter: Mapping[str, Any] | None = None,
) -> tuple[list[int], bool] | None:
    """Run the Retry dialog modally; (retried ids, send now) or None if nothing was retried."""
    dialog = RetryDialog(factory, runner, ids, parent, filter=filter)
    outcome: list[tuple[list[int], bool]] = []
    dialog.retried.connect(lambda retried, send_now: outcome.append((list(retried), bool(send_now))))
    dialog.exec()
    dialog.deleteLater()
    return outcome[0] if outcome else None
