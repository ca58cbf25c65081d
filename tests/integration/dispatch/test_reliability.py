"""Exactly once through crashes, faults and competition: real dispatcher processes, real HTTP."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import enqueue, item
from tests.helpers.dispatching import client_for, cycle, refs_in
from tests.helpers.simulator import MakeSimulator
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.intake import WritebackInput
from writeback_console.sim.server import Faults
from writeback_console.sim.simulator import Simulator
from writeback_console.store import lifecycle, listing
from writeback_console.store.engine import write_transaction
from writeback_console.store.rows import WritebackRow

Factory = sessionmaker[Session]
EXE = str(Path(sys.executable).with_name("writeback-console"))
PEOPLE = 200


def people() -> list[dict[str, object]]:
    return [
        {
            "master_customer_id": f"{n + 1000:012d}",
            "sub_customer_id": 0,
            "email": f"p{n}@example.org",
            "first_name": "P",
            "last_name": str(n),
        }
        for n in range(PEOPLE)
    ]


def writebacks(count: int, seed: int = 1) -> list[WritebackInput]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randrange(PEOPLE)
        kind = rng.choice([Kind.UNSUBSCRIBE, Kind.RESUBSCRIBE, Kind.INVALID_EMAIL])
        # Half carry the constituent id, half are found by email.
        ids = {"master_customer_id": f"{n + 1000:012d}", "sub_customer_id": 0} if rng.random() < 0.5 else {}
        out.append(item(kind, f"p{n}@example.org", **ids))
    return out


def env_for(tmp_path: Path, db_url: str, sim: Simulator) -> dict[str, str]:
    # Runs follow each other at once here: a write that may have arrived is looked for without waiting.
    config = tmp_path / "config" / "writeback-console"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.json").write_text('{"settle_seconds": 0}', encoding="utf-8")
    return {
        **os.environ,
        "WRITEBACK_DB_URL": db_url,
        "WRITEBACK_PERSONIFY_URL": sim.url,
        "WRITEBACK_PERSONIFY_USER": "u",
        "WRITEBACK_PERSONIFY_PASSWORD": "p",
        "WRITEBACK_NO_KEYRING": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }


def dispatcher(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [EXE, "dispatch", "--once", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def all_rows(factory: Factory) -> list[WritebackRow]:
    with factory() as session:
        return list(listing.iter_rows(session, listing.WritebackFilter(), sort="id", descending=False))


def wait_until_claimed(factory: Factory, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Return once some row is Processing (the dispatcher holds it) or the process has ended."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        with factory() as session:
            if listing.count_by_status(session).get(Status.PROCESSING, 0):
                return
        time.sleep(0.02)


def assert_exactly_once(factory: Factory, sim: Simulator) -> None:
    rows = all_rows(factory)
    per_ref = Counter(refs_in(sim))
    assert [ref for ref, n in per_ref.items() if n > 1] == []
    assert {r.status for r in rows} == {Status.SENT}
    assert set(per_ref) == {r.ref for r in rows}


def test_kill_9_at_random_moments_leaves_every_row_sent_exactly_once(
    tmp_path: Path, db_url: str, factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people())
    sim.faults.latency_ms = 2
    enqueue(factory, *writebacks(2000))
    env = env_for(tmp_path, db_url, sim)
    rng = random.Random(9)
    kills = 0
    for _ in range(4):
        proc = dispatcher(env, "--lease-seconds", "1", "--batch-size", "50")
        # Killed while it holds rows, wherever in their sending it is: a fixed delay from the start
        # killed a slow-starting process (a busy machine) before its first claim, interrupting nothing.
        wait_until_claimed(factory, proc)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        time.sleep(1.1)  # let the dead process's leases expire
    assert kills >= 2, "the dispatcher finished before it could be killed; the test proved nothing"
    runs = []
    for _ in range(3):
        done = subprocess.run(
            [EXE, "dispatch", "--once", "--lease-seconds", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        runs.append(done.stdout + done.stderr[-2000:])
        if all(r.status is Status.SENT for r in all_rows(factory)):
            break
    left = Counter(r.status for r in all_rows(factory) if r.status is not Status.SENT)
    assert not left, f"{dict(left)} left after the clean runs:\n" + "\n".join(runs)
    assert_exactly_once(factory, sim)
    interrupted = sum(
        1 for r in all_rows(factory) for a in _attempts(factory, r.id) if a.outcome == "interrupted"
    )
    assert interrupted > 0


def _attempts(factory: Factory, wid: int) -> list[listing.AttemptRow]:
    with factory() as session:
        return listing.attempts_of(session, wid)


def test_fault_mix_ends_with_every_row_sent_or_failed_by_the_rules_and_no_duplicate(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(), faults=Faults(fail_rate=0.3, hold_seconds=1.0, seed=5))
    enqueue(factory, *writebacks(300, seed=2))
    client = client_for(sim, read_timeout=0.5)
    for _ in range(12):
        cycle(factory, client, concurrency=8)
        # A run may find Personify360 unusable (timeouts piling up) and claim nothing: go on until
        # nothing is left to do, not until a run happens to claim nothing.
        with factory() as session:
            if lifecycle.count_eligible(session, utcnow()) == 0:
                break
    rows = all_rows(factory)
    per_ref = Counter(refs_in(sim))
    assert {r.status for r in rows} <= {Status.SENT, Status.ERROR}
    for r in rows:
        assert per_ref[r.ref] <= 1, f"{r.ref} written {per_ref[r.ref]} times"
        if r.status is Status.SENT:
            assert per_ref[r.ref] == 1 and 1 <= r.attempts <= 3
        else:
            assert r.attempts == r.max_attempts == 3
    assert Counter(r.status for r in rows)[Status.SENT] > 200


def claimed_in(summary: str) -> int:
    """The claimed count of a run summary ("claimed 1,125, sent …"), thousands separator included."""
    found = re.search(r"claimed ([\d,]+), sent", summary)
    assert found, summary
    return int(found.group(1).replace(",", ""))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_dispatcher_processes_at_once_send_every_row_exactly_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, make_simulator: MakeSimulator
) -> None:
    db_url: str = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    from writeback_console.store.engine import make_engine, make_session_factory

    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    sim = make_simulator(constituents=people())
    # Slow enough that the first is still at work when the second has started, even on a busy machine.
    sim.faults.latency_ms = 12
    enqueue(factory, *writebacks(1200, seed=3))
    env = env_for(tmp_path, db_url, sim)
    first, second = dispatcher(env, "--batch-size", "25"), dispatcher(env, "--batch-size", "25")
    outputs = [p.communicate(timeout=180) for p in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    assert_exactly_once(factory, sim)
    # "claimed 1,125, sent …": the count carries a thousands separator, so read digits and commas.
    claimed = [claimed_in(out) for out, _ in outputs]
    assert sum(claimed) == 1200 and min(claimed) > 0, outputs
    with write_transaction(factory) as session:
        assert lifecycle.count_eligible(session, utcnow()) == 0
    engine.dispose()


def test_a_dispatch_option_out_of_range_is_refused_before_anything_is_claimed(
    tmp_path: Path, sqlite_url: str, make_simulator: MakeSimulator
) -> None:
    from writeback_console.store.engine import make_engine, make_session_factory

    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    enqueue(factory, *writebacks(3, seed=4))
    sim = make_simulator(constituents=people())
    done = subprocess.run(
        [EXE, "dispatch", "--once", "--concurrency", "0"],
        env=env_for(tmp_path, sqlite_url, sim),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "concurrency: must be between 1 and 64, not 0" in done.stderr
    assert "Traceback" not in done.stderr
    assert {r.status for r in all_rows(factory)} == {Status.NEW}
    assert refs_in(sim) == []
    engine.dispose()
