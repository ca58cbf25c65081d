"""`writeback-console --help` builds every command without loading the queue, the Personify360 client or
Qt (what makes it answer at once); a reading command does not load the client or Alembic either."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "sqlalchemy",
    "requests",
    "PySide6",
    "alembic",
    "writeback_console.store",
    "writeback_console.sim.server",
)


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_help_loads_nothing_heavy() -> None:
    modules = loaded_after(
        "from writeback_console.cli.parser import build_parser\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    build_parser().parse_args(['--help'])"
    )
    assert {m for m in modules if m.startswith(HEAVY)} == set()


def test_summary_of_a_current_sqlite_queue_loads_neither_sqlalchemy_nor_the_client(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    subprocess.run(
        [sys.executable, "-m", "writeback_console.cli", "--db", str(db), "db", "upgrade"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    modules = loaded_after(
        "import contextlib, io\n"
        "from writeback_console.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['--db', {str(db)!r}, 'summary']) == 0"
    )
    assert {m for m in modules if m.startswith(("sqlalchemy", "requests", "alembic", "PySide6"))} == set()


def test_the_demo_profiles_the_command_offers_are_the_demos() -> None:
    from writeback_console.cli.parser import DEMO_PROFILES
    from writeback_console.demo import PROFILES

    assert DEMO_PROFILES == PROFILES
