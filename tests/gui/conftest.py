"""Fixtures for the GUI tests: seeded queue databases (small, on both backends; and one million rows)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.fixtures import create_pg_database, drop_pg_database
from writeback_console.demo.seed import seed
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.migrate import upgrade
from writeback_console.ui import gc_guard
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import WritebackTableModel

Factory = sessionmaker[Session]
SMALL_ROWS = 1500
BIG_ROWS = 1_000_000
#: Bump when the seed changes, so that a cached big database is made again.
BIG_VERSION = 9
BIG_DB_ENV = "WRITEBACK_GUI_BIG_DB"


def _seeded(url: str, rows: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    seed(engine, rows, random_seed=11)
    engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _garbage_collected_on_the_gui_thread(qapp: QApplication) -> None:
    """As in the console: Qt objects must never be collected by a worker thread."""
    gc_guard.install(qapp)


@pytest.fixture(scope="session")
def small_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A seeded SQLite queue the read-only GUI tests share."""
    url = f"sqlite:///{tmp_path_factory.mktemp('gui') / 'small.sqlite3'}"
    _seeded(url, SMALL_ROWS)
    return url


@pytest.fixture(scope="session")
def small_pg_url() -> Iterator[str]:
    url = create_pg_database("wbgui")
    _seeded(url, SMALL_ROWS)
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded_url(request: pytest.FixtureRequest) -> str:
    """A seeded queue, once on SQLite and once on PostgreSQL (read-only: tests must not change it)."""
    url: str = request.getfixturevalue("small_sqlite_url" if request.param == "sqlite" else "small_pg_url")
    return url


@pytest.fixture(scope="session")
def _seeded_engines() -> Iterator[dict[str, Engine]]:
    """One engine per seeded database for the whole run: an engine made and dropped per test leaves its
    dialect and pool to the garbage collector while the next test's worker threads are querying."""
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.fixture
def seeded_factory(seeded_url: str, _seeded_engines: dict[str, Engine]) -> Factory:
    if seeded_url not in _seeded_engines:
        _seeded_engines[seeded_url] = make_engine(seeded_url)
    return make_session_factory(_seeded_engines[seeded_url])


@pytest.fixture
def small_factory(small_sqlite_url: str, _seeded_engines: dict[str, Engine]) -> Factory:
    if small_sqlite_url not in _seeded_engines:
        _seeded_engines[small_sqlite_url] = make_engine(small_sqlite_url)
    return make_session_factory(_seeded_engines[small_sqlite_url])


@pytest.fixture(scope="session")
def big_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One million seeded rows, made once and kept between runs (seeding takes about a minute).

    The file lives beside pytest's numbered temporary folders, which pytest rotates, so it survives
    from one run to the next; ``WRITEBACK_GUI_BIG_DB`` may name another place.
    """
    given = os.environ.get(BIG_DB_ENV)
    cache = Path(given) if given else tmp_path_factory.getbasetemp().parent / "writeback-gui-cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"big-{BIG_ROWS}-v{BIG_VERSION}.sqlite3"
    done = path.with_name(path.name + ".done")
    if not done.exists():
        for stale in cache.glob(path.name + "*"):
            stale.unlink()
        _seeded(f"sqlite:///{path}", BIG_ROWS)
        engine = make_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        done.touch()
    return f"sqlite:///{path}"


@pytest.fixture
def runner() -> Iterator[TaskRunner]:
    runner = TaskRunner()
    yield runner
    runner.close()


def wait_loaded(qtbot: QtBot, model: WritebackTableModel, timeout: int = 20_000) -> None:
    """Wait until the model has no query in flight."""
    qtbot.waitUntil(lambda: not model.loading, timeout=timeout)


def load_everything(qtbot: QtBot, model: WritebackTableModel) -> None:
    """Page through the whole query (small databases only)."""
    wait_loaded(qtbot, model)
    while model.canFetchMore():
        model.fetchMore()
        wait_loaded(qtbot, model)
