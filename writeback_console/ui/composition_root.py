"""The console's composition root: the services built in one fixed order, then the window, wired once."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import messages
from writeback_console.config import APP_AUTHOR, redact_url, resolve_db_url
from writeback_console.personify.client import PersonifyClient
from writeback_console.settings import AppSettings, PasswordStore, load_settings, runs_dispatcher
from writeback_console.store.engine import make_engine, make_session_factory, read_session
from writeback_console.store.migrate import ensure_schema
from writeback_console.store.permissions import EVERYTHING, Action, Capabilities, read_capabilities
from writeback_console.ui import gc_guard, keyboard
from writeback_console.ui.console import Console
from writeback_console.ui.main_window import MainWindow, page_for
from writeback_console.ui.resources import app_icon
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.theme import ThemeManager, choice_from_environment

log = logging.getLogger(__name__)

Factory = sessionmaker[Session]
APP_DISPLAY_NAME = "Writeback Console"


def database_label(url: str) -> str:
    """What the title bar calls the database: the SQLite file's name, or database@host."""
    try:
        parsed = make_url(url)
    except Exception:
        return "unknown database"
    if parsed.get_backend_name() == "sqlite":
        return Path(parsed.database).name if parsed.database else "in-memory database"
    host = parsed.host or "localhost"
    return f"{parsed.database}@{host}" if parsed.database else host


def factory_label(factory: Factory) -> str:
    bind = factory.kw.get("bind")
    return (
        database_label(str(bind.url.render_as_string(hide_password=True))) if bind is not None else "database"
    )


@dataclass
class Services:
    """What the window works with; made by ``start_services`` and closed by ``Services.close``."""

    db_url: str
    engine: Engine
    factory: Factory
    settings: AppSettings
    runner: TaskRunner
    password_store: PasswordStore
    settings_path: Path | None = None
    #: What the connected database user may do, read once at start (SQLite: everything).
    capabilities: Capabilities = EVERYTHING

    def client(self) -> PersonifyClient:
        """A Personify360 client from the current settings; called on worker threads, never the GUI's."""
        settings = self.settings
        password = self.password_store.get(settings.service_root_url, settings.user) or ""
        return PersonifyClient(settings.personify(password))

    def close(self) -> None:
        self.runner.wait(10_000)
        self.engine.dispose()


def start_services(
    db_url: str | None = None,
    *,
    settings_path: Path | None = None,
    password_store: PasswordStore | None = None,
) -> Services:
    """Settings, database (schema checked), task runner, password store — always in this order."""
    settings = load_settings(settings_path)
    url = resolve_db_url(db_url)
    engine = make_engine(url)
    # The embedded SQLite file follows the program; a shared PostgreSQL database is upgraded on purpose.
    ensure_schema(engine, upgrade_if_needed=engine.dialect.name == "sqlite")
    factory = make_session_factory(engine)
    with read_session(factory) as session:
        capabilities = read_capabilities(session)
    messages.set_connected_user(capabilities.user)
    runner = TaskRunner()
    return Services(
        url, engine, factory, settings, runner, password_store or PasswordStore(), settings_path, capabilities
    )


def build_window(
    factory: Factory,
    settings: AppSettings,
    *,
    runner: TaskRunner | None = None,
    state_path: Path | None = None,
    title: str | None = None,
    page_factory: Callable[[str], QWidget] = page_for,
    start: bool = True,
    capabilities: Capabilities = EVERYTHING,
) -> MainWindow:
    """The main window over ``factory``, queries started (unless ``start=False``); no event loop."""
    window = MainWindow(
        factory,
        runner or TaskRunner(),
        settings,
        database_label=title or factory_label(factory),
        state_path=state_path,
        page_factory=page_factory,
        capabilities=capabilities,
    )
    keyboard.show_shortcuts_in_tips(window)
    if start:
        window.start()
    return window


def make_application(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        gc_guard.install(existing)
        return existing
    QCoreApplication.setOrganizationName(APP_AUTHOR)
    QCoreApplication.setApplicationName(APP_DISPLAY_NAME)
    app = QApplication(argv if argv is not None else sys.argv)
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setWindowIcon(app_icon())
    # Fusion looks the same on every platform and follows the light or dark palette it is given: the
    # system's scheme, or the one WRITEBACK_CONSOLE_THEME names, and again whenever the system's changes.
    app.setStyle("Fusion")
    ThemeManager(app, choice_from_environment()).apply()
    gc_guard.install(app)
    return app


def open_console(
    services: Services, *, state_path: Path | None = None, dispatcher: bool | None = None
) -> Console:
    """The window with every page, dialog and the dispatcher wired in; shown by the caller.

    ``dispatcher`` None: as the settings say (``runs_dispatcher``: on for a SQLite file, off for
    PostgreSQL). A console that does not dispatch shows the newest run of the dispatchers that do.
    """
    if dispatcher is None:
        dispatcher = runs_dispatcher(services.settings, services.db_url)
        # A role that may not claim and record writebacks would only be refused at every run.
        dispatcher = dispatcher and services.capabilities.may(Action.DISPATCH)
    window = build_window(
        services.factory,
        services.settings,
        runner=services.runner,
        state_path=state_path,
        start=False,
        capabilities=services.capabilities,
    )
    console = Console(services, window, dispatcher=dispatcher)
    # The pages are in now: their actions too name their keys. The status bar's Run now and Pause
    # buttons show the window's own actions, tooltips included.
    keyboard.show_shortcuts_in_tips(window)
    window.start()
    return console


class InterruptWatch:
    """Ctrl+C (SIGINT) or SIGTERM from the terminal closes the window as its close button does, so the
    console ends as it always does (layout saved, dispatcher stopped, queries finished) instead of with
    a traceback. Qt's event loop runs no Python between events; a timer wakes the interpreter often
    enough to notice the signal. ``stop`` gives the handlers that were there back."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, app: QApplication, window: QWidget) -> None:
        self._window = window
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        self._timer = QTimer(app)
        self._timer.setObjectName("interrupt_watch")
        self._timer.timeout.connect(lambda: None)
        self._timer.start(200)

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("closing on %s", signal.Signals(signum).name)
        QTimer.singleShot(0, self._window.close)

    def stop(self) -> None:
        self._timer.stop()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def main(
    db_url: str | None = None,
    *,
    settings_path: Path | None = None,
    password_store: PasswordStore | None = None,
) -> int:
    """Open the console on ``db_url`` (or the configured database) and run until the window closes."""
    app = make_application()
    try:
        services = start_services(db_url, settings_path=settings_path, password_store=password_store)
    except Exception as exc:  # shown to the user in words, with the details to copy
        log.exception("start-up failed")
        box = QMessageBox(QMessageBox.Icon.Critical, APP_DISPLAY_NAME, "The console could not start.")
        box.setInformativeText(str(exc).replace(db_url or "", redact_url(db_url or "")))
        box.setDetailedText(repr(exc))
        box.exec()
        return 1
    console = open_console(services)
    console.window.fit_to_screen()
    console.window.show()
    # What start-up built lives as long as the window: no garbage collection need traverse it again.
    gc_guard.freeze_startup_heap()
    watcher = InterruptWatch(app, console.window)
    try:
        return int(app.exec())
    finally:
        watcher.stop()
        console.shut_down()
        services.close()
