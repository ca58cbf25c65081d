"""CSV export writes exactly the filtered rows, streamed, and leaves nothing behind when cancelled."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from writeback_console import operations
from writeback_console.domain import Kind, Status
from writeback_console.settings import AppSettings
from writeback_console.store import listing
from writeback_console.store.listing import WritebackFilter
from writeback_console.ui import export
from writeback_console.ui.composition_root import build_window
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import ListQuery

Factory = sessionmaker[Session]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def test_export_writes_exactly_the_filtered_rows_in_list_order(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "errors.csv"
    monkeypatch.setattr(export, "ask_export_path", lambda parent, suggested: target)
    window = build_window(small_factory, AppSettings(), runner=runner, state_path=tmp_path / "w.ini")
    qtbot.addWidget(window)
    window.writebacks.filter_bar.set_statuses([Status.ERROR, Status.SENT])
    window.writebacks.filter_bar.set_kinds([Kind.UNSUBSCRIBE])
    wait_loaded(qtbot, window.writebacks.model)
    with qtbot.waitSignal(window.exporter.finished, timeout=10_000) as signal:
        window.export_action.trigger()
    flt = WritebackFilter(
        statuses=frozenset({Status.ERROR, Status.SENT}), kinds=frozenset({Kind.UNSUBSCRIBE})
    )
    with small_factory() as session:
        expected = list(listing.iter_rows(session, flt))
    rows = read_csv(target)
    assert signal.args == [len(expected), str(target)]
    assert [r["ref"] for r in rows] == [w.ref for w in expected]
    assert {r["status"] for r in rows} == {"Error", "Sent"}
    assert {r["kind"] for r in rows} == {"Unsubscribe"}
    assert not list(tmp_path.glob("*.part"))
    window.close()


def test_cancelled_export_leaves_no_file(small_factory: Factory, tmp_path: Path) -> None:
    job = operations.ExportProgress()
    job.cancel_requested.set()
    target = tmp_path / "all.csv"
    with pytest.raises(operations.ExportCancelled):
        operations.export_csv(small_factory, WritebackFilter(), target, progress=job)
    assert not target.exists()
    assert not list(tmp_path.iterdir())
    assert job.total == 1500
    assert job.written == operations.EXPORT_PAGE_SIZE  # it stopped at the first check, not at the end


def test_exporter_reports_cancel_from_the_progress_dialog(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    exporter = export.Exporter(small_factory, runner)
    target = tmp_path / "x.csv"
    outcomes: list[str] = []
    exporter.cancelled.connect(lambda: outcomes.append("cancelled"))
    exporter.finished.connect(lambda rows, path: outcomes.append("finished"))
    exporter.start(ListQuery(), target)
    exporter.cancel()  # what the dialog's Cancel button does
    qtbot.waitUntil(lambda: bool(outcomes), timeout=10_000)
    # The cancel flag is checked every thousand rows: 1,500 rows cannot all be written first.
    assert outcomes == ["cancelled"]
    assert not target.exists()
    assert not exporter.running
