"""The chaos simulation: for a seed, a random schedule of dispatchers, faults and operators; then the checks.

A schedule runs against the real queue (a SQLite file or a PostgreSQL database), the real Personify360
simulator over real HTTPS, real dispatcher processes (killed with SIGKILL, stopped with SIGTERM, frozen
with SIGSTOP as a sleeping laptop is) and operators acting at the same moment. When the schedule is over
the faults stop, a clean dispatcher runs until nothing is left to do, and :func:`check` holds the queue
and Personify360 to the promise:

- **I1** every writeback, and every mailing–recipient pair, is in Personify360 at most once; a Sent one
  exactly once; no writeback the queue was given disappears (unless retention pruned it, which left its
  line; pruned ones are held to the same counts).
- **I2** nothing is left New, Processing or due Scheduled; every row is Sent, No Remote Recipients,
  Cancelled, Discarded by a person (with its audit entry), or Error with its automatic attempts used up
  and a message; retention pruned only Sent and No Remote Recipients rows.
- **I3** attempts never exceed what the rules allow, an outage or a lone interruption uses none, an
  automatic retry comes no sooner than one dispatcher interval after the failure (Send now included),
  and the history holds every Save that reached Personify360.
- **I4** no audit or timeline entry belongs to another row (an entry whose row retention pruned names
  that row's pruned line, with its reference), and every row's event log runs without a gap from its
  first status to its status now.
- **I5** no dispatcher or command ends in a traceback; a dispatcher stops within seconds when asked.

Everything random comes from ``random.Random(seed)``, so a failing seed replays the same schedule
(process timing aside) with ``make chaos SEED=…``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.roles import RoleQueue, queue_with_roles
from writeback_console import operations
from writeback_console.domain import DEFAULT_MAX_ATTEMPTS, Kind, Status, new_ref
from writeback_console.intake import InputError, validate_writeback
from writeback_console.messages import is_database_refusal
from writeback_console.sim.server import Faults, SaveEvent, TlsFiles
from writeback_console.sim.simulator import Simulator
from writeback_console.store import lifecycle, listing, operator_actions, switches
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.models import AuditEvent, AuditEventRow, Mailing, MailingRecipient, Writeback
from writeback_console.store.rows import QueueError, W, WritebackRow

Factory = sessionmaker[Session]

USER, PASSWORD = "chaos", "s3cret-chaos-pw"
ACCOUNTS = ("Main", "Events")
PEOPLE = 48
#: Leases a dispatcher may be killed or frozen with: its rows come back within seconds.
SHORT_LEASES = (1, 2, 3, 5)
LONG_LEASE = 900
#: A dispatcher asked to stop must be gone within this many seconds.
STOP_WITHIN = 15.0
#: How closely two dispatchers' clocks agree. Each runs on the database's time, read once at the start of
#: a run and carried on by its own elapsed time, so two processes agree to within that read's round trip:
#: up to 0.2 s on a loaded two-core machine, where one dispatcher recorded a shared mailing's failure
#: and another claimed its retry.
CLOCK_AGREEMENT = timedelta(milliseconds=300)

#: No dispatcher cycle may take longer than this (a request has a total deadline well below it).
CYCLE_WITHIN = 40.0
#: Front-end answers that never reach the Personify360 application.
FRONT_END_FAULTS = frozenset({"503", "429", "502", "504", "html"})
#: Answers that say Personify360 as a whole is unavailable; they must never use an attempt.
OUTAGE_STATUSES = frozenset({503, 429})
#: Characters nobody expects in an email: DEL, C1 controls, a lone surrogate, a line separator.
NASTY = ("\x7f", "\x85", "\x9b", "\ud800", "\u2028", "\x00", "\x1b")
MARKER = re.compile(r"\[ref (WB-[0-9A-Z]+)\]\s*$", re.IGNORECASE)


def person(n: int) -> dict[str, Any]:
    return {
        "master_customer_id": f"{n + 5000:012d}",
        "sub_customer_id": 0,
        "email": f"p{n}@example.org",
        "first_name": "P",
        "last_name": str(n),
    }


# --- the schedule ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatcherSpec:
    lease: int
    concurrency: int
    batch: int
    operator: str = "INFORMZ"
    clock_skew: float = 0.0
    #: Recipients of a mailing claimed at a time (None: the setting's default).
    chunk: int | None = None

    def describe(self) -> str:
        skew = f" skew {self.clock_skew:+.0f}s" if self.clock_skew else ""
        sizes = f"concurrency {self.concurrency}, batch {self.batch}"
        if self.chunk is not None:
            sizes += f", chunks of {self.chunk}"
        return f"lease {self.lease}s, {sizes}{skew}, op {self.operator!r}"


@dataclass(frozen=True)
class MailingSpec:
    remote: int
    unknown: int
    #: Pairs of remote recipients that are the same Personify360 constituent under two addresses.
    shared: int
    account: str
    #: A big mailing (hundreds to a couple of thousand recipients), sent now, that the dispatchers
    #: share chunk by chunk.
    big: bool = False


@dataclass(frozen=True)
class Event:
    at: float
    action: str
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        return f"{self.at:6.2f}s {self.action} {extra}".rstrip()


@dataclass(frozen=True)
class Schedule:
    seed: int
    backend: str
    duration: float
    writebacks: int
    poison_rows: int
    mailings: tuple[MailingSpec, ...]
    auto_schedule: bool
    slots: tuple[DispatcherSpec, ...]
    latency_ms: float
    events: tuple[Event, ...]

    def describe(self) -> str:
        lines = [
            f"seed {self.seed} on {self.backend}: {self.duration:.1f}s, {self.writebacks} writebacks "
            f"(+{self.poison_rows} poison rows), mailings "
            + ", ".join(
                f"{m.remote}+{m.unknown} ({m.shared} shared{', big, sent now' if m.big else ''})"
                for m in self.mailings
            )
            + f", auto-schedule {'on' if self.auto_schedule else 'off'}, latency {self.latency_ms:.0f} ms",
        ]
        lines += [f"  slot {i}: {s.describe()}" for i, s in enumerate(self.slots)]
        lines += [f"  {e.describe()}" for e in self.events]
        return "\n".join(lines)

    @property
    def fault_kinds(self) -> Counter[str]:
        return Counter(
            e.args.get("profile", e.action)
            for e in self.events
            if e.action in ("faults", "db_lock", "db_drop", "kill", "pause", "stop")
        )


FAULT_PROFILES = (
    "mixed",
    "after_write",
    "tls",
    "storm503",
    "storm429",
    "gateway",
    "drip",
    "html",
    "validation",
    "unauthorized",
    "down",
    "crash",
)
OPERATOR_ACTIONS = ("enqueue", "import", "retry", "schedule", "reschedule", "cancel", "switch")
#: The chaos dispatchers' interval (their settings' interval_seconds): an automatic retry waits this long.
RETRY_INTERVAL = timedelta(seconds=1)


def generate(seed: int, backend: str, *, supports: frozenset[str] = frozenset()) -> Schedule:
    """The schedule of a seed: the same seed and backend give the same schedule."""
    rng = random.Random(f"{seed}:{backend}")
    duration = rng.uniform(8.0, 13.0)
    long_lease_slot = rng.random() < 0.45
    profiles = list(FAULT_PROFILES)
    if long_lease_slot:
        # A dispatcher that dies holding 900-second leases leaves its rows for 15 minutes, as it should;
        # the schedule does not kill it, and so does not let a row "crash every dispatcher" either.
        profiles.remove("crash")
    slots = []
    for n in range(rng.randint(1, 3)):
        lease = LONG_LEASE if (long_lease_slot and n == 0) else rng.choice(SHORT_LEASES)
        operator = "INFORMZ"
        if rng.random() < 0.08:
            operator = "Informz – sync"  # an en dash: not Latin-1, cannot go in an HTTP header
        # Skew only where machines can differ: a SQLite file is shared by processes of one machine only.
        skew = rng.choice((0.0, 0.0, -90.0, 45.0, 300.0))
        if "clock_skew" not in supports or backend != "postgresql":
            skew = 0.0
        slots.append(DispatcherSpec(lease, rng.randint(1, 8), rng.choice((1, 3, 10, 25, 50)), operator, skew))
    mailings = tuple(
        MailingSpec(
            remote=rng.randint(8, 45),
            unknown=rng.randint(0, 6),
            shared=rng.randint(0, 4),
            account=rng.choice(ACCOUNTS),
        )
        for _ in range(rng.randint(1, 3))
    )
    events: list[Event] = []
    # Fault windows, one after another, with quiet gaps between them.
    t = rng.uniform(0.3, 1.5)
    while t < duration - 1.0:
        profile = rng.choice(profiles)
        length = rng.uniform(1.0, 4.0)
        args: dict[str, Any] = {"profile": profile, "length": round(length, 2)}
        if profile in ("storm503", "storm429"):
            args["retry_after"] = rng.choice((None, 1, 2))
        if profile == "mixed":
            args["rate"] = round(rng.uniform(0.15, 0.5), 2)
        events.append(Event(round(t, 2), "faults", args))
        t += length + rng.uniform(0.3, 2.0)
    for _ in range(rng.randint(1, 4)):
        events.append(
            Event(round(rng.uniform(0.5, duration - 0.5), 2), rng.choice(("kill", "kill", "stop", "pause")))
        )
    for _ in range(rng.randint(0, 2)):
        events.append(
            Event(
                round(rng.uniform(0.5, duration - 1.0), 2),
                "db_lock",
                {"length": round(rng.uniform(0.5, 3.0), 2)},
            )
        )
    if backend == "postgresql":
        for _ in range(rng.randint(0, 2)):
            events.append(Event(round(rng.uniform(0.5, duration - 0.5), 2), "db_drop"))
    for _ in range(rng.randint(4, 12)):
        action = rng.choice(OPERATOR_ACTIONS)
        args = {}
        if action in ("enqueue", "import"):
            args = {"count": rng.randint(1, 15), "nasty": rng.random() < 0.3}
        if action == "switch":
            args = {"account": rng.choice((None, *ACCOUNTS)), "length": round(rng.uniform(0.5, 3.0), 2)}
        events.append(Event(round(rng.uniform(0.2, duration - 0.3), 2), action, args))
    # Send now (a cycle for one mailing's activity alone, as the console's Send now), drawn apart so the
    # rest of a seed's schedule stays what it was before this action existed.
    extra = random.Random(f"{seed}:{backend}:send-now")
    for _ in range(extra.randint(0, 3)):
        events.append(Event(round(extra.uniform(0.2, duration - 0.3), 2), "send_now"))
    # Discard (and its undoing by a manual retry), drawn apart for the same reason.
    discards = random.Random(f"{seed}:{backend}:discard")
    for _ in range(discards.randint(0, 3)):
        at = round(discards.uniform(0.2, duration - 0.3), 2)
        events.append(Event(at, "discard", {"undo": discards.random() < 0.5}))
    # Prune (retention, in small batches while dispatchers work), drawn apart for the same reason.
    prunes = random.Random(f"{seed}:{backend}:prune")
    for _ in range(prunes.randint(0, 2)):
        at = round(prunes.uniform(1.0, duration - 0.3), 2)
        events.append(Event(at, "prune", {"batch": prunes.choice((1, 3, 20))}))
    # A big mailing shared by several dispatchers in small chunks, drawn apart for the same reason.
    big = random.Random(f"{seed}:{backend}:big-mailing")
    if big.random() < 0.6:
        mailings += (
            MailingSpec(
                remote=big.randint(200, 1000),
                unknown=big.randint(0, 20),
                shared=0,
                account="Events",
                big=True,
            ),
        )
        while len(slots) < 2:
            slots.append(
                DispatcherSpec(big.choice(SHORT_LEASES), big.randint(2, 8), big.choice((10, 25, 50)))
            )
        slots = [dataclasses.replace(s, chunk=big.choice((10, 25, 50, 100))) for s in slots]
    events.sort(key=lambda e: (e.at, e.action))
    return Schedule(
        seed=seed,
        backend=backend,
        duration=round(duration, 2),
        writebacks=rng.randint(30, 110),
        poison_rows=rng.choice((0, 0, 1, 2)),
        mailings=mailings,
        auto_schedule=rng.random() < 0.6,
        slots=tuple(slots),
        latency_ms=rng.choice((1.0, 3.0, 8.0)),
        events=tuple(events),
    )


# --- what was seen ---------------------------------------------------------------------------------


@dataclass
class Violation:
    invariant: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


@dataclass
class ProcessRecord:
    slot: int
    spec: DispatcherSpec
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    started: float
    killed: bool = False
    terminated_at: float | None = None
    paused_until: float | None = None
    ended: float | None = None
    returncode: int | None = None

    @property
    def running(self) -> bool:
        return self.returncode is None and self.popen.poll() is None


@dataclass
class Observed:
    saves: list[SaveEvent] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    operator_log: list[str] = field(default_factory=list)
    created_refs: set[str] = field(default_factory=set)
    faults_injected: Counter[str] = field(default_factory=Counter)


# --- running a schedule ----------------------------------------------------------------------------


def _python_env(base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    code_root = os.environ.get("CHAOS_CODE_ROOT")
    if code_root:
        # Run the dispatchers (and commands) from another checkout, e.g. an older commit.
        env["PYTHONPATH"] = code_root + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Run:
    """One schedule being played against a database and a simulator."""

    def __init__(
        self, schedule: Schedule, db_url: str, tls: TlsFiles, workdir: Path, roles: RoleQueue | None = None
    ) -> None:
        self.s = schedule
        self.db_url = db_url
        self.tls = tls
        self.workdir = workdir
        self.rng = random.Random(f"run:{schedule.seed}:{schedule.backend}")
        self.seen = Observed()
        # The owner seeds the queue and checks it; on PostgreSQL everyone else works under their role
        # (sql/postgresql/roles.sql), so a grant an action needs and lacks is a violation here.
        self.engine: Engine = make_engine(db_url)
        self.factory: Factory = make_session_factory(self.engine)
        self.staff: Factory = roles.as_("staff") if roles else self.factory
        self.advisor: Factory = roles.as_("advisor") if roles else self.factory
        #: Who runs dispatchers, who runs a command an advisor would, who sends a mailing now.
        self.urls = {
            "dispatcher": roles.urls["dispatcher"] if roles else db_url,
            "advisor": roles.urls["advisor"] if roles else db_url,
            "send-now": roles.urls["sender"] if roles else db_url,
        }
        self.sim = Simulator(
            users={USER: PASSWORD},
            constituents=[person(n) for n in range(PEOPLE)] + self._recipient_people(),
            faults=Faults(latency_ms=schedule.latency_ms, hold_seconds=1.6, seed=schedule.seed),
            tls=tls,
        )
        self.sim.on_save = self._on_save
        self.lock = threading.Lock()
        self.operators = ThreadPoolExecutor(1, thread_name_prefix="chaos-operator")
        self.pending_ops: list[Future[None]] = []
        self.db_faults = ThreadPoolExecutor(2, thread_name_prefix="chaos-db-fault")
        self.crash_ref: str | None = None
        self.crash_active = False
        self.slots_wanted = [True] * len(schedule.slots)
        self.restart_at: dict[int, float] = {}
        self.mailing_ids: list[int] = []
        self.t0 = 0.0

    # -- set-up -------------------------------------------------------------------------------

    @staticmethod
    def _recipient_master(m: int, k: int, spec: MailingSpec) -> str:
        return f"{900000 + 10000 * m + k:012d}" if spec.big else f"{7000 + 100 * m + k:012d}"

    def _recipient_people(self) -> list[dict[str, Any]]:
        people = []
        for m, spec in enumerate(self.s.mailings):
            for k in range(spec.remote):
                people.append(
                    {
                        "master_customer_id": self._recipient_master(m, k, spec),
                        "sub_customer_id": 0,
                        "email": f"r{m}-{k}@example.org",
                        "first_name": "R",
                        "last_name": f"{m}-{k}",
                    }
                )
        return people

    def _write_settings(self, folder: Path, spec: DispatcherSpec) -> None:
        from writeback_console.settings import AppSettings

        known = {f.name for f in dataclasses.fields(AppSettings)}
        values: dict[str, Any] = {
            "connect_timeout": 1.0,
            "read_timeout": 1.0,
            "operator": spec.operator,
            "interval_seconds": 1,
        }
        # Runs a second apart: a write that may have arrived is looked for two seconds later, which is
        # longer than a late write here takes to land.
        optional: dict[str, Any] = {"request_deadline": 4.0, "settle_seconds": 2}
        if spec.chunk is not None:
            optional["chunk_size"] = spec.chunk
        values.update({k: v for k, v in optional.items() if k in known})
        target = folder / "writeback-console"
        target.mkdir(parents=True, exist_ok=True)
        (target / "settings.json").write_text(
            json.dumps({k: v for k, v in values.items() if k in known}), encoding="utf-8"
        )

    def _dispatcher_db_url(self, as_: str = "dispatcher") -> str:
        """On SQLite a writer waits under a second for a lock, so a long lock fault is a refusal."""
        if self.s.backend == "sqlite" and "busy_timeout" in supported_features():
            return f"{self.db_url}?busy_timeout_ms=800"
        return self.urls[as_]

    def env(self, name: str, spec: DispatcherSpec, *, as_: str = "dispatcher") -> dict[str, str]:
        config = self.workdir / f"config-{name}"
        self._write_settings(config, spec)
        env = {
            **os.environ,
            "WRITEBACK_DB_URL": self._dispatcher_db_url(as_),
            "WRITEBACK_PERSONIFY_URL": self.sim.url,
            "WRITEBACK_PERSONIFY_USER": USER,
            "WRITEBACK_PERSONIFY_PASSWORD": PASSWORD,
            "WRITEBACK_NO_KEYRING": "1",
            "REQUESTS_CA_BUNDLE": str(self.tls.cert_file),
            "XDG_CONFIG_HOME": str(config),
            "XDG_DATA_HOME": str(self.workdir / f"data-{name}"),
            "PYTHONUNBUFFERED": "1",
        }
        if spec.clock_skew:
            env["WRITEBACK_CLOCK_SKEW_SECONDS"] = str(spec.clock_skew)
        return _python_env(env)

    def seed_queue(self) -> None:
        rng = self.rng
        now = datetime.now(UTC)
        with write_transaction(self.factory) as session:
            if self.s.auto_schedule:
                switches.set_setting(
                    session, switches.AUTO_MAILING_ACTIVITY_DAYS, 0, account="Main", actor="chaos"
                )
        # Mailings created after the setting, so automatic scheduling takes them.
        with write_transaction(self.factory) as session:
            for m, spec in enumerate(self.s.mailings):
                mid = session.execute(
                    insert(Mailing)
                    .values(
                        account="Main" if self.s.auto_schedule and m == 0 else spec.account,
                        name=f"Chaos mailing {m}",
                        sent_at=now - timedelta(minutes=5),
                        created_at=datetime.now(UTC) + timedelta(seconds=1),
                    )
                    .returning(Mailing.id)
                ).scalar_one()
                self.mailing_ids.append(int(mid))
                rows = []
                for k in range(spec.remote):
                    master = self._recipient_master(m, k, spec)
                    if k < 2 * spec.shared and k % 2 == 1:
                        master = f"{7000 + 100 * m + k - 1:012d}"  # the same person under a second address
                    rows.append(self._recipient(mid, f"r{m}-{k}@example.org", master, rng, now))
                for k in range(spec.unknown):
                    rows.append(self._recipient(mid, f"nobody{m}-{k}@example.org", None, rng, now))
                session.execute(insert(MailingRecipient), rows)
        items = [self._writeback_raw(rng) for _ in range(self.s.writebacks)]
        with write_transaction(self.factory) as session:
            for raw in items:
                wb = validate_writeback(raw)
                row = lifecycle.enqueue(session, wb)
                self.seen.created_refs.add(row.ref)
            if not self.s.auto_schedule and self.mailing_ids:
                row = operator_actions.schedule_mailing_activity(
                    session, self.mailing_ids[0], at=None, actor="chaos"
                )
                self.seen.created_refs.add(row.ref)
            for mid, spec in zip(self.mailing_ids, self.s.mailings, strict=True):
                if spec.big and mid != self.mailing_ids[0]:
                    row = operator_actions.schedule_mailing_activity(session, mid, at=None, actor="chaos")
                    self.seen.created_refs.add(row.ref)
        if self.s.poison_rows:
            self._insert_poison_rows(self.s.poison_rows)
        if any(e.args.get("profile") == "crash" for e in self.s.events):
            # A writeback whose Save never succeeds (no such constituent) and whose sending kills every
            # dispatcher that tries: it must end as an Error waiting for a person, not loop for ever.
            raw = {"kind": "resubscribe", "email": "crash@example.org", "ref": new_ref()}
            raw.update(master_customer_id="000000099999", sub_customer_id=0)
            with write_transaction(self.factory) as session:
                self.crash_ref = lifecycle.enqueue(session, validate_writeback(raw)).ref
            self.seen.created_refs.add(self.crash_ref)

    @staticmethod
    def _recipient(
        mid: int, email: str, master: str | None, rng: random.Random, now: datetime
    ) -> dict[str, Any]:
        opened = now - timedelta(minutes=2) if rng.random() < 0.5 else None
        return {
            "mailing_id": mid,
            "email": email,
            "master_customer_id": master,
            "sub_customer_id": 0 if master else None,
            "sent_at": now - timedelta(minutes=5),
            "opened_at": opened,
            "clicks": [{"url": "https://example.org/a", "at": now.isoformat()}]
            if opened and rng.random() < 0.5
            else [],
            "blocked": False,
        }

    def _writeback_raw(self, rng: random.Random, nasty: bool = False) -> dict[str, Any]:
        n = rng.randrange(PEOPLE + 6)  # a few addresses nobody has in Personify360
        email = f"p{n}@example.org" if n < PEOPLE else f"stranger{n}@example.org"
        if nasty:
            bad = rng.choice(NASTY)
            email = email.replace("@", bad + "@", 1) if rng.random() < 0.5 else email[:2] + bad + email[2:]
        kind = rng.choice((Kind.UNSUBSCRIBE, Kind.RESUBSCRIBE, Kind.INVALID_EMAIL, Kind.INTERESTS))
        raw: dict[str, Any] = {
            "kind": kind.value,
            "email": email,
            "account": rng.choice(ACCOUNTS),
            "ref": new_ref(),
        }
        if kind is Kind.INTERESTS:
            raw.update(interest="Advocacy", opted_in=rng.random() < 0.5)
        elif kind is Kind.UNSUBSCRIBE:
            raw["reason"] = "Too many emails"
        if n < PEOPLE and rng.random() < 0.4:
            raw.update(master_customer_id=f"{n + 5000:012d}", sub_customer_id=0)
        return raw

    def _insert_poison_rows(self, count: int) -> None:
        """Rows with bytes nobody expected that got in before intake refused them (older versions)."""
        from writeback_console.store.lifecycle import _values  # the enqueue row shape, bypassing intake

        with write_transaction(self.factory) as session:
            for k in range(count):
                good = validate_writeback(
                    {"kind": "unsubscribe", "email": f"p{k}@example.org", "ref": new_ref(), "account": "Main"}
                )
                wb = dataclasses.replace(good, email=f"poi\x7fson{k}\u0085@example.org")
                session.execute(
                    insert(Writeback).values(_values(wb, good.ref or new_ref(), datetime.now(UTC)))
                )
                self.seen.created_refs.add(good.ref or "")

    # -- dispatchers --------------------------------------------------------------------------

    def start_dispatcher(self, slot: int) -> None:
        spec = self.s.slots[slot]
        n = len(self.seen.processes)
        out, err = self.workdir / f"d{n}-slot{slot}.out", self.workdir / f"d{n}-slot{slot}.err"
        args = [
            sys.executable,
            "-m",
            "writeback_console.cli",
            "dispatch",
            "--forever",
            "--interval",
            "1",
            "--lease-seconds",
            str(spec.lease),
            "--concurrency",
            str(spec.concurrency),
            "--batch-size",
            str(spec.batch),
        ]
        with out.open("wb") as o, err.open("wb") as e:
            popen = subprocess.Popen(args, env=self.env(f"slot{slot}", spec), stdout=o, stderr=e)
        with self.lock:
            self.seen.processes.append(ProcessRecord(slot, spec, popen, out, err, time.monotonic()))

    def running(self, *, killable: bool = False) -> list[ProcessRecord]:
        with self.lock:
            procs = [p for p in self.seen.processes if p.running and p.terminated_at is None]
        if killable:
            procs = [p for p in procs if p.spec.lease in SHORT_LEASES]
        return procs

    def kill(self, proc: ProcessRecord) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.popen.pid, signal.SIGKILL)
        proc.killed = True
        self.seen.faults_injected["kill -9"] += 1

    def _on_save(self, event: SaveEvent) -> None:
        with self.lock:
            self.seen.saves.append(event)
        if self.crash_active and self.crash_ref and event.text and f"[ref {self.crash_ref}]" in event.text:
            # This writeback crashes every dispatcher that sends it.
            for proc in self.running(killable=True):
                self.kill(proc)
            self.seen.faults_injected["crash row"] += 1

    def supervise(self, now: float) -> None:
        """Record ended processes; restart the slots that should be running."""
        with self.lock:
            procs = list(self.seen.processes)
        for proc in procs:
            if proc.returncode is None and proc.popen.poll() is not None:
                proc.returncode = proc.popen.returncode
                proc.ended = now
                if proc.terminated_at is None and not proc.killed:
                    # Ended by itself: a refusal with a clear message is fine, a crash is not.
                    self.restart_at.setdefault(proc.slot, now + 1.0)
            if proc.paused_until is not None and now >= proc.paused_until:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.popen.pid, signal.SIGCONT)
                proc.paused_until = None
        for slot, wanted in enumerate(self.slots_wanted):
            live = [p for p in procs if p.slot == slot and p.returncode is None and p.terminated_at is None]
            if wanted and not live:
                due = self.restart_at.setdefault(slot, now + self.rng.uniform(0.2, 1.2))
                if now >= due:
                    del self.restart_at[slot]
                    self.start_dispatcher(slot)

    # -- faults -------------------------------------------------------------------------------

    def apply_faults(self, args: dict[str, Any]) -> None:
        profile = args["profile"]
        f = self.sim.faults
        self.seen.faults_injected[profile] += 1
        if profile == "mixed":
            f.update(fail_rate=args["rate"], fail_kinds=["500", "timeout", "drop", "malformed", "validation"])
        elif profile == "after_write":
            kinds = ["timeout", "drop"]
            if "late_write" in supported_features():
                kinds.append("late_write")  # stored after the client gave up
            f.update(fail_rate=0.35, fail_kinds=kinds, after_write_share=1.0)
        elif profile == "tls":
            # Sometimes a burst that looks like Personify360 being unreachable, sometimes a few odd ones.
            rate = self.rng.choice((0.15, 0.3, 0.5))
            f.update(fail_rate=rate, fail_kinds=["tls_reset"], after_write_share=0.7)
        elif profile == "storm503":
            f.update(fail_rate=1.0, fail_kinds=["503"], retry_after_seconds=args.get("retry_after"))
        elif profile == "storm429":
            f.update(fail_rate=1.0, fail_kinds=["429"], retry_after_seconds=args.get("retry_after"))
        elif profile == "gateway":
            f.update(fail_rate=0.8, fail_kinds=["502", "504"])
        elif profile == "drip":
            f.update(fail_rate=0.15, fail_kinds=["drip"], drip_interval=0.3)
        elif profile == "html":
            f.update(fail_rate=0.6, fail_kinds=["html"])
        elif profile == "validation":
            f.update(fail_rate=0.3, fail_kinds=["validation"])
        elif profile == "unauthorized":
            f.update(unauthorized=True)
        elif profile == "down":
            self.sim.stop_listening()
        elif profile == "crash":
            self.crash_active = True

    def clear_faults(self) -> None:
        self.sim.faults.update(
            fail_rate=0.0, unauthorized=False, after_write_share=0.5, retry_after_seconds=30.0
        )
        with contextlib.suppress(Exception):
            self.sim.start_listening()
        self.crash_active = False

    def _hold_lock(self, seconds: float) -> None:
        try:
            if self.s.backend == "sqlite":
                path = self.db_url.removeprefix("sqlite:///").split("?")[0]
                conn = sqlite3.connect(path, timeout=30, isolation_level=None)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    time.sleep(seconds)
                    conn.execute("ROLLBACK")
                finally:
                    conn.close()
            else:
                with self.engine.begin() as conn:
                    conn.execute(text("LOCK TABLE writeback IN SHARE MODE"))
                    time.sleep(seconds)
        except Exception as exc:  # the fault itself failing is not the system under test
            self.seen.operator_log.append(f"db lock fault failed: {exc!r}")

    def _drop_connections(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                conn.commit()
        except Exception as exc:
            self.seen.operator_log.append(f"db drop fault failed: {exc!r}")

    # -- operators ----------------------------------------------------------------------------

    def operate(self, action: str, args: dict[str, Any]) -> None:
        self.pending_ops.append(self.operators.submit(self._operate, action, args))

    def _operate(self, action: str, args: dict[str, Any]) -> None:
        try:
            getattr(self, f"_op_{action}")(**args)
        except QueueError as exc:
            self.seen.operator_log.append(f"{action}: refused: {exc}")
        except Exception as exc:
            name = type(exc).__name__
            if is_database_refusal(exc):
                # The role's grants lack something the action needs: a person could not do it either.
                self.seen.violations.append(
                    Violation(
                        "I5", f"operator action {action} refused by its role: {str(exc).splitlines()[0]}"
                    )
                )
            elif name in ("OperationalError", "DBAPIError", "InterfaceError", "PendingRollbackError"):
                self.seen.operator_log.append(f"{action}: database unavailable: {str(exc).splitlines()[0]}")
            else:
                self.seen.violations.append(Violation("I5", f"operator action {action} crashed: {exc!r}"))

    def _op_enqueue(self, count: int, nasty: bool) -> None:
        for k in range(count):
            raw = self._writeback_raw(self.rng, nasty=nasty and k == 0)
            try:
                wb = validate_writeback(raw)
            except InputError as exc:
                self.seen.operator_log.append(f"enqueue refused: {exc}")
                continue
            self.seen.created_refs.add(operations.enqueue(self.advisor, wb, actor="chaos-advisor").ref)

    def _op_send_now(self) -> None:
        # The Mailings page's Send now from another machine: the CLI's one-off cycle for that row alone,
        # alongside the running dispatchers.
        if not self.mailing_ids:
            return
        mid = self.rng.choice(self.mailing_ids)
        env = self.env("send-now", DispatcherSpec(30, 2, 10), as_="send-now")
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "writeback_console.cli", "send-now", str(mid), "--now"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        took = time.monotonic() - started
        if took > 60:
            self.seen.violations.append(
                Violation("I5", f"send-now took {took:.0f} s: {(done.stdout + done.stderr).strip()[-1500:]}")
            )
        if "Traceback" in done.stderr:
            self.seen.violations.append(Violation("I5", f"send-now crashed:\n{done.stderr[-2000:]}"))
        self.seen.operator_log.append(
            f"send-now {mid}: exit {done.returncode} {(done.stdout + done.stderr).strip()[:200]}"
        )

    def _op_discard(self, undo: bool) -> None:
        # As an advisor does from the list: Error rows, some with retries left, discarded with a reason
        # while dispatchers may be claiming them; then perhaps some discarded rows retried (undone).
        with self.factory() as session:
            flt = listing.WritebackFilter(statuses=frozenset({Status.ERROR}))
            ids = [r.id for r in listing.iter_rows(session, flt, limit=10)]
        if ids:
            done = operations.discard(
                self.advisor, ids, actor="chaos-advisor", reason="chaos: stop retrying", skip_ineligible=True
            )
            self.seen.operator_log.append(f"discard: {done}")
        if undo:
            with self.factory() as session:
                flt = listing.WritebackFilter(statuses=frozenset({Status.DISCARDED}))
                back = [r.id for r in listing.iter_rows(session, flt, limit=5)]
            if back:
                result = operations.retry(self.advisor, back, actor="chaos-advisor", skip_ineligible=True)
                self.seen.operator_log.append(f"undiscard: {len(result.retried)} granted")

    def _op_prune(self, batch: int) -> None:
        # An advisor pruning while dispatchers work: "older than 7 days" as seen a week from now, so
        # what finished more than a second ago goes, in small batches.
        soon = datetime.now(UTC) + timedelta(days=7) - timedelta(seconds=1)
        done = operations.prune(self.advisor, 7, actor="chaos-advisor", now=soon, batch_size=batch)
        self.seen.operator_log.append(f"prune: {done.deleted} in {done.batches} batches")
        self.seen.faults_injected["rows pruned"] += done.total

    def _op_import(self, count: int, nasty: bool) -> None:
        raws = [self._writeback_raw(self.rng, nasty=nasty and k == count // 2) for k in range(count)]
        path = self.workdir / f"import-{time.monotonic_ns()}.jsonl"
        with path.open("w", encoding="utf-8", errors="surrogatepass") as f:
            for raw in raws:
                f.write(json.dumps(raw) + "\n")
        env = self.env("operator", DispatcherSpec(30, 1, 1), as_="advisor")
        done = subprocess.run(
            [sys.executable, "-m", "writeback_console.cli", "import", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if "Traceback" in done.stderr:
            self.seen.violations.append(Violation("I5", f"import crashed:\n{done.stderr[-2000:]}"))
        elif done.returncode == 0:
            self.seen.created_refs.update(r["ref"] for r in raws)
        self.seen.operator_log.append(
            f"import of {count}: exit {done.returncode} {done.stderr.strip()[:200]}"
        )

    def _op_retry(self) -> None:
        # As the Retry dialog does: the rows are read for the preview, then retried, skipping any that a
        # dispatcher or another person changed in between.
        with self.factory() as session:
            flt = listing.WritebackFilter(retry_available=True)
            ids = [r.id for r in listing.iter_rows(session, flt, limit=20)]
        if ids:
            result = operations.retry(self.advisor, ids, actor="chaos-advisor", skip_ineligible=True)
            self.seen.operator_log.append(f"retry: {len(result.retried)} granted")

    def _op_schedule(self) -> None:
        mid = self.rng.choice(self.mailing_ids)
        at = (
            None
            if self.rng.random() < 0.5
            else datetime.now(UTC) + timedelta(seconds=self.rng.uniform(0.5, 3))
        )
        done = operations.schedule_mailing_activity(self.staff, mid, at=at, actor="chaos-staff")
        self.seen.created_refs.add(done.row.ref)

    def _mailing_rows(self, statuses: tuple[Status, ...]) -> list[WritebackRow]:
        with self.factory() as session:
            flt = listing.WritebackFilter(
                statuses=frozenset(statuses), kinds=frozenset({Kind.MAILING_ACTIVITY})
            )
            return list(listing.iter_rows(session, flt, limit=50))

    def _op_reschedule(self) -> None:
        rows = self._mailing_rows((Status.SCHEDULED, Status.NEW))
        if rows:
            at = (
                None
                if self.rng.random() < 0.3
                else datetime.now(UTC) + timedelta(seconds=self.rng.uniform(0.3, 3))
            )
            operations.reschedule(self.staff, self.rng.choice(rows).id, at=at, actor="chaos-staff")

    def _op_cancel(self) -> None:
        rows = self._mailing_rows((Status.SCHEDULED,))
        if rows:
            operations.cancel(self.staff, self.rng.choice(rows).id, actor="chaos-staff")

    def _op_switch(self, account: str | None, length: float) -> None:
        where = account or switches.ALL_ACCOUNTS
        for enabled, pause in ((False, length), (True, 0.0)):
            operations.set_account_switches(
                self.advisor, {switches.WRITEBACK_ENABLED: enabled}, actor="chaos-advisor", account=where
            )
            time.sleep(pause)

    # -- the whole run ------------------------------------------------------------------------

    def play(self) -> Observed:
        self.sim.start()
        try:
            self.seed_queue()
            self.t0 = time.monotonic()
            for slot in range(len(self.s.slots)):
                self.start_dispatcher(slot)
            self._chaos_phase()
            self._calm_down()
            self._clean_phase()
            self.seen.violations.extend(check(self.factory, self.sim, self.seen))
        finally:
            for proc in self.seen.processes:
                if proc.popen.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.popen.pid, signal.SIGCONT)
                        os.kill(proc.popen.pid, signal.SIGKILL)
                    proc.popen.wait(5)
            self.operators.shutdown(wait=True, cancel_futures=True)
            self.db_faults.shutdown(wait=True)
            self.sim.stop()
            self.engine.dispose()
        return self.seen

    def _chaos_phase(self) -> None:
        events = list(self.s.events)
        fault_ends: list[float] = []
        while True:
            now = time.monotonic() - self.t0
            while events and events[0].at <= now:
                self._fire(events.pop(0), fault_ends)
            if fault_ends and now >= fault_ends[0]:
                fault_ends.pop(0)
                self.clear_faults()
            self.supervise(time.monotonic())
            if now >= self.s.duration and not events:
                break
            time.sleep(0.02)

    def _fire(self, event: Event, fault_ends: list[float]) -> None:
        action, args = event.action, event.args
        if action == "faults":
            self.apply_faults(args)
            fault_ends.append(event.at + args["length"])
            fault_ends.sort()
        elif action in ("kill", "stop", "pause"):
            candidates = self.running(killable=action != "stop")
            if not candidates:
                return
            proc = self.rng.choice(candidates)
            if action == "kill":
                self.kill(proc)
            elif action == "stop":
                proc.terminated_at = time.monotonic()
                proc.popen.send_signal(signal.SIGTERM)
                self.seen.faults_injected["clean stop"] += 1
            else:
                length = proc.spec.lease + self.rng.uniform(0.5, 2.5)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.popen.pid, signal.SIGSTOP)
                proc.paused_until = time.monotonic() + length
                self.seen.faults_injected["frozen past its lease"] += 1
        elif action == "db_lock":
            self.seen.faults_injected["db write lock"] += 1
            # CHAOS_DB_LOCK_SECONDS makes every lock that long (past a 30 s busy timeout, say).
            length = float(os.environ.get("CHAOS_DB_LOCK_SECONDS") or args["length"])
            self.db_faults.submit(self._hold_lock, length)
        elif action == "db_drop":
            self.seen.faults_injected["db connections dropped"] += 1
            self.db_faults.submit(self._drop_connections)
        else:
            self.seen.faults_injected[f"operator {action}"] += 1
            self.operate(action, args)

    def _calm_down(self) -> None:
        """Faults stop, operators finish, every dispatcher is asked to stop and must go."""
        self.clear_faults()
        for future in self.pending_ops:
            with contextlib.suppress(Exception):
                future.result(timeout=60)
        with write_transaction(self.factory) as session:
            for where in (switches.ALL_ACCOUNTS, *ACCOUNTS):
                if switches.get_setting(session, switches.WRITEBACK_ENABLED, account=where) is False:
                    switches.set_setting(
                        session, switches.WRITEBACK_ENABLED, True, account=where, actor="chaos"
                    )
        self.slots_wanted = [False] * len(self.s.slots)
        for proc in self.seen.processes:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.popen.pid, signal.SIGCONT)
                proc.paused_until = None
                if proc.terminated_at is None:
                    proc.terminated_at = time.monotonic()
                    proc.popen.send_signal(signal.SIGTERM)
        for proc in self.seen.processes:
            if proc.terminated_at is None or proc.killed:
                continue
            left = STOP_WITHIN - (time.monotonic() - proc.terminated_at)
            try:
                proc.popen.wait(max(0.1, left))
            except subprocess.TimeoutExpired:
                self.seen.violations.append(
                    Violation(
                        "I5",
                        f"dispatcher {proc.popen.pid} ({proc.spec.describe()}) "
                        f"ignored SIGTERM for {STOP_WITHIN:.0f}s",
                    )
                )
                self.kill(proc)
                proc.popen.wait(5)
        self.supervise(time.monotonic())
        if any(p.killed for p in self.seen.processes):
            time.sleep(max(SHORT_LEASES) + 0.5)  # the leases of the dead run out

    def _clean_phase(self) -> None:
        spec = DispatcherSpec(5, 4, 50)
        out, err = self.workdir / "clean.out", self.workdir / "clean.err"
        args = [
            sys.executable,
            "-m",
            "writeback_console.cli",
            "dispatch",
            "--forever",
            "--interval",
            "1",
            "--lease-seconds",
            "5",
        ]
        with out.open("wb") as o, err.open("wb") as e:
            popen = subprocess.Popen(args, env=self.env("clean", spec), stdout=o, stderr=e)
        record = ProcessRecord(-1, spec, popen, out, err, time.monotonic())
        self.seen.processes.append(record)
        deadline = time.monotonic() + 45
        settled_since: float | None = None
        while time.monotonic() < deadline and popen.poll() is None:
            time.sleep(0.5)
            if _unsettled(self.factory) == 0:
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > 1.5:
                    break
            else:
                settled_since = None
        record.terminated_at = time.monotonic()
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.seen.violations.append(Violation("I5", "the clean dispatcher ignored SIGTERM"))
            popen.kill()
            popen.wait(5)
        self.supervise(time.monotonic())


def _unsettled(factory: Factory) -> int:
    """Rows a dispatcher still has to act on: New, Processing, due Scheduled, Error with attempts left."""
    now = datetime.now(UTC)
    with factory() as session:
        w = W
        return int(
            session.execute(
                select(text("count(*)"))
                .select_from(Writeback)
                .where(
                    (w.status.in_([Status.NEW.value, Status.PROCESSING.value]))
                    | ((w.status == Status.SCHEDULED.value) & (w.scheduled_for <= now))
                    | ((w.status == Status.ERROR.value) & (w.attempts < w.max_attempts))
                )
            ).scalar_one()
        )


# --- the invariants --------------------------------------------------------------------------------


def _counted(a: listing.AttemptRow) -> bool:
    """Whether an attempt used one of the row's attempts."""
    explicit = getattr(a, "counted", None)
    if explicit is not None:
        return bool(explicit)
    return a.outcome in ("sent", "error", "no_remote_recipients")


