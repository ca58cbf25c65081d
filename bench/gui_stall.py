"""Benchmark: the longest GUI-thread stall while the dispatcher sends 5,000 writebacks (target <= 50 ms).

The console window is open on the Writeback List (offscreen), the dispatcher runs in its worker thread
against the simulator in its own process, and a 10 ms heartbeat timer on the GUI thread records how late
each tick comes. Also reports the gaps at the 99th percentile and the cycle's duration.

Run: .venv/bin/python bench/gui_stall.py [--rows 5000] [--latency-ms 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dispatch import PEOPLE, fill_queue, start_simulator

from writeback_console.dispatch.summary import CycleSummary
from writeback_console.settings import AppSettings, PasswordStore, save_settings
from writeback_console.ui.composition_root import make_application, open_console, start_services


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--latency-ms", type=int, default=5)
    args = parser.parse_args()
    app = make_application([sys.argv[0]])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sim, url = start_simulator(folder, args.latency_ms)
        try:
            db_url = f"sqlite:///{folder / 'queue.sqlite3'}"
            fill_queue(db_url, args.rows)
            settings_path = folder / "settings.json"
            save_settings(AppSettings(service_root_url=url, user="u", interval_seconds=3600), settings_path)
            store = PasswordStore(fallback=folder / "credentials.json", use_keyring=False)
            store.set(url, "u", "p")
            services = start_services(db_url, settings_path=settings_path, password_store=store)
            console = open_console(services, state_path=folder / "window.ini")
            console.window.resize(1440, 900)
            console.window.show()
            deadline = time.monotonic() + 30
            while console.window.writebacks.model.rowCount() == 0 and time.monotonic() < deadline:
                app.processEvents()

            gaps: list[float] = []
            clock = QElapsedTimer()
            clock.start()
            last = [clock.nsecsElapsed()]

            def beat() -> None:
                now = clock.nsecsElapsed()
                gaps.append((now - last[0]) / 1e6)
                last[0] = now

            heartbeat = QTimer()
            heartbeat.setObjectName("stall-heartbeat")
            heartbeat.setInterval(10)
            heartbeat.timeout.connect(beat)
            done: list[CycleSummary] = []
            finished_at: list[float] = []
            loop = QEventLoop()

            def cycle_done(summary: CycleSummary) -> None:
                done.append(summary)
                finished_at.append(time.perf_counter())
                # Keep beating for a second while the list refreshes the rows the cycle changed.
                QTimer.singleShot(1000, loop.quit)

            console.controller.worker.finished.connect(cycle_done)
            heartbeat.start()
            started = time.perf_counter()
            console.window.run_now_requested.emit()
            loop.exec()  # the real event loop, as the application runs it
            took = finished_at[0] - started
            heartbeat.stop()
            console.shut_down()
            console.window.close()
            services.close()
        finally:
            sim.terminate()
            sim.wait()
    stalls = sorted(g - 10 for g in gaps)
    p99 = stalls[int(len(stalls) * 0.99)] if stalls else 0.0
    print(
        f"## GUI-thread stall during a {args.rows:,}-writeback dispatcher cycle (simulator latency "
        f"{args.latency_ms} ms, {PEOPLE} constituents)"
    )
    print(f"cycle: {done[0].describe()} (wall {took:.1f} s)")
    print(
        f"heartbeats: {len(gaps):,}; longest stall beyond the 10 ms tick: {stalls[-1]:.1f} ms; "
        f"99th percentile: {p99:.1f} ms  (target <= 50 ms)"
    )
    QApplication.processEvents()


if __name__ == "__main__":
    main()
