"""The commands that change what the queue does, as a user runs them: reschedule, send now, cancel,
the account switches and the settings — the same operations the console's dialogs call."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import add_mailing, enqueue, fail_runs, item, row
from tests.helpers.simulator import MakeSimulator
from tests.integration.cli.test_cli import run_cli
from writeback_console.domain import Status, utcnow
from writeback_console.settings import PasswordStore, load_settings
from writeback_console.store import audit_trail, listing, switches
from writeback_console.store.engine import make_engine, make_session_factory


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with no settings yet and no keyring: settings and password go to files under ``home``."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("WRITEBACK_NO_KEYRING", "1")
    for name in ("WRITEBACK_PERSONIFY_URL", "WRITEBACK_PERSONIFY_USER", "WRITEBACK_PERSONIFY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_scheduled_mailing_activity_is_rescheduled_sent_now_and_cancelled_from_the_command_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    mailing = add_mailing(factory, remote=2)
    tomorrow = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    code, out, _ = run_cli(capsys, sqlite_url, "schedule-mailing", str(mailing), "--at", tomorrow.isoformat())
    assert code == 0, out
    ref = out.split("queued mailing activity ")[1].split()[0]
    later = tomorrow + timedelta(hours=3)
    code, out, _ = run_cli(capsys, sqlite_url, "reschedule", ref, "--at", later.isoformat())
    assert code == 0 and ref in out and later.isoformat().replace("+00:00", "Z") in out
    code, out, _ = run_cli(capsys, sqlite_url, "send-now", str(mailing))
    assert code == 0 and ref in out and "next dispatcher run" in out
    with factory() as session:
        [wid] = listing.resolve_ids(session, [ref])
    assert row(factory, wid).status is Status.NEW
    code, _, err = run_cli(capsys, sqlite_url, "cancel", ref)
    assert code == 1 and "only Scheduled rows can be cancelled" in err
    run_cli(capsys, sqlite_url, "reschedule", ref, "--at", later.isoformat())
    code, out, _ = run_cli(capsys, sqlite_url, "cancel", ref)
    assert code == 0 and "cancelled" in out
    assert row(factory, wid).status is Status.CANCELLED
    code, _, err = run_cli(capsys, sqlite_url, "reschedule", "WB-NOSUCH", "--at", later.isoformat())
    assert code == 1 and "WB-NOSUCH" in err


def test_account_switches_are_shown_changed_and_refused_in_words(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, sqlite_url, "account")
    assert code == 0 and "writeback: on" in out and "by itself: never" in out
    code, out, _ = run_cli(
        capsys, sqlite_url, "account", "--writeback", "off", "--auto-mailing-activity-days", "14"
    )
    assert code == 0 and "writeback: off" in out and "14 day(s)" in out
    with pytest.raises(SystemExit) as refused:
        run_cli(capsys, sqlite_url, "account", "--auto-mailing-activity-days", "400")
    assert refused.value.code == 2 and "between 0 and 365 days, not 400" in capsys.readouterr().err
    code, out, _ = run_cli(capsys, sqlite_url, "account", "--auto-mailing-activity-days", "never")
    assert code == 0 and "writeback: off" in out and "by itself: never" in out


def test_one_informz_account_is_switched_off_without_touching_the_others(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, sqlite_url, "account", "--account", "Foundation", "--writeback", "off")
    assert code == 0 and "Informz account Foundation:" in out and "writeback: off" in out
    assert "writeback: on" in run_cli(capsys, sqlite_url, "account")[1]
    factory = make_session_factory(make_engine(sqlite_url))
    with factory() as session:
        assert switches.disabled_accounts(session) == {"Foundation"}


def test_settings_are_changed_one_name_at_a_time_and_a_bad_value_saves_nothing(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pa55word\n"))
    code, out, err = run_cli(
        capsys,
        sqlite_url,
        "settings",
        "--set",
        "service_root_url=https://p360.example.org/odata",
        "--set",
        "user=svc",
        "--set",
        "concurrency=8",
        "--set",
        "verify_tls=false",
        "--password-stdin",
    )
    assert code == 0, err
    path = home / "config" / "writeback-console" / "settings.json"
    saved = load_settings(path, environ={})
    assert (saved.service_root_url, saved.user, saved.concurrency, saved.verify_tls) == (
        "https://p360.example.org/odata",
        "svc",
        8,
        False,
    )
    assert "password: stored" in out and "pa55word" not in out
    assert PasswordStore(use_keyring=False).get(saved.service_root_url, "svc", environ={}) == "pa55word"
    before = path.read_bytes()
    for assignment, words in (
        ("concurrency=0", "concurrency: must be between 1 and 64, not 0"),
        ("colour=red", "colour: unknown setting"),
        ("concurrency", "write NAME=VALUE"),
        ("verify_tls=maybe", "verify_tls: must be true or false"),
        ("service_root_url=http://10.0.0.9/odata", "service_root_url: http:// would send the Personify360"),
    ):
        code, _, err = run_cli(capsys, sqlite_url, "settings", "--set", assignment)
        assert code == 2 and words in err, err
        assert path.read_bytes() == before
    code, out, _ = run_cli(capsys, sqlite_url, "settings")
    assert code == 0 and json.dumps(8) in out and "https://p360.example.org/odata" in out


def test_send_now_with_now_sends_that_mailings_activity_and_nothing_else(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_simulator: MakeSimulator,
) -> None:
    from tests.helpers.dispatching import recipients_as_constituents

    sim = make_simulator(constituents=recipients_as_constituents(2))
    monkeypatch.setenv("WRITEBACK_PERSONIFY_URL", sim.url)
    monkeypatch.setenv("WRITEBACK_PERSONIFY_USER", "u")
    monkeypatch.setenv("WRITEBACK_PERSONIFY_PASSWORD", "p")
    factory = make_session_factory(make_engine(sqlite_url))
    (other,) = enqueue(factory, item())
    mailing = add_mailing(factory, remote=2)

    code, out, err = run_cli(capsys, sqlite_url, "send-now", str(mailing), "--now")

    assert code == 0, err
    assert "sent 1" in out
    assert len(sim.activities()) == 2
    assert row(factory, other).status is Status.NEW


def _error_rows(factory: sessionmaker[Session], emails: list[str], failures: int = 3) -> list[int]:
    ids = []
    for email in emails:
        [wid] = enqueue(factory, item(email=email))
        fail_runs(factory, wid, failures)
        ids.append(wid)
    return ids


def test_discard_by_ref_needs_a_reason_and_a_retry_undoes_it(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    [wid] = _error_rows(factory, ["ann@example.org"], failures=1)
    ref = row(factory, wid).ref
    with pytest.raises(SystemExit) as refused:
        run_cli(capsys, sqlite_url, "discard", ref)
    assert refused.value.code == 2 and "--reason" in capsys.readouterr().err
    code, _, err = run_cli(capsys, sqlite_url, "discard", ref, "--reason", "  ")
    assert code == 1 and "a reason is required" in err and row(factory, wid).status is Status.ERROR
    code, out, _ = run_cli(capsys, sqlite_url, "discard", ref, "--reason", "member left")
    assert code == 0 and "1 writeback discarded" in out and row(factory, wid).status is Status.DISCARDED
    code, out, _ = run_cli(capsys, sqlite_url, "list", "--status", "discarded", "--format", "json")
    assert code == 0 and [r["ref"] for r in json.loads(out)] == [ref]
    code, out, _ = run_cli(capsys, sqlite_url, "summary")
    assert code == 0 and any(line.split()[:2] == ["Discarded", "1"] for line in out.splitlines())
    code, _, err = run_cli(capsys, sqlite_url, "discard", ref, "--reason", "again")
    assert code == 1 and "1 row cannot be discarded" in err and "already discarded" in err
    code, out, _ = run_cli(capsys, sqlite_url, "retry", ref)
    assert code == 0 and "1 writeback will be retried" in out
    assert (row(factory, wid).status, row(factory, wid).max_attempts) == (Status.NEW, 2)


def test_discard_matching_dry_run_changes_nothing_and_the_real_one_records_the_filter(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    ids = _error_rows(factory, ["ann@example.org", "ann.b@example.org", "bob@example.org"], failures=1)
    code, out, _ = run_cli(
        capsys, sqlite_url, "discard", "--matching", "--search", "ann", "--reason", "gone", "--dry-run"
    )
    assert code == 0 and "2 writebacks would be discarded; nothing was changed" in out
    assert row(factory, ids[0]).ref in out and row(factory, ids[2]).ref not in out
    assert all(row(factory, i).status is Status.ERROR for i in ids)
    code, out, _ = run_cli(
        capsys, sqlite_url, "discard", "--matching", "--search", "ann", "--reason", "gone", "--yes"
    )
    assert code == 0 and "2 writebacks discarded" in out
    assert [row(factory, i).status for i in ids] == [Status.DISCARDED, Status.DISCARDED, Status.ERROR]
    with factory() as session:
        [entry] = [e for e in audit_trail.audit_of(session, ids[0]) if e.action == "discard"]
    assert entry.filter == {"text": "ann", "matching": True} and entry.detail == {"reason": "gone"}


def test_retry_matching_off_a_terminal_without_yes_is_refused_and_dry_run_shows_the_count(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    ids = _error_rows(factory, ["ann@example.org", "bob@example.org"])
    code, _, err = run_cli(capsys, sqlite_url, "retry", "--matching")
    assert code == 2 and "2 writebacks would be retried" in err and "--yes" in err
    assert all(row(factory, i).status is Status.ERROR for i in ids)
    code, out, _ = run_cli(capsys, sqlite_url, "retry", "--matching", "--error", "failure …", "--dry-run")
    assert code == 0 and "2 writebacks would be retried; nothing was changed" in out
    assert all(row(factory, i).status is Status.ERROR for i in ids)
    code, _, err = run_cli(capsys, sqlite_url, "retry", "--dry-run", row(factory, ids[0]).ref)
    assert code == 2 and "--dry-run and --yes go with --matching" in err


def test_retry_matching_on_a_terminal_asks_first(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    [wid] = _error_rows(factory, ["ann@example.org"])
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    code, out, _ = run_cli(capsys, sqlite_url, "retry", "--matching")
    assert (
        code == 0 and "Retry 1 writeback matching the filter? [y/N]" in out and "nothing was changed" in out
    )
    assert row(factory, wid).status is Status.ERROR
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    code, out, _ = run_cli(capsys, sqlite_url, "retry", "--matching")
    assert code == 0 and "1 writeback will be retried" in out and row(factory, wid).status is Status.NEW


class _Terminal(io.StringIO):
    """Standard input as a terminal that a person answers on."""

    def isatty(self) -> bool:
        return True
