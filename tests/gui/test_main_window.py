"""The main window: title, navigation, actions and shortcuts, banners, dashboard, remembered layout."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel, QWidget
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from writeback_console.domain import Status, manual_retry_decision
from writeback_console.settings import AppSettings
from writeback_console.store import listing, switches
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.ui import main_window, resources
from writeback_console.ui.composition_root import build_window, database_label
from writeback_console.ui.main_window import (
    BANNER_CREDENTIALS,
    BANNER_DISABLED,
    PAGE_CONSTITUENTS,
    PAGE_DASHBOARD,
    PAGE_WRITEBACKS,
    MainWindow,
)
from writeback_console.ui.status_style import status_icon_name
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import Column

Factory = sessionmaker[Session]


def open_window(qtbot: QtBot, factory: Factory, runner: TaskRunner, state: Path) -> MainWindow:
    window = build_window(factory, AppSettings(), runner=runner, state_path=state)
    qtbot.addWidget(window)
    wait_loaded(qtbot, window.writebacks.model)
    return window


def test_title_names_the_database_and_navigation_mirrors_informz(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
    # Qt adds the application's name to a title that does not end with it: the name comes last, once.
    assert window.windowTitle() == "small.sqlite3 — Writeback Console"
    tree = window.navigation
    admin = tree.topLevelItem(0)
    assert admin.text(0) == "Admin"
    setup = admin.child(0)
    bridge = setup.child(0)
    writeback_list = bridge.child(0)
    assert [setup.text(0), bridge.text(0), writeback_list.text(0)] == [
        "Setup",
        "Bridge Configuration",
        "Writeback List",
    ]
    top = [tree.topLevelItem(n).text(0) for n in range(tree.topLevelItemCount())]
    assert top == [
        "Admin",
        "Mailings",
        "Constituent lookup (CRM360)",
        "Dashboard",
        "Top errors",
        "Audit log",
        "Settings",
    ]
    assert window.current_page() == PAGE_WRITEBACKS
    tree.setCurrentItem(tree.topLevelItem(2))
    assert window.current_page() == PAGE_CONSTITUENTS
    assert window.pages[PAGE_CONSTITUENTS].objectName() == "placeholder_constituents"
    window.close()


def test_database_label_never_shows_a_password() -> None:
    assert database_label("postgresql+psycopg://u:secret@db.example.org/queue") == "queue@db.example.org"
    assert database_label("sqlite:////var/lib/x/writeback.sqlite3") == "writeback.sqlite3"


def test_set_page_replaces_a_placeholder(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
    real = QLabel("the real constituent viewer")
    window.set_page(PAGE_CONSTITUENTS, real)
    window.show_page(PAGE_CONSTITUENTS)
    assert window.stack.currentWidget() is real
    window.close()


def test_shortcuts_emit_retry_and_schedule_with_the_selection(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
    shortcuts = {
        window.retry_action: "Ctrl+R",
        window.schedule_action: "Ctrl+Shift+S",
        window.export_action: "Ctrl+E",
        window.refresh_action: QKeySequence(QKeySequence.StandardKey.Refresh).toString(),
        window.find_action: QKeySequence(QKeySequence.StandardKey.Find).toString(),
    }
    for action, key in shortcuts.items():
        assert action.shortcut().toString() == key
    assert (
        window.refresh_action.shortcut().matches(QKeySequence("F5")) == QKeySequence.SequenceMatch.ExactMatch
    )
    assert not window.retry_action.isEnabled()  # nothing selected yet
    retryable = [r for r in window.writebacks.model.loaded_rows() if manual_retry_decision(r.state).allowed]
    ids = [r.id for r in retryable[:3]]
    window.writebacks.table.select_ids(ids)
    assert window.retry_action.isEnabled()
    with qtbot.waitSignal(window.retry_requested) as retry:
        window.retry_action.trigger()
    assert retry.args == [ids]
    with qtbot.waitSignal(window.schedule_requested):
        window.schedule_action.trigger()
    with qtbot.waitSignal(window.pause_requested) as pause:
        window.pause_action.trigger()
    assert pause.args == [True]
    window.find_action.trigger()
    assert window.writebacks.filter_bar.search.hasFocus() or not window.isActiveWindow()
    window.close()


def test_context_menu_offers_copy_detail_retry_and_filters(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
    page = window.writebacks
    row = next(r for r in page.model.loaded_rows() if r.email and manual_retry_decision(r.state).allowed)
    page.table.select_ids([row.id])
    menu = page.context_menu_for(row)
    texts = [a.text() for a in menu.actions() if a.text()]
    assert texts[:3] == ["Copy reference", "Copy email", "Open detail"]
    assert "Retry selected (1)…" in texts
    assert f"Filter by status “{row.status.label}”" in texts
    assert f"Filter by kind “{row.kind.label}”" in texts
    assert f"Filter by email “{row.email}”" in texts
    by_status = next(a for a in menu.actions() if a.text().startswith("Filter by status"))
    by_status.trigger()
    wait_loaded(qtbot, page.model)
    assert page.current_filter().statuses == {row.status}
    copy = next(a for a in menu.actions() if a.text() == "Copy reference")
    copy.trigger()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == row.ref
    window.close()


def test_switched_off_writebacks_show_a_banner_on_start(
    qtbot: QtBot, sqlite_url: str, runner: TaskRunner, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    with write_transaction(factory) as session:
        switches.set_setting(session, switches.WRITEBACK_ENABLED, False, actor="test")
    window = open_window(qtbot, factory, runner, tmp_path / "w.ini")
    qtbot.waitUntil(lambda: window.banner_text(BANNER_DISABLED) is not None, timeout=5000)
    assert "switched off" in (window.banner_text(BANNER_DISABLED) or "")
    assert window.banner_area.isVisibleTo(window)
    window.show_banner(BANNER_CREDENTIALS, "Personify360 rejected the user name or password")
    assert window.banners[BANNER_CREDENTIALS].property("severity") == "error"
    window.hide_banner(BANNER_CREDENTIALS)
    assert window.banner_text(BANNER_CREDENTIALS) is None
    window.close()
    engine.dispose()


def test_no_banner_while_writebacks_are_on(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
    qtbot.waitUntil(lambda: window.writeback_enabled is not None, timeout=5000)
    assert window.writeback_enabled is True
    assert window.banner_text(BANNER_DISABLED) is None
    assert not window.banner_area.isVisibleTo(window)
    window.close()


def test_dashboard_counts_each_status_and_opens_the_list_filtered(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
    window.show_page(PAGE_DASHBOARD)
    with small_factory() as session:
        counts = listing.count_by_status(session)
    card = window.dashboard.cards[Status.ERROR.value]
    qtbot.waitUntil(lambda: card.count.text() == f"{counts[Status.ERROR]:,}", timeout=5000)
    for status in Status:
        assert window.dashboard.cards[status.value].count.text() == f"{counts[status]:,}"
    card.open_button.click()
    assert window.current_page() == PAGE_WRITEBACKS
    wait_loaded(qtbot, window.writebacks.model)
    assert window.writebacks.current_filter().statuses == {Status.ERROR}
    window.close()


def test_dashboard_has_a_card_per_status_and_none_overlaps_another(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
    dashboard = window.dashboard
    assert set(dashboard.cards) == {s.value for s in Status} | {"retry_available", "stuck"}
    grid = dashboard.grid
    taken: set[tuple[int, int]] = set()
    for n in range(grid.count()):
        row, column, rows, columns = grid.getItemPosition(n)
        cells = {(r, c) for r in range(row, row + rows) for c in range(column, column + columns)}
        assert not cells & taken, f"grid cell {sorted(cells & taken)} holds two widgets"
        taken |= cells
    window.close()


def test_the_window_fits_a_1024_pixel_screen_with_every_status_counted(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
    window.writebacks.filter_bar.set_counts(dict.fromkeys(Status, 123_456))
    assert window.minimumSizeHint().width() <= 1024
    window.close()


def test_geometry_splitters_and_columns_round_trip_through_the_ini_file(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    state = tmp_path / "config" / "window.ini"
    state.parent.mkdir()
    window = open_window(qtbot, small_factory, runner, state)
    window.resize(777, 666)  # inside the offscreen screen (800 x 800): restoreGeometry keeps it on screen
    window.show()
    qtbot.waitExposed(window)
    header = window.writebacks.table.horizontalHeader()
    header.resizeSection(Column.KIND, 222)
    header.moveSection(Column.STATUS, 1)
    window.writebacks.table.sortByColumn(Column.REF, Qt.SortOrder.AscendingOrder)
    window.writebacks.splitter.setSizes([300, 400])
    list_sizes = window.writebacks.splitter.sizes()
    window.close()

    assert state.exists()
    stored = QSettings(str(state), QSettings.Format.IniFormat)
    assert "writeback_list/header" in stored.allKeys()
    assert "window/geometry" in stored.allKeys()

    again = open_window(qtbot, small_factory, runner, state)
    again.show()
    qtbot.waitExposed(again)
    header = again.writebacks.table.horizontalHeader()
    assert again.size().height() == 666
    assert again.size().width() == max(777, again.minimumSizeHint().width())
    assert header.sectionSize(Column.KIND) == 222
    assert header.visualIndex(Column.STATUS) == 1
    assert (again.writebacks.model.query.sort, again.writebacks.model.query.descending) == ("ref", False)
    assert again.writebacks.splitter.sizes() == list_sizes
    again.close()


def test_default_state_file_is_an_ini_in_the_config_folder(monkeypatch: object) -> None:
    path = main_window.window_state_path()
    assert path.name == "window.ini"
    assert path.parent == main_window.config_dir()


def test_every_icon_and_the_style_sheet_are_in_the_package() -> None:
    for status in Status:
        assert resources.path_of(status_icon_name(status) + ".svg").is_file()
    for name in resources.ACTION_ICONS:
        assert resources.path_of(name + ".svg").is_file()
    assert resources.path_of("app.svg").is_file()
    assert "QFrame#banner" in resources.style_sheet()
    assert not resources.app_icon().isNull()


def test_placeholder_pages_have_a_title() -> None:
    page = main_window.page_for("mailings")
    assert isinstance(page, QWidget)
    assert page.findChild(QLabel).text() == "Mailings"  # type: ignore[union-attr]


def test_the_window_title_says_writeback_console_once(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    from PySide6.QtGui import QGuiApplication

    from writeback_console.ui.composition_root import APP_DISPLAY_NAME

    before = QGuiApplication.applicationDisplayName()
    QGuiApplication.setApplicationDisplayName(APP_DISPLAY_NAME)
    try:
        window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
        title = window.windowTitle()
        # The platform appends the display name unless the title already ends with it (X11, Windows).
        shown = title if title.endswith(APP_DISPLAY_NAME) else f"{title} — {APP_DISPLAY_NAME}"
        assert shown.count(APP_DISPLAY_NAME) == 1
    finally:
        QGuiApplication.setApplicationDisplayName(before)


def test_the_first_window_fits_the_screen_it_opens_on(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    """Reproduced: on a 1,280×800 screen the console opened 1,400×860, its status bar below the screen."""
    from PySide6.QtCore import QSize

    from writeback_console.ui.main_window import fitted_size

    laptop = QSize(1280, 800)
    minimum = QSize(973, 484)
    assert fitted_size(QSize(1400, 860), laptop, minimum) == QSize(1264, 760)
    assert fitted_size(QSize(1100, 700), laptop, minimum) == QSize(1100, 700)
    assert fitted_size(QSize(1400, 860), QSize(800, 600), minimum) == QSize(973, 560)

    window = open_window(qtbot, small_factory, runner, tmp_path / "w.ini")
    window.fit_to_screen()
    screen = window.screen().availableGeometry()
    expected = fitted_size(QSize(1400, 860), screen.size(), window.minimumSizeHint())
    assert window.size() == expected
    assert window.frameGeometry().left() >= screen.left() and window.frameGeometry().top() >= screen.top()
