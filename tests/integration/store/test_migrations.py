"""Migrations build an empty database on both backends, and the models and migrations agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from tests.helpers.fixtures import create_pg_database, drop_pg_database
from writeback_console.store.engine import make_engine
from writeback_console.store.migrate import alembic_config, current_revision, head_revision, upgrade
from writeback_console.store.models import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
        yield engine
        engine.dispose()
        return
    url = create_pg_database("wbmig")
    engine = make_engine(url)
    yield engine
    engine.dispose()
    drop_pg_database(url)


def test_upgrade_builds_an_empty_database_to_head(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    tables = set(inspect(empty_engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


# SQLite cannot reflect the lower(email) expression index, so neither alembic nor SQLAlchemy compare it
# there; test_indexes_the_screens_rely_on_exist checks it by name instead.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_downgrade_to_nothing_and_back(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    command.downgrade(alembic_config(empty_engine), "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_indexes_the_screens_rely_on_exist(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        if empty_engine.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'writeback'"
        else:
            query = "SELECT indexname FROM pg_indexes WHERE tablename = 'writeback'"
        names = set(conn.exec_driver_sql(query).scalars())
    for wanted in (
        "ix_writeback_status_created_at",
        "ix_writeback_email_lower",
        "ix_writeback_kind_created_at",
        "ix_writeback_mailing_id",
        "ix_writeback_open",
    ):
        assert wanted in names
    uniques = inspect(empty_engine).get_unique_constraints("writeback")
    assert any(u["column_names"] == ["ref"] for u in uniques)
    if empty_engine.dialect.name == "postgresql":
        with empty_engine.connect() as conn:
            definition = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_writeback_open'"
            ).scalar_one()
        assert "WHERE" in definition and "'processing'" in definition and "'sent'" not in definition


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.sqlite3'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()


def test_the_head_revision_the_fast_check_knows_is_the_newest_migration() -> None:
    # ensure_schema compares with HEAD_REVISION without loading Alembic; a new migration must move it.
    from writeback_console.store.schema_version import HEAD_REVISION

    assert head_revision() == HEAD_REVISION
