"""The demo: a fresh seeded queue, a Personify360 simulator that knows the same people, and settings for both.

Nothing here touches the user's real settings or database: everything lives in one demo folder.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from writeback_console.demo import realistic
from writeback_console.demo.people import person
from writeback_console.demo.seed import seed
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, build_activity
from writeback_console.settings import AppSettings, PasswordStore, save_settings
from writeback_console.sim.server import ROOT_PATH
from writeback_console.sim.store import Constituent, Database
from writeback_console.store import charts, listing
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.migrate import upgrade
from writeback_console.store.models import MailingRecipient, Writeback

log = logging.getLogger(__name__)

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
#: The stress profile: kinds and statuses balanced so that every status but Cancelled holds at least
#: 100,000 of 800,000 rows.
DEMO_KINDS = (
    (Kind.UNSUBSCRIBE, 20),
    (Kind.RESUBSCRIBE, 10),
    (Kind.INVALID_EMAIL, 15),
    (Kind.INTERESTS, 15),
    (Kind.MAILING_ACTIVITY, 40),
)
DEMO_AUTOMATIC = (
    (Status.SENT, 25),
    (Status.NEW, 25),
    (Status.ERROR, 22),
    (Status.DISCARDED, 3),
    (Status.PROCESSING, 25),
)
DEMO_MAILING = (
    (Status.SCHEDULED, 33),
    (Status.NO_REMOTE_RECIPIENTS, 33),
    (Status.SENT, 17),
    (Status.ERROR, 17),
    (Status.CANCELLED, 4),
)
DEFAULT_ROWS = 800_000
#: The demo's profiles: a queue at rest as a real association has it (the default), and an even spread
#: of every status over many rows.
PROFILES = ("realistic", "stress")
DEFAULT_ROWS_BY_PROFILE = {"realistic": realistic.DEFAULT_ROWS, "stress": DEFAULT_ROWS}
_NUMBER = re.compile(r"(\d+)@")
#: Sent writebacks whose activities the simulator already holds, so CRM360 lookups show history.
HISTORY_ROWS = 50_000


@dataclass(frozen=True)
class DemoFolder:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "writeback-demo.sqlite3"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def simulator_database(self) -> Path:
        return self.root / "personify360-simulator.sqlite3"

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @contextmanager
    def database_engine(self) -> Iterator[Engine]:
        engine = make_engine(self.db_url)
        try:
            yield engine
        finally:
            engine.dispose()

    def password_store(self) -> PasswordStore:
        return PasswordStore(fallback=self.credentials, use_keyring=False)


def prepare(
    root: Path,
    rows: int | None = None,
    *,
    profile: str = "realistic",
    say: Callable[[str], None] = print,
) -> DemoFolder:
    """Build the demo folder from scratch: queue database, simulator database.

    ``profile`` "realistic" is a queue at rest, as ninety days of a real association leave it (see
    ``realistic.py``); "stress" spreads ``rows`` evenly over every status. ``rows`` None is the
    profile's default (``DEFAULT_ROWS_BY_PROFILE``).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown demo profile {profile!r}; choose one of {', '.join(PROFILES)}")
    rows = DEFAULT_ROWS_BY_PROFILE[profile] if rows is None else rows
    folder = DemoFolder(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    engine = make_engine(folder.db_url)
    try:
        if profile == "realistic":
            _prepare_realistic(folder, engine, rows, say)
        else:
            upgrade(engine)
            _prepare_stress(folder, engine, rows, say)
        _roll_up_charts(engine)
    finally:
        engine.dispose()
    return folder


def _roll_up_charts(engine: Engine) -> None:
    """Count the history's past hours for the charts, as the dispatchers' runs would have, a week a call."""
    factory = make_session_factory(engine)
    now = utcnow()
    while True:
        with write_transaction(factory) as session:
            if charts.roll_up(session, now) == 0:
                return


def _prepare_realistic(folder: DemoFolder, engine: Engine, rows: int, say: Callable[[str], None]) -> None:
    say(f"building a queue at rest: {rows:,} writebacks over {realistic.DAYS} days, and Personify360 …")
    # The schema is made while the demo is drawn (in a process of its own where there is fork).
    summary, people, history = realistic.seed_realistic(
        engine, folder.simulator_database, rows, schema=lambda: upgrade(engine)
    )
    say(
        f"  {summary.writebacks:,} writebacks, {summary.mailings:,} mailings to {summary.recipients:,} "
        f"recipients; {people:,} constituents, {history:,} activities in {summary.seconds:.1f} s"
    )


def _prepare_stress(folder: DemoFolder, engine: Engine, rows: int, say: Callable[[str], None]) -> None:
    say(f"seeding {rows:,} writebacks …")
    summary = seed(
        engine,
        rows,
        kind_weights=DEMO_KINDS,
        automatic_status_weights=DEMO_AUTOMATIC,
        mailing_status_weights=DEMO_MAILING,
    )
    say(f"  {summary.writebacks:,} writebacks, {summary.mailings:,} mailings in {summary.seconds:.0f} s")
    say("giving the Personify360 simulator the same constituents and their recent activities …")
    database = Database(folder.simulator_database)
    try:
        people = database.add_constituents(_constituents(engine))
        history = _history(engine, database)
    finally:
        database.close()
    say(f"  {people:,} constituents, {history:,} activities")


def _constituents(engine: Engine) -> Iterator[Constituent]:
    """Everyone the queue refers to, with the email the seed gave them; one in 40 is left out, so that
    some writebacks fail as they would for a person deleted from Personify360."""
    numbers: set[int] = set()
    with engine.connect() as conn:
        for master in conn.scalars(
            select(Writeback.master_customer_id).where(Writeback.master_customer_id.is_not(None)).distinct()
        ):
            numbers.add(int(master or 0))
        # Rows without a constituent id are found by email; the seed's emails end in the person's number.
        for email in conn.scalars(select(Writeback.email).where(Writeback.email.is_not(None)).distinct()):
            found = _NUMBER.search(email or "")
            if found:
                numbers.add(int(found.group(1)))
        for master in conn.scalars(
            select(MailingRecipient.master_customer_id)
            .where(MailingRecipient.master_customer_id.is_not(None))
            .distinct()
        ):
            numbers.add(int(master or 0))
    for n in sorted(numbers):
        if n % 40 == 17:
            continue
        first, last, email = person(n)
        yield Constituent.from_dict(
            {
                "master_customer_id": f"{n:012d}",
                "sub_customer_id": 0,
                "email": email,
                "first_name": first,
                "last_name": last,
            }
        )


def _history(engine: Engine, database: Database) -> int:
    """Activities for the most recent Sent writebacks, as if the dispatcher had written them."""
    mapping = ActivityMapping()
    flt = listing.WritebackFilter(
        statuses=frozenset({Status.SENT}),
        kinds=frozenset(k for k in Kind if k is not Kind.MAILING_ACTIVITY),
    )
    rows = []
    with make_session_factory(engine)() as session:
        for r in listing.iter_rows(session, flt, limit=HISTORY_ROWS, page_size=5000):
            if r.master_customer_id is None or r.email is None:
                continue
            source = ActivitySource(
                kind=r.kind,
                ref=r.ref,
                account=r.account,
                email=r.email,
                occurred_at=r.occurred_at,
                master_customer_id=r.master_customer_id,
                sub_customer_id=r.sub_customer_id or 0,
                reason=r.payload.get("reason"),
                interest=r.payload.get("interest"),
                opted_in=r.payload.get("opted_in"),
            )
            fields = build_activity(source, mapping)
            rows.append(
                (
                    fields["MasterCustomerId"],
                    fields["SubCustomerId"],
                    fields["ActivityCode"],
                    fields.get("ActivitySubcode"),
                    fields["ActivityDate"].strftime("%Y-%m-%dT%H:%M:%S.000"),
                    fields["ActivityText"],
                    "INFORMZ",
                    (r.sent_at or r.occurred_at).strftime("%Y-%m-%dT%H:%M:%S.000"),
                )
            )
    with database.connection() as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO CUS_ACTIVITY (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID, ACTIVITY_CODE, ACTIVITY_SUBCODE, "
            "ACTIVITY_DATE, ACTIVITY_TEXT, ADDOPER, ADDDATE) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
    return len(rows)


def apart_from_the_terminal(platform: str | None = None) -> dict[str, Any]:
    """How to start a helper process so that Ctrl+C in the terminal reaches only the console, which then
    ends the helper itself, after its own dispatcher has stopped talking to it: a session of its own
    on POSIX, a process group of its own on Windows."""
    if (platform or sys.platform).startswith("win"):
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


def start_simulator(
    folder: DemoFolder, *, wait: bool = True, page_size: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """The simulator in its own process (so it never competes with the window for Python's GIL).

    With ``wait`` False it is given a free port and left to start while the console opens (it answers
    well before the first dispatcher run); a failure to start is logged, and its log is in the folder.
    ``page_size`` makes it page its answers as some sites do (off by default, as at most sites).
    """
    port = _free_port() if not wait else 0
    paging = ["--page-size", str(page_size)] if page_size is not None else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "writeback_console.sim",
            "--db",
            str(folder.simulator_database),
            "--users",
            f"{DEMO_USER}:{DEMO_PASSWORD}",
            "--latency-ms",
            "15",
            "--port",
            str(port),
            "--parent-pid",
            str(os.getpid()),
            *paging,
        ],
        stdout=subprocess.PIPE,
        # A file, not a pipe: nobody reads the simulator's log while it runs, and a full pipe would stall it.
        stderr=(folder.root / "simulator.log").open("w"),
        text=True,
        **apart_from_the_terminal(),
    )
    if not wait:
        threading.Thread(target=_confirm_serving, args=(proc, folder), daemon=True).start()
        return proc, f"http://127.0.0.1:{port}{ROOT_PATH}"
    line = _serving_line(proc)
    if "serving" not in line:
        proc.kill()
        error = (folder.root / "simulator.log").read_text()
        raise RuntimeError(f"the Personify360 simulator did not start: {line}{error}")
    return proc, line.split("serving ", 1)[1].strip()


def _serving_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline()


def _confirm_serving(proc: subprocess.Popen[str], folder: DemoFolder) -> None:
    if "serving" not in _serving_line(proc):
        log.error("the Personify360 simulator did not start; see %s", folder.root / "simulator.log")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def configure(folder: DemoFolder, service_root_url: str) -> AppSettings:
    """Settings pointing at the demo's simulator, kept in the demo folder with the demo password."""
    settings = AppSettings(service_root_url=service_root_url, user=DEMO_USER, interval_seconds=600)
    save_settings(settings, folder.settings)
    folder.password_store().set(service_root_url, DEMO_USER, DEMO_PASSWORD)
    return settings
