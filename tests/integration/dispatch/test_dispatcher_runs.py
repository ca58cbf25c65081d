"""Headless dispatchers record their runs: ``dispatch --once`` and ``dispatch --forever`` each leave a row
in ``dispatcher_run`` that a console which does not dispatch can show."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import enqueue, item
from tests.helpers.simulator import SAMPLE_CONSTITUENTS, MakeSimulator
from tests.integration.dispatch.test_exactly_once import EXE, env_for
from writeback_console.domain import Kind, RunResult
from writeback_console.store import runs
from writeback_console.store.engine import read_session

Factory = sessionmaker[Session]
KNOWN = str(SAMPLE_CONSTITUENTS[0]["email"])


def _runs(factory: Factory) -> list[runs.RunRecord]:
    with read_session(factory) as session:
        return runs.latest_runs(session, 10)


def test_dispatch_once_records_its_run(
    tmp_path: Path, db_url: str, factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    enqueue(factory, item(Kind.UNSUBSCRIBE, KNOWN), item(Kind.RESUBSCRIBE, KNOWN))
    env = env_for(tmp_path, db_url, sim)

    done = subprocess.run([EXE, "dispatch", "--once"], env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    [run] = _runs(factory)
    assert run.result is RunResult.OK
    assert (run.claimed, run.sent, run.failed) == (2, 2, 0)
    assert run.dispatcher.startswith(socket.gethostname())
    assert run.interval_seconds is None  # one run says nothing of when the next comes
    assert run.sample is not None and run.sample.new == 2
    # The command prints what it always printed, one line per run, and nothing about the record.
    assert done.stdout.count("\n") == 1 and run.summary.split(" in ")[0] in done.stdout


def test_dispatch_forever_records_each_run_with_its_interval(
    tmp_path: Path, db_url: str, factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    env = env_for(tmp_path, db_url, sim)
    proc = subprocess.Popen(
        [EXE, "dispatch", "--forever", "--interval", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(_runs(factory)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    recorded = _runs(factory)
    assert len(recorded) >= 2
    assert {r.interval_seconds for r in recorded} == {1}
    assert recorded[0].finished_at > recorded[-1].finished_at


def test_summary_names_the_last_dispatcher_run_of_a_shared_queue(
    tmp_path: Path, pg_url: str, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    env = env_for(tmp_path, pg_url, sim)
    before = subprocess.run([EXE, "summary"], env=env, capture_output=True, text=True, timeout=60)
    assert before.returncode == 0, before.stderr
    assert "Last dispatcher run: none recorded on this queue" in before.stdout

    subprocess.run(
        [EXE, "dispatch", "--once"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    after = subprocess.run([EXE, "summary"], env=env, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr
    line = after.stdout.strip().splitlines()[-1]
    assert line.startswith(f"Last dispatcher run: {socket.gethostname()}")
    assert line.endswith("(writeback), just now, ok")
