"""Background work for the GUI: plain functions run on a thread pool, results delivered on the GUI thread.

Database queries and Personify360 calls never run on the GUI thread. A task's function gets only plain
data and must open its own session (sessions never cross threads); its result comes back through a
queued signal to a slot that runs the callback in the GUI thread.
"""

from __future__ import annotations

import itertools
import logging
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Lives in the GUI thread; the worker emits, the queued connection brings it home.

    Signals:
        succeeded(object): the function's result.
        failed(object): the exception it raised (with ``__traceback_text__`` set for the details view).
    """

    succeeded = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
        runner: TaskRunner,
    ) -> None:
        # Owned by the runner on the C++ side: dropping the last Python reference can then never
        # delete the relay while one of its own slots runs; it goes with deleteLater() instead.
        super().__init__(runner)
        self._on_done = on_done
        self._on_error = on_error
        self._runner = runner
        self.cancelled = False
        self.succeeded.connect(self._deliver_result)
        self.failed.connect(self._deliver_error)

    def _finish(self) -> None:
        self._runner._pending.discard(self)
        self.deleteLater()

    @Slot(object)
    def _deliver_result(self, result: object) -> None:
        try:
            if not self.cancelled and self._on_done is not None:
                self._on_done(result)
        finally:
            self._finish()

    @Slot(object)
    def _deliver_error(self, error: object) -> None:
        try:
            if self.cancelled:
                return
            assert isinstance(error, BaseException)
            if self._on_error is not None:
                self._on_error(error)
            else:
                log.error("background task failed: %s", getattr(error, "__traceback_text__", error))
        finally:
            self._finish()


def _run_job(relay: _Relay, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Runs on a worker thread; the result or the exception goes home through the relay's signals."""
    if relay.cancelled:
        relay.succeeded.emit(None)  # nothing to deliver, but the relay must be released
        return
    try:
        result = fn(*args)
    except BaseException as exc:  # reported to the GUI, never lost in the pool
        exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
        relay.failed.emit(exc)
    else:
        relay.succeeded.emit(result)


class Task:
    """A handle on submitted work: cancel() drops its result (the function itself runs to its end)."""

    def __init__(self, relay: _Relay, number: int) -> None:
        self._relay = relay
        self.number = number

    def cancel(self) -> None:
        self._relay.cancelled = True


class TaskRunner(QObject):
    """Runs functions off the GUI thread: ``submit(fn, *args, on_done=…, on_error=…)``."""

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Plain Python threads, not QThreadPool with QRunnable subclasses: a runnable's wrapper, deleted
        # by Qt on a worker thread while the GUI thread's garbage collector visits it, crashes the process.
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="console-task")
        self._futures: set[Future[None]] = set()
        self._pending: set[_Relay] = set()
        self._numbers = itertools.count(1)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Task:
        relay = _Relay(on_done, on_error, self)
        self._pending.add(relay)  # keeps the relay alive until its result is delivered
        future = self._pool.submit(_run_job, relay, fn, args)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return Task(relay, next(self._numbers))

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def wait(self, msecs: int = 30_000) -> bool:
        """Wait for running work to finish (used when the window closes, and by tests)."""
        _done, running = wait(list(self._futures), timeout=msecs / 1000)
        return not running


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

        task = self.runner.submit(fn, *args, on_done=done, on_error=error)
        holder.append(task)
        self._tasks.add(task)
        return task

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
