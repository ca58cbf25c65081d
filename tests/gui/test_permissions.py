"""The console knows its role: what the connected role may not do is disabled wherever it is offered —
menus, toolbar, context menus, the detail pane, the Mailings page and Settings — with a tooltip naming
the role it needs, and stays disabled when a selection would enable it.

The database refuses these actions whatever the console shows (tests/integration/store/test_roles.py);
these tests are about what a person sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QToolBar, QToolButton
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from tests.helpers.builders import T0, enqueue, fail, item, minutes, run
from writeback_console.settings import AppSettings, PasswordStore
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.permissions import EVERYTHING, Capabilities, Role, expand
from writeback_console.ui.composition_root import build_window
from writeback_console.ui.dialogs.settings_dialog import SettingsDialog
from writeback_console.ui.main_window import MainWindow
from writeback_console.ui.pages.mailings import MailingsPage
from writeback_console.ui.permissions import PermissionGate
from writeback_console.ui.tasks import TaskRunner

Factory = sessionmaker[Session]


def role(*roles: Role, user: str = "sam") -> Capabilities:
    return Capabilities(everything=False, roles=expand(frozenset(roles)), user=user)


SUPPORT = role(Role.SUPPORT)
STAFF = role(Role.STAFF)
ADVISOR = role(Role.ADVISOR)


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[Factory]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def exhausted_error(factory: Factory) -> int:
    """An Error row whose automatic retries are used up: a person may retry or discard it."""
    (wid,) = enqueue(factory, item(email="pat@example.org"))
    for k in range(3):
        at = T0 + minutes(10 * k)
        run(factory, at)
        fail(factory, wid, at, "Validation issues: Customer 000000000042-0 does not exist.")
    return wid


def passwords(tmp_path: Path) -> PasswordStore:
    return PasswordStore(fallback=tmp_path / "credentials.json", use_keyring=False)


def open_window(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path, caps: Capabilities
) -> MainWindow:
    window = build_window(
        factory, AppSettings(), runner=runner, state_path=tmp_path / "w.ini", capabilities=caps
    )
    qtbot.addWidget(window)
    wait_loaded(qtbot, window.writebacks.model)
    return window


def select(qtbot: QtBot, window: MainWindow, wid: int) -> None:
    window.writebacks.table.select_ids([wid], current=wid)
    detail = window.writebacks.detail
    qtbot.waitUntil(lambda: detail.detail is not None and detail.detail.row.id == wid, timeout=10_000)


def toolbar_button(window: MainWindow, action: QAction) -> QToolButton:
    bar = window.findChild(QToolBar, "mainToolbar")
    assert bar is not None
    button = bar.widgetForAction(action)
    assert isinstance(button, QToolButton)
    return button


def test_a_support_console_offers_no_change_and_says_which_role_each_needs(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    wid = exhausted_error(factory)
    window = open_window(qtbot, factory, runner, tmp_path, SUPPORT)
    select(qtbot, window, wid)

    # The same row enables Retry for an advisor (below); for support it stays off after the selection.
    needs = {
        window.retry_action: "needs the advisor role",
        window.schedule_action: "needs the staff role",
        window.reschedule_action: "needs the staff role",
        window.cancel_scheduled_action: "needs the staff role",
        window.run_now_action: "needs the dispatcher role",
        window.pause_action: "needs the dispatcher role",
    }
    for action, why in needs.items():
        assert not action.isEnabled(), action.text()
        assert why in action.toolTip(), action.toolTip()
    # The toolbar's buttons are those actions: disabled, and their tooltips say why.
    assert not toolbar_button(window, window.retry_action).isEnabled()
    assert "needs the advisor role" in toolbar_button(window, window.retry_action).toolTip()
    # The shortcut is still named, once, after the reason.
    assert window.retry_action.toolTip().endswith("— needs the advisor role (Ctrl+R)")
    assert window.retry_action.toolTip().count("Ctrl+R") == 1
    # Reading and exporting remain.
    assert window.export_action.isEnabled()
    assert window.refresh_action.isEnabled()

    model = window.writebacks.model
    shown = model.row_at(model.row_of_id(wid) or 0)
    assert shown is not None and shown.id == wid
    menu = window.writebacks.context_menu_for(shown)
    entries = {a.text().split(" (")[0]: a for a in menu.actions() if a.text()}
    assert not entries["Retry selected"].isEnabled()
    assert "needs the advisor role" in entries["Retry selected"].toolTip()
    assert not entries["Discard selected"].isEnabled()
    assert menu.toolTipsVisible()
    assert entries["Copy reference"].isEnabled()

    detail = window.writebacks.detail
    assert not detail.retry_button.isEnabled()
    assert "needs the advisor role" in detail.retry_button.toolTip()
    assert not detail.discard_button.isEnabled()
    # Showing the row again (a refresh) re-enables nothing and keeps the reason in the tooltip.
    detail.refresh()
    qtbot.wait(300)
    assert not detail.retry_button.isEnabled()
    assert "needs the advisor role" in detail.retry_button.toolTip()
    assert "support" in window.database_status.text()
    assert "sam" in window.database_status.toolTip()


def test_an_advisor_console_offers_the_retry_a_support_console_does_not(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    wid = exhausted_error(factory)
    window = open_window(qtbot, factory, runner, tmp_path, ADVISOR)
    select(qtbot, window, wid)
    assert window.retry_action.isEnabled()
    assert "needs" not in window.retry_action.toolTip()
    assert window.writebacks.detail.retry_button.isEnabled()
    assert window.writebacks.detail.discard_button.isEnabled()
    # An advisor is not a dispatcher: a console of theirs does not run one unless given that role too.
    assert not window.run_now_action.isEnabled()


def test_a_staff_console_schedules_mailing_activity_but_retries_nothing(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    wid = exhausted_error(factory)
    window = open_window(qtbot, factory, runner, tmp_path, STAFF)
    select(qtbot, window, wid)
    assert window.schedule_action.isEnabled()
    assert not window.retry_action.isEnabled()
    assert "needs the advisor role" in window.retry_action.toolTip()


def test_the_mailings_page_disables_scheduling_for_support_in_buttons_and_context_menu(
    qtbot: QtBot, factory: Factory, runner: TaskRunner
) -> None:
    page = MailingsPage(factory, runner)
    qtbot.addWidget(page)
    page.set_gate(PermissionGate(SUPPORT, page))
    for action, button in zip(
        (page.schedule_action, page.send_now_action, page.reschedule_action, page.cancel_action),
        page.action_buttons,
        strict=True,
    ):
        page._update_actions()
        assert not action.isEnabled()
        assert not button.isEnabled()
        assert "needs the staff role" in button.toolTip(), button.text()


def test_settings_disables_the_switches_for_support_and_says_who_is_connected(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    dialog = SettingsDialog(
        AppSettings(),
        passwords(tmp_path),
        factory,
        runner,
        None,
        tmp_path / "s.json",
        PermissionGate(SUPPORT),
    )
    qtbot.addWidget(dialog)
    # Loading the account settings enables the boxes for a role that may change them; not this one.
    qtbot.waitUntil(lambda: dialog._account is not None and dialog._per_account is not None, timeout=10_000)
    for widget in (dialog.enabled_box, dialog.account_list, dialog.auto_box, dialog.prune_box):
        assert not widget.isEnabled()
        assert "needs the advisor role" in widget.toolTip()
    assert "sam" in dialog.role_label.text() and "support" in dialog.role_label.text()


def test_settings_on_a_sqlite_file_says_it_has_one_user_who_may_do_everything(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    dialog = SettingsDialog(AppSettings(), passwords(tmp_path), factory, runner, None, tmp_path / "s.json")
    qtbot.addWidget(dialog)
    assert dialog.gate.capabilities == EVERYTHING
    assert "one user" in dialog.role_label.text()
    qtbot.waitUntil(lambda: dialog.enabled_box.isEnabled(), timeout=10_000)
