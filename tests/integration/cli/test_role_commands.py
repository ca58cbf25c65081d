"""The commands as a person with a PostgreSQL role runs them: a change the user's roles forbid is refused
before it starts, in the words of the database's refusal, naming the user and the role the command needs,
and the command exits 1 having changed nothing; the role script is printed and written as shipped."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import enqueue, fail_runs, item, row, run, send
from tests.helpers.roles import queue_with_roles
from tests.integration.cli.test_cli import run_cli
from writeback_console.domain import Status, utcnow
from writeback_console.store.models import Writeback

Factory = sessionmaker[Session]

SCRIPTS = Path(__file__).resolve().parents[3] / "sql" / "postgresql"


def test_a_retry_by_support_is_refused_in_words_naming_the_role(
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
            "writebacks (retry needs the advisor role). Nothing was changed.\n"
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


def _words(user: str, what: str, action: str, role: str = "advisor") -> str:
    return (
        f"writeback-console: The database refused: the user {user} may not {what} "
        f"({action} needs the {role} role). Nothing was changed.\n"
    )


def _old_sent(factory: Factory, n: int) -> list[int]:
    at = utcnow() - timedelta(days=30)
    ids = enqueue(factory, *(item(email=f"p{k}@example.org") for k in range(n)), now=at)
    run(factory, at)
    for wid in ids:
        send(factory, wid, at + timedelta(seconds=1))
    return ids


def _count(factory: Factory) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Writeback)) or 0)


def test_a_prune_by_staff_is_refused_before_it_starts_and_deletes_nothing(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Row-level security hides the rows from staff's DELETE: without asking first, the command deleted
    # nothing and said it had.
    with queue_with_roles(pg_url) as queue:
        _old_sent(queue.owner, 2)
        code, out, err = run_cli(capsys, queue.urls["staff"], "prune", "--sent-older-than", "10d", "--yes")
        assert (code, out) == (1, "")
        assert err == _words(queue.users["staff"], "delete writebacks", "prune")
        assert _count(queue.owner) == 2
        # Counting what would go changes nothing, so staff may.
        code, out, _ = run_cli(capsys, queue.urls["staff"], "prune", "--sent-older-than", "10d", "--dry-run")
        assert code == 0 and "2 Sent writebacks" in out and "would be deleted" in out
        code, out, _ = run_cli(capsys, queue.urls["advisor"], "prune", "--sent-older-than", "10d", "--yes")
        assert code == 0 and out.startswith("deleted 2 Sent writebacks")
        assert _count(queue.owner) == 0


def test_a_discard_by_staff_is_refused_in_words_not_blamed_on_a_dispatcher(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with queue_with_roles(pg_url) as queue:
        (wid,) = enqueue(queue.owner, item())
        fail_runs(queue.owner, wid, 3)
        ref = row(queue.owner, wid).ref
        code, out, err = run_cli(capsys, queue.urls["staff"], "discard", "--reason", "x", ref)
        assert (code, out) == (1, "")
        assert err == _words(queue.users["staff"], "change writebacks", "discard")
        assert "dispatcher" not in err
        assert row(queue.owner, wid).status is Status.ERROR
        code, out, _ = run_cli(capsys, queue.urls["advisor"], "discard", "--reason", "x", ref)
        assert code == 0 and "1 writeback discarded" in out
        assert row(queue.owner, wid).status is Status.DISCARDED


def test_an_enqueue_by_support_is_refused_in_words_and_adds_nothing(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with queue_with_roles(pg_url) as queue:
        argv = ("enqueue", "unsubscribe", "--email", "a@b.org", "--account", "Main")
        code, out, err = run_cli(capsys, queue.urls["support"], *argv)
        assert (code, out) == (1, "")
        assert err == _words(queue.users["support"], "add writebacks", "enqueue")
        assert _count(queue.owner) == 0
        code, _, _ = run_cli(capsys, queue.urls["advisor"], *argv)
        assert code == 0 and _count(queue.owner) == 1


def test_a_retry_by_the_dispatcher_role_is_refused_in_words(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with queue_with_roles(pg_url) as queue:
        (wid,) = enqueue(queue.owner, item())
        fail_runs(queue.owner, wid, 3)
        ref = row(queue.owner, wid).ref
        code, out, err = run_cli(capsys, queue.urls["dispatcher"], "retry", ref)
        assert (code, out) == (1, "")
        assert err == _words(queue.users["dispatcher"], "change writebacks", "retry")
        assert row(queue.owner, wid).status is Status.ERROR
        assert row(queue.owner, wid).attempts == 3
