"""Dispatcher runs as the database saw them: each run's row in ``dispatcher_run``, the newest ones, and
the queue's waiting work sampled when a run begins.

Every dispatcher, headless or in a console, records its runs here, so a console that does not dispatch
can say who last ran, when, and how it went, and warn when nobody has run for a while.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.orm import Session

from writeback_console.domain import RunResult, Status
from writeback_console.store import counters, lifecycle
from writeback_console.store.models import DispatcherRun
from writeback_console.store.models import Writeback as W

#: Runs older than this are trimmed by the dispatchers: the table stays small.
KEEP_DAYS = 35


@dataclass(frozen=True, slots=True)
class QueueSample:
    """The work waiting when a run began: New rows, Scheduled ones that were due, Error rows with
    attempts left, and when the oldest of those was created (None when nothing waited)."""

    new: int
    scheduled: int
    error: int
    oldest_at: datetime | None

    @property
    def total(self) -> int:
        return self.new + self.scheduled + self.error


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One recorded dispatcher run, as plain data for screens and commands."""

    id: int
    dispatcher: str
    #: The database user it ran as (PostgreSQL); None on SQLite.
    db_user: str | None
    started_at: datetime
    finished_at: datetime
    interval_seconds: int | None
    result: RunResult
    summary: str
    claimed: int
    sent: int
    failed: int
    sample: QueueSample | None

    @property
    def who(self) -> str:
        """The dispatcher's name, with the database user it ran as where there is one."""
        if self.db_user and self.db_user not in self.dispatcher:
            return f"{self.dispatcher} ({self.db_user})"
        return self.dispatcher


def queue_sample(session: Session, now: datetime) -> QueueSample:
    """The waiting work at ``now``, in three bounded statements.

    New comes from the kept totals (constant time however many were imported); its oldest row is the
    first entry of ``ix_writeback_status_created_at``. Due Scheduled rows and Error rows with attempts
    left are counted along the same index within those two statuses alone (EXPLAIN on both backends: an
    index search by status), so a big import waiting as New is never read row by row.
    """
    new = counters.totals(session).get(Status.NEW, 0)
    oldest_new = session.execute(
        select(W.created_at).where(W.status == Status.NEW.value).order_by(W.created_at, W.id).limit(1)
    ).scalar_one_or_none()
    due_scheduled = and_(W.status == Status.SCHEDULED.value, W.scheduled_for <= now)
    retry_left = and_(W.status == Status.ERROR.value, W.attempts < W.max_attempts)
    scheduled, error, oldest_other = session.execute(
        select(
            func.coalesce(func.sum(case((W.status == Status.SCHEDULED.value, 1), else_=0)), 0),
            func.coalesce(func.sum(case((W.status == Status.ERROR.value, 1), else_=0)), 0),
            func.min(W.created_at),
        ).where(
            # Within the open rows, and only these two statuses of them: never a scan of New ones.
            W.status.in_([Status.ERROR.value, Status.SCHEDULED.value]),
            or_(due_scheduled, retry_left),
        )
    ).one()
    candidates = [t for t in (oldest_new, oldest_other) if t is not None]
    return QueueSample(int(new), int(scheduled), int(error), min(candidates) if candidates else None)


def record_run(
    session: Session,
    *,
    dispatcher: str,
    started_at: datetime,
    finished_at: datetime,
    result: RunResult,
    summary: str,
    claimed: int = 0,
    sent: int = 0,
    failed: int = 0,
    interval_seconds: int | None = None,
    sample: QueueSample | None = None,
) -> int:
    """Add one run's row in the caller's transaction; returns its id. ``db_user`` is the server's to
    fill (PostgreSQL's ``session_user``), never the caller's."""
    run = DispatcherRun(
        dispatcher=dispatcher[:200],
        started_at=started_at,
        finished_at=finished_at,
        interval_seconds=interval_seconds,
        result=RunResult(result).value,
        summary=summary,
        claimed=claimed,
        sent=sent,
        failed=failed,
        waiting_new=sample.new if sample else None,
        waiting_scheduled=sample.scheduled if sample else None,
        waiting_error=sample.error if sample else None,
        oldest_waiting_at=sample.oldest_at if sample else None,
    )
    session.add(run)
    session.flush()
    return run.id


def latest_runs(session: Session, limit: int = 20) -> list[RunRecord]:
    """The newest runs, newest first (by when they finished), along ``ix_dispatcher_run_finished_at``."""
    query = (
        select(DispatcherRun)
        .order_by(DispatcherRun.finished_at.desc(), DispatcherRun.id.desc())
        .limit(max(0, limit))
    )
    return [_record(run) for run in session.scalars(query)]


def latest_run(session: Session) -> RunRecord | None:
    """The run that finished last, or None when no dispatcher ever recorded one."""
    runs = latest_runs(session, 1)
    return runs[0] if runs else None


def latest_and_now(session: Session) -> tuple[RunRecord | None, datetime]:
    """The newest run and the database's clock, by which its age is judged (a console's own clock may
    differ from the server's that dispatchers record by)."""
    return latest_run(session), lifecycle.database_now(session)


