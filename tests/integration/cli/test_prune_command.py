"""`prune` as an operator runs it: the age in words, a dry run, asking first, progress, the space given
back, and `show` of a reference that was pruned."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import enqueue, item, run, send
from tests.integration.cli.test_cli import run_cli
from writeback_console import operations
from writeback_console.domain import utcnow
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory

Factory = sessionmaker[Session]


def _old_sent(factory: Factory, n: int, days_ago: int = 200) -> list[str]:
    at = utcnow() - timedelta(days=days_ago)
    ids = enqueue(factory, *(item(email=f"p{k}@example.org") for k in range(n)), now=at)
    run(factory, at)
    for wid in ids:
        send(factory, wid, at + timedelta(seconds=1))
    with factory() as session:
        return [listing.get_writeback(session, wid).ref for wid in ids]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("age", "words"),
    [
        ("3d", "'3d': 3 day(s) is shorter than the 7 days retention allows"),
        ("1w", "'1w': 7 day(s)"),
        ("180x", "unknown unit 'x'"),
        ("soon", "'soon' is not an age"),
        ("20y", "7,300 days is more than the 3,650 days"),
    ],
)
def test_a_bad_age_is_refused_in_words_with_exit_2(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], age: str, words: str
) -> None:
    if age == "1w":
        # Seven days is the shortest age allowed, not refused.
        code, out, _ = run_cli(capsys, sqlite_url, "prune", "--sent-older-than", age, "--dry-run")
        assert code == 0 and "nothing to prune" in out
        return
    with pytest.raises(SystemExit) as refused:
        run_cli(capsys, sqlite_url, "prune", "--sent-older-than", age)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "--sent-older-than" in err and words in err


def test_prune_off_a_terminal_without_yes_is_refused_and_the_dry_run_counts(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    refs = _old_sent(factory, 3)
    code, _, err = run_cli(capsys, sqlite_url, "prune", "--sent-older-than", "180d")
    assert code == 2 and "3 Sent writebacks finished before" in err and "--yes" in err
    code, out, _ = run_cli(capsys, sqlite_url, "prune", "--sent-older-than", "6m", "--dry-run")
    assert code == 0 and "3 Sent writebacks finished before" in out and "nothing was changed" in out
    with factory() as session:
        assert len(listing.resolve_ids(session, refs)) == 3


def test_prune_on_a_terminal_asks_first_and_says_what_it_deleted(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    refs = _old_sent(factory, 2)
    recent = _old_sent(factory, 1, days_ago=30)
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    code, out, _ = run_cli(capsys, sqlite_url, "prune", "--sent-older-than", "26w")
    assert code == 0 and "Delete 2 Sent writebacks finished before" in out and "nothing was changed" in out
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    code, out, err = run_cli(capsys, sqlite_url, "prune", "--sent-older-than", "26w")
    assert code == 0 and "deleted 2 Sent writebacks finished before" in out
    assert "their audit entries are kept" in out and "deleted 2 of about 2" in err
    code, out, _ = run_cli(capsys, sqlite_url, "prune", "--sent-older-than", "26w", "--yes")
    assert code == 0 and "nothing to prune" in out
    with factory() as session:
        assert len(listing.resolve_ids(session, recent)) == 1
    code, out, _ = run_cli(capsys, sqlite_url, "show", refs[0])
    assert code == 0 and f"{refs[0]} (Unsubscribe, Sent at" in out and "was pruned at" in out
    code, out, _ = run_cli(capsys, sqlite_url, "show", refs[1], "--format", "json")
    shown = json.loads(out)
    assert code == 0 and shown["pruned"] is True and shown["status"] == "sent"
    code, _, err = run_cli(capsys, sqlite_url, "show", "WB-NOSUCHROW1")
    assert code == 1 and "no writeback" in err


def test_prune_with_vacuum_gives_the_sqlite_file_space_back(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    _old_sent(factory, 300)
    code, out, _ = run_cli(capsys, sqlite_url, "prune", "--sent-older-than", "180d", "--yes", "--vacuum")
    assert code == 0 and "deleted 300 Sent writebacks" in out
    before, after = (float(x.split()[0]) for x in out.split("went from ")[1].split(" to "))
    assert after < before


def test_the_daily_retention_is_set_with_account_for_every_account_only(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, sqlite_url, "account")
    assert code == 0 and "delete sent writebacks: never" in out
    code, out, _ = run_cli(capsys, sqlite_url, "account", "--prune-sent-after", "26w")
    assert code == 0 and "delete sent writebacks: older than 182 days, once a day (every account)" in out
    code, _, err = run_cli(capsys, sqlite_url, "account", "--account", "Main", "--prune-sent-after", "180d")
    assert code == 1 and "retention is set for every account at once" in err
    code, out, _ = run_cli(capsys, sqlite_url, "account", "--prune-sent-after", "never")
    assert code == 0 and "delete sent writebacks: never" in out


def test_a_prune_that_finds_its_rows_gone_after_asking_says_it_deleted_0(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    _old_sent(factory, 2)

    def someone_else_prunes_meanwhile(prompt: str) -> str:
        print(prompt, end="")
        operations.prune(factory, 180, actor="someone else")
        return "y"

    monkeypatch.setattr("sys.stdin", _Terminal(""))
    monkeypatch.setattr("builtins.input", someone_else_prunes_meanwhile)
    code, out, _ = run_cli(capsys, sqlite_url, "prune", "--sent-older-than", "180d")
    assert code == 0 and "Delete 2 Sent writebacks" in out
    assert "deleted 0 Sent writebacks finished before" in out and "deleted  " not in out
