"""The dashboard's charts: writebacks sent and attempts failed per hour or day, failures by reason, the
queue's depth and the age of its oldest waiting writeback, each read with bounded, indexed queries.

Transitions are counted from the status history: a writeback sent is a ``writeback_event`` reaching
Sent; a failure is an ``attempt`` that ended in error (a retry that fails again counts again, which a
count of rows reaching Error would not show for a row put back or failing twice). ``roll_up`` adds the
complete hours into ``chart_hour`` (at the end of every dispatcher run); a chart reads those and counts
only the hours after ``chart_rollup.rolled_until`` from the events themselves, so drawing 30 days never
counts 30 days of events. An hour is rolled up once and never again, so hours whose writebacks retention
pruned since keep their counts.

The queue's depth is a state, not a transition: it cannot be read back from events, so each dispatcher
run records it as it began (``dispatcher_run``: New, due Scheduled, Error with attempts left, and when
the oldest of them was queued), and a chart shows the last sample of each hour or day.

Times are UTC hours; days are the console's local days (a ZoneInfo), made of the UTC hours that start in
them, so a day of a daylight saving change has 23 or 25 hours.
"""

from __future__ import annotations

import os
import time as time_module
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, and_, func, insert, literal_column, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from writeback_console.domain import AttemptOutcome, Status
from writeback_console.error_groups import error_reason
from writeback_console.store.models import Attempt, ChartHour, ChartRollup, DispatcherRun, WritebackEvent
from writeback_console.store.rows import W

Bucket = Literal["hour", "day"]
#: ``chart_hour.series``: statuses reached, and failed attempts by reason.
STATUS_SERIES, REASON_SERIES = "status", "reason"
#: An hour is rolled up only once it ended this long ago: a transaction still open then (PostgreSQL
#: stamps an event with its transaction's start) could otherwise add to an hour already counted.
SAFETY_MARGIN = timedelta(hours=1)
#: At most this many hours per roll-up (a week), so a dispatcher run's end stays short.
ROLL_UP_HOURS = 24 * 7
#: Only one session rolls up at a time (PostgreSQL advisory lock key: "wbcharts").
ROLL_UP_LOCK = 0x7762636861727473
#: Reasons drawn by name; the rest are "other".
TOP_REASONS = 5
OTHER = "other"
#: ``chart_hour.label`` holds at most this much of a reason.
LABEL_LIMIT = 200
HOUR = timedelta(hours=1)
#: Hours not rolled up yet are counted from the events when drawn, but at most this many (the newest):
#: a queue upgraded with months of history, or whose dispatchers stopped for days, must not make one
#: redraw count every event since. Older hours not rolled up are reported as not counted yet.
LIVE_HOURS = 48


class SystemZone(tzinfo):
    """The computer's own time zone with its daylight saving rules (``time.localtime``), for a console
    whose zone has no name Python can look up."""

    @staticmethod
    def _local(dt: datetime | None) -> time_module.struct_time:
        if dt is None:
            return time_module.localtime()
        fields = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, 0, 0, -1)
        return time_module.localtime(time_module.mktime(fields))

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(seconds=self._local(dt).tm_gmtoff)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return self._local(dt).tm_zone

    def fromutc(self, dt: datetime) -> datetime:
        seconds = (dt.replace(tzinfo=None) - datetime(1970, 1, 1)).total_seconds()
        return dt + timedelta(seconds=time_module.localtime(seconds).tm_gmtoff)


