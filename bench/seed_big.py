"""Seed a big queue once, in its own process, for the benchmarks that measure a console over it.

Seeding five million rows takes minutes and most of a gigabyte of memory, which must not count in the
console's own RSS: this step writes the queue and exits, and ``bench/gui_table.py --sqlite FILE
--pg-url URL`` measures over it afterwards (as often as wanted).

Run:
  .venv/bin/python bench/seed_big.py --rows 5000000 --sqlite /var/tmp/wb-5m.sqlite3
  WRITEBACK_TEST_PG_URL=… .venv/bin/python bench/seed_big.py --rows 5000000 --pg-db wbbench_5m
The PostgreSQL database is made on the server of WRITEBACK_TEST_PG_URL (dropped first if it exists), and
its URL is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from writeback_console.demo.seed import seed
from writeback_console.store import counters
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.migrate import upgrade

PG_ENV = "WRITEBACK_TEST_PG_URL"


def progress(done: int) -> None:
    print(f"\r  {done:,} writebacks", end="", flush=True)


def seed_into(url: str, rows: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    seed(engine, rows, progress=progress)
    print()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    with make_session_factory(engine)() as session:
        totals = counters.totals(session)
    engine.dispose()
    print(f"seeded {sum(totals.values()):,} writebacks in {time.perf_counter() - started:.0f} s: {url}")


def pg_database(name: str) -> str:
    admin = os.environ.get(PG_ENV)
    if not admin:
        sys.exit(f"{PG_ENV} must name the PostgreSQL server (any database on it)")
    if not name.replace("_", "").isalnum():
        sys.exit(f"--pg-db: letters, digits and _ only, not {name!r}")
    engine = make_engine(admin)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--sqlite", type=Path, help="a SQLite file to make (it must not exist)")
    parser.add_argument("--pg-db", help="a PostgreSQL database to make on the test server")
    args = parser.parse_args()
    if not args.sqlite and not args.pg_db:
        parser.error("name --sqlite FILE, --pg-db NAME, or both")
    if args.sqlite:
        if args.sqlite.exists():
            sys.exit(f"{args.sqlite} exists: remove it first, or measure over it as it is")
        seed_into(f"sqlite:///{args.sqlite}", args.rows)
    if args.pg_db:
        seed_into(pg_database(args.pg_db), args.rows)


if __name__ == "__main__":
    main()
