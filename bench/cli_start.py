"""How quickly the command answers: `writeback-console --help`, and `summary` on an empty SQLite queue.

Each command runs as a new process (what a user or a script pays), `--runs` times; the median and the
fastest are reported, since this machine is shared and noisy. Targets (issue 10): `--help` ≤ 0.25 s,
`summary` ≤ 0.4 s.

    .venv/bin/python bench/cli_start.py [--runs 15] [--against DIR]

``--against DIR`` measures another checkout (e.g. a `git worktree` of an older commit) in the same run,
through ``python -m writeback_console.cli`` with ``PYTHONPATH=DIR``, for a side-by-side ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = Path(sys.executable).with_name("writeback-console")


def timed(command: list[str], args: list[str], runs: int, env: dict[str, str]) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        # From a neutral folder: `-m` puts the working folder first on the import path.
        subprocess.run(
            [*command, *args], env=env, check=True, stdout=subprocess.DEVNULL, cwd=tempfile.gettempdir()
        )
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--against", type=Path, help="another checkout to measure side by side")
    options = parser.parse_args()
    runs = options.runs
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "XDG_CONFIG_HOME": folder, "XDG_DATA_HOME": folder, "WRITEBACK_NO_KEYRING": "1"}
        db = str(Path(folder) / "empty.sqlite3")
        subprocess.run(
            [str(EXE), "--db", db, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        python = timed_python(runs, env)
        module = [sys.executable, "-m", "writeback_console.cli"]
        for name, args, target in (
            ("--help", ["--help"], 0.25),
            ("summary", ["--db", db, "summary"], 0.40),
        ):
            seconds = timed([str(EXE)], args, runs, env)
            median = statistics.median(seconds)
            line = (
                f"{name:<8} median {median:.3f} s, fastest {min(seconds):.3f} s over {runs} runs "
                f"(target {target:.2f} s: {'met' if median <= target else 'MISSED'})"
            )
            if options.against:
                other_env = {**env, "PYTHONPATH": str(options.against)}
                other_db = str(Path(folder) / "empty-there.sqlite3")
                if not Path(other_db).exists():
                    timed(module, ["--db", other_db, "db", "upgrade"], 1, other_env)
                there_args = [other_db if a == db else a for a in args]
                here = statistics.median(timed(module, args, runs, env))
                there = statistics.median(timed(module, there_args, runs, other_env))
                line += f"; via -m: {here:.3f} s here, {there:.3f} s there, ratio {here / there:.2f}"
            print(line)
        print(f"python   median {python:.3f} s to start and exit an empty interpreter (for scale)")


def timed_python(runs: int, env: dict[str, str]) -> float:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


if __name__ == "__main__":
    main()
