"""One dispatcher cycle: recover, schedule, claim, send in parallel, record — by the queue's rules.

Plain Python, no Qt: the GUI runs :func:`run_cycle` in a worker thread, the command line runs it
headless. The calling thread owns every database session; worker threads only talk to Personify360.

What the cycle promises, whatever happens around it (see docs/architecture.md, "Exactly once"):

- A row is sent only while this dispatcher holds its lease, judged by the lease's stored expiry (the
  database's clock) and, just before each request, by the holder's own conservative view of it; every
  write to the row names the lease's fencing token, so a dispatcher that lost its lease writes nothing.
- Whatever goes wrong with one writeback is that writeback's Error, never the cycle's.
- A mailing activity's recipients are sent in chunks claimed under leases of their own, so several
  dispatchers share one big mailing: one with nothing else to do joins a mailing being sent, whoever
  finishes last settles the row (Sent when all arrived, Error naming how many failed), and while any
  chunk of it is held the row is neither recovered nor put back.
- When Personify360 as a whole is unavailable (most requests end in 502/503/504/429, a web page or a
  timeout; or it says so itself), the cycle stops, uses no attempt, honours Retry-After and remembers
  the outage for the next cycles, which each send one probe first. Rejected credentials likewise, so
  the Personify360 user is never locked out.
- A database that refuses writes (locked, connection dropped) does not lose what was learnt: results
  are kept and written when it answers again, within a patience; after that the cycle ends with the
  problem in words and the rows come back to the queue when their leases run out.

The module is longer than the project's guide of about 700 lines on purpose: it is one state machine
(``_Cycle``), and its sections (is Personify360 usable, sending, claiming rows and mailings' chunks,
results, a mailing's verdict, the end of a run, leases, a database that refuses) all read and change
the same run state. What it is given and what it reports live in ``dispatch/summary.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.dispatch.lease import RowLease
from writeback_console.dispatch.send import Outcome, Resolver, send_recipient, send_writeback
from writeback_console.dispatch.summary import (
    CycleProgress,
    CycleSummary,
    DispatchOptions,
    ProblemKind,
    clock_text,
)
from writeback_console.domain import (
    AttemptOutcome,
    HealthState,
    Kind,
    Status,
    mailing_activity_error,
    mailing_activity_outcome,
    utcnow,
)
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.errors import ErrorKind, PersonifyError
from writeback_console.personify.mapping import ActivityMapping
from writeback_console.store import (
    changes,
    charts,
    counters,
    deliveries,
    lifecycle,
    listing,
    operator_actions,
    recording,
    retention,
    runs,
    service_health,
    switches,
)
from writeback_console.store.engine import read_session, write_transaction

log = logging.getLogger(__name__)

#: Service-level failures in a row needed, with more than half of a run's finished rows failing that
#: way, to call it an outage: a few timeouts scattered among answers are those rows' own failures.
OUTAGE_MINIMUM = 3
#: How many times one run claims again rows it had to put back unsent.
RECLAIM_ROUNDS = 3
#: Seconds between tries to write to a database that refused, doubling up to the last.
DATABASE_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)


def _database_trouble(exc: BaseException) -> bool:
    """A database error that may pass (locked, connection dropped), as opposed to a bug."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


@dataclass
class _Held:
    claimed: lifecycle.Claimed
    lease: RowLease


@dataclass
class _Chunk:
    """Recipients of a mailing this dispatcher holds a chunk lease on, and what became of them."""

    writeback_id: int
    lease: RowLease
    #: delivery id → the chunk's fencing token, for those not yet recorded or let go.
    tokens: dict[int, int]
    #: Recipients queued or in flight, without an outcome taken yet.
    outstanding: int
    #: Failures that may only mean "Personify360 is unavailable": recorded by the run's verdict.
    deferred: list[Outcome] = field(default_factory=list)


@dataclass
class _Mailing:
    """A mailing-activity row this dispatcher works on: one it claimed, or one it joined by its chunks."""

    claimed: lifecycle.Claimed
    name: str
    owner: bool
    #: The mailing's recipients that had arrived when this dispatcher claimed the row.
    delivered_at_claim: int = -1
    chunks: list[_Chunk] = field(default_factory=list)
    #: Recipients this dispatcher recorded an outcome for.
    tried: int = 0
    first_failure: Outcome | None = None
    #: No chunk to claim before this (monotonic): the rest are in flight here or held elsewhere.
    next_claim: float = 0.0


@dataclass
class _Work:
    writeback_id: int
    lease: RowLease
    fn: Callable[..., Outcome]
    args: tuple[Any, ...]
    chunk: _Chunk | None = None


ProgressCallback = Callable[[CycleProgress], None]


class _DatabaseUnavailable(Exception):
    """The queue database refused past the cycle's patience."""


def run_cycle(
    factory: sessionmaker[Session],
    client: PersonifyClient,
    mapping: ActivityMapping,
    options: DispatchOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] | None = None,
    only: Iterable[int] | None = None,
) -> CycleSummary:
    """Run one dispatcher cycle and say what it did.

    Every time the cycle records comes from the database's clock (``clock`` only for tests), so
    dispatchers whose own clocks disagree still judge eligibility and leases alike. ``only`` limits the
    cycle to those writebacks ("Send now" on one mailing): it claims no other row and schedules no
    mailing activity, though it still takes back rows whose holder died (that is not sending).
    """
    chosen = None if only is None else frozenset(only)
    return _Cycle(factory, client, mapping, options or DispatchOptions(), progress, stop, clock, chosen).run()


def not_sent_reason(factory: sessionmaker[Session], ids: Iterable[int], summary: CycleSummary) -> str | None:
    """Why a cycle run for ``ids`` alone ("Send now") sent none of them, in words; None if it did
    something (it sent or failed them, or names its own problem, such as Personify360 down)."""
    wanted = sorted(set(ids))
    if not wanted or summary.claimed or summary.problem is not None:
        return None
    with read_session(factory) as session:
        rows = listing.get_writebacks(session, wanted[:1])
        off = switches.disabled_accounts(session)
    if not rows:
        return None
    first = rows[wanted[0]]
    one = len(wanted) == 1
    # Short enough for the console's status bar at 1,024 px beside the dispatcher's own words.
    what = first.ref if one else f"{len(wanted):,} writebacks"
    if summary.disabled:
        why = "writebacks are switched off"
    elif first.account in off:
        why = f"account {first.account} is switched off"
    elif first.status is Status.SENT:
        return None  # another dispatcher sent it meanwhile
    elif first.status is Status.PROCESSING:
        why = f"another dispatcher is sending {'it' if one else 'them'}"
    else:
        why = f"{'it' if one else first.ref} is {first.status.label}"
    return f"{what} not sent: {why}"


