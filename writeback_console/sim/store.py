"""The simulator's SQLite database: Personify-like tables, the activity codes from the project's script,
constituents, and the named queries the HTTP side runs."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from writeback_console.sim.odata_filter import datetime_to_storage

#: The SQLite form of sql/personify360/informz_activity_codes.sql, kept beside it in the repository and
#: shipped with it in the package.
ACTIVITY_CODES_SCRIPT = files("writeback_console.sql.personify360") / "informz_activity_codes.sqlite.sql"

# Text columns compare case-insensitively because Personify's SQL Server database uses a
# case-insensitive collation: an email looked up in another case still matches.
SCHEMA = """
CREATE TABLE IF NOT EXISTS APP_CODE (
    SUBSYSTEM   TEXT NOT NULL COLLATE NOCASE,
    TYPE        TEXT NOT NULL COLLATE NOCASE,
    CODE        TEXT NOT NULL COLLATE NOCASE,
    DESCR       TEXT COLLATE NOCASE,
    ACTIVE_FLAG TEXT NOT NULL DEFAULT 'Y',
    OPTION_1    TEXT COLLATE NOCASE,
    ADDOPER     TEXT, ADDDATE TEXT, MODOPER TEXT, MODDATE TEXT,
    PRIMARY KEY (SUBSYSTEM, TYPE, CODE)
);
CREATE TABLE IF NOT EXISTS APP_SUBCODE (
    SUBSYSTEM   TEXT NOT NULL COLLATE NOCASE,
    TYPE        TEXT NOT NULL COLLATE NOCASE,
    CODE        TEXT NOT NULL COLLATE NOCASE,
    SUBCODE     TEXT NOT NULL COLLATE NOCASE,
    DESCR       TEXT COLLATE NOCASE,
    ACTIVE_FLAG TEXT NOT NULL DEFAULT 'Y',
    ADDOPER     TEXT, ADDDATE TEXT, MODOPER TEXT, MODDATE TEXT,
    PRIMARY KEY (SUBSYSTEM, TYPE, CODE, SUBCODE)
);
CREATE TABLE IF NOT EXISTS CUSTOMER (
    MASTER_CUSTOMER_ID   TEXT NOT NULL COLLATE NOCASE,
    SUB_CUSTOMER_ID      INTEGER NOT NULL,
    LABEL_NAME           TEXT COLLATE NOCASE,
    FIRST_NAME           TEXT COLLATE NOCASE,
    LAST_NAME            TEXT COLLATE NOCASE,
    RECORD_TYPE          TEXT NOT NULL DEFAULT 'I' COLLATE NOCASE,
    CUSTOMER_STATUS_CODE TEXT DEFAULT 'ACTIVE' COLLATE NOCASE,
    ADDOPER TEXT, ADDDATE TEXT, MODOPER TEXT, MODDATE TEXT,
    PRIMARY KEY (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID)
);
CREATE TABLE IF NOT EXISTS CUS_COMMUNICATION (
    CUS_COMMUNICATION_ID    INTEGER PRIMARY KEY,
    MASTER_CUSTOMER_ID      TEXT NOT NULL COLLATE NOCASE,
    SUB_CUSTOMER_ID         INTEGER NOT NULL,
    COMM_TYPE_CODE          TEXT NOT NULL COLLATE NOCASE,
    COMM_LOCATION_CODE      TEXT COLLATE NOCASE,
    FORMATTED_PHONE_ADDRESS TEXT COLLATE NOCASE,
    PRIMARY_FLAG            TEXT NOT NULL DEFAULT 'N',
    ADDOPER TEXT, ADDDATE TEXT, MODOPER TEXT, MODDATE TEXT,
    UNIQUE (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID, COMM_TYPE_CODE, FORMATTED_PHONE_ADDRESS)
);
CREATE INDEX IF NOT EXISTS CUS_COMMUNICATION_ADDRESS ON CUS_COMMUNICATION (FORMATTED_PHONE_ADDRESS);
CREATE TABLE IF NOT EXISTS CUS_ACTIVITY (
    ACTIVITY_ID        INTEGER PRIMARY KEY AUTOINCREMENT,
    MASTER_CUSTOMER_ID TEXT NOT NULL COLLATE NOCASE,
    SUB_CUSTOMER_ID    INTEGER NOT NULL,
    SUBSYSTEM          TEXT NOT NULL DEFAULT 'CUS' COLLATE NOCASE,
    ACTIVITY_CODE      TEXT NOT NULL COLLATE NOCASE,
    ACTIVITY_SUBCODE   TEXT COLLATE NOCASE,
    ACTIVITY_DATE      TEXT,
    ACTIVITY_TEXT      TEXT COLLATE NOCASE,
    ADDOPER TEXT, ADDDATE TEXT, MODOPER TEXT, MODDATE TEXT
);
CREATE INDEX IF NOT EXISTS CUS_ACTIVITY_CUSTOMER ON CUS_ACTIVITY (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID);
"""

#: Who the simulator records as having loaded constituents.
LOADER_OPER = "SIMULATOR"


@dataclass(frozen=True, slots=True)
class Constituent:
    """One line of a constituents file: a customer record and one email address of it."""

    master_customer_id: str
    sub_customer_id: int
    email: str
    first_name: str | None = None
    last_name: str | None = None
    primary: bool = True
    label_name: str | None = None
    record_type: str = "I"

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Constituent:
        """Validate one record; ValueError names the field that is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("expected a JSON object")
        known = {
            "master_customer_id",
            "sub_customer_id",
            "email",
            "first_name",
            "last_name",
            "primary",
            "label_name",
            "record_type",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        master = data.get("master_customer_id")
        if not isinstance(master, str) or not master.strip():
            raise ValueError("master_customer_id must be a non-empty string")
        sub = data.get("sub_customer_id", 0)
        if not isinstance(sub, int) or isinstance(sub, bool) or sub < 0:
            raise ValueError("sub_customer_id must be a non-negative integer")
        email = data.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise ValueError("email must be a string containing '@'")
        texts: dict[str, str | None] = {}
        for name in ("first_name", "last_name", "label_name"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            texts[name] = value
        primary = data.get("primary", True)
        if not isinstance(primary, bool):
            raise ValueError("primary must be true or false")
        record_type = data.get("record_type", "I")
        if not isinstance(record_type, str) or not record_type:
            raise ValueError("record_type must be a non-empty string")
        return cls(
            master_customer_id=master.strip(),
            sub_customer_id=sub,
            email=email.strip(),
            first_name=texts["first_name"],
            last_name=texts["last_name"],
            primary=primary,
            label_name=texts["label_name"],
            record_type=record_type,
        )

    @property
    def display_name(self) -> str | None:
        if self.label_name:
            return self.label_name
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or None


def now_stored() -> str:
    return datetime_to_storage(datetime.now(UTC))


class Database:
    """The SQLite file and a pool of connections to it.

    The HTTP server runs one thread per client connection, and those come and go; a pool hands each
    request a connection that no other thread is using, without opening one per thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        #: Serialises writes from the simulator's threads (see save_activity).
        self.write_lock = threading.Lock()
        with self.connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            conn.executescript(ACTIVITY_CODES_SCRIPT.read_text(encoding="utf-8"))

    def _open(self) -> sqlite3.Connection:
        # Autocommit (isolation_level=None): every statement is its own transaction unless one is begun.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        # The simulator's data is disposable; NORMAL keeps WAL durable enough and Save fast.
        conn.execute("PRAGMA synchronous=NORMAL")
        with self._all_lock:
            if self._closed:
                conn.close()
                raise RuntimeError("database is closed")
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._open()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            self._pool.put(conn)

    def close(self) -> None:
        with self._all_lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    # -------------------------------------------------------------------------------------- queries

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def add_constituents(self, constituents: Iterable[Constituent]) -> int:
        """Insert or update customers and their email addresses; returns how many records were given."""
        stamp = now_stored()
        count = 0
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            for c in constituents:
                conn.execute(
                    "INSERT INTO CUSTOMER (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID, LABEL_NAME, FIRST_NAME,"
                    " LAST_NAME, RECORD_TYPE, ADDOPER, ADDDATE, MODOPER, MODDATE)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID) DO UPDATE SET"
                    " LABEL_NAME = coalesce(excluded.LABEL_NAME, LABEL_NAME),"
                    " FIRST_NAME = coalesce(excluded.FIRST_NAME, FIRST_NAME),"
                    " LAST_NAME = coalesce(excluded.LAST_NAME, LAST_NAME),"
                    " MODOPER = excluded.MODOPER, MODDATE = excluded.MODDATE",
                    (
                        c.master_customer_id,
                        c.sub_customer_id,
                        c.display_name,
                        c.first_name,
                        c.last_name,
                        c.record_type,
                        LOADER_OPER,
                        stamp,
                        LOADER_OPER,
                        stamp,
                    ),
                )
                conn.execute(
                    "INSERT INTO CUS_COMMUNICATION (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID, COMM_TYPE_CODE,"
                    " COMM_LOCATION_CODE, FORMATTED_PHONE_ADDRESS, PRIMARY_FLAG, ADDOPER, ADDDATE, MODOPER,"
                    " MODDATE) VALUES (?, ?, 'EMAIL', 'WORK', ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID, COMM_TYPE_CODE,"
                    " FORMATTED_PHONE_ADDRESS)"
                    " DO UPDATE SET PRIMARY_FLAG = excluded.PRIMARY_FLAG",
                    (
                        c.master_customer_id,
                        c.sub_customer_id,
                        c.email,
                        "Y" if c.primary else "N",
                        LOADER_OPER,
                        stamp,
                        LOADER_OPER,
                        stamp,
                    ),
                )
                count += 1
            conn.execute("COMMIT")
        return count

    def activities(self, master_customer_id: str | None = None) -> list[dict[str, object]]:
        """CUS_ACTIVITY rows, oldest first, as dicts keyed by column name."""
        sql = "SELECT * FROM CUS_ACTIVITY"
        params: tuple[object, ...] = ()
        if master_customer_id is not None:
            sql += " WHERE MASTER_CUSTOMER_ID = ?"
            params = (master_customer_id,)
        with self.connection() as conn:
            cursor = conn.execute(sql + " ORDER BY ACTIVITY_ID", params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def set_code_active(self, code: str, active: bool, subcode: str | None = None) -> None:
        flag = "Y" if active else "N"
        with self.connection() as conn:
            if subcode is None:
                conn.execute(
                    "UPDATE APP_CODE SET ACTIVE_FLAG = ? WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY'"
                    " AND CODE = ?",
                    (flag, code),
                )
            else:
                conn.execute(
                    "UPDATE APP_SUBCODE SET ACTIVE_FLAG = ? WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY'"
                    " AND CODE = ? AND SUBCODE = ?",
                    (flag, code, subcode),
                )


@dataclass(frozen=True, slots=True)
class NewActivity:
    """A CusActivity from a Save body, checked for shape but not yet against the database."""

    master_customer_id: str
    sub_customer_id: int
    activity_code: str
    activity_subcode: str | None
    activity_date: str
    activity_text: str | None
    oper: str


#: Everything Save checks, in one statement: each statement is a round trip through the GIL, which is
#: what limits throughput with many client threads.
_VALIDATION_SQL = """
SELECT
    EXISTS (SELECT 1 FROM CUSTOMER WHERE MASTER_CUSTOMER_ID = ?1 AND SUB_CUSTOMER_ID = ?2),
    c.CODE, c.ACTIVE_FLAG,
    (SELECT SUBCODE FROM APP_SUBCODE s
     WHERE s.SUBSYSTEM = 'CUS' AND s.TYPE = 'ACTIVITY' AND s.CODE = c.CODE AND s.SUBCODE = ?4),
    (SELECT ACTIVE_FLAG FROM APP_SUBCODE s
     WHERE s.SUBSYSTEM = 'CUS' AND s.TYPE = 'ACTIVITY' AND s.CODE = c.CODE AND s.SUBCODE = ?4)
FROM (SELECT 1) LEFT JOIN APP_CODE c ON c.SUBSYSTEM = 'CUS' AND c.TYPE = 'ACTIVITY' AND c.CODE = ?3
"""

_INSERT_SQL = (
    "INSERT INTO CUS_ACTIVITY (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID, SUBSYSTEM, ACTIVITY_CODE,"
    " ACTIVITY_SUBCODE, ACTIVITY_DATE, ACTIVITY_TEXT, ADDOPER, ADDDATE, MODOPER, MODDATE)"
    " VALUES (?, ?, 'CUS', ?, ?, ?, ?, ?, ?, ?, ?)"
)


def save_activity(
    db: Database,
    activity: NewActivity,
    known_issues: Sequence[str] = (),
    failing_email: Callable[[str], bool] | None = None,
) -> tuple[list[str], dict[str, object] | None]:
    """Validate the activity as Personify would and store it if nothing is wrong.

    ``known_issues`` are those found in the body already; with any, nothing is stored. Returns every
    validation issue and, when there are none, the stored CUS_ACTIVITY row keyed by column.
    ``failing_email`` marks emails whose constituents must be refused (fault injection).
    """
    reasons = list(known_issues)
    master, sub = activity.master_customer_id, activity.sub_customer_id
    code, subcode = activity.activity_code, activity.activity_subcode
    with db.connection() as conn:
        row = conn.execute(_VALIDATION_SQL, (master, sub, code, subcode or "")).fetchone()
        customer_exists, known_code, code_active, known_subcode, subcode_active = row
        # An empty id or code was reported as missing already; there is nothing more to say about it.
        if master and not customer_exists:
            reasons.append(f"Customer {master}-{sub} does not exist.")
        if code and known_code is None:
            reasons.append(f"Activity Code '{code}' is not a valid CUS ACTIVITY code.")
        elif code:
            code = str(known_code)
            if code_active != "Y":
                reasons.append(f"Activity Code '{code}' is inactive.")
            if subcode and known_subcode is None:
                reasons.append(f"Activity Subcode '{subcode}' is not valid for Activity Code '{code}'.")
            elif subcode:
                subcode = str(known_subcode)
                if subcode_active != "Y":
                    reasons.append(f"Activity Subcode '{subcode}' of Activity Code '{code}' is inactive.")
        if failing_email is not None and customer_exists:
            for (email,) in conn.execute(
                "SELECT FORMATTED_PHONE_ADDRESS FROM CUS_COMMUNICATION WHERE MASTER_CUSTOMER_ID = ?"
                " AND SUB_CUSTOMER_ID = ? AND COMM_TYPE_CODE = 'EMAIL'",
                (master, sub),
            ):
                if email is not None and failing_email(str(email)):
                    reasons.append(f"Email address {email} is rejected for this constituent (simulated).")
        if reasons:
            return reasons, None
        stamp = now_stored()
        values = (
            master,
            sub,
            code,
            subcode,
            activity.activity_date,
            activity.activity_text,
            activity.oper,
            stamp,
            activity.oper,
            stamp,
        )
        # One writer at a time: SQLite would make the others sleep in its busy handler instead.
        with db.write_lock:
            activity_id = conn.execute(_INSERT_SQL, values).lastrowid
    return [], {
        "ACTIVITY_ID": activity_id,
        "MASTER_CUSTOMER_ID": master,
        "SUB_CUSTOMER_ID": sub,
        "SUBSYSTEM": "CUS",
        "ACTIVITY_CODE": code,
        "ACTIVITY_SUBCODE": subcode,
        "ACTIVITY_DATE": activity.activity_date,
        "ACTIVITY_TEXT": activity.activity_text,
        "ADDOPER": activity.oper,
        "ADDDATE": stamp,
        "MODOPER": activity.oper,
        "MODDATE": stamp,
    }
