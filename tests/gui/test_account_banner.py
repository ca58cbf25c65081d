"""The "writebacks are switched off" banner names the Informz accounts that are off."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from writeback_console.settings import AppSettings
from writeback_console.store import switches
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.ui.composition_root import build_window
from writeback_console.ui.main_window import BANNER_DISABLED, DISABLED_TEXT, MainWindow, accounts_off_text
from writeback_console.ui.tasks import TaskRunner


def _window(qtbot: QtBot, factory: sessionmaker[Session], runner: TaskRunner, tmp_path: Path) -> MainWindow:
    window = build_window(factory, AppSettings(), runner=runner, state_path=tmp_path / "w.ini")
    qtbot.addWidget(window)
    wait_loaded(qtbot, window.writebacks.model)
    qtbot.waitUntil(lambda: window.writeback_enabled is not None, timeout=5000)
    return window


def _switch(factory: sessionmaker[Session], account: str, on: bool) -> None:
    with write_transaction(factory) as session:
        switches.set_setting(session, switches.WRITEBACK_ENABLED, on, account=account, actor="test")


def test_the_banner_names_the_accounts_switched_off_and_goes_when_they_are_on(
    qtbot: QtBot, sqlite_url: str, runner: TaskRunner, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    _switch(factory, "Foundation", False)
    _switch(factory, "Annual Meeting", False)
    window = _window(qtbot, factory, runner, tmp_path)
    text = window.banner_text(BANNER_DISABLED) or ""
    assert "switched off for the Informz accounts “Annual Meeting” and “Foundation”" in text
    assert window.writeback_enabled is True

    _switch(factory, "Annual Meeting", True)
    window.check_writeback_enabled()
    qtbot.waitUntil(
        lambda: "“Annual Meeting”" not in (window.banner_text(BANNER_DISABLED) or ""), timeout=5000
    )
    assert "the Informz account “Foundation”: its writebacks are queued" in (
        window.banner_text(BANNER_DISABLED) or ""
    )

    _switch(factory, switches.ALL_ACCOUNTS, False)
    window.check_writeback_enabled()
    qtbot.waitUntil(lambda: window.banner_text(BANNER_DISABLED) == DISABLED_TEXT, timeout=5000)

    _switch(factory, switches.ALL_ACCOUNTS, True)
    _switch(factory, "Foundation", True)
    window.check_writeback_enabled()
    qtbot.waitUntil(lambda: window.banner_text(BANNER_DISABLED) is None, timeout=5000)
    window.close()
    engine.dispose()


@pytest.mark.parametrize(
    ("accounts", "named"),
    [
        (["A"], "account “A”: its"),
        (["A", "B", "C"], "accounts “A”, “B” and “C”: their"),
        ([f"A{n}" for n in range(7)], "“A3”, “A4” and 2 more: their"),
    ],
)
def test_the_accounts_are_named_in_a_sentence(accounts: list[str], named: str) -> None:
    assert named in accounts_off_text(accounts)
