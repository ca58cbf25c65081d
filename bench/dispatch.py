"""Benchmark: dispatcher throughput against the raw ceiling, and scaling over dispatcher processes.

Part 1 (same run, same simulator): N writebacks sent by one dispatcher cycle, next to N Save requests
sent by a minimal requests loop at the same concurrency. Target: dispatcher / raw <= 1.15.
Part 2 (PostgreSQL, needs WRITEBACK_TEST_PG_URL): 1, 2 and 4 dispatcher processes against a simulator
with 50 ms latency. Target: throughput at 4 processes >= 3x one process, zero duplicates.
Part 3 (PostgreSQL, --mailing): one mailing activity of 100,000 recipients, simulator latency 20 ms, sent
by 1 and then by 4 dispatcher processes sharing it chunk by chunk, measured in the same run. Target: 4
processes >= 3x one; 0 recipients written twice (counted in the simulator by each recipient's reference).

Run: .venv/bin/python bench/dispatch.py [--rows 10000] [--latency-ms 20] [--concurrency 8]
         [--scaling-rows 4000] [--skip-scaling]
     .venv/bin/python bench/dispatch.py --mailing [--recipients 100000] [--concurrency 8]
         [--chunk-size 500]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, insert, select

from writeback_console.dispatch.cycle import run_cycle
from writeback_console.dispatch.summary import DispatchOptions
from writeback_console.domain import Kind, utcnow
from writeback_console.intake import WritebackInput
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, build_activity
from writeback_console.personify.odata import format_date
from writeback_console.personify.values import PersonifySettings
from writeback_console.store import lifecycle
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.migrate import upgrade
from writeback_console.store.models import Attempt, Delivery, Mailing, MailingRecipient, Writeback

EXE = str(Path(sys.executable).with_name("writeback-console"))
PEOPLE = 500


def start_simulator(folder: Path, latency_ms: int) -> tuple[subprocess.Popen[str], str]:
    constituents = folder / f"people-{latency_ms}.jsonl"
    with constituents.open("w") as f:
        for n in range(PEOPLE):
            f.write(
                json.dumps(
                    {
                        "master_customer_id": f"{n + 1000:012d}",
                        "sub_customer_id": 0,
                        "email": f"p{n}@example.org",
                        "first_name": "P",
                        "last_name": str(n),
                    }
                )
                + "\n"
            )
    proc = subprocess.Popen(
        [
            EXE,
            "sim",
            "--users",
            "u:p",
            "--constituents",
            str(constituents),
            "--latency-ms",
            str(latency_ms),
            "--db",
            str(folder / f"sim-{latency_ms}.sqlite3"),
        ],
        stdout=subprocess.PIPE,
        stderr=(folder / f"sim-{latency_ms}.log").open("w"),
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line}{(folder / f'sim-{latency_ms}.log').read_text()}")
    return proc, line.split("serving ")[1].strip()


def fill_queue(db_url: str, rows: int) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    items = [
        WritebackInput(
            kind=Kind.RESUBSCRIBE,
            account="Main",
            occurred_at=utcnow(),
            email=f"p{n % PEOPLE}@example.org",
            master_customer_id=f"{n % PEOPLE + 1000:012d}",
            sub_customer_id=0,
        )
        for n in range(rows)
    ]
    with write_transaction(make_session_factory(engine)) as session:
        lifecycle.enqueue_many(session, items)
    engine.dispose()


def raw_ceiling(url: str, rows: int, concurrency: int) -> float:
    """N Saves by the simplest possible client: a thread per connection, one body built once."""
    template = requests.get(
        f"{url}/Create?EntityName='CusActivity'",
        auth=("u", "p"),
        headers={"Accept": "application/json"},
        timeout=10,
    ).json()["d"]
    source = ActivitySource(
        Kind.RESUBSCRIBE, "WB-RAW0000000", "Main", "p0@example.org", utcnow(), "000000001000", 0
    )
    fields = build_activity(source, ActivityMapping())
    body = {
        **{k: v for k, v in template.items() if k != "__metadata"},
        **fields,
        "ActivityDate": format_date(fields["ActivityDate"]),
    }
    local = threading.local()

    def save(_: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        answer = session.post(
            f"{url}/Save?EntityName='CusActivity'",
            json=body,
            auth=("u", "p"),
            headers={"Accept": "application/json"},
            timeout=30,
        )
        answer.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(save, range(rows)))
    return time.perf_counter() - started


def dispatcher_run(db_url: str, url: str, concurrency: int) -> tuple[float, Any]:
    factory = make_session_factory(make_engine(db_url))
    client = PersonifyClient(PersonifySettings(service_root_url=url, user="u", password="p", pool_size=32))
    started = time.perf_counter()
    summary = run_cycle(factory, client, ActivityMapping(), DispatchOptions(concurrency=concurrency))
    return time.perf_counter() - started, summary


def part_one(args: argparse.Namespace, folder: Path) -> None:
    sim, url = start_simulator(folder, args.latency_ms)
    try:
        db_url = f"sqlite:///{folder / 'queue.sqlite3'}"
        fill_queue(db_url, args.rows)
        raw = raw_ceiling(url, args.rows, args.concurrency)
        took, summary = dispatcher_run(db_url, url, args.concurrency)
    finally:
        sim.terminate()
        sim.wait()
    print(
        f"## dispatcher vs raw ceiling: {args.rows:,} writebacks, latency {args.latency_ms} ms, "
        f"concurrency {args.concurrency}, SQLite"
    )
    print(f"raw requests loop : {raw:7.2f} s  ({args.rows / raw:7.1f} Saves/s)")
    print(
        f"dispatcher cycle  : {took:7.2f} s  ({summary.sent / took:7.1f} writebacks/s; {summary.describe()})"
    )
    print(f"ratio dispatcher/raw: {took / raw:.3f}  (target <= 1.15)")


def part_two(args: argparse.Namespace, folder: Path) -> None:
    admin = os.environ.get("WRITEBACK_TEST_PG_URL")
    if not admin:
        print("## scaling: skipped (WRITEBACK_TEST_PG_URL not set)")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.helpers.fixtures import create_pg_database, drop_pg_database

    sim, url = start_simulator(folder, 50)
    results: dict[int, float] = {}
    duplicates: dict[int, int] = {}
    try:
        for processes in (1, 2, 4):
            db_url = create_pg_database("wbbench")
            try:
                fill_queue(db_url, args.scaling_rows)
                env = {
                    **os.environ,
                    "WRITEBACK_DB_URL": db_url,
                    "WRITEBACK_PERSONIFY_URL": url,
                    "WRITEBACK_PERSONIFY_USER": "u",
                    "WRITEBACK_PERSONIFY_PASSWORD": "p",
                    "WRITEBACK_NO_KEYRING": "1",
                    "XDG_CONFIG_HOME": str(folder / "cfg"),
                }
                procs = [
                    subprocess.Popen(
                        [EXE, "dispatch", "--once", "--concurrency", str(args.concurrency)],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(processes)
                ]
                for p in procs:
                    out, err = p.communicate(timeout=900)
                    if p.returncode != 0:
                        raise SystemExit(f"dispatcher failed: {out}{err}")
                engine = make_engine(db_url)
                with engine.connect() as conn:
                    first = conn.execute(select(func.min(Attempt.started_at))).scalar_one()
                    last = conn.execute(select(func.max(Writeback.sent_at))).scalar_one()
                    sent = conn.execute(select(func.count()).where(Writeback.status == "sent")).scalar_one()
                    attempts = conn.execute(select(func.count()).select_from(Attempt)).scalar_one()
                engine.dispose()
                seconds = (last - first).total_seconds()
                results[processes] = sent / seconds
                duplicates[processes] = attempts - sent
                rate = results[processes]
                print(
                    f"{processes} process(es): {sent:,} sent in {seconds:.2f} s -> {rate:.1f}/s; "
                    f"extra attempts {attempts - sent}"
                )
            finally:
                drop_pg_database(db_url)
    finally:
        sim.terminate()
        sim.wait()
    # Every run's references are new, so a reference found twice in the simulator is a duplicate write.
    with sqlite3.connect(folder / "sim-50.sqlite3") as sim_db:
        repeated = sim_db.execute(
            "SELECT COUNT(*) FROM (SELECT substr(ACTIVITY_TEXT, instr(ACTIVITY_TEXT, '[ref ')) AS ref "
            "FROM CUS_ACTIVITY GROUP BY ref HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    print(
        f"## scaling on PostgreSQL, latency 50 ms, concurrency {args.concurrency} per process, "
        f"{args.scaling_rows:,} writebacks per run"
    )
    print(f"throughput 4 processes / 1 process: {results[4] / results[1]:.2f}x  (target >= 3x)")
    print(f"attempts beyond one per row: {sum(duplicates.values())}; references written twice: {repeated}")


def fill_mailing(db_url: str, recipients: int) -> int:
    """One mailing of ``recipients`` recipients known in Personify360 (spread over the simulator's
    constituents) and its mailing activity, queued; returns the writeback's id."""
    engine = make_engine(db_url)
    upgrade(engine)
    now = utcnow()
    with write_transaction(make_session_factory(engine)) as session:
        mailing = session.execute(
            insert(Mailing)
            .values(account="Main", name="Annual Meeting", sent_at=now, created_at=now)
            .returning(Mailing.id)
        ).scalar_one()
        for start in range(0, recipients, 10_000):
            session.execute(
                insert(MailingRecipient),
                [
                    {
                        "mailing_id": mailing,
                        "email": f"m{n}@example.org",
                        "master_customer_id": f"{n % PEOPLE + 1000:012d}",
                        "sub_customer_id": 0,
                        "sent_at": now,
                        "clicks": [],
                        "blocked": False,
                    }
                    for n in range(start, min(recipients, start + 10_000))
                ],
            )
        item = WritebackInput(kind=Kind.MAILING_ACTIVITY, account="Main", occurred_at=now, mailing_id=mailing)
        lifecycle.enqueue_many(session, [item])
        wid = session.scalars(select(Writeback.id).where(Writeback.mailing_id == mailing)).one()
    engine.dispose()
    return int(wid)


