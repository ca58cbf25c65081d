"""The standing proof: seeded chaos schedules keep every invariant of the queue (see harness.py).

``make test`` runs a fixed set of seeds on SQLite and PostgreSQL; ``make chaos SEED=N`` replays one,
``make chaos SEEDS=N`` runs N seeds from ``CHAOS_FIRST`` (default 1). ``CHAOS_RECORD=FILE`` appends
one JSON line per schedule (faults injected, violations found) for bench/RESULTS.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from tests.chaos.harness import generate, report, run_seed, without
from writeback_console.sim.server import TlsFiles

#: Seeds run by every `make test`: between them (on both backends) they inject every kind of fault.
CI_SEEDS = (152, 34, 119)


def _seeds() -> list[int]:
    if os.environ.get("CHAOS_SEED"):
        return [int(s) for s in os.environ["CHAOS_SEED"].split(",")]
    if os.environ.get("CHAOS_SEEDS"):
        first = int(os.environ.get("CHAOS_FIRST", "1"))
        return list(range(first, first + int(os.environ["CHAOS_SEEDS"])))
    return list(CI_SEEDS)


def _backends() -> list[str]:
    wanted = os.environ.get("CHAOS_BACKEND")
    return [wanted] if wanted else ["sqlite", "postgresql"]


@pytest.mark.chaos
@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("seed", _seeds())
def test_chaos_schedule_keeps_every_invariant(
    seed: int, backend: str, request: pytest.FixtureRequest, tls_files: TlsFiles, tmp_path: Path
) -> None:
    db_url: str = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    keep = tmp_path / "run" if os.environ.get("CHAOS_KEEP") else None
    schedule, seen = run_seed(seed, backend, db_url, tls_files, keep=keep)
    record = os.environ.get("CHAOS_RECORD")
    if record:
        with open(record, "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {
                        "seed": seed,
                        "backend": backend,
                        "faults": dict(seen.faults_injected),
                        "violations": [str(v) for v in seen.violations],
                    }
                )
                + "\n"
            )
    assert not seen.violations, "\n" + report(schedule, seen)


def test_a_seed_always_makes_the_same_schedule() -> None:
    assert generate(34, "postgresql") == generate(34, "postgresql")
    assert generate(34, "postgresql") != generate(34, "sqlite")


def test_leaving_poison_out_keeps_the_rest_of_the_schedule() -> None:
    seed = next(n for n in range(1, 500) if generate(n, "sqlite").poison_rows)
    full = generate(seed, "sqlite")
    calm = without(full, frozenset({"poison", "kill"}))
    assert calm.poison_rows == 0
    assert all(not e.args.get("nasty") for e in calm.events)
    assert all(slot.operator == "INFORMZ" for slot in calm.slots)
    assert [e for e in full.events if e.action != "kill"] == [
        dataclasses.replace(e, args={**e.args, "nasty": False}) if "nasty" in e.args else e
        for e in calm.events
    ]
    assert (calm.writebacks, calm.mailings, calm.duration) == (full.writebacks, full.mailings, full.duration)
