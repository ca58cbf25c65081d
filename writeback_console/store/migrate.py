"""Alembic migrations run from code: upgrade a database, and tell whether it is up to date.

Alembic itself is loaded only to upgrade (or to read the migrations folder): a command on a database
that is already current reads its version with one query and starts at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from writeback_console.store.schema_version import HEAD_REVISION, VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database needs `writeback-console db upgrade` before this version can use it."""


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The head of the migrations folder, as Alembic reads it."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None, "the migrations folder has no head revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database without the schema."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one_or_none()


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def ensure_schema(engine: Engine, *, upgrade_if_needed: bool) -> None:
    """Make sure the schema is current; upgrade it when allowed, otherwise say what to run."""
    current = current_revision(engine)
    if current == HEAD_REVISION:
        return
    if upgrade_if_needed:
        upgrade(engine)
        return
    found = current or "an empty database"
    raise SchemaOutOfDate(
        f"the database schema is at {found}, this version needs {HEAD_REVISION}: "
        "run `writeback-console db upgrade` first"
    )