def _ref_of(activity_text: str) -> str | None:
    match = MARKER.search(activity_text)
    return match.group(1).upper() if match else None


def check(factory: Factory, sim: Simulator, seen: Observed) -> list[Violation]:
    out: list[Violation] = []
    with factory() as session:
        rows = list(listing.iter_rows(session, listing.WritebackFilter(), sort="id", descending=False))
        attempts = {r.id: listing.attempts_of(session, r.id) for r in rows}
        audit_rows = session.execute(
            select(AuditEventRow.writeback_id, AuditEventRow.ref, AuditEvent.action, AuditEvent.detail).join(
                AuditEvent, AuditEvent.id == AuditEventRow.event_id
            )
        ).all()
        # When each row was retried by a person: the attempt after one is a person's, not automatic.
        retried_at: dict[int, list[datetime]] = defaultdict(list)
        for wid, at in session.execute(
            select(AuditEventRow.writeback_id, AuditEvent.at)
            .join(AuditEvent, AuditEvent.id == AuditEventRow.event_id)
            .where(AuditEvent.action == "retry")
        ):
            retried_at[wid].append(at)
        recipients = session.execute(
            select(
                MailingRecipient.id,
                MailingRecipient.mailing_id,
                MailingRecipient.master_customer_id,
                MailingRecipient.sub_customer_id,
            )
        ).all()
        delivery_refs = _delivery_refs(session)
        pruned = _pruned_lines(session)
    by_id = {r.id: r for r in rows}
    pruned_by_ref = {p.ref: p for p in pruned.values()}
    by_ref = {r.ref: r for r in rows}
    activities = sim.activities()
    per_ref: Counter[str] = Counter()
    unmarked = 0
    activity_by_ref: dict[str, list[dict[str, object]]] = defaultdict(list)
    for a in activities:
        ref = _ref_of(str(a["ACTIVITY_TEXT"] or ""))
        if ref is None:
            unmarked += 1
            continue
        per_ref[ref] += 1
        activity_by_ref[ref].append(a)
    if unmarked:
        out.append(Violation("I1", f"{unmarked} activities in Personify360 carry no writeback reference"))

    # I1: never lose one.
    missing = sorted(
        ref for ref in seen.created_refs if ref and ref not in by_ref and ref not in pruned_by_ref
    )
    if missing:
        out.append(Violation("I1", f"{len(missing)} writebacks the queue was given are gone: {missing[:5]}"))

    # I1: plain writebacks at most once, Sent ones exactly once.
    for r in rows:
        if r.kind is Kind.MAILING_ACTIVITY:
            continue
        n = per_ref.get(r.ref, 0)
        if n > 1:
            out.append(
                Violation(
                    "I1", f"{r.ref} ({r.kind.label}) written {n} times; history: {_history(attempts[r.id])}"
                )
            )
        if r.status is Status.SENT and n == 0:
            out.append(
                Violation(
                    "I1", f"{r.ref} is Sent but not in Personify360; history: {_history(attempts[r.id])}"
                )
            )

    # I1: a pruned plain writeback was written as its line says: once when Sent.
    for p in pruned.values():
        if p.kind == Kind.MAILING_ACTIVITY.value:
            continue
        n = per_ref.get(p.ref, 0)
        if n > 1 or (p.status == Status.SENT.value and n == 0):
            out.append(Violation("I1", f"{p.ref} (pruned, {p.status}) is in Personify360 {n} times"))

    # I1: mailing activity at most once per recipient, all of them once a row is Sent.
    mailing_refs: dict[int, set[str]] = defaultdict(set)
    for r in rows:
        if r.kind is Kind.MAILING_ACTIVITY and r.mailing_id is not None:
            mailing_refs[r.mailing_id].add(r.ref)
    for _wid, ref, _action, detail in audit_rows:
        mid = (detail or {}).get("mailing_id") if isinstance(detail, dict) else None
        if isinstance(mid, int):
            mailing_refs[mid].add(ref)
    for ref, mid in delivery_refs.items():
        mailing_refs[mid].add(ref)
    for p in pruned.values():
        if p.kind == Kind.MAILING_ACTIVITY.value and p.mailing_id is not None:
            mailing_refs[p.mailing_id].add(p.ref)
    # Each recipient's own reference: written at most once, whichever dispatchers shared the mailing.
    twice = sorted(ref for ref in delivery_refs if per_ref.get(ref, 0) > 1)
    if twice:
        out.append(Violation("I1", f"{len(twice)} mailing recipients written more than once: {twice[:5]}"))
    expected: dict[int, Counter[tuple[str, int]]] = defaultdict(Counter)
    for _rid, mid, master, sub in recipients:
        if master is not None:
            expected[mid][(master, sub or 0)] += 1
    for mid, wanted in expected.items():
        got: Counter[tuple[str, int]] = Counter()
        for ref in mailing_refs.get(mid, ()):
            for a in activity_by_ref.get(ref, ()):
                got[(str(a["MASTER_CUSTOMER_ID"]), int(a["SUB_CUSTOMER_ID"]))] += 1  # type: ignore[call-overload]
        sent = any(
            r.status is Status.SENT for r in rows if r.mailing_id == mid and r.kind is Kind.MAILING_ACTIVITY
        ) or any(
            p.status == Status.SENT.value
            for p in pruned.values()
            if p.mailing_id == mid and p.kind == Kind.MAILING_ACTIVITY.value
        )
        for who, n in sorted(got.items()):
            if n > wanted.get(who, 0):
                out.append(
                    Violation(
                        "I1",
                        f"mailing {mid}: constituent {who[0]} has {n} activities "
                        f"for {wanted.get(who, 0)} recipient(s)",
                    )
                )
        if sent:
            for who, n in sorted(wanted.items()):
                if got.get(who, 0) < n:
                    out.append(
                        Violation(
                            "I1",
                            f"mailing {mid} is Sent but constituent {who[0]} has "
                            f"{got.get(who, 0)} of {n} activities",
                        )
                    )

    # I2: nothing left to do, everything in a state the rules allow to stay.
    now = datetime.now(UTC)
    discarded = {wid for wid, _ref, action, _d in audit_rows if action == "discard"}
    for r in rows:
        bad = None
        if r.status in (Status.NEW, Status.PROCESSING):
            bad = f"left {r.status.label}"
        elif r.status is Status.SCHEDULED and r.scheduled_for is not None and r.scheduled_for <= now:
            bad = "left Scheduled although due"
        elif r.status is Status.ERROR and r.attempts < r.max_attempts:
            bad = f"left Error with attempts left ({r.attempts}/{r.max_attempts})"
        elif r.status is Status.ERROR and not (r.last_error or "").strip():
            bad = "Error without a message"
        elif r.status is Status.DISCARDED and r.id not in discarded:
            bad = "Discarded without a person's discard in the audit log"
        if bad:
            out.append(
                Violation("I2", f"{r.ref} ({r.kind.label}) {bad}; history: {_history(attempts[r.id])}")
            )

    # I3: attempts by the rules, the history complete.
    retries: Counter[int] = Counter(wid for wid, _ref, action, _d in audit_rows if action == "retry")
    saves_per_ref: Counter[str] = Counter()
    for ev in seen.saves:
        fault = str(ev.fault) if ev.fault is not None else None
        if ev.text and fault not in FRONT_END_FAULTS:
            ref = _ref_of(ev.text)
            if ref:
                saves_per_ref[ref] += 1
    for r in rows:
        history = attempts[r.id]
        allowed = DEFAULT_MAX_ATTEMPTS + retries[r.id]
        # Each manual retry grants one attempt after those used so far: a discarded row retried while it
        # still had automatic retries ends with fewer than the sum, never with more.
        if r.max_attempts > allowed or (retries[r.id] == 0 and r.max_attempts != allowed):
            out.append(
                Violation(
                    "I3",
                    f"{r.ref} allows {r.max_attempts} attempts; the rules and "
                    f"{retries[r.id]} manual retries allow {allowed}",
                )
            )
        if r.attempts > r.max_attempts:
            out.append(Violation("I3", f"{r.ref} used {r.attempts} of {r.max_attempts} attempts"))
        open_ = [a for a in history if a.outcome is None]
        if open_ and r.status is not Status.PROCESSING:
            out.append(
                Violation("I3", f"{r.ref} has {len(open_)} unfinished attempts while {r.status.label}")
            )
        # An attempt still under way (a row left Processing, which I2 reports) counts as it runs.
        counted = sum(1 for a in history if _counted(a)) + len(open_)
        if counted != r.attempts:
            out.append(
                Violation(
                    "I3",
                    f"{r.ref} counts {r.attempts} attempts but its history has {counted} counted: "
                    f"{_history(history)}",
                )
            )
        outage = [a for a in history if _counted(a) and a.http_status in OUTAGE_STATUSES]
        if outage:
            out.append(
                Violation(
                    "I3",
                    f"{r.ref} used {len(outage)} attempt(s) on Personify360 being unavailable "
                    f"({outage[0].http_status}): {_history(history)}",
                )
            )
        ordered = sorted(history, key=lambda a: a.started_at)
        for failed, next_ in itertools.pairwise(ordered):
            automatic = failed.outcome == "error" and _counted(failed) and not next_.manual
            if not automatic or failed.finished_at is None:
                continue
            if any(failed.finished_at <= at <= next_.started_at for at in retried_at[r.id]):
                # A person retried it in between (a discarded row whose retries were left, given back):
                # that attempt is theirs, and may come at once.
                continue
            early = failed.finished_at + RETRY_INTERVAL - next_.started_at
            if early > CLOCK_AGREEMENT:
                out.append(
                    Violation(
                        "I3",
                        f"{r.ref} was tried again {early.total_seconds():.3f} s before its automatic retry "
                        f"was due: {_history(history)}",
                    )
                )
        streak = longest = 0
        for a in history:
            streak = streak + 1 if (a.outcome == "interrupted" and not _counted(a)) else 0
            longest = max(longest, streak)
        if longest > 1:
            out.append(
                Violation(
                    "I3",
                    f"{r.ref} was interrupted {longest} times in a row without an attempt counting: "
                    f"{_history(history)}",
                )
            )
        if r.kind is not Kind.MAILING_ACTIVITY:
            arrived = saves_per_ref.get(r.ref, 0)
            recorded = sum(1 for a in history if a.outcome is not None)
            if arrived > recorded:
                out.append(
                    Violation(
                        "I3",
                        f"{r.ref}: Personify360 received {arrived} Saves, the history records "
                        f"{recorded} attempts: {_history(history)}",
                    )
                )

    # I2: retention pruned only what it may, and nothing both pruned and still there.
    for p in pruned.values():
        if p.status not in (Status.SENT.value, Status.NO_REMOTE_RECIPIENTS.value):
            out.append(Violation("I2", f"{p.ref} was pruned while {p.status}"))
        if p.writeback_id in by_id or p.ref in by_ref:
            out.append(Violation("I2", f"{p.ref} is pruned and still in the queue"))

    # I4: every audit entry belongs to its own row, or to that row's pruned line.
    for wid, ref, action, _detail in audit_rows:
        row = by_id.get(wid)
        gone = pruned.get(wid)
        if row is None and gone is not None and gone.ref != ref:
            out.append(
                Violation(
                    "I4", f"audit entry '{action}' for {ref} points at pruned writeback {wid}, {gone.ref}"
                )
            )
        elif row is None and gone is None:
            out.append(
                Violation(
                    "I4", f"audit entry '{action}' for {ref} points at writeback {wid}, which does not exist"
                )
            )
        elif row is not None and row.ref != ref:
            out.append(
                Violation(
                    "I4", f"audit entry '{action}' for {ref} points at writeback {wid}, which is {row.ref}"
                )
            )

    # I4: every row's event log tells its story without a gap: it begins with no earlier status, each
    # event starts where the one before it ended, and the last ends at the row's status.
    if "events" in supported_features():
        chains: dict[int, list[tuple[str | None, str]]] = {}
        with factory() as session:
            for wid, before, after in session.execute(
                text("SELECT writeback_id, from_status, to_status FROM writeback_event ORDER BY id")
            ):
                chains.setdefault(wid, []).append((before, after))
        for wid, row in by_id.items():
            chain = chains.get(wid, [])
            story = " → ".join([str(chain[0][0]), *(b for _a, b in chain)]) if chain else "no events"
            broken = (
                not chain
                or chain[0][0] is not None
                or any(prev[1] != nxt[0] for prev, nxt in itertools.pairwise(chain))
                or chain[-1][1] != row.status.value
            )
            if broken:
                out.append(Violation("I4", f"{row.ref} ({row.status.label}): event log {story}"))

    # I5: no tracebacks, every cycle in time.
    for proc in seen.processes:
        err = proc.stderr.read_text(encoding="utf-8", errors="replace") if proc.stderr.exists() else ""
        crash = _unhandled_traceback(err)
        if crash is not None:
            tail = crash[-1500:]
            out.append(
                Violation(
                    "I5",
                    f"dispatcher {proc.popen.pid} ({proc.spec.describe()}) ended in a traceback:\n{tail}",
                )
            )
        log = proc.stdout.read_text(encoding="utf-8", errors="replace") if proc.stdout.exists() else ""
        for refusal in ("permission denied", "row-level security", "InsufficientPrivilege"):
            if refusal in log or refusal in err:
                out.append(
                    Violation(
                        "I5", f"dispatcher {proc.popen.pid} was refused by its role's grants ({refusal})"
                    )
                )
                break
        if "database error, will try again" in log:
            # A cycle aborted by the database: whatever it had learnt was thrown away.
            out.append(Violation("I5", f"dispatcher {proc.popen.pid} lost a cycle to a database error"))
        for seconds in re.findall(r" in ([0-9.]+) s\b", log):
            if float(seconds) > CYCLE_WITHIN:
                out.append(
                    Violation("I5", f"dispatcher {proc.popen.pid} had a cycle of {float(seconds):.0f} s")
                )
    return out


