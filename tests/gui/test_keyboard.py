"""The keyboard: Tab from the search box through the filters to the list in a few steps, arrow keys within
a row of toggles, a list ready for the arrow keys, and every action's real shortcut in its tooltip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu, QWidget
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from tests.gui.test_console import services_for
from tests.helpers.simulator import MakeSimulator
from writeback_console.domain import Status
from writeback_console.settings import AppSettings
from writeback_console.ui import keyboard
from writeback_console.ui.composition_root import build_window, open_console
from writeback_console.ui.console import Console
from writeback_console.ui.main_window import MainWindow

Factory = sessionmaker[Session]
#: From the search box to the list: kind, account, the two dates, the statuses, the flags, the list.
TABS_TO_THE_LIST = 8


@pytest.fixture
def window(qtbot: QtBot, small_factory: Factory, runner: object, tmp_path: Path) -> Iterator[MainWindow]:
    made = build_window(small_factory, AppSettings(), runner=runner, state_path=tmp_path / "w.ini")  # type: ignore[arg-type]
    qtbot.addWidget(made)
    made.resize(1024, 700)
    made.show()
    qtbot.waitExposed(made)
    made.activateWindow()
    wait_loaded(qtbot, made.writebacks.model)
    yield made
    made.close()


def press(
    widget: QWidget | None, key: Qt.Key, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier
) -> QWidget | None:
    assert widget is not None
    QTest.keyClick(widget, key, modifier)
    return QApplication.focusWidget()


def test_tab_goes_from_the_search_box_through_the_filters_to_the_list_in_a_few_steps(
    window: MainWindow,
) -> None:
    bar, table = window.writebacks.filter_bar, window.writebacks.table
    bar.search.setFocus(Qt.FocusReason.OtherFocusReason)
    assert QApplication.focusWidget() is bar.search
    visited: list[QWidget | None] = []
    focus: QWidget | None = bar.search
    for _ in range(30):
        focus = press(focus, Qt.Key.Key_Tab)
        visited.append(focus)
        if focus is table:
            break
    first_status = bar.status_buttons[Status.NEW]
    assert visited == [
        bar.kind_button,
        bar.account,
        bar.from_check,
        bar.to_check,
        first_status,
        bar.retried,
        bar.error_text,
        table,
    ], [w.objectName() or type(w).__name__ for w in visited if w is not None]
    assert len(visited) == TABS_TO_THE_LIST
    # And back again the same way.
    for expected in reversed([bar.search, *visited[:-1]]):
        focus = press(focus, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
        assert focus is expected


def test_arrow_keys_move_along_the_status_toggles_and_space_toggles_one(window: MainWindow) -> None:
    bar = window.writebacks.filter_bar
    buttons = list(bar.status_buttons.values())
    buttons[0].setFocus(Qt.FocusReason.TabFocusReason)
    focus = press(buttons[0], Qt.Key.Key_Right)
    focus = press(focus, Qt.Key.Key_Right)
    assert focus is buttons[2]
    press(focus, Qt.Key.Key_Space)
    assert bar.selected_statuses() == {list(bar.status_buttons)[2]}
    focus = press(focus, Qt.Key.Key_Left)
    assert focus is buttons[1]
    # Tab leaves the row in one step, and comes back to the toggle last used.
    focus = press(focus, Qt.Key.Key_Tab)
    assert focus is bar.retried
    focus = press(focus, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert focus is buttons[1]


def test_the_list_selects_its_first_row_when_the_keyboard_brings_the_focus(
    qtbot: QtBot, window: MainWindow
) -> None:
    page = window.writebacks
    table = page.table
    assert not page.selected_ids()
    page.filter_bar.search.setFocus(Qt.FocusReason.OtherFocusReason)
    focus = press(page.filter_bar.search, Qt.Key.Key_Down)
    assert focus is table
    first = page.model.row_at(0)
    assert first is not None and page.selected_ids() == [first.id]
    qtbot.waitUntil(lambda: page.detail.writeback_id == first.id)
    # The arrow keys work at once.
    press(table, Qt.Key.Key_Down)
    second = page.model.row_at(1)
    assert second is not None and page.selected_ids() == [second.id]
    # Enter opens the detail of the row, even when the pane was hidden.
    window.detail_action.setChecked(False)
    assert not page.detail.isVisible()
    press(table, Qt.Key.Key_Return)
    assert page.detail.isVisible() and page.detail.writeback_id == second.id


def test_a_click_in_the_list_selects_the_row_clicked_not_the_first(qtbot: QtBot, window: MainWindow) -> None:
    table = window.writebacks.table
    third = window.writebacks.model.row_at(2)
    assert third is not None
    rect = table.visualRect(window.writebacks.model.index(2, 0))
    QTest.mouseClick(
        table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center()
    )
    assert window.writebacks.selected_ids() == [third.id]


@pytest.fixture
def console(
    qtbot: QtBot, tmp_path: Path, sqlite_url: str, make_simulator: MakeSimulator
) -> Iterator[Console]:
    services = services_for(tmp_path, sqlite_url, make_simulator())
    made = open_console(services, state_path=tmp_path / "window.ini", dispatcher=True)
    qtbot.addWidget(made.window)
    yield made
    made.shut_down()
    services.close()


def menu_actions(menu: QMenu) -> Iterator[QAction]:
    for action in menu.actions():
        submenu = action.menu()
        if isinstance(submenu, QMenu):
            yield from menu_actions(submenu)
        elif not action.isSeparator():
            yield action


def test_every_action_has_its_own_shortcut_shown_in_its_tooltip(console: Console) -> None:
    window = console.window
    user_actions = [
        action
        for menu in window.menuBar().findChildren(QMenu, options=Qt.FindChildOption.FindDirectChildrenOnly)
        for action in menu_actions(menu)
    ]
    assert window.run_now_action in user_actions and len(user_actions) > 15
    for action in user_actions:
        if action.menuRole() is QAction.MenuRole.AboutRole or action.text().startswith("About"):
            continue
        assert not action.shortcut().isEmpty(), f"{action.text()!r} has no shortcut"
    # No two actions anywhere in the window answer the same keys, or neither would run.
    owners: dict[str, str] = {}
    for action in window.findChildren(QAction):
        for key in action.shortcuts():
            text = key.toString(QKeySequence.SequenceFormat.PortableText)
            assert text not in owners, f"{text} is both {owners[text]!r} and {action.text()!r}"
            owners[text] = action.text()
    # Every tooltip that names a key names the real one, as this platform writes it.
    native = QKeySequence.SequenceFormat.NativeText
    for action in window.findChildren(QAction):
        if not action.shortcut().isEmpty():
            assert action.toolTip().endswith(f"({action.shortcut().toString(native)})"), action.toolTip()
    assert window.run_now_action.toolTip().endswith(f"({QKeySequence('Ctrl+Shift+R').toString(native)})")
    real = {key.toString(native) for action in window.findChildren(QAction) for key in action.shortcuts()}
    for widget in window.findChildren(QWidget):
        named = keyboard.tip_key(widget.toolTip())
        assert named is None or named in real, f"{type(widget).__name__} tooltip {widget.toolTip()!r}"
    assert console.status.run_button.toolTip() == window.run_now_action.toolTip()


def test_the_run_now_key_its_tooltip_names_starts_a_run(qtbot: QtBot, console: Console) -> None:
    window = console.window
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    key = QKeySequence.fromString(
        keyboard.tip_key(console.status.run_button.toolTip()) or "", keyboard.NATIVE
    )
    combo = key[0]
    with qtbot.waitSignal(window.run_now_requested, timeout=1000):
        QTest.keyClick(window.writebacks.table, combo.key(), combo.keyboardModifiers())


def test_a_shortcut_changed_later_shows_in_the_tooltip(window: MainWindow) -> None:
    window.export_action.setShortcut(QKeySequence("Ctrl+Shift+E"))
    native = QKeySequence("Ctrl+Shift+E").toString(QKeySequence.SequenceFormat.NativeText)
    assert (
        window.export_action.toolTip()
        == f"Export every writeback of the current filter to a CSV file ({native})"
    )


def test_tooltip_words_in_parentheses_are_not_taken_for_keys() -> None:
    assert keyboard.tip_key("Run now (F9)") == "F9"
    assert keyboard.tip_key("Start (Ctrl+Shift+R)") == "Ctrl+Shift+R"
    assert keyboard.tip_key("Constituent lookup (CRM360)") is None
    assert keyboard.tip_without_key("Constituent lookup (CRM360)") == "Constituent lookup (CRM360)"
    assert keyboard.tip_key("Retry selected (7)") is None


# Bringing the open card forward again asks the window system to raise it, which offscreen cannot do.
@pytest.mark.qt_log_ignore("This plugin does not support raise")
def test_f1_shows_every_key_beside_what_it_does_in_two_columns_with_the_list_keys(
    qtbot: QtBot, window: MainWindow
) -> None:
    QTest.keyClick(window, Qt.Key.Key_F1)
    dialog = window.shortcuts_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    rows = dialog.rows()
    assert ("Ctrl+Shift+X", "Clear filters") in rows
    assert ("Ctrl+R", "Retry selected") in rows  # the count of the moment is left out
    assert ("Ctrl+1", "Go to Writeback List") in rows
    keys = {key for key, _ in rows}
    assert {"Down", "← →", "Enter", "Delete"} <= keys
    assert any(key == "Delete" and "Mailings" in does for key, does in rows)
    # Each key has room of its own: the longest ends well before the words of its row begin.
    table = dialog.table
    widest = max(table.fontMetrics().horizontalAdvance(key) for key, does in rows if does)
    assert table.columnWidth(0) >= widest + 20
    assert table.columnViewportPosition(1) >= table.columnWidth(0)
    # It fits beside a 1,024 x 700 window, and F1 again brings the same card forward.
    assert dialog.width() <= 1024 and dialog.height() <= 700
    window.show_shortcuts()
    assert window.shortcuts_dialog is dialog
    dialog.close()
