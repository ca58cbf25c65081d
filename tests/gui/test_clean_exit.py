"""Ctrl+C in the terminal that runs the console closes it as its close button would: exit 0, the
layout saved, no traceback — the signal arrives while Qt's event loop runs, as it does for a user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import os, signal, sys
from PySide6.QtCore import QTimer
from writeback_console.ui.composition_root import main, make_application

app = make_application()
# Well after the window is up and the event loop runs: the interrupt a user's Ctrl+C sends.
QTimer.singleShot(2500, lambda: os.kill(os.getpid(), signal.{name}))
sys.exit(main(sys.argv[1]))
"""


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_an_interrupt_from_the_terminal_closes_the_console_cleanly(tmp_path: Path, name: str) -> None:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "WRITEBACK_NO_KEYRING": "1",
    }
    db = tmp_path / "queue.sqlite3"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(name=name), str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    # The close button's path ran: the window saved its layout.
    assert (tmp_path / "config" / "writeback-console" / "window.ini").is_file()


def test_the_handlers_that_were_there_come_back_when_the_console_closes(qtbot: object) -> None:
    import signal as signals

    from PySide6.QtWidgets import QWidget

    from writeback_console.ui.composition_root import InterruptWatch, make_application

    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not called")

    before = signals.signal(signals.SIGTERM, mine)
    try:
        window = QWidget()
        watch = InterruptWatch(make_application(), window)
        assert signals.getsignal(signals.SIGTERM) is not mine
        watch.stop()
        assert signals.getsignal(signals.SIGTERM) is mine
    finally:
        signals.signal(signals.SIGTERM, before)
