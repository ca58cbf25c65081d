"""Claimers at once never get the same row: threads on one SQLite file, connections on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, item
from writeback_console.store import lifecycle
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.models import Attempt

CLAIMERS = 4
ROUNDS = 3
ROWS = 600


def _claim_all(
    url: str, name: str, started: int, gate: threading.Barrier, got: list[int], errors: list[BaseException]
) -> None:
    engine = make_engine(url)  # its own connections, as a separate console would have
    factory = make_session_factory(engine)
    try:
        gate.wait(timeout=30)
        while True:
            with write_transaction(factory) as session:
                claimed = lifecycle.claim(
                    session, dispatcher=name, run_started_at=T0, now=T0, limit=7 + started % 5
                )
            if not claimed:
                return
            got.extend(c.id for c in claimed)
            # A real dispatcher spends a moment sending before it claims again; SQLite's busy handler
            # would otherwise let one claimer take everything.
            time.sleep(0.002)
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)
    finally:
        engine.dispose()


def test_concurrent_claimers_never_get_the_same_row(db_url: str, factory: sessionmaker[Session]) -> None:
    for round_no in range(ROUNDS):
        ids = enqueue(factory, *(item(email=f"r{round_no}-{n}@example.org") for n in range(ROWS)))
        results: list[list[int]] = [[] for _ in range(CLAIMERS)]
        errors: list[BaseException] = []
        gate = threading.Barrier(CLAIMERS)
        threads = [
            threading.Thread(target=_claim_all, args=(db_url, f"host:{k}", k, gate, results[k], errors))
            for k in range(CLAIMERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        claimed = [i for part in results for i in part]
        duplicates = [i for i, n in Counter(claimed).items() if n > 1]
        assert duplicates == []
        assert sorted(claimed) == sorted(ids)
        # Work was really shared, so the test did exercise contention.
        assert sum(1 for part in results if part) >= 2

    with factory() as session:
        attempts = session.execute(select(func.count()).select_from(Attempt)).scalar_one()
    assert attempts == ROWS * ROUNDS
