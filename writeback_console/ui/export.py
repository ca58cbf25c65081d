"""Export of the Writeback List's current filter to CSV, streamed a page at a time off the GUI thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QProgressDialog, QWidget
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import Status
from writeback_console.export import write_rows
from writeback_console.store import listing
from writeback_console.store.engine import read_session
from writeback_console.store.rows import WritebackRow
from writeback_console.ui.tasks import TaskGroup, TaskRunner
from writeback_console.ui.writeback_model import ListQuery

Factory = sessionmaker[Session]

PAGE_SIZE = 1000


class ExportCancelled(Exception):
    """The user cancelled; the partial file has been removed."""


class ExportJob:
    """Shared between the GUI and the worker: progress goes one way, the cancel flag the other.

    Plain attributes written by one thread and read by the other; an int is replaced atomically.
    """

    def __init__(self) -> None:
        self.total: int | None = None
        self.written = 0
        self.cancel_requested = threading.Event()


def _counted(rows: Iterable[WritebackRow], job: ExportJob) -> Iterator[WritebackRow]:
    """The rows, counting each one once it has been written and stopping when the user cancels."""
    for row in rows:
        yield row
        job.written += 1
        if job.written % PAGE_SIZE == 0 and job.cancel_requested.is_set():
            raise ExportCancelled


def write_csv(factory: Factory, query: ListQuery, path: Path, job: ExportJob) -> int:
    """Write every row of ``query`` to ``path``; runs on a worker thread, never holding all rows.

    The rows go to a temporary file first, so a cancelled or failed export leaves no half file behind.
    """
    partial = path.with_name(path.name + ".part")
    try:
        with read_session(factory) as session:
            counts = listing.count_by_status(session, query.filter)
            statuses = query.filter.statuses or frozenset(Status)
            job.total = sum(n for s, n in counts.items() if s in statuses)
            # The byte-order mark makes spreadsheets read the file as UTF-8 rather than the local code page.
            with partial.open("w", newline="", encoding="utf-8-sig") as out:
                rows = listing.iter_rows(
                    session, query.filter, sort=query.sort, descending=query.descending, page_size=PAGE_SIZE
                )
                write_rows(_counted(rows, job), out)
        if job.cancel_requested.is_set():
            raise ExportCancelled
        os.replace(partial, path)
        return job.written
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


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
        self._job: ExportJob | None = None
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
        job = ExportJob()
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

        self._runner.submit(write_csv, self._factory, query, path, job, on_done=done, on_error=self._error)
        return True

    @Slot()
    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel_requested.set()
            if self.dialog is not None:
                self.dialog.setLabelText("Cancelling…")

    def _error(self, error: BaseException) -> None:
        self._end()
        if isinstance(error, ExportCancelled):
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
