"""Background tasks run off the GUI thread and deliver their results on it."""

from __future__ import annotations

import threading

from pytestqt.qtbot import QtBot

from writeback_console.ui.tasks import TaskRunner


def test_result_arrives_on_the_gui_thread_from_another_thread(qtbot: QtBot) -> None:
    runner = TaskRunner()
    gui_thread = threading.get_ident()
    seen: dict[str, int] = {}

    def work(x: int) -> int:
        seen["worker"] = threading.get_ident()
        return x * 2

    def done(result: int) -> None:
        seen["result"] = result
        seen["callback"] = threading.get_ident()

    runner.submit(work, 21, on_done=done)
    qtbot.waitUntil(lambda: "result" in seen, timeout=5000)
    assert seen["result"] == 42
    assert seen["worker"] != gui_thread
    assert seen["callback"] == gui_thread


def test_errors_are_delivered_and_cancelled_results_dropped(qtbot: QtBot) -> None:
    runner = TaskRunner()
    errors: list[BaseException] = []
    results: list[int] = []

    def boom() -> int:
        raise RuntimeError("database is down")

    runner.submit(boom, on_error=errors.append)
    task = runner.submit(lambda: 1, on_done=results.append)
    task.cancel()
    runner.wait()
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    qtbot.wait(50)
    assert str(errors[0]) == "database is down"
    assert "RuntimeError" in errors[0].__traceback_text__  # type: ignore[attr-defined]
    assert results == []


def test_every_task_is_released_once_delivered_or_cancelled(qtbot: QtBot) -> None:
    runner = TaskRunner()
    results: list[int] = []
    tasks = [runner.submit(lambda n=n: n, on_done=results.append) for n in range(2000)]
    for task in tasks[::2]:
        task.cancel()
    runner.wait()
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)
    assert sorted(results) == list(range(1, 2000, 2))
