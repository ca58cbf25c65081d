"""Benchmark: `prune --sent-older-than 180d` on a seeded queue spanning 400 days, SQLite or PostgreSQL.

Reports the rows deleted, the time per 100,000, the longest single batch transaction (how long another
writer may wait), that the kept totals still equal a real count, and (SQLite) the file size before and
after VACUUM.

Run: PYTHONPATH=. .venv/bin/python bench/prune.py [--rows 1000000] [--days 400] [--older-than 180]
     [--template FILE] [--db-url postgresql+psycopg://…/an_empty_database (left filled)] [--db-dir DIR]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from writeback_console import operations
from writeback_console.demo.seed import seed
from writeback_console.domain import Status
from writeback_console.store import counters, retention
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.migrate import upgrade


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=400, help="the seeded queue spans this many days")
    parser.add_argument("--older-than", type=int, default=180, help="prune rows finished this many days ago")
    parser.add_argument("--db-url", help="an empty PostgreSQL database (default: a new SQLite file)")
    parser.add_argument("--db-dir", type=Path, default=None)
    parser.add_argument(
        "--template",
        type=Path,
        help="SQLite: a seeded copy kept here on the first run and copied on the next (seeding is slow)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.db_dir) as folder:
        path = Path(folder) / "bench.sqlite3"
        if args.template is not None and args.template.exists() and not args.db_url:
            shutil.copyfile(args.template, path)
            engine = make_engine(f"sqlite:///{path}")
            print(f"copied the seeded queue {args.template}")
        else:
            engine = make_engine(args.db_url or f"sqlite:///{path}")
            upgrade(engine)
            started = time.perf_counter()
            seed(engine, args.rows, days=args.days)
            seeded = time.perf_counter() - started
            print(f"seeded {args.rows:,} writebacks over {args.days} days in {seeded:.0f} s")
            if args.template is not None and not args.db_url:
                engine.dispose()  # the last connection to close folds the WAL into the file
                shutil.copyfile(path, args.template)
        print(f"machine: {platform.machine()} python {platform.python_version()}; {engine.dialect.name}")
        factory = make_session_factory(engine)
        preview = operations.preview_prune(factory, args.older_than)
        print(
            f"to prune (older than {args.older_than} days): "
            + ", ".join(f"{s.label} {n:,}" for s, n in preview.counts.items())
        )
        if engine.dialect.name == "sqlite":
            print(f"file before: {_size(path) / 1e6:,.0f} MB")
        started = time.perf_counter()
        result = operations.prune(factory, args.older_than, actor="bench")
        elapsed = time.perf_counter() - started
        per_100k = elapsed / max(result.total, 1) * 100_000
        print(
            f"deleted {result.total:,} in {elapsed:.1f} s ({per_100k:.1f} s per 100,000) in "
            f"{result.batches:,} batches of up to {retention.BATCH:,}; longest batch transaction "
            f"{result.longest_batch_seconds * 1000:.0f} ms"
        )
        with factory() as session:
            kept = counters.totals(session)
            real = dict.fromkeys(Status, 0)
            for status, n in session.execute(text("SELECT status, count(*) FROM writeback GROUP BY status")):
                real[Status(status)] = int(n)
        print(f"kept totals equal a real count: {kept == real}")
        started = time.perf_counter()
        sizes = operations.vacuum(factory)
        took = time.perf_counter() - started
        if sizes is not None:
            print(f"VACUUM {took:.1f} s: file {sizes[0] / 1e6:,.0f} MB -> {sizes[1] / 1e6:,.0f} MB")
        else:
            print(f"VACUUM (ANALYZE) of the pruned tables {took:.1f} s")
        engine.dispose()


if __name__ == "__main__":
    main()
