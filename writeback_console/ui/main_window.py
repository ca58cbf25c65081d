"""The main window: Informz-style navigation, the pages, menus, toolbar, banners and remembered layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QColor, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QTreeWidgetItemIterator,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.config import config_dir
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.settings import AppSettings
from writeback_console.store import switches
from writeback_console.store.changes import ChangeFeed
from writeback_console.store.engine import read_session
from writeback_console.store.permissions import EVERYTHING, Action, Capabilities, Role
from writeback_console.store.rows import WritebackRow
from writeback_console.ui import export
from writeback_console.ui.dialogs import shortcuts
from writeback_console.ui.dialogs.schedule import MOVABLE
from writeback_console.ui.pages.audit_log import AuditLogPage
from writeback_console.ui.pages.charts import BarPick
from writeback_console.ui.pages.dashboard import DashboardPage
from writeback_console.ui.pages.top_errors import TopErrorsPage
from writeback_console.ui.permissions import PermissionGate
from writeback_console.ui.resources import IconLabel, icon
from writeback_console.ui.tasks import Task, TaskGroup, TaskRunner
from writeback_console.ui.theme import banner_icon_color
from writeback_console.ui.writeback_view import WritebackListPage

Factory = sessionmaker[Session]

PAGE_WRITEBACKS = "writeback_list"
PAGE_MAILINGS = "mailings"
PAGE_CONSTITUENTS = "constituents"
PAGE_DASHBOARD = "dashboard"
PAGE_TOP_ERRORS = "top_errors"
PAGE_SETTINGS = "settings"
PAGE_AUDIT = "audit_log"

PAGE_TITLES = {
    PAGE_WRITEBACKS: "Writeback List",
    PAGE_MAILINGS: "Mailings",
    PAGE_CONSTITUENTS: "Constituent lookup (CRM360)",
    PAGE_DASHBOARD: "Dashboard",
    PAGE_TOP_ERRORS: "Top errors",
    PAGE_SETTINGS: "Settings",
    # Last, so that the pages before it keep their Ctrl+number.
    PAGE_AUDIT: "Audit log",
}
#: Pages another part of the application supplies; until then ``page_for`` gives a placeholder.
PLUGGED_PAGES = (PAGE_MAILINGS, PAGE_CONSTITUENTS, PAGE_SETTINGS)

BANNER_DISABLED = "writeback_disabled"
BANNER_UNREACHABLE = "personify_unreachable"
BANNER_CREDENTIALS = "credentials_rejected"
BANNER_DATABASE = "database_refused"
#: In a console that does not dispatch: no dispatcher has finished a run for two intervals.
BANNER_NO_DISPATCHER = "no_dispatcher"
#: Errors are red, the rest amber.
BANNER_SEVERITY = {BANNER_CREDENTIALS: "error", BANNER_UNREACHABLE: "error", BANNER_DATABASE: "error"}
DISABLED_TEXT = (
    "Writebacks are switched off: new writebacks are queued, but nothing is sent to Personify360 "
    "until they are switched on again in Settings."
)


STATE_FILE = "window.ini"
ROW_ROLE = Qt.ItemDataRole.UserRole


def window_state_path() -> Path:
    """Where the window remembers its layout: an INI file in the config folder, never the registry."""
    return config_dir() / STATE_FILE


def page_for(name: str) -> QWidget:
    """A placeholder for a page built elsewhere (Mailings, Constituent lookup, Settings)."""
    page = QWidget()
    page.setObjectName(f"placeholder_{name}")
    layout = QVBoxLayout(page)
    title = QLabel(PAGE_TITLES.get(name, name))
    title.setObjectName("pageTitle")
    hint = QLabel("This page is not available in this build yet.")
    hint.setObjectName("emptyHint")
    layout.addWidget(title)
    layout.addWidget(hint)
    layout.addStretch(1)
    return page


class Banner(QFrame):
    """One message across the top of every page, e.g. "writebacks are switched off".

    Signals:
        dismissed(str): the user closed the banner of this kind.
    """

    dismissed = Signal(str)

    def __init__(self, kind: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.setObjectName("banner")
        severity = BANNER_SEVERITY.get(kind, "warning")
        self.setProperty("severity", severity)
        self.icon = IconLabel(icon("warning", lambda: QColor(banner_icon_color(severity))), 20)
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setIcon(icon("close"))
        close.setToolTip("Hide this message")
        close.clicked.connect(self._dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.icon)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)

    def set_text(self, text: str) -> None:
        self.label.setText(text)

    @Slot()
    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit(self.kind)


class MainWindow(QMainWindow):
    """The Writeback Console window.

    Signals:
        retry_requested(list): Ctrl+R or a Retry action on these writeback ids (wired to the Retry dialog).
        schedule_requested(): Ctrl+Shift+S (wired to the Schedule Mailing Activity dialog).
        reschedule_requested(WritebackRow): Reschedule… on this mailing activity (Queue menu, the list's
            context menu, the detail pane).
        cancel_scheduled_requested(WritebackRow): Cancel scheduled… on this Scheduled mailing activity.
        run_now_requested(): "Run dispatcher now".
        pause_requested(bool): pause (True) or resume (False) the dispatcher.
        settings_requested(): Settings was chosen from a menu or the toolbar.
        page_changed(str): the page shown now.
    """

    retry_requested = Signal(list)
    schedule_requested = Signal()
    reschedule_requested = Signal(object)
    cancel_scheduled_requested = Signal(object)
    run_now_requested = Signal()
    pause_requested = Signal(bool)
    settings_requested = Signal()
    page_changed = Signal(str)

    def __init__(
        self,
        factory: Factory,
        runner: TaskRunner,
        settings: AppSettings,
        *,
        database_label: str,
        state_path: Path | None = None,
        page_factory: Callable[[str], QWidget] = page_for,
        capabilities: Capabilities = EVERYTHING,
    ) -> None:
        super().__init__()
        self.factory = factory
        #: What the connected role may not do is disabled, with a tooltip naming the role it needs.
        self.gate = PermissionGate(capabilities, self)
        #: The database's news of changed writebacks, once the window has started.
        self.change_feed: ChangeFeed | None = None
        self.runner = runner
        self.settings = settings
        self.database_label = database_label
        self.state_path = state_path or window_state_path()
        # The application's name last: Qt appends it to any title that does not end with it (on X11
        # and Windows), which made "Writeback Console — demo.sqlite3 — Writeback Console".
        self.setWindowTitle(f"{database_label} — Writeback Console")
        self.setObjectName("mainWindow")
        self._enabled_task: Task | None = None
        self._tasks = TaskGroup(self, runner)
        self.writeback_enabled: bool | None = None
        #: The Keyboard shortcuts card while it is open (F1).
        self.shortcuts_dialog: shortcuts.ShortcutsDialog | None = None

        self.writebacks = WritebackListPage(factory, runner, lease_seconds=settings.lease_seconds)
        self.writebacks.set_gate(self.gate)
        self.dashboard = DashboardPage(factory, runner, settings.lease_seconds)
        self.top_errors = TopErrorsPage(factory, runner)
        self.audit_log = AuditLogPage(factory, runner)
        self.pages: dict[str, QWidget] = {
            PAGE_WRITEBACKS: self.writebacks,
            PAGE_DASHBOARD: self.dashboard,
            PAGE_TOP_ERRORS: self.top_errors,
            PAGE_AUDIT: self.audit_log,
        }
        for name in PLUGGED_PAGES:
            self.pages[name] = page_factory(name)
        self.stack = QStackedWidget()
        for page in self.pages.values():
            self.stack.addWidget(page)

        self.navigation = self._build_navigation()
        self.banner_area = QWidget()
        self.banner_area.setObjectName("bannerArea")
        self._banner_layout = QVBoxLayout(self.banner_area)
        self._banner_layout.setContentsMargins(6, 6, 6, 0)
        self._banner_layout.setSpacing(4)
        self.banner_area.hide()
        self.banners: dict[str, Banner] = {}

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.setSpacing(0)
        right_layout.addWidget(self.banner_area)
        right_layout.addWidget(self.stack, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.navigation)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([240, 1160])
        self.setCentralWidget(self.splitter)

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._guard_actions()

        self.writebacks.retry_requested.connect(self.retry_requested)
        self.writebacks.selection_changed.connect(self._selection_changed)
        self.writebacks.model.rows_refreshed.connect(self._rows_refreshed)
        self.writebacks.reschedule_requested.connect(self.reschedule_requested)
        self.writebacks.cancel_requested.connect(self.cancel_scheduled_requested)
        self.writebacks.status_message.connect(self.show_message)
        self.dashboard.status_clicked.connect(self._show_status)
        self.dashboard.attention_clicked.connect(self._show_attention)
        self.dashboard.bar_clicked.connect(self._show_bar)
        self.top_errors.reason_chosen.connect(self._show_reason)
        self.audit_log.open_ref.connect(self.open_ref)
        self.exporter = export.Exporter(factory, runner, self)
        self.exporter.finished.connect(self._export_finished)
        self.exporter.failed.connect(self._export_failed)
        self.exporter.cancelled.connect(lambda: self.show_message("Export cancelled; no file was written"))

        self.resize(1400, 860)
        self.restore_state()
        self._selection_changed([])

    # --- construction ----------------------------------------------------------------------------

    def _build_navigation(self) -> QTreeWidget:
        tree = QTreeWidget()
        tree.setObjectName("navigation")
        tree.setHeaderHidden(True)
        tree.setIconSize(QSize(16, 16))
        tree.setMinimumWidth(190)

        def folder(parent: QTreeWidget | QTreeWidgetItem, text: str) -> QTreeWidgetItem:
            item = QTreeWidgetItem(parent, [text])
            item.setIcon(0, icon("folder"))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            return item

        def page(parent: QTreeWidget | QTreeWidgetItem, name: str, icon_name: str) -> QTreeWidgetItem:
            item = QTreeWidgetItem(parent, [PAGE_TITLES[name]])
            item.setIcon(0, icon(icon_name))
            item.setData(0, ROW_ROLE, name)
            return item

        admin = folder(tree, "Admin")
        setup = folder(admin, "Setup")
        bridge = folder(setup, "Bridge Configuration")
        page(bridge, PAGE_WRITEBACKS, "list")
        page(tree, PAGE_MAILINGS, "mailing")
        page(tree, PAGE_CONSTITUENTS, "constituent")
        page(tree, PAGE_DASHBOARD, "dashboard")
        page(tree, PAGE_TOP_ERRORS, "warning")
        page(tree, PAGE_AUDIT, "audit")
        page(tree, PAGE_SETTINGS, "settings")
        tree.expandAll()
        tree.currentItemChanged.connect(self._navigate)
        return tree

    def _action(
        self,
        text: str,
        slot: Callable[[], object],
        *,
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
        icon_name: str | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        tip_text = tip or text.rstrip("…")
        if shortcut is not None:
            tip_text += f" ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})"
        action.setToolTip(tip_text)
        action.setStatusTip(tip or text.rstrip("…"))
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work whichever page has the focus
        return action

    def _build_actions(self) -> None:
        self.find_action = self._action(
            "Find…", self.focus_search, shortcut=QKeySequence.StandardKey.Find, icon_name="search",
            tip="Search the Writeback List by email, ref, constituent id or mailing",
        )  # fmt: skip
        self.refresh_action = self._action(
            "Refresh", self.refresh, shortcut=QKeySequence.StandardKey.Refresh, icon_name="refresh",
            tip="Read the list and the counts again",
        )  # fmt: skip
        self.export_action = self._action(
            "Export to CSV…", self.export_csv, shortcut="Ctrl+E", icon_name="export",
            tip="Export every writeback of the current filter to a CSV file",
        )  # fmt: skip
        self.retry_action = self._action(
            "Retry selected…", self.request_retry, shortcut="Ctrl+R", icon_name="retry",
            tip="Retry the selected writebacks whose automatic retries are used up",
        )  # fmt: skip
        self.schedule_action = self._action(
            "Schedule Mailing Activity…", self.schedule_requested.emit, shortcut="Ctrl+Shift+S",
            icon_name="schedule", tip="Send or schedule the mailing activity of a mailing",
        )  # fmt: skip
        self.reschedule_action = self._action(
            "Reschedule mailing activity…", self.request_reschedule, shortcut="Ctrl+Shift+T",
            icon_name="schedule",
            tip="Send the selected mailing activity at another time, or at the next dispatcher run",
        )  # fmt: skip
        self.cancel_scheduled_action = self._action(
            "Cancel scheduled mailing activity…", self.request_cancel_scheduled, shortcut="Ctrl+Delete",
            tip="Withdraw the selected Scheduled mailing activity; it stays listed as Cancelled",
        )  # fmt: skip
        self.run_now_action = self._action(
            "Run dispatcher now", self.run_now_requested.emit, shortcut="Ctrl+Shift+R", icon_name="run-now",
            tip="Start a dispatcher run now instead of waiting for the next one",
        )  # fmt: skip
        self.pause_action = self._action(
            "Pause dispatcher", lambda: None, shortcut="Ctrl+Shift+P", icon_name="pause",
            tip="Pause or resume the dispatcher's runs",
        )  # fmt: skip
        self.pause_action.setCheckable(True)
        self.pause_action.toggled.connect(self.pause_requested)
        self.settings_action = self._action(
            "Settings…", self.open_settings, shortcut="Ctrl+,", icon_name="settings",
            tip="Personify360 connection, activity codes, dispatcher interval",
        )  # fmt: skip
        self.quit_action = self._action("Quit", self.close, shortcut="Ctrl+Q")
        self.detail_action = self._action("Detail pane", lambda: None, shortcut="Ctrl+D")
        self.detail_action.setCheckable(True)
        self.detail_action.setChecked(True)
        self.detail_action.toggled.connect(self.writebacks.set_detail_visible)
        self.clear_filters_action = self._action(
            "Clear filters", self.writebacks.filter_bar.clear, shortcut="Ctrl+Shift+X"
        )
        self.page_actions: dict[str, QAction] = {}
        for n, name in enumerate(PAGE_TITLES, start=1):
            self.page_actions[name] = self._action(
                PAGE_TITLES[name], self._opener(name), shortcut=f"Ctrl+{n}"
            )
        self.about_action = self._action("About Writeback Console", self.about)
        self.shortcuts_action = self._action("Keyboard shortcuts", self.show_shortcuts, shortcut="F1")

    def _guard_actions(self) -> None:
        """Disable, in the menus and the toolbar alike, what the connected role may not do."""
        for action, what in (
            (self.export_action, Action.EXPORT),
            (self.retry_action, Action.RETRY),
            (self.schedule_action, Action.SCHEDULE),
            (self.reschedule_action, Action.RESCHEDULE),
            (self.cancel_scheduled_action, Action.CANCEL),
            (self.run_now_action, Action.DISPATCH),
            (self.pause_action, Action.DISPATCH),
        ):
            self.gate.guard(action, what)
        for menu in self.menuBar().findChildren(QMenu):
            self.gate.guard_menu(menu)

    def _opener(self, name: str) -> Callable[[], None]:
        # A closure without parameters: Qt would pass the "checked" flag into a lambda's default.
        def open_page() -> None:
            self.show_page(name)

        return open_page

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        view_menu = bar.addMenu("&View")
        for action in self.page_actions.values():
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.find_action)
        view_menu.addAction(self.clear_filters_action)
        view_menu.addAction(self.refresh_action)
        view_menu.addAction(self.detail_action)
        queue_menu = bar.addMenu("&Queue")
        queue_menu.addAction(self.retry_action)
        queue_menu.addAction(self.schedule_action)
        queue_menu.addAction(self.reschedule_action)
        queue_menu.addAction(self.cancel_scheduled_action)
        queue_menu.addSeparator()
        queue_menu.addAction(self.run_now_action)
        queue_menu.addAction(self.pause_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)

    def _build_toolbar(self) -> None:
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(20, 20))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.refresh_action, self.export_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.retry_action, self.schedule_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.run_now_action, self.pause_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.settings_action)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        caps = self.gate.capabilities
        roles = ", ".join(r.label for r in Role if r in caps.roles)
        shown = self.database_label if caps.everything or not roles else f"{self.database_label} · {roles}"
        self.database_status = QLabel(shown)
        self.database_status.setObjectName("databaseStatus")
        self.database_status.setToolTip(f"The queue database this window works on. {caps.describe()}")
        #: The dispatcher's widget goes into this slot's layout (state, countdown, progress, last result).
        self.dispatcher_slot = QWidget()
        self.dispatcher_slot.setObjectName("dispatcherSlot")
        slot_layout = QHBoxLayout(self.dispatcher_slot)
        slot_layout.setContentsMargins(0, 0, 0, 0)
        status.addPermanentWidget(self.database_status)
        status.addPermanentWidget(self.dispatcher_slot)

    # --- pages -----------------------------------------------------------------------------------

    def set_page(self, name: str, widget: QWidget) -> None:
        """Put ``widget`` in place of the page ``name`` (how the real Mailings, Constituent and Settings
        pages replace their placeholders)."""
        old = self.pages.get(name)
        self.pages[name] = widget
        if old is None:
            self.stack.addWidget(widget)
            return
        self.stack.insertWidget(self.stack.indexOf(old), widget)
        self.stack.removeWidget(old)
        old.deleteLater()

    def current_page(self) -> str:
        widget = self.stack.currentWidget()
        return next((name for name, page in self.pages.items() if page is widget), "")

    @Slot(str)
    def show_page(self, name: str) -> None:
        page = self.pages.get(name)
        if page is None:
            return
        self.stack.setCurrentWidget(page)
        iterator = QTreeWidgetItemIterator(self.navigation)
        while iterator.value() is not None:
            item = iterator.value()
            if item.data(0, ROW_ROLE) == name:
                self.navigation.blockSignals(True)
                self.navigation.setCurrentItem(item)
                self.navigation.blockSignals(False)
                break
            iterator += 1
        if name == PAGE_DASHBOARD:
            self.dashboard.refresh()
        elif name == PAGE_TOP_ERRORS:
            self.top_errors.refresh()
        elif name == PAGE_AUDIT:
            self.audit_log.start()
        self._selection_changed(self.writebacks.selected_ids())
        self.page_changed.emit(name)

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _navigate(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        name = current.data(0, ROW_ROLE) if current is not None else None
        if isinstance(name, str):
            self.show_page(name)

    @Slot(object)
    def _show_status(self, status: Status) -> None:
        self.writebacks.filter_bar.clear()
        self.writebacks.filter_bar.set_statuses([status])
        self.show_page(PAGE_WRITEBACKS)

    @Slot(str)
    def _show_attention(self, key: str) -> None:
        bar = self.writebacks.filter_bar
        bar.clear()
        if key == "stuck":
            bar.set_flags(stuck=True)
        else:
            bar.set_flags(retry_available=True)
        self.show_page(PAGE_WRITEBACKS)

    @Slot(object)
    def _show_bar(self, pick: BarPick) -> None:
        """A chart's bar: the writebacks sent, or with an attempt failed, in its hour or day."""
        bar = self.writebacks.filter_bar
        bar.clear()
        bar.set_period(pick.status, pick.period.start, pick.period.end)
        self.show_page(PAGE_WRITEBACKS)

    @Slot(str)
    def _show_reason(self, reason: str) -> None:
        self.writebacks.filter_by_error(reason)
        self.show_page(PAGE_WRITEBACKS)

    def open_ref(self, ref: str) -> None:
        """Show one writeback in the list by its reference (from the constituent viewer)."""
        self.show_page(PAGE_WRITEBACKS)
        self.writebacks.select_ref(ref)

    # --- actions ---------------------------------------------------------------------------------

    def start(self) -> None:
        """First queries: the list, and whether writebacks are switched on (both off the GUI thread);
        then the list follows the database's news of changes."""
        self.show_page(PAGE_WRITEBACKS)
        self.writebacks.start()
        self.check_writeback_enabled()
        bind = self.factory.kw.get("bind")
        if isinstance(bind, Engine) and self.change_feed is None:
            self.change_feed = ChangeFeed(bind)
            self.change_feed.start()
            self.writebacks.go_live(self.change_feed)
            self.writebacks.live_changed.connect(self.dashboard.refresh)

    @Slot()
    def check_writeback_enabled(self) -> None:
        if self._enabled_task is not None:
            self._enabled_task.cancel()
        self._enabled_task = self._tasks.submit(
            _query_writeback_enabled, self.factory, on_done=self._enabled_known, on_error=self._enabled_failed
        )

    def _enabled_known(self, state: tuple[bool, list[str]]) -> None:
        self._enabled_task = None
        enabled, accounts_off = state
        self.writeback_enabled = enabled
        if not enabled:
            self.show_banner(BANNER_DISABLED, DISABLED_TEXT)
        elif accounts_off:
            self.show_banner(BANNER_DISABLED, accounts_off_text(accounts_off))
        else:
            self.hide_banner(BANNER_DISABLED)

    def _enabled_failed(self, error: BaseException) -> None:
        self._enabled_task = None
        self.show_message(f"Could not read whether writebacks are switched on: {error}")

    @Slot()
    def focus_search(self) -> None:
        self.show_page(PAGE_WRITEBACKS)
        self.writebacks.filter_bar.focus_search()

    @Slot()
    def refresh(self) -> None:
        if self.current_page() == PAGE_DASHBOARD:
            self.dashboard.refresh()
        self.writebacks.reload()
        self.check_writeback_enabled()
        self.show_message("Refreshed", 2000)

    @Slot()
    def request_retry(self) -> None:
        if self.writebacks.act_on_all_matching("retry"):
            return
        ids = self.writebacks.selected_ids()
        if ids:
            self.retry_requested.emit(ids)
        else:
            self.show_message("Select the writebacks to retry first")

    def acted_row(self) -> WritebackRow | None:
        """The one selected row of the Writeback List, which the row actions act on."""
        rows = self.writebacks.selected_rows()
        return rows[0] if len(rows) == 1 else None

    def _waiting_activity(self) -> WritebackRow | None:
        row = self.acted_row()
        return row if row is not None and row.kind is Kind.MAILING_ACTIVITY else None

    @Slot()
    def request_reschedule(self) -> None:
        row = self._waiting_activity()
        if row is not None and row.status in MOVABLE:
            self.reschedule_requested.emit(row)
        else:
            self.show_message("Select one New or Scheduled mailing activity to reschedule")

    @Slot()
    def request_cancel_scheduled(self) -> None:
        row = self._waiting_activity()
        if row is not None and row.status is Status.SCHEDULED:
            self.cancel_scheduled_requested.emit(row)
        else:
            self.show_message("Select one Scheduled mailing activity to cancel")

    @Slot()
    def open_settings(self) -> None:
        self.show_page(PAGE_SETTINGS)
        self.settings_requested.emit()

    @Slot()
    def export_csv(self) -> None:
        if self.exporter.running:
            self.show_message("An export is already running")
            return
        path = export.ask_export_path(self, export.suggested_file_name(utcnow().astimezone()))
        if path is None:
            return
        self.exporter.start(self.writebacks.current_query(), path)

    @Slot(int, str)
    def _export_finished(self, rows: int, path: str) -> None:
        self.show_message(f"Exported {rows:,} writebacks to {path}", 10_000)

    @Slot(str)
    def _export_failed(self, message: str) -> None:
        self.show_message(message, 15_000)
        QMessageBox.warning(self, "Export failed", message)

    @Slot(list)
    def _selection_changed(self, ids: list[int]) -> None:
        on_list = self.current_page() in (PAGE_WRITEBACKS, "")
        # Only rows a person may retry now count (Error with its automatic retries used up, or Discarded).
        n = self.writebacks.actionable_count("retry")
        what = "all matching" if self.writebacks.all_matching is not None else "selected"
        counted = n > 1 or len(ids) > 1
        self.retry_action.setEnabled(on_list and n > 0)
        self.retry_action.setText(f"Retry {what} ({n:,})…" if counted else "Retry selected…")
        activity = self._waiting_activity() if on_list else None
        self.reschedule_action.setEnabled(activity is not None and activity.status in MOVABLE)
        self.cancel_scheduled_action.setEnabled(activity is not None and activity.status is Status.SCHEDULED)

    @Slot(list)
    def _rows_refreshed(self, _ids: list[int]) -> None:
        # A row read again may have changed status under the selection: the row actions follow.
        self._selection_changed(self.writebacks.selected_ids())

    @Slot()
    def about(self) -> None:
        QMessageBox.about(
            self,
            "About Writeback Console",
            "Writeback Console\n\nThe desktop tool for the Informz → Personify360 writeback queue: find "
            "failed writebacks, understand why, retry them, and watch the dispatcher.",
        )

    @Slot()
    def show_shortcuts(self) -> None:
        """The shortcuts as a reference card; it stays open beside the window until closed."""
        old = self.shortcuts_dialog
        if old is not None and old.isVisible():
            old.raise_()
            old.activateWindow()
            return
        if old is not None:
            old.deleteLater()
        self.shortcuts_dialog = shortcuts.ShortcutsDialog(
            [
                ("Anywhere in the window", shortcuts.window_keys(self.actions(), self.page_actions.values())),
                ("In the lists", shortcuts.LIST_KEYS),
            ],
            self,
        )
        self.shortcuts_dialog.show()

    @Slot(str)
    def show_message(self, text: str, timeout: int = 8000) -> None:
        self.statusBar().showMessage(text, timeout)

    # --- banners ---------------------------------------------------------------------------------

    def show_banner(self, kind: str, text: str) -> None:
        """Show (or update) the banner of this kind above every page."""
        banner = self.banners.get(kind)
        if banner is None:
            banner = Banner(kind, text)
            self.banners[kind] = banner
            self._banner_layout.addWidget(banner)
        banner.set_text(text)
        banner.show()
        self.banner_area.show()

    def hide_banner(self, kind: str) -> None:
        banner = self.banners.pop(kind, None)
        if banner is not None:
            self._banner_layout.removeWidget(banner)
            banner.deleteLater()
        self.banner_area.setVisible(bool(self.banners))

    def banner_text(self, kind: str) -> str | None:
        banner = self.banners.get(kind)
        return banner.label.text() if banner is not None and not banner.isHidden() else None

    # --- remembered layout -----------------------------------------------------------------------

    def _state(self) -> QSettings:
        return QSettings(str(self.state_path), QSettings.Format.IniFormat)

    def save_state(self) -> None:
        state = self._state()
        state.setValue("window/geometry", self.saveGeometry())
        state.setValue("window/state", self.saveState())
        state.setValue("window/splitter", self.splitter.saveState())
        for key, value in self.writebacks.save_state().items():
            state.setValue(f"writeback_list/{key}", value)
        state.setValue("writeback_list/detail_visible", self.detail_action.isChecked())
        state.sync()

    def fit_to_screen(self) -> None:
        """Before the window is first shown: no bigger than the screen it opens on (a laptop's 1,280×800,
        or a remembered size from a larger monitor), never smaller than its minimum, and on the screen."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        available = screen.availableGeometry()
        size = fitted_size(self.size(), available.size(), self.minimumSizeHint())
        if size != self.size():
            self.resize(size)
        frame = self.frameGeometry()
        if not available.contains(frame):
            frame.moveCenter(available.center())
            left = max(frame.left(), available.left())
            top = max(frame.top(), available.top())
            self.move(left, top)

    def restore_state(self) -> None:
        if not self.state_path.exists():
            return
        state = self._state()
        geometry = state.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        window_state = state.value("window/state")
        if isinstance(window_state, QByteArray):
            self.restoreState(window_state)
        splitter = state.value("window/splitter")
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)
        self.writebacks.restore_state(
            {key: state.value(f"writeback_list/{key}") for key in ("splitter", "header")}
        )
        visible = state.value("writeback_list/detail_visible", True)
        self.detail_action.setChecked(visible not in (False, "false"))

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_state()
        self.writebacks.stop_live()
        if self.change_feed is not None:
            self.change_feed.stop()
            self.change_feed = None
        self.exporter.cancel()
        self.writebacks.model.cancel_pending()
        # Let queries in flight finish so that no session is cut off mid-statement.
        self.runner.wait(5000)
        super().closeEvent(event)


def fitted_size(wanted: QSize, available: QSize, minimum: QSize) -> QSize:
    """``wanted`` shrunk to leave room for the window's frame on a screen of ``available`` size."""
    room = QSize(max(available.width() - 16, 0), max(available.height() - 40, 0))
    return wanted.boundedTo(room).expandedTo(minimum)


def _query_writeback_enabled(factory: Factory) -> tuple[bool, list[str]]:
    """Whether writebacks are on at all, and the Informz accounts switched off one by one."""
    with read_session(factory) as session:
        return switches.writeback_enabled(session), sorted(switches.disabled_accounts(session), key=str.lower)


def accounts_off_text(accounts: list[str], shown: int = 5) -> str:
    """The banner for accounts switched off one by one, naming them (the first few, then how many more)."""
    names = [f"“{a}”" for a in accounts[:shown]]
    if len(accounts) > shown:
        names.append(f"{len(accounts) - shown:,} more")
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    which = "account" if len(accounts) == 1 else "accounts"
    theirs = "its" if len(accounts) == 1 else "their"
    return (
        f"Writebacks are switched off for the Informz {which} {listed}: {theirs} writebacks are queued, "
        "but nothing is sent to Personify360 until switched on again in Settings."
    )
