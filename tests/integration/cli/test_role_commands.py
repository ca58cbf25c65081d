"""The commands as a person with a PostgreSQL role runs them: a refusal by the database is said in words,
naming the user and the role the command needs, and the command exits 1; the role script is printed and
written as shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.builders import enqueue, fail_runs, item, row
from tests.helpers.roles import queue_with_roles
from tests.integration.cli.test_cli import run_cli
from writeback_console.domain import Status

SCRIPTS = Path(__file__).resolve().parents[3] / "sql" / "postgresql"


def test_a_retry_by_support_is_refused_by_the_database_in_words(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with queue_with_roles(pg_url) as queue:
        (wid,) = enqueue(queue.owner, item())
        fail_runs(queue.owner, wid, 3)
        ref = row(queue.owner, wid).ref
        code, out, err = run_cli(capsys, queue.urls["support"], "retry", ref)
        assert code == 1 and out == ""
        assert err == (
            f"writeback-console: The database refused: the user {queue.users['support']} may not change "
            "this writeback (retry needs the advisor role). Nothing was changed.\n"
        )
        assert row(queue.owner, wid).status is Status.ERROR
        code, out, _ = run_cli(capsys, queue.urls["advisor"], "retry", ref)
        assert code == 0 and "1 writeback will be retried" in out


def test_the_role_script_and_its_rollback_are_printed_and_written_as_shipped(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run_cli(capsys, sqlite_url, "sql", "postgresql-roles")
    assert code == 0
    assert out == (SCRIPTS / "roles.sql").read_text(encoding="utf-8")
    code, _, err = run_cli(
        capsys, sqlite_url, "sql", "postgresql-roles", "--rollback", "--output", str(tmp_path)
    )
    assert code == 0 and "roles_rollback.sql" in err
    assert (tmp_path / "roles_rollback.sql").read_bytes() == (SCRIPTS / "roles_rollback.sql").read_bytes()
