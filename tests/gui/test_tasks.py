"""Background tasks run off the GUI thread and deliver their results on it."""

from __future__ import annotations

import threading
import time

from pytestqt.qtbot import QtBot
from sqlalchemy import text

from writeback_console.store.engine import QueryStop, make_engine, make_session_factory, read_session
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


def test_cancelling_a_task_stops_its_query_in_the_database(sqlite_url: str) -> None:
    """A superseded count gives its worker thread back at once instead of running on unseen."""
    factory = make_session_factory(make_engine(sqlite_url))
    runner = TaskRunner(max_threads=1)
    stop = QueryStop()
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
        "SELECT count(*) FROM n"
    )

    def count_forever(stop: QueryStop) -> int:
        with read_session(factory, stop) as session:
            return int(session.execute(text(slow)).scalar_one())

    delivered: list[object] = []
    task = runner.submit(count_forever, stop, stop=stop, on_done=delivered.append, on_error=delivered.append)
    time.sleep(0.3)
    task.cancel()
    try:
        assert runner.wait(5_000), "the cancelled query kept its thread"
        assert stop.stopped and delivered == []
    finally:
        runner.close()
        factory.kw["bind"].dispose()