def mailing_run(args: argparse.Namespace, folder: Path, url: str, processes: int) -> dict[str, Any]:
    from tests.helpers.fixtures import create_pg_database, drop_pg_database

    db_url = create_pg_database("wbmail")
    try:
        wid = fill_mailing(db_url, args.recipients)
        env = {
            **os.environ,
            "WRITEBACK_DB_URL": db_url,
            "WRITEBACK_PERSONIFY_URL": url,
            "WRITEBACK_PERSONIFY_USER": "u",
            "WRITEBACK_PERSONIFY_PASSWORD": "p",
            "WRITEBACK_NO_KEYRING": "1",
            "XDG_CONFIG_HOME": str(folder / "cfg"),
        }
        command = [
            EXE, "dispatch", "--once", "--concurrency", str(args.concurrency),
            "--chunk-size", str(args.chunk_size),
        ]  # fmt: skip

        def start() -> subprocess.Popen[str]:
            return subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

        # The first claims the mailing; the others start once it is being sent, as the next runs of
        # dispatchers on other machines would, and join it (a run that starts before there is anything
        # to join ends at once, with nothing to do).
        procs = [start()]
        engine = make_engine(db_url)
        while processes > 1:
            with engine.connect() as conn:
                status = conn.execute(select(Writeback.status).where(Writeback.id == wid)).scalar_one()
            if status != "new":
                break
            time.sleep(0.05)
        engine.dispose()
        procs += [start() for _ in range(processes - 1)]
        said = []
        for p in procs:
            out, err = p.communicate(timeout=3600)
            if p.returncode != 0:
                raise SystemExit(f"dispatcher failed: {out}{err}")
            said.append((out.strip().splitlines() or [""])[-1])
        engine = make_engine(db_url)
        with engine.connect() as conn:
            first = conn.execute(select(func.min(Attempt.started_at))).scalar_one()
            status, last = conn.execute(
                select(Writeback.status, Writeback.sent_at).where(Writeback.id == wid)
            ).one()
            arrived = conn.execute(
                select(func.count()).select_from(Delivery).where(Delivery.status == "sent")
            ).scalar_one()
            attempts = conn.execute(select(func.count()).select_from(Attempt)).scalar_one()
            first_arrived = conn.execute(select(func.min(Delivery.sent_at))).scalar_one()
        engine.dispose()
        if status != "sent" or last is None:
            raise SystemExit(f"the mailing activity ended {status} after {processes} process(es)")
        seconds = (last - first).total_seconds()
        fan_out = (first_arrived - first).total_seconds()
        return {
            "seconds": seconds,
            "arrived": arrived,
            "attempts": attempts,
            "said": said,
            "fan_out": fan_out,
        }
    finally:
        drop_pg_database(db_url)


