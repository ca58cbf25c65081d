"""Per-status counts read with the standard library's sqlite3, for a command that should answer before
SQLAlchemy could even be loaded (`writeback-console summary` in a monitoring script, say).

Only for a SQLite file already at this version's schema; anything else (PostgreSQL, a missing file, an
older schema that wants upgrading) is None, and the caller asks the store as usual. It reads the totals
the database keeps (``counters.totals``); a test holds the two to the same answer.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from writeback_console.domain import Status
from writeback_console.store.schema_version import HEAD_REVISION, VERSION_TABLE

PREFIX = "sqlite:///"


def sqlite_status_counts(url: str) -> dict[Status, int] | None:
    """Rows per status of the SQLite queue at ``url``, or None when this quick way does not apply."""
    if not url.startswith(PREFIX) or "?" in url:
        return None
    path = Path(url[len(PREFIX) :])
    if not path.is_file():
        return None
    try:
        # Read-only: a summary never creates, upgrades or locks anything for writing.
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        version = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        if version is None or version[0] != HEAD_REVISION:
            return None
        counts = dict.fromkeys(Status, 0)
        kept = conn.execute(
            "SELECT status, SUM(n) FROM (SELECT status, total AS n FROM status_count "
            "UNION ALL SELECT status, delta FROM status_count_delta) GROUP BY status"
        )
        for status, n in kept:
            counts[Status(status)] = int(n)
        return counts
    except sqlite3.Error:
        return None
    finally:
        conn.close()
