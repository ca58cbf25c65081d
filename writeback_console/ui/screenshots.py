"""Screenshots for the README: ``python -m writeback_console.ui.screenshots OUTDIR`` (works offscreen).

It seeds a demo queue in a temporary folder, opens the window and saves PNGs of the Writeback List,
the detail pane of a failed writeback (fields and attempts) and the dashboard.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Offscreen unless the caller chose a platform (e.g. under Xvfb): no screen is needed.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication, QWidget

from writeback_console.domain import Status
from writeback_console.settings import AppSettings
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.migrate import upgrade
from writeback_console.store.seed import seed
from writeback_console.ui.app import build_window, make_application
from writeback_console.ui.main_window import PAGE_DASHBOARD, PAGE_WRITEBACKS, MainWindow

DEMO_ROWS = 20_000
WINDOW_SIZE = (1440, 900)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not finish loading")
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    for _ in range(5):  # let the repaints that follow the data happen
        QApplication.processEvents()


def save(widget: QWidget, path: Path) -> Path:
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(path)
    return path


def take(window: MainWindow, out: Path) -> list[Path]:
    page = window.writebacks
    model = page.model
    wait_until(lambda: not model.loading and model.rowCount() > 0 and page.matching_rows() is not None)
    # A failed writeback whose automatic retries are used up: the row an advisor looks at.
    target = next(
        (
            n
            for n in range(model.rowCount())
            if (row := model.row_at(n)) is not None and row.status is Status.ERROR and row.attempts >= 3
        ),
        0,
    )
    page.table.selectRow(target)
    wait_until(lambda: page.detail.detail is not None)
    shots = [save(window, out / "writeback-list.png")]
    page.detail.tabs.setCurrentIndex(0)
    shots.append(save(page.detail, out / "detail-fields.png"))
    page.detail.tabs.setCurrentIndex(2)
    shots.append(save(page.detail, out / "detail-attempts.png"))
    page.detail.tabs.setCurrentIndex(3)
    shots.append(save(page.detail, out / "detail-timeline.png"))
    page.detail.tabs.setCurrentIndex(0)

    page.filter_bar.set_statuses([Status.ERROR])
    page.filter_bar.set_flags(retry_available=True)
    wait_until(lambda: not model.loading and page.matching_rows() is not None)
    shots.append(save(window, out / "writeback-list-filtered.png"))

    window.show_page(PAGE_DASHBOARD)
    wait_until(lambda: window.dashboard.cards[Status.SENT.value].count.text() != "…")
    shots.append(save(window, out / "dashboard.png"))
    window.show_page(PAGE_WRITEBACKS)
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--rows", type=int, default=DEMO_ROWS)
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    app = make_application([sys.argv[0]])
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'demo.sqlite3'}")
        upgrade(engine)
        seed(engine, args.rows)
        factory = make_session_factory(engine)
        window = build_window(
            factory, AppSettings(), state_path=Path(folder) / "window.ini", title="demo.sqlite3"
        )
        window.resize(*WINDOW_SIZE)
        window.show()
        try:
            take(window, args.outdir)
        finally:
            window.close()
            window.runner.wait()
            engine.dispose()
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