class _Cycle:
    def __init__(
        self,
        factory: sessionmaker[Session],
        client: PersonifyClient,
        mapping: ActivityMapping,
        options: DispatchOptions,
        progress: ProgressCallback | None,
        stop: threading.Event | None,
        clock: Callable[[], datetime] | None,
        only: frozenset[int] | None = None,
    ) -> None:
        self.factory = factory
        self.client = client
        self.mapping = mapping
        self.o = options
        self.only = only
        self.retry_after = timedelta(seconds=options.retry_interval_seconds)
        self.report = progress
        self.stop = stop or threading.Event()
        self._given_clock = clock
        self._db_start: datetime | None = None
        self._mono_start = time.monotonic()
        self.resolver = Resolver(client)
        self.counts = {"claimed": 0, "sent": 0, "failed": 0, "nrr": 0, "released": 0, "pruned": 0}
        self.held: dict[int, _Held] = {}
        self.changed: set[int] = set()
        #: Mailing rows worked here, claimed or joined, and which chunk each claimed delivery is in.
        self.mailings: dict[int, _Mailing] = {}
        self.chunk_of: dict[int, _Chunk] = {}
        self.work: deque[_Work] = deque()
        self.results: list[Outcome] = []
        #: Plain rows' failures that may only mean "Personify360 is unavailable": judged at the end.
        self.held_back: list[Outcome] = []
        self.finished = 0
        self.service_failures = 0
        self.service_run = 0
        self.unreachable_run = 0
        self.problem: ProblemKind | None = None
        self.problem_since: datetime | None = None
        self.problem_status: int | None = None
        self.retry_at: datetime | None = None
        self.stopped_reason: str | None = None
        self.remaining = 0
        self.skip: list[str] = []
        self.health: service_health.Health | None = None
        self.db_trouble_since: float | None = None
        self.db_error = ""
        self.db_tries = 0
        self.next_db_try = 0.0
        self.giving_up = False
        #: Rows were put back unsent during the run; they may be claimed again in it.
        self.reclaimable = False
        self.reclaim_rounds = 0
        #: The queue's waiting work when the run began, kept with the run's record.
        self.sample: runs.QueueSample | None = None

    @property
    def service(self) -> str:
        return self.client.settings.root

    def clock(self) -> datetime:
        """The database's time now: read once at the start, carried on by this process's elapsed time."""
        if self._given_clock is not None:
            return self._given_clock()
        assert self._db_start is not None
        return self._db_start + timedelta(seconds=time.monotonic() - self._mono_start)

    # -- the cycle ----------------------------------------------------------------------------

    def run(self) -> CycleSummary:
        summary = self._run()
        self._record_run(summary)
        return summary

    def _run(self) -> CycleSummary:
        recovered: list[int] = []
        scheduled: list[int] = []
        try:
            with read_session(self.factory) as session:
                self._mono_start = time.monotonic()
                self._db_start = lifecycle.database_now(session)
                started = self.clock()
                self.started = started
                enabled = switches.writeback_enabled(session)
                if enabled:
                    self.skip = sorted(switches.disabled_accounts(session))
                    self.health = service_health.get_health(session, self.service)
            self.sample = self._queue_sample(started)
            if not enabled:
                return CycleSummary(started, self.clock(), disabled=True)
            with write_transaction(self.factory) as session:
                recovered = recording.recover_expired_leases(
                    session, now=self._now_for_store(), by=self.o.dispatcher
                )
            if self.only is None:
                with write_transaction(self.factory) as session:
                    scheduled = operator_actions.auto_schedule_mailings(
                        session, now=self.clock(), actor=self.o.dispatcher
                    )
            with read_session(self.factory) as session:
                self.remaining = lifecycle.count_eligible(
                    session, started, self.skip, self.o.settle_seconds, only=self.only
                )
                # Mailings other dispatchers are sending, with recipients this one can take a share of.
                self.remaining += deliveries.count_joinable(
                    session,
                    now=started,
                    settle_seconds=self.o.settle_seconds,
                    skip_accounts=self.skip,
                    only=self.only,
                )
        except sa_exc.DBAPIError as exc:
            if not _database_trouble(exc):
                raise
            self._database_problem(exc)
            return self._summary(recovered, scheduled)
        if self._may_send():
            self._send_all()
        if self.only is None and not self.stop.is_set():
            pruned = retention.daily_prune(self.factory, by=self.o.dispatcher, should_stop=self.stop.is_set)
            self.counts["pruned"] = pruned.total if pruned is not None else 0
        if self.stop.is_set() and self.stopped_reason is None:
            self.stopped_reason = "asked to stop"
        summary = self._summary(recovered, scheduled)
        log.info("dispatcher cycle: %s", summary.describe())
        return summary

    def _queue_sample(self, now: datetime) -> runs.QueueSample | None:
        """The queue's waiting work as the run begins, for the run's record; None if it cannot be read."""
        try:
            with read_session(self.factory) as session:
                return runs.queue_sample(session, now)
        except sa_exc.DBAPIError as exc:
            log.warning("the queue was not sampled for this run's record: %s", exc)
            return None

    def _record_run(self, summary: CycleSummary) -> None:
        """Keep this run in ``dispatcher_run``, for consoles that do not dispatch and for the charts.

        Never at the run's expense: with the database gone the row is simply not written.
        """
        try:
            with write_transaction(self.factory) as session:
                runs.record_run(
                    session,
                    dispatcher=self.o.dispatcher,
                    started_at=summary.started_at,
                    finished_at=summary.finished_at,
                    result=summary.result,
                    summary=summary.describe(),
                    claimed=summary.claimed,
                    sent=summary.sent,
                    failed=summary.failed,
                    interval_seconds=None if self.only is not None else self.o.interval_seconds,
                    sample=self.sample,
                )
        except Exception as exc:  # the run is over and reported; only its record is lost
            log.warning("this dispatcher run was not recorded: %s", exc)

    def _now_for_store(self) -> datetime | None:
        # With the database's own clock the store reads it itself; a test's clock is passed on.
        return self.clock() if self._given_clock is not None else None

    def _summary(self, recovered: list[int], scheduled: list[int]) -> CycleSummary:
        started = getattr(self, "started", None) or self.clock_or_now()
        return CycleSummary(
            started_at=started,
            finished_at=self.clock_or_now(),
            claimed=self.counts["claimed"],
            sent=self.counts["sent"],
            failed=self.counts["failed"],
            no_remote_recipients=self.counts["nrr"],
            released=self.counts["released"],
            recovered=len(recovered),
            auto_scheduled=len(scheduled),
            pruned=self.counts["pruned"],
            stopped_reason=self.stopped_reason,
            problem=self.problem,
            problem_since=self.problem_since,
            problem_status=self.problem_status,
            retry_at=self.retry_at,
            changed_ids=tuple(sorted(self.changed | set(recovered) | set(scheduled))),
        )

    def clock_or_now(self) -> datetime:
        if self._db_start is None and self._given_clock is None:
            return utcnow()
        return self.clock()

    # -- is Personify360 usable? --------------------------------------------------------------

    def _may_send(self) -> bool:
        """Honour what is known of Personify360, and begin with one request alone.

        A run that has work starts with a single small read: rejected credentials then cost one
        request per run, never a burst that would lock the Personify360 user out, and an outage is
        found before any writeback is claimed.
        """
        health = self.health
        bad = health is not None and not health.ok
        if health is not None and bad and health.not_before is not None and health.not_before > self.clock():
            self._adopt(health, waiting=True)
            return False
        if not bad and self.remaining == 0:
            return False
        probe_started = self.clock()
        try:
            self.client.probe()
        except PersonifyError as error:
            if error.kind is ErrorKind.AUTH:
                self._declare(ProblemKind.AUTH, error.status, error.message, None)
                return False
            if error.explicit_outage or error.unreachable or (bad and error.service):
                kind = ProblemKind.UNREACHABLE if error.unreachable else ProblemKind.OUTAGE
                self._declare(kind, error.status, error.message, error.retry_after)
                return False
            log.info("the first request of the run failed (%s); sending anyway", error)
        except Exception:
            log.exception("the first request of the run failed unexpectedly; sending anyway")
        else:
            if bad:
                assert health is not None
                log.warning("Personify360 answers again (it was %s since %s)", health.state, health.since)
                now = self._remember(HealthState.OK, None, "answers again", None, learnt_at=probe_started)
                if now is not None and now.not_before is not None and now.not_before > self.clock():
                    # Meanwhile another dispatcher learnt worse, with a Retry-After still running.
                    self._adopt(now, waiting=True)
                    return False
        return self.remaining > 0

    def _adopt(self, health: service_health.Health, *, waiting: bool) -> None:
        """Take over an outage another run found, without sending anything."""
        kind = ProblemKind.AUTH if health.state == HealthState.AUTH else ProblemKind.OUTAGE
        self.problem = kind
        self.problem_since = health.since
        self.problem_status = health.http_status
        self.retry_at = health.not_before
        self.stopped_reason = self._reason(
            kind, health.http_status, health.message, health.since, health.not_before
        )
        if waiting and health.not_before is not None:
            self.stopped_reason += "; nothing was sent, as it asked"

    def _declare(
        self, kind: ProblemKind, status: int | None, message: str, retry_after: float | None
    ) -> None:
        """Personify360 cannot be used now: stop sending, use no attempt, remember it for later runs."""
        if self.problem is not None:
            return
        now = self.clock()
        retry_at = now + timedelta(seconds=retry_after) if retry_after else None
        state = HealthState.AUTH if kind is ProblemKind.AUTH else HealthState.OUTAGE
        health = self._remember(state, status, message, retry_at)
        since = health.since if health is not None and health.since is not None else now
        self.problem = kind
        self.problem_since = since
        self.problem_status = status
        self.retry_at = retry_at
        self.stopped_reason = self._reason(kind, status, message, since, retry_at)
        log.warning("dispatcher stopping: %s", self.stopped_reason)

    @staticmethod
    def _reason(
        kind: ProblemKind,
        status: int | None,
        message: str | None,
        since: datetime | None,
        retry_at: datetime | None,
    ) -> str:
        when = f" since {clock_text(since)}" if since else ""
        detail = f" ({message})" if message else ""
        if kind is ProblemKind.AUTH:
            text = f"credentials rejected by Personify360{when}{detail}; one probe per run until they change"
        elif kind is ProblemKind.UNREACHABLE:
            text = f"Personify360 cannot be reached{when}{detail}"
        else:
            code = f" ({status})" if status else ""
            text = f"Personify360 unavailable{code}{when}"
        text += "; no attempt was used"
        if retry_at is not None:
            text += f"; next try after {clock_text(retry_at)}"
        return text

    def _remember(
        self,
        state: HealthState,
        status: int | None,
        message: str | None,
        not_before: datetime | None,
        *,
        learnt_at: datetime | None = None,
    ) -> service_health.Health | None:
        try:
            with write_transaction(self.factory) as session:
                health = service_health.set_health(
                    session,
                    self.service,
                    state=state,
                    now=self.clock(),
                    by=self.o.dispatcher,
                    http_status=status,
                    message=message,
                    not_before=not_before,
                    learnt_at=learnt_at,
                )
        except sa_exc.SQLAlchemyError as exc:
            # What is known of Personify360 is worth sharing, but not worth failing the run for.
            log.warning("could not record Personify360's state (%s): %s", state, exc)
            return None
        self.health = health
        return health

    # -- sending ------------------------------------------------------------------------------

    def _send_all(self) -> None:
        in_flight: set[Future[Outcome]] = set()
        # First every row never interrupted, in batches; then, one at a time and with nothing else in
        # flight, the rows a dispatcher died sending: if one of them kills this dispatcher too, no
        # other row is interrupted with it, and only its own interruption counts.
        phase = "normal"
        last_flush = last_renew = time.monotonic()
        renew_every = max(0.1, self.o.lease_seconds / 4)
        with ThreadPoolExecutor(self.o.concurrency, thread_name_prefix="writeback-send") as pool:
            while True:
                stopping = self.stop.is_set() or self.problem is not None or self.giving_up
                # While the database refuses, recording the results tries it again; with nothing left to
                # record, the next claim does, once the backoff has passed.
                may_claim = self.db_trouble_since is None or (
                    not self.results and time.monotonic() >= self.next_db_try
                )
                # Keep twice the pool's width queued, so senders never wait for the database.
                while not stopping and may_claim and len(in_flight) < 2 * self.o.concurrency:
                    if not self.work:
                        busy = bool(in_flight or self.results or self._mailings_busy())
                        phase, found = self._find_work(phase, busy=busy)
                        if not found:
                            break
                        if not self.work:
                            continue
                    item = self.work.popleft()
                    if (
                        item.lease.remaining() < 3 * item.lease.margin
                        and self.next_db_try <= time.monotonic()
                    ):
                        # Renew before sending rather than send on a lease about to run out.
                        self._renew()
                        last_renew = time.monotonic()
                    if item.lease.lost or (item.chunk is None and item.writeback_id not in self.held):
                        continue  # another dispatcher has the row (or the recipients) now
                    in_flight.add(pool.submit(item.fn, *item.args))
                if phase == "done" and self.reclaimable and self.reclaim_rounds < RECLAIM_ROUNDS:
                    # Rows put back unsent (their lease ran short) are due again in this very run.
                    phase, self.reclaimable = "normal", False
                    self.reclaim_rounds += 1
                more_to_send = bool(self.work) or phase != "done"
                unrecorded = bool(self.results) and not self.giving_up
                if not in_flight and (stopping or not more_to_send) and not unrecorded:
                    break
                if in_flight:
                    done, in_flight = wait(
                        in_flight, timeout=self.o.flush_interval, return_when=FIRST_COMPLETED
                    )
                    for future in done:
                        self._take(future.result())
                else:
                    time.sleep(self.o.flush_interval)
                now = time.monotonic()
                due = now - last_flush >= self.o.flush_interval or len(self.results) >= 100
                # A suspect row's outcome is written at once: the next one waits for it.
                due = due or (phase == "suspects" and not in_flight)
                if self.results and due and now >= self.next_db_try:
                    self._flush()
                    last_flush = now
                if now - last_renew >= renew_every and now >= self.next_db_try:
                    self._renew()
                    last_renew = now
                self._check_patience()
        self._finish()

    def _check_patience(self) -> None:
        trouble = self.db_trouble_since
        if (
            trouble is not None
            and not self.giving_up
            and time.monotonic() - trouble >= self.o.database_patience
        ):
            self.giving_up = True
            log.error(
                "the queue database has refused writes for %.0f s; giving up this run",
                self.o.database_patience,
            )

    # -- claiming -----------------------------------------------------------------------------

    def _find_work(self, phase: str, *, busy: bool) -> tuple[str, bool]:
        """Claim what to send next: recipients of the mailings worked here, then rows, then recipients
        of mailings other dispatchers are working on, then (one at a time) rows a dispatcher died
        sending. Returns the phase after it and whether anything was claimed."""
        got = self._next_chunk()
        if got is None or got:
            return phase, bool(got)
        if phase == "normal":
            claimed = self._claim_batch(suspects=False)
            if claimed is None or claimed:
                return phase, bool(claimed)
            joined = self._join()
            if joined is None or joined:
                return phase, bool(joined)
            phase = "suspects"
        if phase == "suspects":
            if busy:
                return phase, False  # the last one is settled and recorded before the next goes
            claimed = self._claim_batch(suspects=True)
            if claimed is None or claimed:
                return phase, bool(claimed)
            phase = "done"
        return phase, False

    def _mailings_busy(self) -> bool:
        """A mailing worked here still has recipients to send (not only failures waiting for the verdict)."""
        return any(not m.chunks or any(ch.outstanding > 0 for ch in m.chunks) for m in self.mailings.values())

    def _next_chunk(self) -> bool | None:
        """Claim the next chunk of a mailing worked here; a mailing with none left and none of its chunks
        here any more is finished. None if the database refused."""
        now = time.monotonic()
        for wid in sorted(self.mailings):
            m = self.mailings[wid]
            if m.next_claim > now:
                continue
            got = self._claim_chunk((wid, m.claimed.token))
            if got is None or got:
                return got
            if m.chunks:
                # The rest are in flight here: look again a little later, some may come back unsent.
                m.next_claim = now + max(1.0, self.o.flush_interval)
                continue
            try:
                with write_transaction(self.factory) as session:
                    verdict = self._finish_mailing(session, m, final=False)
            except sa_exc.DBAPIError as exc:
                if not _database_trouble(exc):
                    raise
                self._database_failed(exc)
                return None
            self._database_ok()
            if verdict == "more":
                got = self._claim_chunk((wid, m.claimed.token))
                if not got:
                    m.next_claim = now + max(1.0, self.o.flush_interval)
                return got
            self._after_mailing(wid, verdict)
        return False

    def _join(self) -> bool | None:
        """Join a mailing another dispatcher is working on, by a chunk of its recipients nobody holds."""
        return self._claim_chunk(None)

    def _claim_chunk(self, writeback: tuple[int, int] | None) -> bool | None:
        taken = RowLease.now()
        try:
            with write_transaction(self.factory) as session:
                chunk = deliveries.claim_chunk(
                    session,
                    dispatcher=self.o.dispatcher,
                    limit=self.o.chunk_size,
                    lease_seconds=self.o.lease_seconds,
                    settle_seconds=self.o.settle_seconds,
                    now=self._now_for_store(),
                    writeback=writeback,
                    skip_accounts=self.skip,
                    only=self.only,
                )
        except sa_exc.DBAPIError as exc:
            if not _database_trouble(exc):
                raise
            self._database_failed(exc)
            return None
        self._database_ok()
        if chunk is None:
            return False
        c = chunk.writeback
        m = self.mailings.get(c.id)
        if m is None or m.claimed.token != c.token:
            m = self.mailings[c.id] = _Mailing(c, chunk.mailing_name, owner=False)
            self.changed.add(c.id)
        lease = RowLease(c.id, c.token, self.o.lease_seconds, taken)
        held = _Chunk(c.id, lease, dict(chunk.tokens), len(chunk.recipients))
        m.chunks.append(held)
        for recipient in chunk.recipients:
            self.chunk_of[recipient.delivery_id] = held
            self.work.append(
                _Work(
                    c.id,
                    lease,
                    send_recipient,
                    (self.client, self.mapping, m.claimed, m.name, recipient, lease, self.clock),
                    held,
                )
            )
        return True

    def _claim_batch(self, *, suspects: bool) -> bool | None:
        """Claim the next batch (or one suspect row); False if none is left, None if the database refused."""
        taken = RowLease.now()
        try:
            with write_transaction(self.factory) as session:
                claimed = lifecycle.claim(
                    session,
                    dispatcher=self.o.dispatcher,
                    run_started_at=self.started,
                    limit=1 if suspects else self.o.batch_size,
                    interrupted=suspects,
                    lease_seconds=self.o.lease_seconds,
                    now=self._now_for_store(),
                    skip_accounts=self.skip,
                    settle_seconds=self.o.settle_seconds,
                    only=self.only,
                )
                plans = [(c, self._plan_row(session, c)) for c in claimed]
        except sa_exc.DBAPIError as exc:
            if not _database_trouble(exc):
                raise
            self._database_failed(exc)
            return None
        self._database_ok()
        for c, plan in plans:
            self.counts["claimed"] += 1
            self.changed.add(c.id)
            lease = RowLease(c.id, c.token, self.o.lease_seconds, taken)
            kind, detail = plan
            if kind == "nrr":
                self.counts["nrr"] += 1
            elif kind == "sent":
                self.counts["sent"] += 1
            elif kind == "failed":
                assert isinstance(detail, Outcome)
                self.held[c.id] = _Held(c, lease)
                self.results.append(detail)
            elif kind == "job":
                # Its recipients are claimed in chunks, by this dispatcher and any other that joins.
                assert isinstance(detail, deliveries.FanOut)
                self.held[c.id] = _Held(c, lease)
                self.mailings[c.id] = _Mailing(
                    c, detail.mailing_name, owner=True, delivered_at_claim=detail.already_delivered
                )
            else:
                self.held[c.id] = _Held(c, lease)
                self.work.append(
                    _Work(
                        c.id,
                        lease,
                        send_writeback,
                        (self.client, self.resolver, self.mapping, c, lease, self.clock),
                    )
                )
        self._report()
        return bool(claimed)

    def _plan_row(self, session: Session, c: lifecycle.Claimed) -> tuple[str, object]:
        """What to do with a claimed row; a mailing's recipients are prepared in the claim's transaction."""
        if c.kind is not Kind.MAILING_ACTIVITY:
            return "send", None
        if c.mailing_id is None:
            return "failed", Outcome.failure(
                c.id, "mailing activity without a mailing", finished_at=self.clock()
            )
        try:
            with session.begin_nested():
                fan = deliveries.prepare_deliveries(session, c.id, c.mailing_id, now=self.clock())
                if fan.pending:
                    return "job", fan
                # Nothing left to send: the mailing's outcome is already decided.
                verdict = mailing_activity_outcome(fan.remote_recipients, fan.already_delivered)
                if verdict is Status.NO_REMOTE_RECIPIENTS:
                    recording.mark_no_remote_recipients(session, c.id, token=c.token, now=self.clock())
                    return "nrr", None
                if verdict is Status.SENT:
                    recording.mark_sent(
                        session, c.id, token=c.token, dispatcher=self.o.dispatcher, sent_at=self.clock()
                    )
                    return "sent", None
                return "failed", Outcome.failure(
                    c.id,
                    mailing_activity_error(fan.remote_recipients, fan.already_delivered),
                    finished_at=self.clock(),
                )
        except sa_exc.DBAPIError as exc:
            if _database_trouble(exc):
                raise
            log.exception("could not prepare the recipients of writeback %s", c.id)
            return "failed", Outcome.failure(
                c.id, f"internal error: {type(exc).__name__}", finished_at=self.clock()
            )
        except Exception as exc:
            # One mailing's bad data is that row's error; the batch goes on.
            log.exception("could not prepare the recipients of writeback %s", c.id)
            text = " ".join(str(exc).split())[:300]
            return "failed", Outcome.failure(
                c.id, f"internal error: {type(exc).__name__}: {text}", finished_at=self.clock()
            )

    # -- results ------------------------------------------------------------------------------

    def _take(self, outcome: Outcome) -> None:
        """One row's (or recipient's) outcome: does it say Personify360 is unusable?"""
        self.results.append(outcome)
        if outcome.not_sent:
            return
        self.finished += 1
        if outcome.ok:
            self.unreachable_run = self.service_run = 0
            return
        if outcome.auth:
            self._declare(ProblemKind.AUTH, outcome.http_status, outcome.message, None)
            return
        if not outcome.service:
            self.unreachable_run = self.service_run = 0
            return
        self.service_failures += 1
        self.service_run += 1
        self.unreachable_run = self.unreachable_run + 1 if outcome.unreachable else 0
        if outcome.explicit_outage:
            self._declare(ProblemKind.OUTAGE, outcome.http_status, outcome.message, outcome.retry_after)
        elif self.unreachable_run >= self.o.breaker_threshold:
            self._declare(ProblemKind.UNREACHABLE, outcome.http_status, outcome.message, None)
        elif self.service_run >= OUTAGE_MINIMUM and 2 * self.service_failures > self.finished:
            self._declare(ProblemKind.OUTAGE, outcome.http_status, outcome.message, outcome.retry_after)

    def _flush(self) -> bool:
        """Write the outcomes taken so far; on a refusing database keep them for the next try.

        If the database refuses a batch for something in it (not because it is unavailable), each
        outcome is written alone; one that still cannot be written is left to the row's lease: the row
        comes back when it runs out, and is looked for by reference before it is sent again.
        """
        if not self.results:
            return True
        batch = list(self.results)
        try:
            return self._flush_batch(batch)
        except sa_exc.DBAPIError as exc:
            if _database_trouble(exc):
                raise
            log.exception(
                "the queue database refused a batch of %d outcomes; writing them one by one", len(batch)
            )
        for outcome in batch:
            try:
                if not self._flush_batch([outcome]):
                    return False
            except sa_exc.DBAPIError as exc:
                if _database_trouble(exc):
                    raise
                log.error("could not record the outcome of writeback %s: %s", outcome.writeback_id, exc)
                self._forget([outcome])
        return True

    def _forget(self, outcomes: list[Outcome]) -> None:
        """Give up on recording these: their rows come back to the queue when their leases run out."""
        gone = {id(o) for o in outcomes}
        self.results = [o for o in self.results if id(o) not in gone]
        for o in outcomes:
            chunk = self.chunk_of.get(o.delivery_id) if o.delivery_id is not None else None
            if chunk is not None:
                # The recipients of its chunk come back when its lease runs out, and are looked for.
                chunk.lease.lost = True
                self._drop_chunk(chunk)
            elif o.delivery_id is None:
                self.held.pop(o.writeback_id, None)

    def _flush_batch(self, batch: list[Outcome]) -> bool:
        recipients = [o for o in batch if o.delivery_id is not None]
        plain = [o for o in batch if o.delivery_id is None]
        record_now = [o for o in plain if not o.not_sent and not o.held_back and o.writeback_id in self.held]
        # Recipients: recorded, let go unsent (their request was refused before leaving), or held back
        # until the run's verdict on an outage; those of a chunk lost meanwhile are left alone.
        to_record: list[tuple[Outcome, _Chunk]] = []
        to_release: list[tuple[Outcome, _Chunk]] = []
        to_defer: list[tuple[Outcome, _Chunk]] = []
        for o in recipients:
            assert o.delivery_id is not None
            chunk = self.chunk_of.get(o.delivery_id)
            if chunk is None or chunk.lease.lost:
                continue
            if o.not_sent:
                to_release.append((o, chunk))
            elif o.held_back:
                to_defer.append((o, chunk))
            else:
                to_record.append((o, chunk))
        try:
            with write_transaction(self.factory) as session:
                recorded = self._record_recipients(session, to_record)
                self._release_recipients(session, to_release)
                held = self._record(session, record_now)
                # Rows whose requests were refused before leaving (lease short) go back at once.
                unsent = {
                    o.writeback_id: self.held[o.writeback_id].claimed.token
                    for o in plain
                    if o.not_sent and o.writeback_id in self.held
                }
                released = recording.release(session, unsent, now=self._now_for_store()) if unsent else 0
        except sa_exc.DBAPIError as exc:
            if not _database_trouble(exc):
                raise
            self._database_failed(exc)
            return False
        self._database_ok()
        # Committed: now the cycle's own account of things follows.
        done = {id(o) for o in batch}
        self.results = [o for o in self.results if id(o) not in done]
        self._count_recorded(record_now, held)
        for wid in unsent:
            self.held.pop(wid, None)
        self.counts["released"] += released
        self.reclaimable = self.reclaimable or bool(released)
        for o in plain:
            if o.held_back and o.writeback_id in self.held:
                self.held_back.append(o)
        for o, chunk in to_record:
            m = self.mailings.get(chunk.writeback_id)
            if m is not None and o.delivery_id in recorded:
                m.tried += 1
                if not o.ok and m.first_failure is None:
                    m.first_failure = o
            self._outcome_taken(o, chunk)
        for o, chunk in to_release:
            self._outcome_taken(o, chunk)
        for o, chunk in to_defer:
            chunk.deferred.append(o)
            chunk.outstanding -= 1
        self._report()
        return True

    def _record_recipients(self, session: Session, items: list[tuple[Outcome, _Chunk]]) -> set[int]:
        return deliveries.record_deliveries(
            session,
            [
                deliveries.DeliveryResult(
                    o.delivery_id,
                    o.writeback_id,
                    chunk.lease.token,
                    o.ok,
                    o.finished_at,
                    o.activity_id,
                    o.message,
                    o.may_have_arrived,
                    chunk_token=chunk.tokens[o.delivery_id],
                )
                for o, chunk in items
                if o.delivery_id is not None and o.delivery_id in chunk.tokens
            ],
        )

    def _release_recipients(
        self, session: Session, items: list[tuple[Outcome, _Chunk]], *, doubt: bool = False
    ) -> None:
        per_row: dict[tuple[int, int], list[deliveries.Unsent]] = {}
        for o, chunk in items:
            if o.delivery_id is not None and o.delivery_id in chunk.tokens:
                per_row.setdefault((chunk.writeback_id, chunk.lease.token), []).append(
                    deliveries.Unsent(
                        o.delivery_id,
                        chunk.tokens[o.delivery_id],
                        o.finished_at,
                        may_have_arrived=doubt and o.may_have_arrived,
                    )
                )
        for (wid, token), unsent in sorted(per_row.items()):
            deliveries.release_deliveries(session, wid, token, unsent)

    def _outcome_taken(self, o: Outcome, chunk: _Chunk) -> None:
        """A recipient of the chunk is recorded or let go: the chunk is done when none is left."""
        if o.delivery_id is not None:
            chunk.tokens.pop(o.delivery_id, None)
            self.chunk_of.pop(o.delivery_id, None)
        chunk.outstanding -= 1
        if chunk.outstanding <= 0 and not chunk.deferred:
            self._drop_chunk(chunk)

    def _drop_chunk(self, chunk: _Chunk) -> None:
        for did in chunk.tokens:
            self.chunk_of.pop(did, None)
        m = self.mailings.get(chunk.writeback_id)
        if m is not None and chunk in m.chunks:
            m.chunks.remove(chunk)
            m.next_claim = 0.0  # some of its recipients may have come back unsent: look at once

    def _finish_mailing(self, session: Session, m: _Mailing, *, final: bool) -> str:
        """The verdict on a mailing row none of whose chunks are here any more, under the row's lock.

        While another dispatcher holds a chunk of it, the row is theirs to finish ("others"). Recipients
        still pending: claim them ("more"), or, at the end of this run, back to the queue without an
        attempt, those that arrived staying sent. None pending: Sent when all arrived, Error naming how
        many failed, whoever finishes it.
        """
        c = m.claimed
        now = self.clock()
        if c.mailing_id is None or not deliveries.lock_mailing_row(session, c.id, c.token):
            return "lost"
        state = deliveries.mailing_state(
            session, c.id, c.mailing_id, now=now, settle_seconds=self.o.settle_seconds
        )
        if state.live:
            return "others"
        if state.pending:
            if not final and state.claimable and self.problem is None and not self.stop.is_set():
                return "more"
            if m.owner and state.arrived == m.delivered_at_claim and not state.failed and not m.tried:
                released = recording.release(session, {c.id: c.token}, now=self._now_for_store())
                return "released" if released else "lost"
            tried = state.total - state.pending
            if self.problem is not None:
                cause = next((f for ch in m.chunks for f in ch.deferred), None)
                item = recording.PutBack(
                    c.id,
                    c.token,
                    now,
                    AttemptOutcome.OUTAGE,
                    self.stopped_reason or (cause.message if cause else "Personify360 unavailable"),
                    cause.http_status if cause else None,
                    cause.excerpt if cause else None,
                    may_have_arrived=any(f.may_have_arrived for ch in m.chunks for f in ch.deferred),
                )
            else:
                # Not an interruption: the run stopped on purpose (asked to, or a lease running short,
                # or the rest wait for a write that may still land); it says nothing about the row.
                item = recording.PutBack(
                    c.id,
                    c.token,
                    now,
                    AttemptOutcome.STOPPED,
                    f"stopped after {tried:,} of {state.total:,} recipients; the rest go in a later run",
                )
            return "put_back" if recording.put_back(session, [item]) else "lost"
        if mailing_activity_outcome(state.total, state.arrived) is Status.SENT:
            ok = recording.mark_sent(
                session, c.id, token=c.token, dispatcher=self.o.dispatcher, sent_at=now, any_holder=True
            )
            return "sent" if ok else "lost"
        first = m.first_failure
        message = mailing_activity_error(state.total, state.arrived)
        reason = first.message if first is not None else state.first_error
        if reason:
            message += f" (first: {reason})"
        ok = recording.mark_error(
            session,
            c.id,
            token=c.token,
            dispatcher=self.o.dispatcher,
            failed_at=now,
            message=message,
            http_status=first.http_status if first else None,
            response_excerpt=first.excerpt if first else None,
            may_have_arrived=state.uncertain_failure,
            retry_after=self.retry_after,
            any_holder=True,
        )
        return "failed" if ok else "lost"

    def _after_mailing(self, wid: int, verdict: str) -> None:
        m = self.mailings.pop(wid, None)
        if m is not None:
            for chunk in list(m.chunks):
                chunk.lease.lost = True
                self._drop_chunk(chunk)
            if m.owner:
                self.held.pop(wid, None)
        if verdict in ("sent", "failed", "put_back", "released"):
            self.changed.add(wid)
        if verdict == "sent":
            self.counts["sent"] += 1
        elif verdict == "failed":
            self.counts["failed"] += 1
        elif verdict in ("put_back", "released"):
            self.counts["released"] += 1
            self.reclaimable = True

    def _record(self, session: Session, outcomes: list[Outcome]) -> set[int]:
        if not outcomes:
            return set()
        lifecycle.store_constituents(
            session, [(o.writeback_id, *o.resolved) for o in outcomes if o.resolved is not None]
        )
        return recording.record_results(
            session,
            [
                recording.AttemptResult(
                    o.writeback_id,
                    self.held[o.writeback_id].claimed.token,
                    o.ok,
                    o.finished_at,
                    o.http_status,
                    o.message,
                    o.excerpt,
                    may_have_arrived=o.may_have_arrived,
                    checked_absent=o.checked and not o.may_have_arrived,
                )
                for o in outcomes
            ],
            dispatcher=self.o.dispatcher,
            retry_after=self.retry_after,
        )

    def _count_recorded(self, outcomes: list[Outcome], held: set[int]) -> None:
        for o in outcomes:
            self.held.pop(o.writeback_id, None)
            if o.writeback_id not in held:
                log.warning("lost the lease on writeback %s before recording its result", o.writeback_id)
            elif o.ok:
                self.counts["sent"] += 1
            else:
                self.counts["failed"] += 1

    # -- the end of a run ---------------------------------------------------------------------

    def _finish(self) -> None:
        """Record what is left: held-back failures by the run's verdict, and put back what was not sent."""
        deadline = time.monotonic() + (0 if self.giving_up else self.o.database_patience)
        while True:
            try:
                if self._flush():
                    with write_transaction(self.factory) as session:
                        counts = self._settle(session)
                    self._database_ok()
                    self._after_settle(counts)
                    self._fold_counts()
                    return
            except sa_exc.DBAPIError as exc:
                if not _database_trouble(exc):
                    raise
                self._database_failed(exc)
            if self.giving_up or time.monotonic() >= deadline or (self.stop.is_set() and self.db_tries > 3):
                break
            time.sleep(max(0.0, self.next_db_try - time.monotonic()))
        unrecorded = len(set(self.held) | {o.writeback_id for o in self.results})
        self.giving_up = True
        self._database_problem_text(unrecorded)
        log.error("dispatcher cycle ends without recording %d rows: %s", unrecorded, self.stopped_reason)

    def _fold_counts(self) -> None:
        """Fold this run's changes into the kept status totals, so reading them stays constant time, keep
        the change feed's and the runs' tables to their newest entries, and roll up the charts' hours.

        Each in a transaction of its own: one that fails (the database drops, a role lacks a grant) costs
        the others nothing, and the next run does it.
        """
        now = self.clock()
        for what, step in (
            ("the status totals were not folded", counters.fold),
            ("the change feed was not trimmed", changes.trim),
            ("old dispatcher runs were not deleted", lambda session: runs.trim(session, now)),
            ("the charts' hours were not rolled up", lambda session: charts.roll_up(session, now)),
        ):
            try:
                with write_transaction(self.factory) as session:
                    step(session)
            except sa_exc.DBAPIError as exc:  # the totals and charts are exact meanwhile
                log.warning("%s: %s", what, exc)

    def _settle(self, session: Session) -> dict[str, int]:
        now = self.clock()
        counts = {"sent": 0, "failed": 0, "released": 0}
        outage = self.problem is not None
        back = [o for o in self.held_back if o.writeback_id in self.held]
        if back and outage:
            # Whom the email led to is kept: a write that may have arrived is looked for under that
            # constituent next time, even if the address has moved to someone else meanwhile.
            lifecycle.store_constituents(
                session, [(o.writeback_id, *o.resolved) for o in back if o.resolved is not None]
            )
            put = recording.put_back(
                session,
                [
                    recording.PutBack(
                        o.writeback_id,
                        self.held[o.writeback_id].claimed.token,
                        now,
                        AttemptOutcome.OUTAGE,
                        self.stopped_reason or o.message,
                        o.http_status,
                        o.excerpt,
                        o.may_have_arrived,
                    )
                    for o in back
                ],
            )
            counts["released"] += len(put)
        elif back:
            # Not an outage after all: these were ordinary failures of their rows, and count.
            held = self._record(session, back)
            for o in back:
                if o.writeback_id in held:
                    counts["sent" if o.ok else "failed"] += 1
        settled = {o.writeback_id for o in back}
        for wid, m in sorted(self.mailings.items()):
            # Whatever of its chunks is still here: recipients held back for the verdict are recorded
            # (not an outage) or let go with their doubt (an outage), the others were never sent.
            deferred = [(o, ch) for ch in m.chunks for o in ch.deferred]
            if outage:
                self._release_recipients(session, deferred, doubt=True)
            else:
                self._record_recipients(session, deferred)
            answered = {o.delivery_id for o, _ch in deferred}
            never = [
                (Outcome(wid, False, "not sent", delivery_id=did, finished_at=now), ch)
                for ch in m.chunks
                for did in ch.tokens
                if did not in answered
            ]
            self._release_recipients(session, never)
            # Finished here, or back to the queue with what was tried kept, or left to the dispatchers
            # still holding chunks of it.
            verdict = self._finish_mailing(session, m, final=True)
            if verdict in ("sent", "failed"):
                counts[verdict] += 1
            elif verdict in ("put_back", "released"):
                counts["released"] += 1
            settled.add(wid)
        unsent = {wid: h.claimed.token for wid, h in self.held.items() if wid not in settled}
        counts["released"] += recording.release(session, unsent, now=self._now_for_store())
        return counts

    def _after_settle(self, counts: dict[str, int]) -> None:
        for key, n in counts.items():
            self.counts[key] += n
        self.held_back.clear()
        self.changed.update(self.mailings)
        for m in self.mailings.values():
            for chunk in m.chunks:
                chunk.lease.lost = True
        self.mailings.clear()
        self.chunk_of.clear()
        self.held.clear()
        self.work.clear()
        self._report()

    # -- leases -------------------------------------------------------------------------------

    def _renew(self) -> None:
        chunks = [ch for m in self.mailings.values() for ch in m.chunks if not ch.lease.lost]
        if not self.held and not chunks:
            return
        held_chunks: dict[int, tuple[int, dict[int, int]]] = {}
        for ch in chunks:
            held_chunks.setdefault(ch.writeback_id, (ch.lease.token, {}))[1].update(ch.tokens)
        taken = RowLease.now()
        try:
            with write_transaction(self.factory) as session:
                # Rows first, then their deliveries, as every transaction on a shared mailing does.
                still = lifecycle.renew_leases(
                    session,
                    {wid: h.claimed.token for wid, h in self.held.items()},
                    lease_seconds=self.o.lease_seconds,
                    now=self._now_for_store(),
                )
                recipients = deliveries.renew_chunks(
                    session, held_chunks, lease_seconds=self.o.lease_seconds, now=self._now_for_store()
                )
        except sa_exc.DBAPIError as exc:
            if not _database_trouble(exc):
                raise
            # The leases run on; the senders see them running short and stop sending in time.
            self._database_failed(exc)
            return
        self._database_ok()
        for wid, h in list(self.held.items()):
            if wid in still:
                h.lease.extend(self.o.lease_seconds, taken)
            else:
                h.lease.lost = True
                del self.held[wid]
                m = self.mailings.pop(wid, None)
                for ch in m.chunks if m is not None else []:
                    ch.lease.lost = True
                log.warning("lost the lease on writeback %s: another dispatcher has it now", wid)
        for ch in chunks:
            if ch.lease.lost:
                continue
            if all(did in recipients for did in ch.tokens):
                ch.lease.extend(self.o.lease_seconds, taken)
            else:
                ch.lease.lost = True
                self._drop_chunk(ch)
                log.warning("lost a chunk of the recipients of writeback %s", ch.writeback_id)

    # -- a database that refuses --------------------------------------------------------------

    def _database_failed(self, exc: BaseException) -> None:
        # The driver's own words ("database is locked"), without SQLAlchemy's wrapping and the SQL.
        words = str(getattr(exc, "orig", None) or exc).strip()
        first = words.splitlines()[0] if words else type(exc).__name__
        self.db_error = first[:300]
        if self.db_trouble_since is None:
            self.db_trouble_since = time.monotonic()
            self.db_tries = 0
            log.warning(
                "the queue database refused a write (%s); what was done is kept and retried", self.db_error
            )
        backoff = DATABASE_BACKOFF[min(self.db_tries, len(DATABASE_BACKOFF) - 1)]
        self.db_tries += 1
        self.next_db_try = time.monotonic() + backoff

    def _database_ok(self) -> None:
        if self.db_trouble_since is not None:
            log.warning(
                "the queue database takes writes again after %.1f s", time.monotonic() - self.db_trouble_since
            )
        self.db_trouble_since = None
        self.db_tries = 0
        self.next_db_try = 0.0

    def _database_problem(self, exc: BaseException) -> None:
        self._database_failed(exc)
        self.problem = ProblemKind.DATABASE
        self.stopped_reason = f"the queue database could not be used ({self.db_error}); nothing was sent"

    def _database_problem_text(self, unrecorded: int) -> None:
        self.problem = self.problem or ProblemKind.DATABASE
        text = f"the queue database refused writes ({self.db_error})"
        if unrecorded:
            text += (
                f"; {unrecorded:,} rows could not be recorded: they return to the queue when their leases "
                "run out, and anything already sent is found by its reference, not sent again"
            )
        self.stopped_reason = text if self.stopped_reason is None else f"{self.stopped_reason}; {text}"

    def _report(self) -> None:
        if self.report is None:
            return
        done = self.counts["sent"] + self.counts["failed"] + self.counts["nrr"]
        self.report(
            CycleProgress(
                claimed=self.counts["claimed"],
                sent=self.counts["sent"],
                failed=self.counts["failed"],
                no_remote_recipients=self.counts["nrr"],
                in_flight=len(self.held),
                remaining=max(0, self.remaining - done),
            )
        )
