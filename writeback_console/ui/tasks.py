"""Background work for the GUI: plain functions run on a thread pool, results delivered on the GUI thread.

Database queries and Personify360 calls never run on the GUI thread. A task's function gets only plain
data and must open its own session (sessions never cross threads); its result comes back through a
queue that a timer on the GUI thread empties, so the callback runs in the GUI thread.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from PySide6.QtCore import QObject, QTimer, Slot

from writeback_console.store.engine import QueryStop

log = logging.getLogger(__name__)


class _Relay:
    """One submitted task's way home: its callbacks, and whether its result is still wanted."""

    __slots__ = ("cancelled", "on_done", "on_error", "stop")

    def __init__(
        self,
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
        stop: QueryStop | None = None,
    ) -> None:
        self.on_done = on_done
        self.on_error = on_error
        self.cancelled = False
        self.stop = stop


def _run_job(
    done: queue.SimpleQueue[tuple[_Relay, bool, Any]],
    relay: _Relay,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    """Runs on a worker thread; it touches no Qt object, it only puts the outcome in the queue."""
    if relay.cancelled:
        done.put((relay, True, None))  # nothing to deliver, but the relay must be released
        return
    try:
        result = fn(*args)
    except BaseException as exc:  # reported to the GUI, never lost in the pool
        exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
        done.put((relay, False, exc))
    else:
        done.put((relay, True, result))


class Task:
    """A handle on submitted work: cancel() drops its result, and stops its query when it was given a
    ``QueryStop`` (otherwise the function runs to its end)."""

    def __init__(self, relay: _Relay, number: int) -> None:
        self._relay = relay
        self.number = number

    def cancel(self) -> None:
        relay = self._relay
        if relay.cancelled:
            return
        relay.cancelled = True
        if relay.stop is not None:
            # A PostgreSQL cancel request is a round trip to the server: never on the GUI thread.
            threading.Thread(target=relay.stop.stop, name="query-stop", daemon=True).start()


class TaskRunner(QObject):
    """Runs functions off the GUI thread: ``submit(fn, *args, on_done=…, on_error=…)``.

    Worker threads never touch a Qt object: they put each outcome in a queue, which a timer on the GUI
    thread empties while work is outstanding. Signals emitted from other threads with Python payloads
    crash some PySide6 releases under load (see tests/gui/test_qt_threading.py); a queue cannot.
    """

    #: How often the GUI thread looks for finished work while some is outstanding (ms).
    POLL_MS = 5
    #: The most time one look spends handing results to callbacks before it lets the event loop run.
    BUDGET_S = 0.008

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="console-task")
        self._futures: set[Future[None]] = set()
        self._pending: set[_Relay] = set()
        self._done: queue.SimpleQueue[tuple[_Relay, bool, Any]] = queue.SimpleQueue()
        self._numbers = itertools.count(1)
        self._timer = QTimer(self)
        self._timer.setInterval(self.POLL_MS)
        self._timer.timeout.connect(self._deliver)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        stop: QueryStop | None = None,
    ) -> Task:
        """Run ``fn(*args)`` on a worker thread. ``stop``, when ``fn`` reads through it (``read_session``),
        lets ``Task.cancel`` stop the query itself."""
        relay = _Relay(on_done, on_error, stop)
        self._pending.add(relay)
        future = self._pool.submit(_run_job, self._done, relay, fn, args)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        if not self._timer.isActive():
            self._timer.start()
        return Task(relay, next(self._numbers))

    @Slot()
    def _deliver(self) -> None:
        """Hand finished outcomes to their callbacks, on the GUI thread, a few milliseconds' worth at a
        time: what piled up is spread over several turns of the event loop, so painting and input are
        never held up behind it."""
        budget_end = time.perf_counter() + self.BUDGET_S
        while time.perf_counter() < budget_end:
            try:
                relay, ok, value = self._done.get_nowait()
            except queue.Empty:
                break
            self._pending.discard(relay)
            if relay.cancelled:
                continue
            callback = relay.on_done if ok else relay.on_error
            if callback is not None:
                callback(value)
            elif not ok:
                log.error("background task failed: %s", getattr(value, "__traceback_text__", value))
        if not self._pending:
            self._timer.stop()

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def wait(self, msecs: int = 30_000) -> bool:
        """Wait for running work to finish (used when the window closes, and by tests)."""
        _done, running = wait(list(self._futures), timeout=msecs / 1000)
        return not running

    def close(self, msecs: int = 30_000) -> bool:
        """Wait for running work, then end the worker threads; nothing may be submitted after."""
        finished = self.wait(msecs)
        self._timer.stop()
        self._pool.shutdown(wait=finished, cancel_futures=True)
        return finished


class TaskGroup:
    """The tasks one widget or model submitted; all dropped when it is destroyed.

    A result delivered to a Python callback of a deleted Qt object would raise in the event loop,
    e.g. when a page closes while its query is still running.
    """

    def __init__(self, owner: QObject, runner: TaskRunner) -> None:
        self.runner = runner
        self._tasks: set[Task] = set()
        tasks = self._tasks

        # A closure over the set, not over self or owner: it must work while owner is being destroyed.
        def cancel_all() -> None:
            for task in list(tasks):
                task.cancel()

        owner.destroyed.connect(cancel_all)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        stop: QueryStop | None = None,
    ) -> Task:
        holder: list[Task] = []

        def done(result: Any) -> None:
            self._tasks.difference_update(holder)
            if on_done is not None:
                on_done(result)

        def error(exc: BaseException) -> None:
            self._tasks.difference_update(holder)
            if on_error is not None:
                on_error(exc)

        task = self.runner.submit(fn, *args, on_done=done, on_error=error, stop=stop)
        holder.append(task)
        self._tasks.add(task)
        return task

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
