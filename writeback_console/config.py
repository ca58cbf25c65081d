"""Where things live: the data and config folders, and which database a command works on."""

from __future__ import annotations

import os
import re
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


#: scheme://user:password@rest, the password running to the last "@" (a password typed with a raw "@"
#: in it must not show its end).
_URL_CREDENTIALS = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)(?P<password>.*)@(?P<rest>[^@]*)$"
)


def redact_url(url: str) -> str:
    """The URL as it may be shown: any password replaced by ***, in the address or as a query parameter
    (``?password=…``, which libpq and the drivers take as the password too)."""
    from sqlalchemy.engine import make_url

    hidden = _URL_CREDENTIALS.sub(r"\g<head>***@\g<rest>", url)
    try:
        parsed = make_url(hidden)
    except Exception:
        return "<unparsable database URL>"
    secret = {k: "***" for k in parsed.query if k.lower() in ("password", "passwd", "pwd")}
    if parsed.password is None and not secret:
        # Nothing to hide: shown as typed (a file path keeps its "@" and spaces unescaped).
        return url
    if secret:
        parsed = parsed.update_query_dict(secret)
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