def sending_now(session: Session, now: datetime) -> tuple[str, ...]:
    """The dispatchers holding a live lease at ``now`` (the database's clock), the latest-held first.

    A run is recorded only when it ends, so a long one (a big mailing) leaves the newest record older
    than two intervals while its dispatcher is busy. A Processing row whose lease has not run out says
    one is at work: the Processing rows are few and in ``ix_writeback_open``, and a mailing's chunk
    holders keep its row's lease at least as long as their own, so the row alone answers for them too.
    """
    newest = func.max(W.lease_expires_at)
    query = (
        select(W.locked_by, newest)
        .where(W.status == Status.PROCESSING.value, W.lease_expires_at > now, W.locked_by.is_not(None))
        .group_by(W.locked_by)
        .order_by(newest.desc(), W.locked_by)
    )
    return tuple(str(holder) for holder, _ in session.execute(query))


def latest_now_and_sending(session: Session) -> tuple[RunRecord | None, datetime, tuple[str, ...]]:
    """:func:`latest_and_now`, and who holds a live lease now (:func:`sending_now`)."""
    latest, now = latest_and_now(session)
    return latest, now, sending_now(session, now)


def trim(session: Session, now: datetime, keep_days: int = KEEP_DAYS) -> int:
    """Delete runs that finished more than ``keep_days`` before ``now``; returns how many."""
    cutoff = now - timedelta(days=keep_days)
    deleted = session.execute(delete(DispatcherRun).where(DispatcherRun.finished_at < cutoff))
    return int(getattr(deleted, "rowcount", 0) or 0)


def _record(run: DispatcherRun) -> RunRecord:
    sampled = run.waiting_new is not None
    sample = (
        QueueSample(
            int(run.waiting_new or 0),
            int(run.waiting_scheduled or 0),
            int(run.waiting_error or 0),
            run.oldest_waiting_at,
        )
        if sampled
        else None
    )
    return RunRecord(
        id=run.id,
        dispatcher=run.dispatcher,
        db_user=run.db_user,
        started_at=run.started_at,
        finished_at=run.finished_at,
        interval_seconds=run.interval_seconds,
        result=RunResult(run.result),
        summary=run.summary,
        claimed=run.claimed,
        sent=run.sent,
        failed=run.failed,
        sample=sample,
    )


# -- in words, for the console's status bar and banner and the summary command -----------------------

#: What a console that does not dispatch tells its user to start.
START_ONE = "writeback-console dispatch --forever"
RESULT_WORDS = {
    RunResult.OK: "ok",
    RunResult.DISABLED: "writebacks switched off",
    RunResult.PROBLEM: "Personify360 problem",
    RunResult.STOPPED: "stopped early",
}


def ago(delta: timedelta) -> str:
    """A time span as people say it: "just now", "4 min ago", "3 h ago", "2 days ago"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def local_time(moment: datetime, now: datetime) -> str:
    """The local clock time, with the date when it was not today."""
    local = moment.astimezone()
    return (
        local.strftime("%H:%M")
        if local.date() == now.astimezone().date()
        else local.strftime("%Y-%m-%d %H:%M")
    )


def last_run_line(latest: RunRecord | None, now: datetime) -> str:
    """One line: who ran last, when, and how it went ("Last dispatcher run: host:12 (writeback), 4 min
    ago, ok")."""
    if latest is None:
        return "Last dispatcher run: none recorded on this queue"
    return (
        f"Last dispatcher run: {latest.who}, {ago(now - latest.finished_at)}, {RESULT_WORDS[latest.result]}"
    )


def sending_line(sending: Sequence[str]) -> str:
    """Who is sending now, in one sentence ("A dispatcher is sending now (holder srv-2:88).")."""
    if len(sending) == 1:
        return f"A dispatcher is sending now (holder {sending[0]})."
    return f"{len(sending)} dispatchers are sending now (holders {', '.join(sending)})."


def describe_latest(
    latest: RunRecord | None, now: datetime, *, sending: Sequence[str] = ()
) -> tuple[str, str]:
    """The status bar's words on the newest run, and its tooltip (local time and the whole summary);
    first who is sending now, if a dispatcher holds a live lease (``sending``, :func:`sending_now`)."""
    if latest is None:
        line = "No dispatcher run recorded on this queue"
        tooltip = "No dispatcher has ever recorded a run here."
    else:
        line = f"{last_run_line(latest, now)}: {latest.summary}"
        finished = latest.finished_at.astimezone()
        every = f", runs every {latest.interval_seconds // 60} min" if latest.interval_seconds else ""
        tooltip = (
            f"Last run by {latest.who}{every}\nFinished {finished:%Y-%m-%d %H:%M:%S} local time "
            f"({ago(now - latest.finished_at)}): {RESULT_WORDS[latest.result]}\n{latest.summary}"
        )
    if sending:
        busy = sending_line(sending)
        return f"{busy} {line}", f"{busy} Its run is recorded when it ends.\n{tooltip}"
    return line, tooltip


def overdue_text(
    latest: RunRecord | None, now: datetime, interval_seconds: int, *, sending: Sequence[str] = ()
) -> str | None:
    """The banner when no dispatcher has finished a run for two intervals (the newest run's own interval
    when it recorded one, else ``interval_seconds``), or has never run; None while they keep running,
    and while one is sending now (``sending``: it holds a live lease, its run not over yet)."""
    if sending:
        return None
    if latest is None:
        return (
            f"No dispatcher has ever run on this queue; writebacks are not being sent. Start one: {START_ONE}"
        )
    every = latest.interval_seconds or interval_seconds
    if now - latest.finished_at <= timedelta(seconds=2 * every):
        return None
    since = f"{local_time(latest.finished_at, now)} ({ago(now - latest.finished_at)})"
    return f"No dispatcher has run since {since}; writebacks are not being sent. Start one: {START_ONE}"
