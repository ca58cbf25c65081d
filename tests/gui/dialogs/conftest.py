"""Fixtures for the dialog tests: a real SQLite queue database and a task runner drained after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.ui.dialogs import errors
from writeback_console.ui.tasks import TaskRunner


@pytest.fixture
def db(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def runner(qtbot: QtBot) -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.wait()
    # Results still on their way are delivered while the widgets that asked for them are alive.
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)


@pytest.fixture
def shown_errors(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Error dialogs the code under test asked for, instead of modal windows: (title, message, details)."""
    shown: list[tuple[str, str, str]] = []

    def record(_parent: object, title: str, message: str, details: str = "") -> None:
        shown.append((title, message, details))

    monkeypatch.setattr(errors, "show_error", record)
    return shown