def local_zone() -> tzinfo:
    """The console's time zone: ``TZ`` when it names a zone, else the computer's own."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ValueError, ZoneInfoNotFoundError):
            pass
    return SystemZone()


def hour_floor(moment: datetime) -> datetime:
    """The start of the UTC hour ``moment`` is in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_of(session: Session, column: InstrumentedAttribute[Any]) -> ColumnElement[Any]:
    """The UTC hour of a stored time, in SQL: PostgreSQL truncates, SQLite keeps "YYYY-MM-DD HH"."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", column))
    return func.substr(column, 1, 13)


def _hour_value(value: datetime | str) -> datetime:
    if isinstance(value, str):
        return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rolled_until(session: Session) -> datetime | None:
    """Up to when ``chart_hour`` holds every hour (None: nothing rolled up yet)."""
    return session.execute(select(ChartRollup.rolled_until).where(ChartRollup.id == 1)).scalar_one_or_none()


def _has_rollup_row(session: Session) -> bool:
    return session.execute(select(ChartRollup.id).where(ChartRollup.id == 1)).first() is not None


def _oldest_hour(session: Session) -> datetime | None:
    """The hour of the oldest event or failed attempt (two index ends)."""
    first_event = session.execute(select(func.min(WritebackEvent.at))).scalar()
    first_failure = session.execute(
        select(func.min(Attempt.finished_at)).where(Attempt.outcome == AttemptOutcome.ERROR.value)
    ).scalar()
    found = [_hour_value(t) for t in (first_event, first_failure) if t is not None]
    return hour_floor(min(found)) if found else None


def _status_hours(session: Session, since: datetime, until: datetime) -> dict[tuple[datetime, str], int]:
    """Events per hour and status reached, counted from ``writeback_event`` (index on ``at``)."""
    hour = _hour_of(session, WritebackEvent.at)
    query = (
        select(hour, WritebackEvent.to_status, func.count())
        .where(WritebackEvent.at >= since, WritebackEvent.at < until)
        .group_by(hour, WritebackEvent.to_status)
    )
    return {(_hour_value(h), s): int(n) for h, s, n in session.execute(query)}


def _sent_hours(session: Session, since: datetime, until: datetime) -> dict[datetime, int]:
    """Writebacks reaching Sent per hour (index on ``to_status, at``)."""
    hour = _hour_of(session, WritebackEvent.at)
    query = (
        select(hour, func.count())
        .where(
            WritebackEvent.to_status == Status.SENT.value,
            WritebackEvent.at >= since,
            WritebackEvent.at < until,
        )
        .group_by(hour)
    )
    return {_hour_value(h): int(n) for h, n in session.execute(query)}


def _reason_hours(session: Session, since: datetime, until: datetime) -> dict[tuple[datetime, str], int]:
    """Failed attempts per hour and reason (index on ``outcome, finished_at``); messages are grouped in
    SQL, reasons made of them here."""
    hour = _hour_of(session, Attempt.finished_at)
    query = (
        select(hour, Attempt.message, func.count())
        .where(
            Attempt.outcome == AttemptOutcome.ERROR.value,
            Attempt.finished_at >= since,
            Attempt.finished_at < until,
        )
        .group_by(hour, Attempt.message)
    )
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    for h, message, n in session.execute(query):
        counts[(_hour_value(h), error_reason(message)[:LABEL_LIMIT])] += int(n)
    return dict(counts)


def _lock(session: Session) -> bool:
    """Whether this session may roll up now: on PostgreSQL an advisory lock a second roller skips;
    on SQLite the caller's write transaction already keeps every other writer out."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(
        session.execute(select(func.pg_try_advisory_xact_lock(literal_column(str(ROLL_UP_LOCK))))).scalar()
    )


