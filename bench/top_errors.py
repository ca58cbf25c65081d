"""How long the Top errors page takes to read and group the Error rows of a big queue.

    python bench/top_errors.py --db sqlite:///big.sqlite3 [--repeat 5]

Prints, as medians over ``--repeat`` runs: the bare GROUP BY of the Error rows by message (the floor), the
page's query (``listing.error_message_counts``, which also counts the last day and the day before), and
the grouping by reason in Python (``error_groups.group_by_reason``); and the page's total over the floor.
Seed a queue first (``bench/seed.py``, or the GUI tests' million-row file).
"""

from __future__ import annotations

import argparse
import statistics
import time

from sqlalchemy import text

from writeback_console.domain import utcnow
from writeback_console.error_groups import group_by_reason
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory

BARE = "SELECT last_error, count(*) FROM writeback WHERE status = 'error' GROUP BY last_error"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the queue's database URL")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    factory = make_session_factory(make_engine(args.db))
    bare, query, grouping = [], [], []
    for _ in range(args.repeat):
        with factory() as session:
            started = time.perf_counter()
            messages = session.execute(text(BARE)).all()
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            counts = listing.error_message_counts(session, now=utcnow())
            query.append(time.perf_counter() - started)
        started = time.perf_counter()
        groups = group_by_reason((c.message, c.rows, c.last_day, c.day_before) for c in counts)
        grouping.append(time.perf_counter() - started)
    rows = sum(n for _m, n in messages)
    floor, q, g = (statistics.median(v) for v in (bare, query, grouping))
    print(f"{rows:,} Error rows, {len(messages):,} distinct messages, {len(groups):,} reasons")
    print(f"bare GROUP BY {floor * 1000:.0f} ms; page query {q * 1000:.0f} ms; grouping {g * 1000:.0f} ms")
    print(f"page total / bare GROUP BY = {(q + g) / floor:.2f}")


if __name__ == "__main__":
    main()
