"""From process start to the first painted Writeback List with rows, as `make run` opens it.

Runs `writeback-console demo` (a fresh demo folder, the simulator, the console) in a new process under
a virtual screen (Xvfb when `xvfb-run` is there, else Qt's offscreen platform) and reports when the
list view first painted itself holding rows, counted from the moment the process started (read from
/proc, so the interpreter's own start-up is included). Target (issue 10): within 5 s.

    .venv/bin/python bench/first_window.py [--runs 5] [-- demo options, e.g. --profile stress]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = r"""
import os, sys, time
from pathlib import Path

def started_at():
    # The process's start in seconds since boot, and the current time since boot.
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
    return start, float(Path("/proc/uptime").read_text().split()[0])

start, now = started_at()
clock0 = time.monotonic() - (now - start)

from PySide6.QtCore import QEvent, QObject, QTimer
from writeback_console.ui.composition_root import make_application

app = make_application()

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and obj.objectName() == "writebackTable" or (
            event.type() == QEvent.Type.Paint and obj.parent() is not None
            and obj.parent().objectName() == "writebackTable"
        ):
            view = obj if obj.objectName() == "writebackTable" else obj.parent()
            model = view.model()
            if model is not None and model.rowCount() > 0:
                print(f"FIRST_PAINT {time.monotonic() - clock0:.3f}", flush=True)
                os._exit(0)
        return False

watch = FirstPaint()
app.installEventFilter(watch)
QTimer.singleShot(120_000, lambda: os._exit(3))
from writeback_console.cli import main
sys.exit(main(sys.argv[1:]))
"""


def one_run(demo_args: list[str], folder: Path) -> float:
    # As an installed environment has it: the package compiled, bytecode kept.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env = {
        **env,
        "XDG_CONFIG_HOME": str(folder / "config"),
        "XDG_DATA_HOME": str(folder / "data"),
        "WRITEBACK_NO_KEYRING": "1",
    }
    command = [sys.executable, "-c", PROBE, "demo", "--folder", str(folder / "demo"), *demo_args]
    if shutil.which("xvfb-run") and not os.environ.get("DISPLAY"):
        command = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *command]
    elif not os.environ.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    for line in done.stdout.splitlines():
        if line.startswith("FIRST_PAINT "):
            return float(line.split()[1])
    raise RuntimeError(f"no first paint (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("demo_args", nargs="*", help="options for `writeback-console demo`")
    args = parser.parse_args()
    import compileall

    import writeback_console

    compileall.compile_dir(Path(writeback_console.__file__).parent, quiet=1)
    seconds = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            seconds.append(one_run(args.demo_args, Path(folder)))
    median = statistics.median(seconds)
    runs = ", ".join(f"{s:.2f}" for s in seconds)
    verdict = "met" if median <= 5 else "MISSED"
    print(f"first painted list: median {median:.2f} s over {args.runs} runs ({runs}); target 5 s: {verdict}")


if __name__ == "__main__":
    main()
