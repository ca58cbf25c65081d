"""The quick per-status counts (standard-library sqlite3) give exactly what the store gives, and step
aside for anything they cannot read safely: another database, a missing file, an older schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.orm import Session

from tests.helpers.builders import enqueue, fail_runs, item
from writeback_console.demo.seed import seed
from writeback_console.domain import Status
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.quick_counts import sqlite_status_counts


def test_the_quick_counts_are_the_stores_counts(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    seed(engine, 3000)
    with Session(engine) as session:
        expected = listing.count_by_status(session)
    engine.dispose()
    assert sqlite_status_counts(sqlite_url) == expected
    assert sum(expected.values()) == 3000


def test_the_quick_counts_follow_changes_made_through_the_store(sqlite_url: str) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    [wid] = enqueue(factory, item())
    fail_runs(factory, wid, 3)
    counts = sqlite_status_counts(sqlite_url)
    assert counts is not None and counts[Status.ERROR] == 1 and sum(counts.values()) == 1


def test_the_quick_counts_step_aside_where_they_cannot_read_safely(sqlite_url: str, tmp_path: Path) -> None:
    assert sqlite_status_counts("postgresql+psycopg://u:p@127.0.0.1/queue") is None
    assert sqlite_status_counts(f"sqlite:///{tmp_path / 'missing.sqlite3'}") is None
    assert not (tmp_path / "missing.sqlite3").exists()
    assert sqlite_status_counts(sqlite_url + "?busy_timeout_ms=200") is None
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0003'")
    assert sqlite_status_counts(sqlite_url) is None
