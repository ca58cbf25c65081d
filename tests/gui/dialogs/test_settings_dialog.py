"""The Settings dialog: a round trip that keeps the password off disk in plain text, and Test connection."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel
from pytestqt.qtbot import QtBot
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import enqueue, item
from tests.helpers.simulator import MakeSimulator
from writeback_console.settings import AppSettings, PasswordStore, load_settings
from writeback_console.sim.simulator import Simulator
from writeback_console.store import switches
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import AuditEvent
from writeback_console.ui.dialogs.settings_dialog import CODE_COLUMN, TEMPLATE_COLUMN, SettingsDialog
from writeback_console.ui.tasks import TaskRunner

PASSWORD = "s3cret-Pa55word"
URL = "https://pds.example.org/PersonifyDataServices/PersonifyData.svc"


@pytest.fixture
def store(tmp_path: Path) -> PasswordStore:
    return PasswordStore(fallback=tmp_path / "secrets" / "credentials.json", use_keyring=False)


def set_cell(dialog: SettingsDialog, row: int, column: int, text: str) -> None:
    cell = dialog.mapping_table.item(row, column)
    assert cell is not None
    cell.setText(text)


def open_dialog(
    qtbot: QtBot,
    db: sessionmaker[Session],
    runner: TaskRunner,
    store: PasswordStore,
    path: Path,
    settings: AppSettings | None = None,
) -> SettingsDialog:
    dialog = SettingsDialog(settings or AppSettings(), store, db, runner, None, settings_path=path)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.enabled_box.isEnabled(), timeout=5000)
    return dialog


def test_settings_round_trip_without_the_password_on_disk_in_plain_text(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, store: PasswordStore, tmp_path: Path
) -> None:
    path = tmp_path / "config" / "settings.json"
    dialog = open_dialog(qtbot, db, runner, store, path)
    assert dialog.enabled_box.isChecked() and not dialog.auto_box.isChecked()
    dialog.url_edit.setText(URL)
    dialog.user_edit.setText("informz_svc")
    dialog.password_edit.setText(PASSWORD)
    dialog.operator_edit.setText("WBCONSOLE")
    dialog.connect_timeout_spin.setValue(7.5)
    dialog.read_timeout_spin.setValue(45)
    dialog.request_deadline_spin.setValue(90.5)
    dialog.interval_spin.setValue(5)
    dialog.concurrency_spin.setValue(12)
    dialog.lease_spin.setValue(1200)
    set_cell(dialog, 0, CODE_COLUMN, "SITE_UNSUB")
    set_cell(dialog, 0, TEMPLATE_COLUMN, "Unsubscribed on {when}: {reason}")
    dialog.enabled_box.setChecked(False)
    dialog.auto_box.setChecked(True)
    dialog.auto_days_spin.setValue(3)

    with qtbot.waitSignal(dialog.saved, timeout=5000) as signal:
        dialog.save_button.click()
    saved = signal.args[0]
    loaded = load_settings(path, environ={})
    assert loaded == saved
    assert (loaded.service_root_url, loaded.user, loaded.operator) == (URL, "informz_svc", "WBCONSOLE")
    assert (loaded.connect_timeout, loaded.read_timeout, loaded.request_deadline) == (7.5, 45.0, 90.5)
    assert (loaded.interval_seconds, loaded.concurrency, loaded.lease_seconds) == (300, 12, 1200)
    assert loaded.mapping["codes"]["unsubscribe"] == "SITE_UNSUB"
    assert loaded.mapping["templates"]["unsubscribe"] == "Unsubscribed on {when}: {reason}"

    assert PASSWORD not in path.read_text(encoding="utf-8")
    assert store.get(URL, "informz_svc", environ={}) == PASSWORD
    assert stat.S_IMODE(store.fallback.stat().st_mode) == 0o600
    database = Path(str(db.kw["bind"].url.database))
    for part in database.parent.glob(database.name + "*"):
        assert PASSWORD.encode() not in part.read_bytes()

    with db() as session:
        assert switches.writeback_enabled(session) is False
        assert switches.get_setting(session, switches.AUTO_MAILING_ACTIVITY_DAYS) == 3

    # Opening the dialog again shows what was saved, and the password as stored rather than its text.
    again = open_dialog(qtbot, db, runner, store, path, loaded)
    qtbot.waitUntil(lambda: "stored" in again.password_edit.placeholderText(), timeout=5000)
    assert again.password_edit.text() == ""
    assert not again.enabled_box.isChecked()
    assert again.auto_days_spin.value() == 3
    assert again.request_deadline_spin.value() == 90.5
    assert again.collect() == loaded


def test_request_deadline_sits_under_the_timeouts_in_whole_or_tenth_seconds_from_1_to_3600(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, store: PasswordStore, tmp_path: Path
) -> None:
    dialog = open_dialog(qtbot, db, runner, store, tmp_path / "settings.json")
    spin = dialog.request_deadline_spin
    assert spin.value() == AppSettings().request_deadline == 60.0
    assert (spin.minimum(), spin.maximum(), spin.decimals(), spin.suffix()) == (1.0, 3600.0, 1, " s")
    (form,) = [f for f in dialog.findChildren(QFormLayout) if f.getWidgetPosition(spin)[0] >= 0]
    read_row = form.getWidgetPosition(dialog.read_timeout_spin)[0]
    assert form.getWidgetPosition(spin)[0] == read_row + 1
    label = form.labelForField(spin)
    assert isinstance(label, QLabel) and label.text() == "Request deadline:"

    spin.clear()
    qtbot.keyClicks(spin, "12.34")
    assert dialog.collect().request_deadline == 12.3
    # What the settings would refuse cannot be typed: the box keeps to 1–3600 seconds.
    for typed, kept in ((0.2, 1.0), (7200, 3600.0)):
        spin.setValue(typed)
        assert dialog.collect().request_deadline == kept
    spin.setValue(30)
    with qtbot.waitSignal(dialog.saved, timeout=5000) as signal:
        dialog.save_button.click()
    assert signal.args[0].request_deadline == 30.0
    assert load_settings(tmp_path / "settings.json", environ={}).request_deadline == 30.0


def test_a_bad_activity_code_is_refused_naming_the_field_and_nothing_is_saved(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, store: PasswordStore, tmp_path: Path
) -> None:
    path = tmp_path / "settings.json"
    dialog = open_dialog(qtbot, db, runner, store, path)
    dialog.password_edit.setText(PASSWORD)
    dialog.enabled_box.setChecked(False)
    set_cell(dialog, 3, CODE_COLUMN, "HAS SPACE")
    with qtbot.assertNotEmitted(dialog.saved, wait=200):
        dialog.save_button.click()
    assert "Activity codes › Mailing Activity › code" in dialog.error_label.text()
    assert dialog.tabs.currentIndex() == 1
    assert not path.exists()
    assert not store.fallback.exists()
    with db() as session:
        assert switches.writeback_enabled(session) is True


def test_a_bad_url_is_refused_naming_the_field(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, store: PasswordStore, tmp_path: Path
) -> None:
    path = tmp_path / "settings.json"
    dialog = open_dialog(qtbot, db, runner, store, path)
    dialog.url_edit.setText("pds.example.org/PersonifyData.svc")
    with qtbot.assertNotEmitted(dialog.saved, wait=200):
        dialog.save_button.click()
    assert dialog.error_label.text().startswith("Not saved. Service root URL: must be an http://")
    assert not path.exists()


def test_an_operator_that_cannot_go_in_a_header_is_refused_naming_the_character(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, store: PasswordStore, tmp_path: Path
) -> None:
    path = tmp_path / "settings.json"
    dialog = open_dialog(qtbot, db, runner, store, path)
    dialog.operator_edit.setText("Informz – sync")
    with qtbot.assertNotEmitted(dialog.saved, wait=200):
        dialog.save_button.click()
    assert "Operator: '–' (U+2013) cannot be sent in the AddModOper header" in dialog.error_label.text()
    assert not path.exists()


def test_plain_http_is_saved_only_with_its_box_ticked_and_shown_again(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, store: PasswordStore, tmp_path: Path
) -> None:
    path = tmp_path / "settings.json"
    dialog = open_dialog(qtbot, db, runner, store, path)
    assert not dialog.allow_http_box.isChecked()
    dialog.url_edit.setText("http://pds.example.org/PersonifyDataServices/PersonifyData.svc")
    dialog.user_edit.setText("informz_svc")
    with qtbot.assertNotEmitted(dialog.saved, wait=200):
        dialog.save_button.click()
    assert dialog.error_label.text().startswith(
        "Not saved. Service root URL: http:// would send the Personify360 password unencrypted"
    )
    assert not path.exists()

    dialog.allow_http_box.setChecked(True)
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        dialog.save_button.click()
    loaded = load_settings(path, environ={})
    assert loaded.allow_insecure_http is True
    again = open_dialog(qtbot, db, runner, store, path, loaded)
    assert again.allow_http_box.isChecked()
    assert again.collect() == loaded


def test_test_connection_reports_bad_credentials_in_words(
    qtbot: QtBot,
    db: sessionmaker[Session],
    runner: TaskRunner,
    store: PasswordStore,
    tmp_path: Path,
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(users={"someone-else": "pw"})
    settings = AppSettings(service_root_url=sim.url, user="u", read_timeout=5)
    dialog = open_dialog(qtbot, db, runner, store, tmp_path / "settings.json", settings)
    dialog.password_edit.setText(PASSWORD)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: bool(dialog.checks), timeout=10_000)
    url, login, codes = dialog.checks
    assert url.ok is True
    assert login.ok is False
    assert login.text.startswith("Personify360 rejected the user name or password")
    assert codes.ok is None
    assert PASSWORD not in login.details
    shown = dialog.check_list.topLevelItem(1)
    assert shown is not None and shown.text(1).startswith("Failed: Personify360 rejected")


def test_test_connection_checks_url_credentials_and_activity_codes(
    qtbot: QtBot,
    db: sessionmaker[Session],
    runner: TaskRunner,
    store: PasswordStore,
    tmp_path: Path,
    simulator: Simulator,
) -> None:
    store.set(simulator.url, "u", "p")
    settings = AppSettings(service_root_url=simulator.url, user="u", read_timeout=5)
    dialog = open_dialog(qtbot, db, runner, store, tmp_path / "settings.json", settings)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: bool(dialog.checks), timeout=10_000)
    assert [c.ok for c in dialog.checks] == [True, True, True]
    assert "All activity codes and subcodes are set up" in dialog.checks[2].text

    # A code the site does not have is named.
    dialog.checks = []
    set_cell(dialog, 0, CODE_COLUMN, "NO_SUCH_CODE")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: bool(dialog.checks), timeout=10_000)
    assert dialog.checks[2].ok is False
    assert "Missing activity codes: NO_SUCH_CODE" in dialog.checks[2].text


def test_each_informz_account_has_its_own_writeback_switch(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, store: PasswordStore, tmp_path: Path
) -> None:
    enqueue(db, item(account="Main"), item(account="Foundation"), item(account="chapter"))
    with write_transaction(db) as session:
        switches.set_setting(session, switches.WRITEBACK_ENABLED, False, account="Foundation", actor="test")
    dialog = open_dialog(
        qtbot, db, runner, store, tmp_path / "settings.json", AppSettings(service_root_url=URL, user="u")
    )
    qtbot.waitUntil(lambda: dialog.account_list.topLevelItemCount() == 3, timeout=5000)
    items = {
        dialog.account_list.topLevelItem(n).text(0): dialog.account_list.topLevelItem(n) for n in range(3)
    }  # type: ignore[union-attr]
    assert list(items) == ["chapter", "Foundation", "Main"]
    assert items["Foundation"].checkState(0) == Qt.CheckState.Unchecked
    assert items["Foundation"].text(1) == "switched off: queued, not sent"
    assert items["Main"].checkState(0) == Qt.CheckState.Checked and items["Main"].text(1) == "sent"

    items["Foundation"].setCheckState(0, Qt.CheckState.Checked)
    items["Main"].setCheckState(0, Qt.CheckState.Unchecked)
    assert items["Main"].text(1) == "switched off: queued, not sent"
    assert dialog.account_writeback_changes() == {"Foundation": True, "Main": False}
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        dialog.save_button.click()
    with db() as session:
        assert switches.disabled_accounts(session) == {"Main"}
        assert switches.writeback_enabled(session)  # every account at once: still on
        changed = [
            (e.detail or {}).get("account")
            for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "setting"))
        ]
    assert sorted(a for a in changed if a in ("Main", "Foundation")) == ["Foundation", "Foundation", "Main"]


def test_the_daily_retention_is_off_until_ticked_and_saved_for_every_account(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, store: PasswordStore, tmp_path: Path
) -> None:
    path = tmp_path / "config" / "settings.json"
    dialog = open_dialog(qtbot, db, runner, store, path)
    assert not dialog.prune_box.isChecked() and not dialog.prune_days_spin.isEnabled()
    assert dialog.prune_days_spin.minimum() == 7
    dialog.resize(1024, 700)
    dialog.prune_box.setChecked(True)
    assert dialog.prune_days_spin.isEnabled() and dialog.prune_days_spin.value() == 180
    dialog.prune_days_spin.setValue(400)
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        dialog.save_button.click()
    with db() as session:
        assert switches.get_setting(session, switches.PRUNE_SENT_AFTER_DAYS) == 400
        audited = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "setting")).all()
    assert {"account": "*", "key": "prune_sent_after_days", "from": None, "to": 400} in audited

    again = open_dialog(qtbot, db, runner, store, path)
    assert again.prune_box.isChecked() and again.prune_days_spin.value() == 400
    again.prune_box.setChecked(False)
    with qtbot.waitSignal(again.saved, timeout=5000):
        again.save_button.click()
    with db() as session:
        assert switches.get_setting(session, switches.PRUNE_SENT_AFTER_DAYS) is None


def test_this_console_runs_the_dispatcher_by_its_database_s_default_until_the_box_is_changed(
    qtbot: QtBot, db_url: str, runner: TaskRunner, store: PasswordStore, tmp_path: Path
) -> None:
    from writeback_console.store.engine import make_engine, make_session_factory

    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    sqlite = db_url.startswith("sqlite")
    path = tmp_path / "settings.json"
    dialog = open_dialog(qtbot, factory, runner, store, path)
    box = dialog.runs_dispatcher_box
    assert box.text() == "This console runs the dispatcher"
    assert box.isChecked() is sqlite
    note = dialog.runs_dispatcher_note.text()
    assert "Off: this console sends nothing itself" in note
    default = "The default for this SQLite file is on" if sqlite else "a shared PostgreSQL queue is off"
    assert default in note
    assert "Takes effect when the console starts again" in note
    # Saved untouched, the setting keeps following the database.
    with qtbot.waitSignal(dialog.saved, timeout=5000):
        dialog.save_button.click()
    assert load_settings(path, environ={}).runs_dispatcher is None

    again = open_dialog(qtbot, factory, runner, store, path, load_settings(path, environ={}))
    again.runs_dispatcher_box.setChecked(not sqlite)
    with qtbot.waitSignal(again.saved, timeout=5000):
        again.save_button.click()
    loaded = load_settings(path, environ={})
    assert loaded.runs_dispatcher is (not sqlite)
    third = open_dialog(qtbot, factory, runner, store, path, loaded)
    assert third.runs_dispatcher_box.isChecked() is (not sqlite)
    assert third.collect() == loaded
    engine.dispose()