def roll_up(session: Session, now: datetime, *, max_hours: int = ROLL_UP_HOURS) -> int:
    """Count the complete hours after ``rolled_until`` (at most ``max_hours`` of them, and only those
    that ended ``SAFETY_MARGIN`` ago) into ``chart_hour``, in the caller's transaction; returns how many
    hours were rolled up (0 when another session is rolling up)."""
    if max_hours < 1:
        raise ValueError("max_hours: must be at least 1")
    if not _lock(session):
        return 0
    before = rolled_until(session)
    start = before or _oldest_hour(session)
    if start is None:
        return 0
    end = min(start + max_hours * HOUR, hour_floor(now - SAFETY_MARGIN))
    if end <= start:
        return 0
    rows = [
        {"hour": h, "series": STATUS_SERIES, "label": s, "total": n}
        for (h, s), n in _status_hours(session, start, end).items()
    ]
    rows += [
        {"hour": h, "series": REASON_SERIES, "label": r, "total": n}
        for (h, r), n in _reason_hours(session, start, end).items()
    ]
    # Only from where this session found it: an hour is never rolled up twice. (The row is the
    # migration's; a database emptied by hand may lack it, and the key keeps it to one.)
    if not _has_rollup_row(session):
        session.execute(insert(ChartRollup).values(id=1, rolled_until=end))
    else:
        moved = session.execute(
            update(ChartRollup)
            .where(
                ChartRollup.id == 1,
                ChartRollup.rolled_until.is_(None) if before is None else ChartRollup.rolled_until == before,
            )
            .values(rolled_until=end)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return 0
    if rows:
        session.execute(insert(ChartHour), rows)
    return int((end - start) / HOUR)


# ------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True, slots=True)
class Period:
    """One bar of a chart: from ``start`` up to ``end`` (UTC)."""

    start: datetime
    end: datetime


def periods(now: datetime, bucket: Bucket, tz: tzinfo, count: int | None = None) -> list[Period]:
    """The bars of a chart ending with the one ``now`` is in: 24 UTC hours, or 30 local days."""
    if bucket == "hour":
        n = count or 24
        last = hour_floor(now)
        return [Period(last - k * HOUR, last - (k - 1) * HOUR) for k in range(n - 1, -1, -1)]
    n = count or 30
    today = now.astimezone(tz).date()
    days = [today - timedelta(days=k) for k in range(n - 1, -1, -1)]
    return [Period(local_midnight(d, tz), local_midnight(d + timedelta(days=1), tz)) for d in days]


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The start of ``day`` in ``tz``, as a UTC instant."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _split(session: Session, since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """Where, within [since, until), the rolled-up hours end and where the events' live tail begins:
    the two differ when more than ``LIVE_HOURS`` are not rolled up yet (those between are not counted)."""
    rolled = rolled_until(session)
    end = since if rolled is None else max(since, min(until, rolled))
    return end, max(end, until - LIVE_HOURS * HOUR)


def _uncounted(rolled_end: datetime, live_start: datetime) -> tuple[datetime, datetime] | None:
    return (rolled_end, live_start) if live_start > rolled_end else None


def _index(bars: Sequence[Period], moment: datetime) -> int | None:
    starts = [p.start for p in bars]
    i = bisect_right(starts, moment) - 1
    return i if i >= 0 and moment < bars[i].end else None


def _rolled(
    session: Session, series: str, since: datetime, until: datetime, label: str | None = None
) -> list[tuple[datetime, str, int]]:
    if until <= since:
        return []
    query = select(ChartHour.hour, ChartHour.label, ChartHour.total).where(
        ChartHour.hour >= since, ChartHour.hour < until, ChartHour.series == series
    )
    if label is not None:
        query = query.where(ChartHour.label == label)
    return [(_hour_value(h), lab, int(n)) for h, lab, n in session.execute(query)]


@dataclass(frozen=True, slots=True)
class SentAndFailed:
    """Per bar: writebacks sent, and attempts that failed."""

    bars: list[Period]
    sent: list[int]
    failed: list[int]
    #: Hours not counted yet (not rolled up, and older than the live tail's ``LIVE_HOURS``).
    uncounted: tuple[datetime, datetime] | None = None

    @property
    def empty(self) -> bool:
        return not any(self.sent) and not any(self.failed)


def sent_and_failed(session: Session, bars: Sequence[Period]) -> SentAndFailed:
    """Writebacks sent and attempts failed in each of ``bars`` (consecutive, in order)."""
    bars = list(bars)
    sent, failed = [0] * len(bars), [0] * len(bars)
    if not bars:
        return SentAndFailed(bars, sent, failed)
    since, until = bars[0].start, bars[-1].end
    split, live = _split(session, since, until)

    def add(into: list[int], hour: datetime, n: int) -> None:
        i = _index(bars, hour)
        if i is not None:
            into[i] += n

    for hour, _label, n in _rolled(session, STATUS_SERIES, since, split, Status.SENT.value):
        add(sent, hour, n)
    for hour, _label, n in _rolled(session, REASON_SERIES, since, split):
        add(failed, hour, n)
    if live < until:
        for hour, n in _sent_hours(session, live, until).items():
            add(sent, hour, n)
        for (hour, _reason), n in _reason_hours(session, live, until).items():
            add(failed, hour, n)
    return SentAndFailed(bars, sent, failed, _uncounted(split, live))


@dataclass(frozen=True, slots=True)
class FailuresByReason:
    """Failed attempts per bar for the top reasons (most failures first) and ``OTHER``."""

    bars: list[Period]
    reasons: list[str]
    counts: dict[str, list[int]]
    uncounted: tuple[datetime, datetime] | None = None

    @property
    def empty(self) -> bool:
        return not any(any(c) for c in self.counts.values())


def failures_by_reason(session: Session, bars: Sequence[Period], top: int = TOP_REASONS) -> FailuresByReason:
    """Failed attempts in each of ``bars`` by reason: the ``top`` reasons of the whole span by name, the
    rest together as ``OTHER``."""
    bars = list(bars)
    if not bars:
        return FailuresByReason(bars, [], {})
    since, until = bars[0].start, bars[-1].end
    split, live = _split(session, since, until)
    found: list[tuple[datetime, str, int]] = _rolled(session, REASON_SERIES, since, split)
    if live < until:
        found += [(h, r, n) for (h, r), n in _reason_hours(session, live, until).items()]
    totals: dict[str, int] = defaultdict(int)
    for _h, reason, n in found:
        totals[reason] += n
    ranked = sorted(totals, key=lambda r: (-totals[r], r))
    named = ranked[:top]
    reasons = named + ([OTHER] if len(ranked) > top else [])
    counts = {r: [0] * len(bars) for r in reasons}
    for hour, reason, n in found:
        i = _index(bars, hour)
        if i is not None:
            counts[reason if reason in counts and reason != OTHER else OTHER][i] += n
    return FailuresByReason(bars, reasons, counts, _uncounted(split, live))


@dataclass(frozen=True, slots=True)
class DepthSample:
    """The queue as the last dispatcher run of a bar found it as it began; None where no run sampled."""

    new: int
    scheduled: int
    error: int
    oldest_waiting_at: datetime | None
    at: datetime

    @property
    def waiting(self) -> int:
        return self.new + self.scheduled + self.error


@dataclass(frozen=True, slots=True)
class QueueDepth:
    bars: list[Period]
    samples: list[DepthSample | None]

    @property
    def empty(self) -> bool:
        return all(s is None for s in self.samples)


def _last_sample(session: Session, since: datetime, until: datetime) -> DepthSample | None:
    r = DispatcherRun
    row = session.execute(
        select(r.waiting_new, r.waiting_scheduled, r.waiting_error, r.oldest_waiting_at, r.started_at)
        .where(r.finished_at >= since, r.finished_at < until, r.waiting_new.is_not(None))
        .order_by(r.finished_at.desc(), r.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    new, scheduled, error, oldest, started = row
    return DepthSample(int(new or 0), int(scheduled or 0), int(error or 0), oldest, started)


def queue_depth(session: Session, bars: Sequence[Period]) -> QueueDepth:
    """The last sample of each bar (one index look-up per bar, along ``finished_at``)."""
    bars = list(bars)
    return QueueDepth(bars, [_last_sample(session, p.start, p.end) for p in bars])


def oldest_waiting(session: Session, now: datetime) -> datetime | None:
    """When the oldest writeback waiting now was queued: New, Scheduled and due, or Error with attempts
    left (each the first row of ``status, created_at`` that qualifies)."""
    found = []
    for condition in (
        W.status == Status.NEW.value,
        and_(W.status == Status.SCHEDULED.value, W.scheduled_for <= now),
        and_(W.status == Status.ERROR.value, W.attempts < W.max_attempts),
    ):
        first = session.execute(
            select(W.created_at).where(condition).order_by(W.status, W.created_at).limit(1)
        ).scalar()
        if first is not None:
            found.append(first)
    return min(found) if found else None


@dataclass(frozen=True, slots=True)
class Charts:
    """Everything the dashboard's charts draw, read in one session."""

    bucket: Bucket
    sent_and_failed: SentAndFailed
    reasons: FailuresByReason
    depth: QueueDepth
    oldest_waiting_at: datetime | None
    now: datetime


def read_charts(session: Session, now: datetime, bucket: Bucket, tz: tzinfo) -> Charts:
    bars = periods(now, bucket, tz)
    return Charts(
        bucket,
        sent_and_failed(session, bars),
        failures_by_reason(session, bars),
        queue_depth(session, bars),
        oldest_waiting(session, now),
        now,
    )
