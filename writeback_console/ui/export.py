"""Export of the Writeback List's current filter to CSV: the file dialog and the progress of
``operations.export_csv``, which runs off the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QProgressDialog, QWidget
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import operations
from writeback_console.store.rows import current_actor
from writeback_console.ui.tasks import TaskGroup, TaskRunner
from writeback_console.ui.writeback_model import ListQuery

Factory = sessionmaker[Session]


def ask_export_path(parent: QWidget | None, suggested: str) -> Path | None:
    """Ask where to save the export (tests replace this function: no modal loop under test)."""
    name, _ = QFileDialog.getSaveFileName(parent, "Export writebacks to CSV", suggested, "CSV files (*.csv)")
    if not name:
        return None
    path = Path(name)
    return path if path.suffix.lower() == ".csv" else path.with_name(path.name + ".csv")


def suggested_file_name(now: datetime) -> str:
    return f"writebacks-{now:%Y%m%d-%H%M}.csv"


class Exporter(QObject):
    """Runs one export at a time with a progress dialog that can cancel it.

    Signals:
        finished(int, str): rows written and the file.
        failed(str): what went wrong, in words.
        cancelled(): the user cancelled and no file was written.
    """

    finished = Signal(int, str)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, factory: Factory, runner: TaskRunner, parent_widget: QWidget | None = None) -> None:
        super().__init__(parent_widget)
        self._factory = factory
        self._runner = TaskGroup(self, runner)
        self._parent_widget = parent_widget
        self._job: operations.ExportProgress | None = None
        self.dialog: QProgressDialog | None = None
        # The worker only counts; this timer carries the count to the dialog on the GUI thread.
        self.progress_poll = QTimer(self)
        self.progress_poll.setObjectName("export_progress_poll")
        self.progress_poll.setInterval(100)
        self.progress_poll.timeout.connect(self._show_progress)

    @property
    def running(self) -> bool:
        return self._job is not None

    def start(self, query: ListQuery, path: Path, *, on_done: Callable[[int], None] | None = None) -> bool:
        if self._job is not None:
            return False
        job = operations.ExportProgress()
        self._job = job
        dialog = QProgressDialog("Counting writebacks…", "Cancel", 0, 0, self._parent_widget)
        dialog.setWindowTitle("Export to CSV")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        # Small exports finish before the dialog would show; no flash on screen.
        dialog.setMinimumDuration(500)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.cancel)
        self.dialog = dialog
        self.progress_poll.start()

        def done(written: int) -> None:
            self._end()
            self.finished.emit(written, str(path))
            if on_done is not None:
                on_done(written)

        export = partial(
            operations.export_csv,
            self._factory,
            query.filter,
            path,
            sort=query.sort,
            descending=query.descending,
            progress=job,
            actor=current_actor(),
        )
        self._runner.submit(export, on_done=done, on_error=self._error)
        return True

    @Slot()
    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel_requested.set()
            if self.dialog is not None:
                self.dialog.setLabelText("Cancelling…")

    def _error(self, error: BaseException) -> None:
        self._end()
        if isinstance(error, operations.ExportCancelled):
            self.cancelled.emit()
        else:
            self.failed.emit(f"The export failed: {error}")

    def _end(self) -> None:
        self._job = None
        self.progress_poll.stop()
        if self.dialog is not None:
            self.dialog.canceled.disconnect(self.cancel)
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None

    @Slot()
    def _show_progress(self) -> None:
        job, dialog = self._job, self.dialog
        if job is None or dialog is None or job.cancel_requested.is_set():
            return
        if job.total is not None:
            dialog.setMaximum(max(job.total, 1))
            dialog.setValue(min(job.written, max(job.total, 1)))
            dialog.setLabelText(f"Exported {job.written:,} of {job.total:,} writebacks…")