def _unhandled_traceback(err: str) -> str | None:
    """The first traceback in a process's stderr that no log line announced, from there on.

    A dispatcher logs the traceback of an internal error it confined to one writeback ("internal error
    while sending …"); any other traceback is one that escaped.
    """
    lines = err.splitlines()
    for n, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            before = lines[n - 1] if n else ""
            if "internal error while" in before or "could not prepare the recipients" in before:
                continue
            return "\n".join(lines[n:])
    return None


def _pruned_lines(session: Session) -> dict[int, Any]:
    """What retention pruned, by writeback id (nothing where the code under test has no retention)."""
    from writeback_console.store import models

    model = getattr(models, "PrunedWriteback", None)
    if model is None:
        return {}
    return {p.writeback_id: p for p in session.execute(select(model)).scalars()}


def _delivery_refs(session: Session) -> dict[str, int]:
    """The idempotency key of each delivery, with its mailing (where deliveries carry one)."""
    from writeback_console.store.models import Delivery

    if not hasattr(Delivery, "ref"):
        return {}
    found = session.execute(
        select(Delivery.ref, MailingRecipient.mailing_id).join(
            MailingRecipient, MailingRecipient.id == Delivery.recipient_id
        )
    ).all()
    return {str(ref): int(mid) for ref, mid in found if ref}


