"""Benchmark: how long `seed` takes to write N writebacks into a fresh SQLite file (target: 1,000,000 < 60 s).

Run: .venv/bin/python bench/seed.py [--rows 1000000] [--db-dir DIR]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from writeback_console.demo.seed import seed
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.migrate import upgrade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.db_dir) as folder:
        path = Path(folder) / "bench.sqlite3"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        started = time.perf_counter()
        summary = seed(engine, args.rows)
        elapsed = time.perf_counter() - started
        with make_session_factory(engine)() as session:
            counts = listing.count_by_status(session)
        size = sum(p.stat().st_size for p in Path(folder).glob("bench.sqlite3*"))
        engine.dispose()
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    made = f"{summary.writebacks:,} writebacks, {summary.attempts:,} attempts"
    print(f"rows: {made}, {summary.mailings:,} mailings, {summary.recipients:,} recipients")
    rate = summary.writebacks / elapsed
    print(f"seconds: {elapsed:.1f} ({rate:,.0f} writebacks/s); target < 60 s for 1,000,000")
    print(f"database size: {size / 1e6:,.0f} MB")
    print("by status: " + ", ".join(f"{s.label} {n:,}" for s, n in counts.items()))


if __name__ == "__main__":
    main()