def part_three(args: argparse.Namespace, folder: Path) -> None:
    if not os.environ.get("WRITEBACK_TEST_PG_URL"):
        print("## one big mailing: skipped (WRITEBACK_TEST_PG_URL not set)")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sim, url = start_simulator(folder, args.latency_ms)
    runs: dict[int, dict[str, Any]] = {}
    try:
        for processes in (1, 4):
            runs[processes] = run = mailing_run(args, folder, url, processes)
            print(
                f"{processes} process(es): {run['arrived']:,} recipients in {run['seconds']:.2f} s "
                f"-> {run['arrived'] / run['seconds']:.1f}/s (the claim to the first arrival, fanning the "
                f"mailing out: {run['fan_out']:.1f} s); attempts on the row {run['attempts']}",
                flush=True,
            )
            for line in run["said"]:
                print(f"    {line}", flush=True)
    finally:
        sim.terminate()
        sim.wait()
    with sqlite3.connect(folder / f"sim-{args.latency_ms}.sqlite3") as sim_db:
        written, refs, twice = sim_db.execute(
            "SELECT COALESCE(SUM(n), 0), COUNT(*), COALESCE(SUM(n > 1), 0) FROM ("
            " SELECT COUNT(*) AS n FROM CUS_ACTIVITY"
            " GROUP BY substr(ACTIVITY_TEXT, instr(ACTIVITY_TEXT, '[ref ')))"
        ).fetchone()
    print(
        f"## one mailing of {args.recipients:,} recipients on PostgreSQL, latency {args.latency_ms} ms, "
        f"concurrency {args.concurrency} per process, chunks of {args.chunk_size}"
    )
    print(f"speed-up 4 processes / 1 process: {runs[1]['seconds'] / runs[4]['seconds']:.2f}x  (target >= 3x)")
    print(
        f"activities in the simulator: {written:,} for {refs:,} recipient references "
        f"(expected {2 * args.recipients:,}); recipients written twice: {twice}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--scaling-rows", type=int, default=4000)
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--mailing", action="store_true", help="part 3 alone: one big mailing, 1 vs 4")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.mailing:
            part_three(args, folder)
            return
        part_one(args, folder)
        if not args.skip_scaling:
            part_two(args, folder)


if __name__ == "__main__":
    main()