def _history(history: list[listing.AttemptRow]) -> str:
    parts = []
    for a in history:
        mark = "" if _counted(a) else "~"
        status = f" {a.http_status}" if a.http_status else ""
        parts.append(f"{mark}{a.number}:{a.outcome}{status} ({(a.message or '')[:60]})")
    return "; ".join(parts) or "none"


# --- entry points ----------------------------------------------------------------------------------


def supported_features() -> frozenset[str]:
    """What the code under test offers beyond the oldest version the harness runs against."""
    from writeback_console import domain
    from writeback_console.sim.faults import FaultKind
    from writeback_console.store import engine

    features = set()
    if hasattr(domain, "CLOCK_SKEW_ENV"):
        features.add("clock_skew")
    if hasattr(engine, "_busy_timeout"):
        features.add("busy_timeout")
    if hasattr(FaultKind, "LATE_WRITE"):
        features.add("late_write")
    if importlib.util.find_spec("writeback_console.store.history") is not None:
        features.add("events")
    return frozenset(features)


def without(schedule: Schedule, names: frozenset[str]) -> Schedule:
    """The schedule with some kinds of fault left out, everything else as the seed made it.

    A name is an event's action (kill, stop, pause, db_lock, db_drop, or an operator action), a fault
    profile (tls, storm503, crash…), or "poison": no poison rows, no bad bytes in enqueued or imported
    rows, no operator name that cannot be sent. Used to see what one failure does when another one
    that would hide it is taken away.
    """
    if not names:
        return schedule
    events = []
    for e in schedule.events:
        if e.action in names or (e.action == "faults" and e.args.get("profile") in names):
            continue
        if "poison" in names and "nasty" in e.args:
            e = dataclasses.replace(e, args={**e.args, "nasty": False})
        events.append(e)
    slots = schedule.slots
    if "poison" in names:
        slots = tuple(dataclasses.replace(slot, operator="INFORMZ") for slot in slots)
    return dataclasses.replace(
        schedule,
        events=tuple(events),
        slots=slots,
        poison_rows=0 if "poison" in names else schedule.poison_rows,
    )


