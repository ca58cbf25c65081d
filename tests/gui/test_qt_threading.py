"""Signals emitted from many threads at once reach the GUI thread without crashing the process.

Every background result in the app arrives this way. PySide6 6.12.0 crashes here (SIGSEGV), which is
why pyproject.toml pins an earlier release; the stress runs in a child process so a crash fails this
test instead of killing the whole suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

STRESS = textwrap.dedent(
    """
    import sys
    from concurrent.futures import ThreadPoolExecutor
    from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, Signal, Slot

    app = QCoreApplication(sys.argv)

    class Hub(QObject):
        finished = Signal(int, int)

        def __init__(self):
            super().__init__()
            self.waiting = set()
            self.finished.connect(self.done)

        @Slot(int, int)
        def done(self, n, _):
            self.waiting.discard(n)

    class Job(QRunnable):
        def __init__(self, hub, n):
            super().__init__()
            self.hub, self.n = hub, n

        def run(self):
            self.hub.finished.emit(self.n, 1)

    hub = Hub()
    pool = QThreadPool()
    pool.setMaxThreadCount(4)
    with ThreadPoolExecutor(4) as executor:
        for batch in range(20):
            for i in range(200):
                n = batch * 1000 + i
                hub.waiting.add(n)
                if i % 2:
                    pool.start(Job(hub, n))
                else:
                    executor.submit(hub.finished.emit, n, 1)
            pool.waitForDone()
            while hub.waiting:
                app.processEvents()
    print("delivered")
    """
)


def test_cross_thread_signals_under_load_do_not_crash() -> None:
    done = subprocess.run([sys.executable, "-c", STRESS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "delivered"
