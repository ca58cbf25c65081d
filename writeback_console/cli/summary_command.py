"""`writeback-console summary`: writebacks per status, fast enough for a script to ask every minute.

A current SQLite queue is read with the standard library alone (``store.quick_counts``); any other
database goes through the store as every command does.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from writeback_console.cli.exits import EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED
from writeback_console.config import resolve_db_url
from writeback_console.domain import Status
from writeback_console.store.quick_counts import sqlite_status_counts

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def cmd_summary(args: argparse.Namespace) -> int:
    if args.repair and not args.verify:
        print("summary: --repair goes with --verify", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.verify:
        return _verify(args)
    counts = sqlite_status_counts(resolve_db_url(args.db))
    if counts is None:
        from writeback_console.cli.common import open_queue
        from writeback_console.store import listing, runs

        with open_queue(args)() as session:
            counts = listing.count_by_status(session)
            # A shared queue is served by headless dispatchers: say who ran last. (The SQLite fast path
            # above stays on the standard library alone.)
            last_run = runs.last_run_line(*runs.latest_and_now(session))
        print_counts(counts)
        print(last_run)
        return EXIT_OK
    print_counts(counts)
    return EXIT_OK


def print_counts(counts: dict[Status, int]) -> None:
    width = max(len(s.label) for s in Status)
    for status, n in counts.items():
        print(f"  {status.label:<{width}}  {n:>10,}")
    print(f"  {'Total':<{width}}  {sum(counts.values()):>10,}")


def _verify(args: argparse.Namespace) -> int:
    """The kept totals against a count of every row (a full scan), and their repair if asked."""
    from writeback_console.cli.common import open_queue
    from writeback_console.store import counters
    from writeback_console.store.engine import read_session, write_transaction

    factory = open_queue(args)
    with read_session(factory) as session:
        kept = counters.totals(session)
        real = counted(session)
    print_counts(real)
    wrong = {s: (kept[s], real[s]) for s in Status if kept[s] != real[s]}
    if not wrong:
        print("The kept totals agree with a count of every row.")
        return EXIT_OK
    for status, (k, r) in wrong.items():
        print(f"  {status.label}: kept {k:,}, counted {r:,}", file=sys.stderr)
    if not args.repair:
        print(
            "The kept totals differ from a count of every row: run with --repair to set them", file=sys.stderr
        )
        return EXIT_REFUSED
    with write_transaction(factory) as session:
        counters.recount(session.connection())
    print("The kept totals were set to the count.")
    return EXIT_OK


def counted(session: Session) -> dict[Status, int]:
    """Rows per status counted one by one, not read from the kept totals."""
    from sqlalchemy import text

    counts = dict.fromkeys(Status, 0)
    for status, n in session.execute(text("SELECT status, count(*) FROM writeback GROUP BY status")):
        counts[Status(status)] = int(n)
    return counts
