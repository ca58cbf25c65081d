"""Alembic migrations run from code: upgrade a database, and tell whether it is up to date."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database needs `writeback-console db upgrade` before this version can use it."""


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None, "the migrations folder has no head revision"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def ensure_schema(engine: Engine, *, upgrade_if_needed: bool) -> None:
    """Make sure the schema is current; upgrade it when allowed, otherwise say what to run."""
    current = current_revision(engine)
    if current == head_revision():
        return
    if upgrade_if_needed:
        upgrade(engine)
        return
    found = current or "an empty database"
    raise SchemaOutOfDate(
        f"the database schema is at {found}, this version needs {head_revision()}: "
        "run `writeback-console db upgrade` first"
    )
