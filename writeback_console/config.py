"""Where things live: the data and config folders, and which database a command works on."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "writeback-console"
APP_AUTHOR = "WritebackConsole"
DB_URL_ENV = "WRITEBACK_DB_URL"


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR))


def default_db_path() -> Path:
    return data_dir() / "writeback.sqlite3"


def resolve_db_url(given: str | None = None) -> str:
    """``--db`` if given, else ``WRITEBACK_DB_URL``, else the embedded SQLite file.

    A bare path is taken as a SQLite file, so ``--db queue.sqlite3`` works as one would expect.
    """
    url = given or os.environ.get(DB_URL_ENV) or f"sqlite:///{default_db_path()}"
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def redact_url(url: str) -> str:
    """The URL as it may be shown: any password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"
