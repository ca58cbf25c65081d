"""The dashboard's charts count what the status history holds: sends from events, failures from attempts,
hour by hour, the same whether the hours were rolled up or are counted live, and after retention pruned
their writebacks; days are the console's local days; a bar's rows are what the list shows for it."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, fail, item, minutes, run, send
from writeback_console.domain import AttemptOutcome, Status
from writeback_console.error_groups import error_reason
from writeback_console.store import charts, lifecycle, listing
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import Attempt, ChartHour, DispatcherRun, Writeback, WritebackEvent

Factory = sessionmaker[Session]
HOUR = timedelta(hours=1)
#: Some hours after the activity below: every hour of it is complete and past the safety margin.
LATER = T0 + timedelta(hours=30)


def _activity(factory: Factory) -> list[int]:
    """Writebacks sent and failed over six hours from T0: 3 sent and 1 failing twice in hour 0, 2 sent
    in hour 2, one failing once in hour 3 with another message, 1 sent in hour 5."""
    ids = enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(8)))
    plan = [  # (hour, minute, writeback, outcome)
        (0, 5, ids[0], "sent"),
        (0, 6, ids[1], "sent"),
        (0, 7, ids[2], "sent"),
        (0, 8, ids[3], "HTTP 500"),
        (0, 40, ids[3], "HTTP 500"),
        (2, 15, ids[4], "sent"),
        (2, 59, ids[5], "sent"),
        (3, 1, ids[6], "Customer 000123-0 does not exist."),
        (5, 30, ids[7], "sent"),
    ]
    for hour, minute, wid, outcome in plan:
        at = T0 + timedelta(hours=hour, minutes=minute)
        with write_transaction(factory) as session:
            claimed = lifecycle.claim(
                session, dispatcher="test-host:1", run_started_at=at, now=at, only=[wid], limit=10
            )
            assert [c.id for c in claimed] == [wid]
        if outcome == "sent":
            send(factory, wid, at + minutes(0.5))
        else:
            fail(factory, wid, at + minutes(0.5), message=outcome)
    return ids


def _hours(n: int, start: datetime = T0) -> list[charts.Period]:
    return [charts.Period(start + k * HOUR, start + (k + 1) * HOUR) for k in range(n)]


def _read(factory: Factory, bars: list[charts.Period]) -> charts.SentAndFailed:
    with factory() as session:
        return charts.sent_and_failed(session, bars)


def _roll(factory: Factory, now: datetime = LATER, max_hours: int = charts.ROLL_UP_HOURS) -> int:
    with write_transaction(factory) as session:
        return charts.roll_up(session, now, max_hours=max_hours)


def test_hourly_sends_and_failed_attempts_match_the_status_history(factory: Factory) -> None:
    _activity(factory)
    found = _read(factory, _hours(6))
    assert found.sent == [3, 0, 2, 0, 0, 1]
    assert found.failed == [2, 0, 0, 1, 0, 0]
    with factory() as session:
        events = session.execute(
            select(WritebackEvent.at).where(WritebackEvent.to_status == Status.SENT.value)
        ).scalars()
        by_hour = Counter(charts.hour_floor(at) for at in events)
    assert found.sent == [by_hour.get(p.start, 0) for p in found.bars]


def test_roll_up_counts_each_complete_hour_once_and_leaves_recent_hours_to_the_live_count(
    factory: Factory,
) -> None:
    _activity(factory)
    now = T0 + timedelta(hours=4, minutes=30)  # hours 0-2 ended over an hour ago; hour 3 did not
    assert _roll(factory, now) == 3
    with factory() as session:
        assert charts.rolled_until(session) == T0 + 3 * HOUR
        rolled = {(h.hour, h.series, h.label): h.total for h in session.scalars(select(ChartHour)).all()}
    assert rolled == {
        (T0, "status", "new"): 8,
        (T0, "status", "processing"): 5,
        (T0, "status", "sent"): 3,
        (T0, "status", "error"): 2,
        (T0, "reason", "HTTP 500"): 2,
        (T0 + 2 * HOUR, "status", "processing"): 2,
        (T0 + 2 * HOUR, "status", "sent"): 2,
    }
    # Rolled and live hours together: the same answer as the events alone.
    found = _read(factory, _hours(6))
    assert found.sent == [3, 0, 2, 0, 0, 1]
    assert found.failed == [2, 0, 0, 1, 0, 0]


def test_rolling_up_again_changes_nothing_and_later_calls_go_on_where_the_last_stopped(
    factory: Factory,
) -> None:
    _activity(factory)
    assert _roll(factory, LATER, max_hours=2) == 2
    assert _roll(factory, LATER, max_hours=2) == 2  # hours 2-3, not 0-1 again
    with factory() as session:
        first = session.execute(select(func.sum(ChartHour.total))).scalar()
    assert _roll(factory, T0 + 4 * HOUR) == 0  # nothing new is complete by then
    with factory() as session:
        assert session.execute(select(func.sum(ChartHour.total))).scalar() == first
        assert charts.rolled_until(session) == T0 + 4 * HOUR
    assert _roll(factory, LATER) == 24 + 6 - 1 - 4  # up to the hour that ended an hour before LATER
    found = _read(factory, _hours(6))
    assert (found.sent, found.failed) == ([3, 0, 2, 0, 0, 1], [2, 0, 0, 1, 0, 0])


def test_two_roll_ups_at_once_count_each_hour_once(factory: Factory) -> None:
    _activity(factory)
    outcome: list[int] = []
    with write_transaction(factory) as first:
        assert charts.roll_up(first, LATER) > 0
        # A second dispatcher ends its run meanwhile: on PostgreSQL it skips (the lock is taken), on
        # SQLite it waits for the write lock and then finds the hours rolled up.
        other = threading.Thread(target=lambda: outcome.append(_roll(factory)))
        other.start()
        other.join(timeout=0.5 if first.get_bind().dialect.name == "sqlite" else 10)
    other.join(timeout=10)
    assert outcome == [0]
    found = _read(factory, _hours(6))
    assert (found.sent, found.failed) == ([3, 0, 2, 0, 0, 1], [2, 0, 0, 1, 0, 0])


def test_a_pruned_writeback_s_hour_keeps_counting_it(factory: Factory) -> None:
    ids = _activity(factory)
    _roll(factory)
    with write_transaction(factory) as session:  # as retention does: the events go by cascade
        session.execute(delete(Writeback).where(Writeback.id.in_(ids[:3])))
    with factory() as session:
        left = session.execute(select(WritebackEvent.writeback_id)).scalars().all()
    assert not set(ids[:3]) & set(left)
    _roll(factory, LATER + timedelta(days=2))
    found = _read(factory, _hours(6))
    assert found.sent == [3, 0, 2, 0, 0, 1]


def test_failures_by_reason_name_the_top_reasons_and_put_the_rest_in_other(factory: Factory) -> None:
    _activity(factory)
    _roll(factory, T0 + timedelta(hours=2, minutes=30))  # hour 0 rolled, the rest live
    with factory() as session:
        two = charts.failures_by_reason(session, _hours(6), top=1)
        every = charts.failures_by_reason(session, _hours(6))
    assert two.reasons == ["HTTP 500", charts.OTHER]
    assert two.counts == {"HTTP 500": [2, 0, 0, 0, 0, 0], charts.OTHER: [0, 0, 0, 1, 0, 0]}
    customer = error_reason("Customer 000123-0 does not exist.")
    assert every.reasons == ["HTTP 500", customer]
    assert every.counts[customer] == [0, 0, 0, 1, 0, 0]


def _event_at(session: Session, wid: int, at: datetime, status: Status = Status.SENT) -> None:
    session.execute(
        insert(WritebackEvent)
        .values(writeback_id=wid, from_status="processing", to_status=status, at=at)
        .values(actor="test-host:1", attempt=1)
    )


def test_days_are_local_days_across_a_daylight_saving_change(factory: Factory) -> None:
    amsterdam = ZoneInfo("Europe/Amsterdam")  # summer time ends 2026-10-25 03:00 local (01:00 UTC)
    (wid,) = enqueue(factory, item(), now=datetime(2026, 10, 20, tzinfo=UTC))
    moments = [
        datetime(2026, 10, 24, 21, 30, tzinfo=UTC),  # 23:30 on the 24th (CEST)
        datetime(2026, 10, 24, 22, 30, tzinfo=UTC),  # 00:30 on the 25th (CEST)
        datetime(2026, 10, 25, 22, 30, tzinfo=UTC),  # 23:30 on the 25th (CET): its 25th hour
        datetime(2026, 10, 25, 23, 30, tzinfo=UTC),  # 00:30 on the 26th (CET)
    ]
    with write_transaction(factory) as session:
        for at in moments:
            _event_at(session, wid, at)
    now = datetime(2026, 10, 26, 12, tzinfo=UTC)
    bars = charts.periods(now, "day", amsterdam, count=3)
    assert [b.end - b.start for b in bars] == [timedelta(hours=24), timedelta(hours=25), timedelta(hours=24)]
    assert bars[1].start == datetime(2026, 10, 24, 22, tzinfo=UTC)
    # Three days: more than the live count reaches (LIVE_HOURS); from rolled-up hours they are exact.
    assert _read(factory, bars).uncounted is not None
    _roll(factory, now)
    assert _read(factory, bars).sent == [1, 2, 1]


@pytest.mark.parametrize("counted", ["sent", "failed"])
def test_the_list_filter_of_a_bar_lists_exactly_the_writebacks_it_counted(
    factory: Factory, counted: str
) -> None:
    ids = _activity(factory)
    _roll(factory, T0 + timedelta(hours=1, minutes=30))  # hour 0 rolled up, the others live
    for bar in _hours(6):
        if counted == "sent":
            flt = listing.WritebackFilter(reached=Status.SENT, reached_from=bar.start, reached_to=bar.end)
        else:
            flt = listing.WritebackFilter(failed_from=bar.start, failed_to=bar.end)
        with factory() as session:
            listed = set(listing.matching_ids_after(session, flt, after=0, limit=100))
            query = (
                select(WritebackEvent.writeback_id).where(
                    WritebackEvent.to_status == "sent",
                    WritebackEvent.at >= bar.start,
                    WritebackEvent.at < bar.end,
                )
                if counted == "sent"
                else select(Attempt.writeback_id).where(
                    Attempt.outcome == AttemptOutcome.ERROR.value,
                    Attempt.finished_at >= bar.start,
                    Attempt.finished_at < bar.end,
                )
            )
            expected = set(session.execute(query).scalars())
        assert listed == expected
    found = _read(factory, _hours(6))
    hour0 = listing.WritebackFilter(reached=Status.SENT, reached_from=T0, reached_to=T0 + HOUR)
    with factory() as session:
        assert set(listing.matching_ids_after(session, hour0, after=0, limit=100)) == set(ids[:3])
    assert found.sent[0] == 3
    assert hour0.to_json() == {
        "reached": "sent",
        "reached_from": T0.isoformat(),
        "reached_to": (T0 + HOUR).isoformat(),
    }


def test_queue_depth_is_the_last_sample_of_each_bar_and_the_oldest_waiting_is_read_now(
    factory: Factory,
) -> None:
    def sample(finished: datetime, new: int, oldest: datetime | None) -> dict[str, object]:
        return {
            "dispatcher": "test-host:1", "started_at": finished - minutes(1), "finished_at": finished,
            "result": "ok", "summary": "", "claimed": 0, "sent": 0, "failed": 0, "waiting_new": new,
            "waiting_scheduled": 1, "waiting_error": 2, "oldest_waiting_at": oldest,
        }  # fmt: skip

    with write_transaction(factory) as session:
        session.execute(
            insert(DispatcherRun),
            [
                sample(T0 + minutes(10), 5, T0 - HOUR),
                sample(T0 + minutes(50), 7, T0 - HOUR),
                sample(T0 + 2 * HOUR + minutes(5), 0, None),
            ],
        )
    (wid,) = enqueue(factory, item(), now=T0 + minutes(20))
    with factory() as session:
        depth = charts.queue_depth(session, _hours(3))
        oldest = charts.oldest_waiting(session, T0 + 3 * HOUR)
    first, gap, last = depth.samples
    assert first is not None and (first.new, first.scheduled, first.error, first.waiting) == (7, 1, 2, 10)
    assert gap is None
    assert last is not None and last.waiting == 3 and last.oldest_waiting_at is None
    assert oldest == T0 + minutes(20)
    run(factory, T0 + minutes(30))
    send(factory, wid, T0 + minutes(31))
    with factory() as session:
        assert charts.oldest_waiting(session, T0 + 3 * HOUR) is None


def test_hours_not_rolled_up_are_counted_live_only_for_the_newest_two_days_and_said_to_be_uncounted(
    factory: Factory,
) -> None:
    # A queue whose history was never rolled up (just upgraded, or its dispatchers stopped for days): a
    # redraw counts the events of the newest LIVE_HOURS only, never every event since, and says so.
    _activity(factory)
    bars = _hours(72)
    found = _read(factory, bars)
    assert found.uncounted == (T0, T0 + 24 * HOUR)
    assert sum(found.sent) == 0 and sum(found.failed) == 0
    with factory() as session:
        assert charts.failures_by_reason(session, bars).uncounted == (T0, T0 + 24 * HOUR)
    _roll(factory, T0 + 72 * HOUR)
    found = _read(factory, bars)
    assert found.uncounted is None
    assert (sum(found.sent), sum(found.failed)) == (6, 3)
