"""`send-now --now` when it cannot send at once: it says why, ends non-zero, and leaves nothing half done."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.builders import add_mailing
from tests.helpers.simulator import MakeSimulator
from tests.integration.cli.test_cli import run_cli
from writeback_console.store.engine import make_engine, make_session_factory


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with no settings yet and no keyring: settings and password go to files under ``home``."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("WRITEBACK_NO_KEYRING", "1")
    for name in ("WRITEBACK_PERSONIFY_URL", "WRITEBACK_PERSONIFY_USER", "WRITEBACK_PERSONIFY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _personify_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("WRITEBACK_PERSONIFY_URL", url)
    monkeypatch.setenv("WRITEBACK_PERSONIFY_USER", "u")
    monkeypatch.setenv("WRITEBACK_PERSONIFY_PASSWORD", "p")


def test_send_now_with_now_for_a_switched_off_account_says_nothing_was_sent_and_fails(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_simulator: MakeSimulator,
) -> None:
    from tests.helpers.dispatching import recipients_as_constituents

    sim = make_simulator(constituents=recipients_as_constituents(2))
    _personify_env(monkeypatch, sim.url)
    factory = make_session_factory(make_engine(sqlite_url))
    mailing = add_mailing(factory, remote=2)
    assert run_cli(capsys, sqlite_url, "switch", "Main", "off")[0] == 0

    code, out, err = run_cli(capsys, sqlite_url, "send-now", str(mailing), "--now")

    assert code == 1, out
    assert "not sent: account Main is switched off" in err
    assert sim.activities() == []


def test_send_now_with_now_and_no_password_changes_nothing_so_it_can_be_run_again(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_simulator: MakeSimulator,
) -> None:
    from tests.helpers.dispatching import recipients_as_constituents

    sim = make_simulator(constituents=recipients_as_constituents(2))
    factory = make_session_factory(make_engine(sqlite_url))
    mailing = add_mailing(factory, remote=2)

    code, _, err = run_cli(capsys, sqlite_url, "send-now", str(mailing), "--now")
    assert code == 3 and "password" in err and "nothing was changed" in err
    code, out, _ = run_cli(capsys, sqlite_url, "list")
    assert "Mailing Activity" not in out

    _personify_env(monkeypatch, sim.url)
    code, out, err = run_cli(capsys, sqlite_url, "send-now", str(mailing), "--now")
    assert code == 0, err
    assert len(sim.activities()) == 2


def test_send_now_with_now_sends_a_mailing_activity_already_waiting_as_new(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_simulator: MakeSimulator,
) -> None:
    """After a Send now that could not send (Personify360 down, the account switched off), the activity
    waits as New; asking again refused with 'already has mailing activity …; reschedule that one'."""
    from tests.helpers.dispatching import recipients_as_constituents

    sim = make_simulator(constituents=recipients_as_constituents(2))
    _personify_env(monkeypatch, sim.url)
    factory = make_session_factory(make_engine(sqlite_url))
    mailing = add_mailing(factory, remote=2)
    sim.stop_listening()
    code, _, _ = run_cli(capsys, sqlite_url, "send-now", str(mailing), "--now")
    assert code == 3
    sim.start_listening()

    code, out, err = run_cli(capsys, sqlite_url, "send-now", str(mailing), "--now")

    assert code == 0, err
    assert "sent 1" in out
    assert len(sim.activities()) == 2
