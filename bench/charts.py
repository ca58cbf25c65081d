"""How long each of the dashboard's chart queries takes on a big queue, before and after the roll-up.

    python bench/charts.py --db sqlite:///copy-of-q-5m.sqlite3 [--add-days 30 --per-day 150000]

Works on a copy (it upgrades the schema, may add history and rolls hours up; never point it at a queue
in use). ``--add-days`` first adds that many days of status history ending now: ``--per-day`` events a
day over the existing writebacks, every twentieth a failed attempt with one of a few dozen messages, so
the charts have 30 days at 5M-row scale to count. Then it prints, for the 24-hour and the 30-day view:
each query with nothing rolled up (every hour counted from the events), the roll-up itself (as many
calls as it takes), and each query again, cold (first call) and warm (median of ``--repeat``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from writeback_console.domain import utcnow
from writeback_console.store import charts
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.migrate import upgrade
from writeback_console.store.models import Writeback

MESSAGES = 40


def add_history(engine: Engine, days: int, per_day: int) -> int:
    """``days`` of events (and failed attempts) ending now, spread evenly, over the existing writebacks."""
    total, now = days * per_day, utcnow()
    start = (now - timedelta(days=days)).timestamp()
    step = days * 86400 / total
    with engine.begin() as conn:
        top = conn.execute(select(func.max(Writeback.id))).scalar_one()
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            numbers = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last)"
            at = "strftime('%Y-%m-%d %H:%M:%f000', :start + i * :step, 'unixepoch')"
            source = "n"
        else:
            numbers = ""
            at = "to_timestamp(:start + i * :step)"
            source = "generate_series(0::bigint, :last) AS n(i)"
        status = "CASE WHEN i % 20 = 0 THEN 'error' WHEN i % 2 = 1 THEN 'sent' ELSE 'processing' END"
        conn.execute(
            text(
                f"{numbers} INSERT INTO writeback_event"
                " (writeback_id, from_status, to_status, at, actor, attempt)"
                f" SELECT 1 + (i * 7919) % :top, 'processing', {status}, {at}, 'bench', 1 FROM {source}"
            ),
            {"last": total - 1, "start": start, "step": step, "top": top},
        )
        message = f"'Customer 0000' || (i % 997) || '-0 does not exist (' || (i / 20 % {MESSAGES}) || ').'"
        conn.execute(
            text(
                f"{numbers} INSERT INTO attempt (writeback_id, number, started_at, finished_at, outcome,"
                " counted, http_status, message, dispatcher, manual)"
                f" SELECT 1 + (i * 7919) % :top, 1000000 + i, {at}, {at}, 'error', true, 404, {message},"
                f" 'bench', false FROM {source} WHERE i % 20 = 0"
            ),
            {"last": total - 1, "start": start, "step": step, "top": top},
        )
        # A dispatcher run a minute, each with the queue as it began: what the depth chart reads.
        runs = days * 1440
        run_at = at.replace(":start + i * :step", ":start + i * 60")
        conn.execute(
            text(
                f"{numbers} INSERT INTO dispatcher_run (dispatcher, started_at, finished_at,"
                " interval_seconds, result, summary, claimed, sent, failed, waiting_new, waiting_scheduled,"
                f" waiting_error, oldest_waiting_at) SELECT 'bench:1', {run_at}, {run_at}, 60, 'ok', 'bench',"
                f" 0, 0, 0, i % 500, i % 7, i % 40, {run_at} FROM {source}"
            ),
            {"last": runs - 1, "start": start},
        )
        if not sqlite:
            conn.exec_driver_sql("ANALYZE writeback_event")
            conn.exec_driver_sql("ANALYZE attempt")
            conn.exec_driver_sql("ANALYZE dispatcher_run")
    return total


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _with_bars(
    fn: Callable[[Session, list[charts.Period]], Any], bars: list[charts.Period], s: Session
) -> Any:
    return fn(s, bars)


def _oldest(now: datetime, s: Session) -> Any:
    return charts.oldest_waiting(s, now)


def measure(factory: Any, label: str, repeat: int) -> None:
    now = utcnow()
    zone = charts.local_zone()
    for bucket in ("hour", "day"):
        bars = charts.periods(now, bucket, zone)
        queries: dict[str, Callable[[Session], Any]] = {
            "sent_and_failed": partial(_with_bars, charts.sent_and_failed, bars),
            "failures_by_reason": partial(_with_bars, charts.failures_by_reason, bars),
            "queue_depth": partial(_with_bars, charts.queue_depth, bars),
            "oldest_waiting": partial(_oldest, now),
        }
        for name, query in queries.items():
            runs = []
            for _ in range(repeat + 1):
                with factory() as session:
                    runs.append(timed(partial(query, session)))
            warm = statistics.median(runs[1:]) if repeat else runs[0]
            print(
                f"{label:<12} {bucket:<5} {name:<20} "
                f"cold {runs[0] * 1000:8.1f} ms   warm {warm * 1000:8.1f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a COPY of a big queue's database URL")
    parser.add_argument("--add-days", type=int, default=0)
    parser.add_argument("--per-day", type=int, default=150_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engine = make_engine(args.db)
    upgrade(engine)
    if args.add_days:
        seconds = timed(lambda: add_history(engine, args.add_days, args.per_day))
        print(f"added {args.add_days * args.per_day:,} events in {seconds:.1f} s")
    factory = make_session_factory(engine)
    with factory() as session:
        events = session.execute(text("SELECT count(*) FROM writeback_event")).scalar_one()
        rows = session.execute(text("SELECT count(*) FROM writeback")).scalar_one()
    print(f"{rows:,} writebacks, {events:,} events; rolled up until {_rolled(factory)}")
    measure(factory, "not rolled", args.repeat)
    calls, started = 0, time.perf_counter()
    while True:
        with write_transaction(factory) as session:
            hours = charts.roll_up(session, utcnow())
        calls += 1
        if hours == 0:
            break
    print(f"roll-up: {calls - 1} calls in {time.perf_counter() - started:.1f} s; until {_rolled(factory)}")
    measure(factory, "rolled up", args.repeat)
    engine.dispose()


def _rolled(factory: Any) -> object:
    with factory() as session:
        return charts.rolled_until(session)


if __name__ == "__main__":
    main()
