"""News of changed writebacks from the database, for screens that stay live: other consoles' and
headless dispatchers' changes as well as this console's own.

The database tells (migration 0010): PostgreSQL by ``NOTIFY writeback_change`` with the ids, delivered
at commit; SQLite through ``writeback_change`` rows, noticed cheaply with ``PRAGMA data_version``. A
``ChangeFeed`` listens on a connection of its own in a thread of its own and gathers the ids; a screen
takes them now and then (``take``) and re-reads only those rows. When the news may be incomplete (too
many at once, a dropped connection) it says "everything" and the screen reads what it shows again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from writeback_console.store.models import WritebackChange

log = logging.getLogger(__name__)

CHANNEL = "writeback_change"
#: How often the feed looks (SQLite) or wakes to see whether it should stop (PostgreSQL), seconds.
POLL_SECONDS = 1.0
#: Past this many changed rows at once, the news is "everything".
MAX_IDS = 5_000
#: The SQLite change table keeps this many newest entries; a feed further behind reads everything.
KEEP_ENTRIES = 100_000


@dataclass
class Changes:
    """What changed since the last ``take``."""

    ids: set[int] = field(default_factory=set)
    #: The news may be incomplete: read everything shown again.
    everything: bool = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.ids)


class ChangeFeed:
    """Gathers the ids of changed writebacks in a background thread; ``take()`` hands them over.

    ``start()`` and ``stop()`` may be called from any thread; ``take()`` never waits on the database.
    """

    def __init__(self, engine: Engine, *, poll_seconds: float = POLL_SECONDS) -> None:
        self._engine = engine
        self._poll = poll_seconds
        self._lock = threading.Lock()
        self._pending = Changes()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set once the feed listens (tests wait for it before changing anything).
        self.listening = threading.Event()

    def start(self) -> None:
        if self._thread is not None:
            return
        target = self._listen if self._engine.dialect.name == "postgresql" else self._watch
        self._thread = threading.Thread(target=self._run, args=(target,), name="change-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def take(self) -> Changes:
        with self._lock:
            taken, self._pending = self._pending, Changes()
        return taken

    # -- the thread -------------------------------------------------------------------------------

    def _add(self, ids: set[int], everything: bool = False) -> None:
        with self._lock:
            pending = self._pending
            pending.everything = pending.everything or everything or len(pending.ids) + len(ids) > MAX_IDS
            if pending.everything:
                pending.ids.clear()
            else:
                pending.ids.update(ids)

    def _run(self, target: Any) -> None:
        first = True
        while not self._stop.is_set():
            try:
                target(first)
            except Exception as exc:  # a dropped connection: listen again, and say what may be missed
                log.warning("the list's change feed lost its connection: %s", exc)
                self.listening.clear()
                self._add(set(), everything=True)
                first = False
                self._stop.wait(min(5.0, self._poll * 3))

    def _raw(self) -> Any:
        # A connection of its own, outside the pool: it is held for as long as the feed runs.
        proxied = self._engine.raw_connection()
        proxied.detach()
        return proxied.dbapi_connection

    def _listen(self, _first: bool) -> None:
        conn = self._raw()
        try:
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=self._poll):
                    if note.payload == "*":
                        self._add(set(), everything=True)
                    else:
                        self._add({int(part) for part in note.payload.split(",") if part.isdigit()})
                # A quiet moment: make sure the connection is still there (notifies() does not tell).
                conn.execute("SELECT 1")
        finally:
            conn.close()

    def _watch(self, _first: bool) -> None:
        conn = self._raw()
        try:
            last = conn.execute("SELECT coalesce(max(seq), 0) FROM writeback_change").fetchone()[0]
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            self.listening.set()
            while not self._stop.wait(self._poll):
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now == version:
                    continue  # nobody committed anything since: no query at all
                version = now
                first_kept = conn.execute("SELECT min(seq) FROM writeback_change").fetchone()[0]
                rows = conn.execute(
                    "SELECT seq, writeback_id FROM writeback_change WHERE seq > ? ORDER BY seq LIMIT ?",
                    (last, MAX_IDS + 1),
                ).fetchall()
                if not rows:
                    continue
                behind = first_kept is not None and first_kept > last + 1 and last > 0
                self._add({wid for _seq, wid in rows}, everything=behind or len(rows) > MAX_IDS)
                last = (
                    rows[-1][0]
                    if len(rows) <= MAX_IDS
                    else conn.execute("SELECT max(seq) FROM writeback_change").fetchone()[0]
                )
        finally:
            conn.close()


def trim(session: Session, keep: int = KEEP_ENTRIES) -> int:
    """Forget all but the newest ``keep`` change entries (SQLite; PostgreSQL keeps none)."""
    newest = session.execute(select(func.max(WritebackChange.seq))).scalar()
    if newest is None or newest <= keep:
        return 0
    result = session.execute(delete(WritebackChange).where(WritebackChange.seq <= newest - keep))
    return int(getattr(result, "rowcount", 0) or 0)
