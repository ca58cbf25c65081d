"""One dispatcher cycle: recover, schedule, claim, send in parallel, record — by the rules of DESIGN §2.

Plain Python, no Qt: the GUI runs :func:`run_cycle` in a worker thread, the command line runs it
headless. The calling thread owns every database session; worker threads only talk to Personify360.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from writeback_console.dispatch.send import Outcome, Resolver, send_recipient, send_writeback
from writeback_console.domain import Kind, mailing_activity_error, utcnow
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.mapping import ActivityMapping
from writeback_console.store import queue
from writeback_console.store.engine import read_session, write_transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchOptions:
    concurrency: int = 8
    lease_seconds: float = 900
    batch_size: int = 200
    #: Consecutive "credentials rejected" or "unreachable" answers that stop the cycle.
    breaker_threshold: int = 3
    #: Results are written in batches at most this far apart (seconds).
    flush_interval: float = 0.2
    dispatcher: str = field(default_factory=queue.dispatcher_identity)


@dataclass(frozen=True)
class CycleProgress:
    """Where a running cycle is, for the status bar and the log."""

    claimed: int
    sent: int
    failed: int
    no_remote_recipients: int
    in_flight: int
    remaining: int


@dataclass(frozen=True)
class CycleSummary:
    started_at: datetime
    finished_at: datetime
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    no_remote_recipients: int = 0
    #: Claimed rows put back unsent (stopped, or Personify360 unusable); no attempt counted.
    released: int = 0
    recovered: int = 0
    auto_scheduled: int = 0
    disabled: bool = False
    #: Why the cycle stopped early, in words; None when it ran to the end.
    stopped_reason: str | None = None
    #: "auth" or "unreachable" when Personify360 could not be used at all.
    problem: str | None = None
    #: Every writeback whose row this cycle changed, for screens to refresh just those.
    changed_ids: tuple[int, ...] = ()

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def describe(self) -> str:
        if self.disabled:
            return "writebacks are switched off: nothing was sent"
        parts = [
            f"claimed {self.claimed:,}",
            f"sent {self.sent:,}",
            f"failed {self.failed:,}",
        ]
        if self.no_remote_recipients:
            parts.append(f"no remote recipients {self.no_remote_recipients:,}")
        if self.released:
            parts.append(f"put back unsent {self.released:,}")
        if self.recovered:
            parts.append(f"recovered from a stopped dispatcher {self.recovered:,}")
        if self.auto_scheduled:
            parts.append(f"mailing activity scheduled {self.auto_scheduled:,}")
        text = ", ".join(parts) + f" in {self.seconds:.1f} s"
        if self.stopped_reason:
            text = f"stopped early: {self.stopped_reason}; " + text
        return text


@dataclass
class _MailingJob:
    """A mailing-activity writeback being fanned out to its recipients."""

    claimed: queue.Claimed
    remote: int
    delivered: int
    outstanding: int
    failures: list[Outcome] = field(default_factory=list)
    tripped: bool = False


ProgressCallback = Callable[[CycleProgress], None]


def run_cycle(
    factory: sessionmaker[Session],
    client: PersonifyClient,
    mapping: ActivityMapping,
    options: DispatchOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> CycleSummary:
    """Run one dispatcher cycle and say what it did."""
    return _Cycle(factory, client, mapping, options or DispatchOptions(), progress, stop, clock).run()


class _Cycle:
    def __init__(
        self,
        factory: sessionmaker[Session],
        client: PersonifyClient,
        mapping: ActivityMapping,
        options: DispatchOptions,
        progress: ProgressCallback | None,
        stop: threading.Event | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.factory = factory
        self.client = client
        self.mapping = mapping
        self.o = options
        self.report = progress
        self.stop = stop or threading.Event()
        self.clock = clock
        self.resolver = Resolver(client)
        self.counts = {"claimed": 0, "sent": 0, "failed": 0, "nrr": 0, "released": 0}
        self.held: dict[int, queue.Claimed] = {}
        self.changed: set[int] = set()
        self.jobs: dict[int, _MailingJob] = {}
        self.work: deque[tuple[Callable[..., Outcome], tuple[object, ...]]] = deque()
        self.results: list[Outcome] = []
        #: Failures that may only mean Personify360 is unusable; decided once the cycle ends.
        self.held_back: list[Outcome] = []
        self.breaker_run = 0
        self.problem: str | None = None
        self.stopped_reason: str | None = None
        self.remaining = 0

    # -- the cycle ----------------------------------------------------------------------------

    def run(self) -> CycleSummary:
        started = self.clock()
        with read_session(self.factory) as session:
            if not queue.writeback_enabled(session):
                return CycleSummary(started, self.clock(), disabled=True)
            self.skip = sorted(queue.disabled_accounts(session))
        with write_transaction(self.factory) as session:
            recovered = queue.recover_expired_leases(
                session, now=self.clock(), lease_seconds=self.o.lease_seconds
            )
            for wid in recovered:
                queue.mark_deliveries_uncertain(session, wid)
        with write_transaction(self.factory) as session:
            scheduled = queue.auto_schedule_mailings(session, now=self.clock(), actor=self.o.dispatcher)
        with read_session(self.factory) as session:
            self.remaining = queue.count_eligible(session, started, self.skip)
        self.started = started
        self._send_all()
        if self.stop.is_set() and self.stopped_reason is None:
            self.stopped_reason = "asked to stop"
        summary = CycleSummary(
            started_at=started,
            finished_at=self.clock(),
            claimed=self.counts["claimed"],
            sent=self.counts["sent"],
            failed=self.counts["failed"],
            no_remote_recipients=self.counts["nrr"],
            released=self.counts["released"],
            recovered=len(recovered),
            auto_scheduled=len(scheduled),
            stopped_reason=self.stopped_reason,
            problem=self.problem,
            changed_ids=tuple(sorted(self.changed | set(recovered) | set(scheduled))),
        )
        log.info("dispatcher cycle: %s", summary.describe())
        return summary

    def _send_all(self) -> None:
        in_flight: set[Future[Outcome]] = set()
        exhausted = False
        last_flush = last_renew = time.monotonic()
        with ThreadPoolExecutor(self.o.concurrency, thread_name_prefix="writeback-send") as pool:
            while True:
                stopping = self.stop.is_set() or self.problem is not None
                # Keep twice the pool's width queued, so senders never wait for the database.
                while not stopping and len(in_flight) < 2 * self.o.concurrency:
                    if not self.work and not exhausted:
                        exhausted = not self._claim_batch()
                    if not self.work:
                        break
                    fn, args = self.work.popleft()
                    in_flight.add(pool.submit(fn, *args))
                if not in_flight:
                    break
                done, in_flight = wait(in_flight, timeout=self.o.flush_interval, return_when=FIRST_COMPLETED)
                for future in done:
                    self._take(future.result())
                now = time.monotonic()
                if self.results and (now - last_flush >= self.o.flush_interval or len(self.results) >= 100):
                    self._flush()
                    last_flush = now
                if now - last_renew >= self.o.lease_seconds / 3:
                    self._renew()
                    last_renew = now
        self._flush()
        self._settle_held_back()
        if self.work or self.held:
            self._release_unsent()

    # -- claiming -----------------------------------------------------------------------------

    def _claim_batch(self) -> bool:
        """Claim the next batch; False when nothing eligible is left."""
        with write_transaction(self.factory) as session:
            claimed = queue.claim(
                session,
                dispatcher=self.o.dispatcher,
                run_started_at=self.started,
                limit=self.o.batch_size,
                now=self.clock(),
                skip_accounts=self.skip,
            )
            for c in claimed:
                self.counts["claimed"] += 1
                self.changed.add(c.id)
                self.held[c.id] = c
                if c.kind is Kind.MAILING_ACTIVITY:
                    self._fan_out(session, c)
                else:
                    self.work.append((send_writeback, (self.client, self.resolver, self.mapping, c)))
        self._report()
        return bool(claimed)

    def _fan_out(self, session: Session, c: queue.Claimed) -> None:
        if c.mailing_id is None:
            self.results.append(Outcome.failure(c.id, "mailing activity without a mailing"))
            return
        fan = queue.prepare_deliveries(session, c.id, c.mailing_id, now=self.clock())
        if fan.remote_recipients == 0:
            queue.mark_no_remote_recipients(session, c.id, dispatcher=self.o.dispatcher, now=self.clock())
            self.held.pop(c.id)
            self.counts["nrr"] += 1
            return
        if not fan.pending:
            queue.mark_sent(session, c.id, dispatcher=self.o.dispatcher, sent_at=self.clock())
            self.held.pop(c.id)
            self.counts["sent"] += 1
            return
        self.jobs[c.id] = _MailingJob(c, fan.remote_recipients, fan.already_delivered, len(fan.pending))
        for recipient in fan.pending:
            self.work.append((send_recipient, (self.client, self.mapping, c, fan.mailing_name, recipient)))

    # -- results ------------------------------------------------------------------------------

    def _take(self, outcome: Outcome) -> None:
        if outcome.breaker:
            self.breaker_run += 1
            if self.breaker_run >= self.o.breaker_threshold and self.problem is None:
                self.problem = outcome.breaker
                self.stopped_reason = (
                    "credentials rejected by Personify360"
                    if outcome.breaker == "auth"
                    else "Personify360 cannot be reached"
                ) + f" ({outcome.message}); claimed rows were put back"
                log.warning("dispatcher stopping: %s", self.stopped_reason)
        elif outcome.ok or outcome.http_status is not None:
            self.breaker_run = 0
        self.results.append(outcome)

    def _flush(self) -> None:
        if not self.results:
            return
        batch, self.results = self.results, []
        now = self.clock()
        with write_transaction(self.factory) as session:
            recipients = [o for o in batch if o.delivery_id is not None]
            self.held_back += [o for o in batch if o.delivery_id is None and o.breaker and not o.ok]
            plain = [o for o in batch if o.delivery_id is None and not (o.breaker and not o.ok)]
            queue.record_deliveries(
                session,
                [
                    queue.DeliveryResult(
                        o.delivery_id, o.ok, o.finished_at, o.activity_id, o.message, o.may_have_arrived
                    )
                    for o in recipients
                    if o.delivery_id is not None
                ],
            )
            for outcome in recipients:
                self._count_recipient(session, outcome, now)
            self._record_writebacks(session, plain)
        self._report()

    def _record_writebacks(self, session: Session, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        queue.store_constituents(
            session, [(o.writeback_id, *o.resolved) for o in outcomes if o.resolved is not None]
        )
        held = queue.record_results(
            session,
            [
                queue.AttemptResult(
                    o.writeback_id,
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
        )
        for o in outcomes:
            self.held.pop(o.writeback_id, None)
            if o.writeback_id not in held:
                log.warning("lost the lease on writeback %s before recording its result", o.writeback_id)
            elif o.ok:
                self.counts["sent"] += 1
            else:
                self.counts["failed"] += 1

    def _count_recipient(self, session: Session, outcome: Outcome, now: datetime) -> None:
        """A recipient's outcome (already recorded) towards its mailing; the last one settles the row."""
        job = self.jobs[outcome.writeback_id]
        if outcome.breaker and not outcome.ok:
            job.tripped = True
        job.outstanding -= 1
        if outcome.ok:
            job.delivered += 1
        else:
            job.failures.append(outcome)
        if job.outstanding == 0:
            self._finish_job(session, job, now)

    def _finish_job(self, session: Session, job: _MailingJob, now: datetime) -> None:
        wid = job.claimed.id
        del self.jobs[wid]
        if job.tripped and self.problem is not None:
            # Personify360 was unusable: put the row back; the recipients that arrived stay sent.
            self.counts["released"] += queue.release(session, [wid], dispatcher=self.o.dispatcher)
            self.held.pop(wid, None)
            return
        if job.delivered >= job.remote:
            queue.mark_sent(session, wid, dispatcher=self.o.dispatcher, sent_at=now)
            self.counts["sent"] += 1
        else:
            first = job.failures[0] if job.failures else None
            message = mailing_activity_error(job.remote, job.delivered)
            if first is not None:
                message += f" (first: {first.message})"
            queue.mark_error(
                session,
                wid,
                dispatcher=self.o.dispatcher,
                failed_at=now,
                message=message,
                http_status=first.http_status if first else None,
                response_excerpt=first.excerpt if first else None,
                may_have_arrived=any(f.may_have_arrived for f in job.failures),
            )
            self.counts["failed"] += 1
        self.held.pop(wid, None)

    def _settle_held_back(self) -> None:
        """Failures that looked like "Personify360 unusable": put back if it was, errors otherwise."""
        if not self.held_back:
            return
        outcomes, self.held_back = self.held_back, []
        with write_transaction(self.factory) as session:
            if self.problem is not None:
                ids = [o.writeback_id for o in outcomes]
                self.counts["released"] += queue.release(session, ids, dispatcher=self.o.dispatcher)
                for wid in ids:
                    self.held.pop(wid, None)
            else:
                self._record_writebacks(session, outcomes)

    def _release_unsent(self) -> None:
        """Rows claimed but never sent (stopping, or Personify360 unusable) go back as they were."""
        self.work.clear()
        ids = list(self.held)
        with write_transaction(self.factory) as session:
            self.counts["released"] += queue.release(session, ids, dispatcher=self.o.dispatcher)
        self.held.clear()
        self.jobs.clear()

    def _renew(self) -> None:
        if self.held:
            with write_transaction(self.factory) as session:
                queue.renew_leases(session, list(self.held), dispatcher=self.o.dispatcher, now=self.clock())

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