def left_out() -> frozenset[str]:
    """CHAOS_WITHOUT, e.g. "poison,kill": kinds of fault left out of every schedule."""
    return frozenset(n.strip() for n in os.environ.get("CHAOS_WITHOUT", "").split(",") if n.strip())


def run_seed(
    seed: int, backend: str, db_url: str, tls: TlsFiles, *, keep: Path | None = None
) -> tuple[Schedule, Observed]:
    schedule = without(generate(seed, backend, supports=supported_features()), left_out())
    with tempfile.TemporaryDirectory(prefix=f"chaos-{seed}-") as tmp:
        workdir = keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if backend == "postgresql":
            # Dispatchers, staff and advisors as the role script makes them; the owner only checks.
            with queue_with_roles(db_url, combined={"sender": ("staff", "dispatcher")}) as roles:
                seen = Run(schedule, db_url, tls, workdir, roles).play()
        else:
            seen = Run(schedule, db_url, tls, workdir).play()
    return schedule, seen


def report(schedule: Schedule, seen: Observed) -> str:
    lines = [
        schedule.describe(),
        "faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(seen.faults_injected.items())),
    ]
    lines += [f"operator: {line}" for line in seen.operator_log[:30]]
    if seen.violations:
        lines.append(f"{len(seen.violations)} violation(s):")
        lines += [f"  {v}" for v in seen.violations[:40]]
    replay = f"replay: make chaos SEED={schedule.seed} BACKEND={schedule.backend}"
    if left_out():
        replay += f" WITHOUT={','.join(sorted(left_out()))}"
    lines.append(replay)
    return "\n".join(lines)
