"""`writeback-console summary`: writebacks per status, fast enough for a script to ask every minute.

A current SQLite queue is read with the standard library alone (``store.quick_counts``); any other
database goes through the store as every command does.
"""

from __future__ import annotations

import argparse

from writeback_console.cli.exits import EXIT_OK
from writeback_console.config import resolve_db_url
from writeback_console.domain import Status
from writeback_console.store.quick_counts import sqlite_status_counts


def cmd_summary(args: argparse.Namespace) -> int:
    counts = sqlite_status_counts(resolve_db_url(args.db))
    if counts is None:
        from writeback_console.cli.common import open_queue
        from writeback_console.store import listing

        with open_queue(args)() as session:
            counts = listing.count_by_status(session)
    print_counts(counts)
    return EXIT_OK


def print_counts(counts: dict[Status, int]) -> None:
    width = max(len(s.label) for s in Status)
    for status, n in counts.items():
        print(f"  {status.label:<{width}}  {n:>10,}")
    print(f"  {'Total':<{width}}  {sum(counts.values()):>10,}")
