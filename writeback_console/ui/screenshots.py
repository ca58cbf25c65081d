"""Screenshots for the README: ``python -m writeback_console.ui.screenshots OUTDIR`` (works offscreen).

It builds a small demo (queue and Personify360 simulator) in a temporary folder, opens the console and
saves PNGs of the Writeback List, the detail pane of a failed writeback, the dashboard and its charts,
the Retry, Schedule Mailing Activity, constituent viewer and Settings dialogs. ``--palette dark`` takes
them on the dark palette (each file named ``…-dark.png``); ``--size 1024x700`` sets the window's size.
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

from writeback_console.domain import AuditAction, Status
from writeback_console.ui import theme
from writeback_console.ui.composition_root import make_application
from writeback_console.ui.console import Console
from writeback_console.ui.main_window import (
    PAGE_AUDIT,
    PAGE_DASHBOARD,
    PAGE_TOP_ERRORS,
    PAGE_WRITEBACKS,
    MainWindow,
)

WINDOW_SIZE = (1440, 900)
#: What ``save`` adds to every file name: "-dark" on the dark palette, "-1024x700" at another size.
_suffix = ""
#: The shots to keep (file stems); empty: all of them.
_only: frozenset[str] = frozenset()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not finish loading")
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    for _ in range(5):  # let the repaints that follow the data happen
        QApplication.processEvents()


def save(widget: QWidget, path: Path) -> Path:
    if _only and path.stem not in _only:
        return path
    path = path.with_name(path.stem + _suffix + path.suffix)
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(path)
    return path


def take(window: MainWindow, out: Path) -> list[Path]:
    page = window.writebacks
    model = page.model
    wait_until(lambda: not model.loading and model.rowCount() > 0 and page.matching_rows() is not None)
    page.table.selectRow(0)
    wait_until(lambda: page.detail.detail is not None)
    shots = [save(window, out / "writeback-list.png")]

    # A failed writeback whose automatic retries are used up: the row an advisor looks at.
    page.filter_bar.set_statuses([Status.ERROR])
    page.filter_bar.set_flags(retry_available=True)
    wait_until(lambda: not model.loading and model.rowCount() > 0 and page.matching_rows() is not None)
    page.table.selectRow(0)
    detail = page.detail
    wait_until(lambda: detail.detail is not None and detail.detail.row.status is Status.ERROR)
    shots.append(save(window, out / "writeback-list-filtered.png"))
    page.detail.tabs.setCurrentIndex(0)
    shots.append(save(page.detail, out / "detail-fields.png"))
    page.detail.tabs.setCurrentIndex(2)
    shots.append(save(page.detail, out / "detail-attempts.png"))
    page.detail.tabs.setCurrentIndex(3)
    shots.append(save(page.detail, out / "detail-timeline.png"))
    page.detail.tabs.setCurrentIndex(0)

    # Every Error row: more than one page, so selecting the loaded ones offers all of them.
    page.filter_bar.set_flags(retry_available=False)
    wait_until(lambda: not model.loading and page.matching_rows() is not None)
    page.table.setFocus()
    page.table.selectAll()
    wait_until(lambda: page.select_all_bar.isVisible())
    shots.append(save(window, out / "select-all-matching.png"))
    page.table.clearSelection()

    window.show_page(PAGE_TOP_ERRORS)
    window.top_errors.refresh()
    wait_until(lambda: bool(window.top_errors.groups))
    shots.append(save(window, out / "top-errors.png"))

    window.show_page(PAGE_DASHBOARD)
    wait_until(
        lambda: (
            window.dashboard.cards[Status.SENT.value].count.text() != "…"
            and window.dashboard.charts.shown is not None
        )
    )
    shots.append(save(window, out / "dashboard.png"))
    # The four charts whole (the page scrolls to them), a day of the demo's sends and failures first.
    shots.append(save(window.dashboard.charts, out / "dashboard-charts.png"))

    shots.extend(take_audit_log(window, out))
    window.show_page(PAGE_WRITEBACKS)
    return shots


def take_audit_log(window: MainWindow, out: Path) -> list[Path]:
    """The Audit log with the demo's bulk retry of yesterday selected: who retried, the filter of the
    list they retried all matching rows of, and those rows (else the newest entry with rows)."""
    window.show_page(PAGE_AUDIT)
    page = window.audit_log
    page.refresh()
    wait_until(lambda: not page.model.loading and bool(page.model.entries))
    entries = page.model.entries
    listed = [n for n, e in enumerate(entries) if e.rows_listed]
    row = next((n for n in listed if entries[n].action is AuditAction.RETRY), listed[0] if listed else 0)
    page.table.selectRow(row)
    wait_until(lambda: page.entry_pane.rows.count() > 0 or not entries[row].rows_listed)
    return [save(window, out / "audit-log.png")]


def take_dialogs(console: Console, out: Path) -> list[Path]:
    """The Retry, Schedule, constituent viewer and Settings dialogs, filled as a user would see them."""
    from writeback_console.store import listing
    from writeback_console.ui.dialogs.constituent import ConstituentDialog
    from writeback_console.ui.dialogs.retry import RetryDialog
    from writeback_console.ui.dialogs.schedule import ScheduleDialog
    from writeback_console.ui.dialogs.settings_dialog import SettingsDialog

    services = console.services
    factory, runner = services.factory, services.runner
    with factory() as session:
        exhausted = [
            r.id for r in listing.iter_rows(session, listing.WritebackFilter(retry_available=True), limit=40)
        ]
        errors = listing.WritebackFilter(statuses=frozenset({Status.ERROR}))
        not_yet = [
            r.id for r in listing.iter_rows(session, errors, limit=200) if r.attempts < r.max_attempts
        ][:3]
        # A mailing to schedule; in a queue at rest every mailing has its activity, so one to reschedule.
        mailings = [m for m in listing.list_mailings(session) if m.remote_recipients]
        mailing = next(
            (m for m in mailings if m.activity_id is None),
            next(m for m in mailings if m.activity_status is Status.SCHEDULED),
        )
        person = next(
            r
            for r in listing.iter_rows(
                session, listing.WritebackFilter(statuses=frozenset({Status.SENT})), limit=500
            )
            if r.email and r.master_customer_id
        )
    shots = []
    console.window.show_page("mailings")
    wait_until(lambda: console.mailings.table.topLevelItemCount() > 0)
    shots.append(save(console.window, out / "mailings-page.png"))
    console.window.show_page(PAGE_WRITEBACKS)

    retry = RetryDialog(factory, runner, exhausted + not_yet, console.window)
    retry.show()
    wait_until(lambda: retry.preview is not None)
    shots.append(save(retry, out / "retry-dialog.png"))
    retry.close()

    scheduling = ScheduleDialog(factory, runner, console.window, mailing_id=mailing.id)
    scheduling.show()
    wait_until(lambda: scheduling.table.current_id() == mailing.id)
    shots.append(save(scheduling, out / "schedule-dialog.png"))
    scheduling.close()

    viewer = ConstituentDialog(factory, runner, services.client, console.window, person.email)
    viewer.resize(1200, 700)
    viewer.show()
    wait_until(lambda: bool(viewer.viewer.activities) and not viewer.viewer.busy)
    shots.append(save(viewer, out / "constituent-viewer.png"))
    viewer.close()

    settings = SettingsDialog(
        services.settings, services.password_store, factory, runner, console.window, services.settings_path
    )
    settings.show()
    settings.test_connection()
    wait_until(lambda: bool(settings.checks))
    shots.append(save(settings, out / "settings-dialog.png"))
    settings.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    from writeback_console import demo
    from writeback_console.ui.composition_root import open_console, start_services

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--rows", type=int, default=None, help="writebacks in the demo (default: its own)")
    parser.add_argument("--profile", default="realistic", help="the demo profile (default: realistic)")
    parser.add_argument("--palette", choices=["light", "dark"], default="light", help="default: light")
    parser.add_argument("--size", default="x".join(map(str, WINDOW_SIZE)), help="the window's WIDTHxHEIGHT")
    parser.add_argument("--only", default="", help="comma-separated names of the shots to keep (default all)")
    args = parser.parse_args(argv)
    try:
        width, height = (int(n) for n in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r} is not WIDTHxHEIGHT, e.g. 1024x700")
    args.outdir.mkdir(parents=True, exist_ok=True)
    app = make_application([sys.argv[0]])
    themes = theme.manager(app)
    if themes is not None:
        themes.set_choice(theme.Choice(args.palette))
    global _suffix, _only
    _suffix = ("-dark" if args.palette == "dark" else "") + (
        f"-{width}x{height}" if (width, height) != WINDOW_SIZE else ""
    )
    _only = frozenset(name.strip() for name in args.only.split(",") if name.strip())
    with tempfile.TemporaryDirectory() as tmp:
        folder = demo.prepare(Path(tmp) / "demo", args.rows, profile=args.profile)
        simulator, url = demo.start_simulator(folder)
        try:
            demo.configure(folder, url)
            services = start_services(
                folder.db_url, settings_path=folder.settings, password_store=folder.password_store()
            )
            # As the demo's own console: it runs the dispatcher (a SQLite file), paused here so that no run
            # changes the queue between one shot and the next.
            console = open_console(services, state_path=Path(tmp) / "window.ini", dispatcher=True)
            console.window.pause_action.setChecked(True)
            window = console.window
            window.resize(width, height)
            window.show()
            try:
                take(window, args.outdir)
                take_dialogs(console, args.outdir)
            finally:
                window.close()
                console.shut_down()
                services.close()
        finally:
            simulator.terminate()
            simulator.wait(10)
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
