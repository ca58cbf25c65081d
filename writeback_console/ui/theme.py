"""The console's light and dark palettes: which one is in use, and switching between them while it runs.

The console follows the system's colour scheme (``QStyleHints.colorScheme``, and its change signal) unless
``WRITEBACK_CONSOLE_THEME`` says ``light`` or ``dark``. Where the platform has no palette of the wanted
scheme (offscreen, many Linux desktops), the console builds one for the Fusion style. Everything that
draws a colour of its own (status pills, banners, icons, error labels) takes it from the palette in use
through :func:`current`, so a switch restyles the open window without a restart.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from writeback_console.ui.resources import style_sheet

log = logging.getLogger(__name__)

#: The environment variable that chooses the palette: ``light``, ``dark`` or ``system`` (the default).
THEME_ENV = "WRITEBACK_CONSOLE_THEME"


class Scheme(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


class Choice(enum.Enum):
    """What the user asked for: a scheme, or whatever the system uses."""

    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


@dataclass(frozen=True, slots=True)
class Theme:
    """The colours a palette adds to Qt's own roles: banners, error and warning text. Each field is a
    ``#rrggbb`` name and a ``${field}`` placeholder in the style sheet."""

    scheme: Scheme
    banner_warning_background: str
    banner_warning_border: str
    banner_warning_text: str
    banner_warning_icon: str
    banner_error_background: str
    banner_error_border: str
    banner_error_text: str
    banner_error_icon: str
    error_text: str
    notice_background: str
    notice_border: str
    notice_text: str
    #: The edge of a checkbox's square: at least 3:1 against the page (WCAG non-text contrast), which
    #: Fusion's own edge (the window colour, darkened) is not on either palette.
    indicator_border: str
    #: The edge of a checked square, filled with the highlight: 3:1 against the page as well.
    indicator_checked_border: str

    def tokens(self) -> Mapping[str, str]:
        """The style sheet's placeholders and their colours."""
        return {key: value for key, value in asdict(self).items() if isinstance(value, str)}


LIGHT = Theme(
    scheme=Scheme.LIGHT,
    banner_warning_background="#fff4d6",
    banner_warning_border="#e0b84c",
    banner_warning_text="#2b2b2b",
    banner_warning_icon="#8a5a00",
    banner_error_background="#fde2e1",
    banner_error_border="#d9534f",
    banner_error_text="#2b2b2b",
    banner_error_icon="#c62828",
    error_text="#b3261e",
    notice_background="#fff3cd",
    notice_border="#e6c65c",
    notice_text="#664d03",
    indicator_border="#767676",
    indicator_checked_border="#2f6fc4",
)
DARK = Theme(
    scheme=Scheme.DARK,
    banner_warning_background="#3a3014",
    banner_warning_border="#a8841f",
    banner_warning_text="#f3e9cc",
    banner_warning_icon="#ffca28",
    banner_error_background="#3f1f1f",
    banner_error_border="#c2413b",
    banner_error_text="#f7dcda",
    banner_error_icon="#ff8a80",
    error_text="#ff8a80",
    notice_background="#3a3014",
    notice_border="#a8841f",
    notice_text="#f3e9cc",
    indicator_border="#8d949b",
    indicator_checked_border="#6ea8f0",
)
THEMES = {Scheme.LIGHT: LIGHT, Scheme.DARK: DARK}

#: The dark palette built where the platform has none: Fusion draws every control from these roles.
DARK_ROLES: dict[QPalette.ColorRole, str] = {
    QPalette.ColorRole.Window: "#262a2e",
    QPalette.ColorRole.WindowText: "#e4e6e8",
    QPalette.ColorRole.Base: "#1e2124",
    QPalette.ColorRole.AlternateBase: "#272b30",
    QPalette.ColorRole.ToolTipBase: "#3a3f45",
    QPalette.ColorRole.ToolTipText: "#f1f1f1",
    QPalette.ColorRole.PlaceholderText: "#9aa0a6",
    QPalette.ColorRole.Text: "#e4e6e8",
    QPalette.ColorRole.Button: "#31363b",
    QPalette.ColorRole.ButtonText: "#e4e6e8",
    QPalette.ColorRole.BrightText: "#ff8a80",
    QPalette.ColorRole.Light: "#454b52",
    QPalette.ColorRole.Midlight: "#3a4046",
    QPalette.ColorRole.Mid: "#4a5057",
    QPalette.ColorRole.Dark: "#17191c",
    QPalette.ColorRole.Shadow: "#0b0c0d",
    QPalette.ColorRole.Highlight: "#2f6fc4",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Accent: "#2f6fc4",
    QPalette.ColorRole.Link: "#8ab4f8",
    QPalette.ColorRole.LinkVisited: "#c58af9",
}
#: Disabled controls in the dark palette: dimmer text, but still readable as text.
DARK_DISABLED_ROLES: dict[QPalette.ColorRole, str] = {
    QPalette.ColorRole.WindowText: "#80868c",
    QPalette.ColorRole.Text: "#80868c",
    QPalette.ColorRole.ButtonText: "#80868c",
    QPalette.ColorRole.Highlight: "#3a4046",
    QPalette.ColorRole.HighlightedText: "#b0b4b8",
}


def is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` is a dark one: its windows are darker than their text."""
    return (
        palette.color(QPalette.ColorRole.Window).lightness()
        < palette.color(QPalette.ColorRole.WindowText).lightness()
    )


def current() -> Theme:
    """The theme of the palette in use now (the light one before there is an application)."""
    if QGuiApplication.instance() is None:
        return LIGHT
    return DARK if is_dark(QGuiApplication.palette()) else LIGHT


def banner_icon_color(severity: str) -> str:
    """The colour of a banner's icon on the palette in use: red for errors, amber for warnings."""
    theme = current()
    return theme.banner_error_icon if severity == "error" else theme.banner_warning_icon


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, color in DARK_ROLES.items():
        palette.setColor(role, QColor(color))
    for role, color in DARK_DISABLED_ROLES.items():
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(color))
    return palette


def light_palette() -> QPalette:
    """Fusion's own light palette (the console's style everywhere)."""
    style = QApplication.style()
    palette = style.standardPalette() if style is not None else QPalette()
    if is_dark(palette):  # a style that follows a dark system: Qt's built-in light defaults instead
        palette = QPalette(QColor("#efefef"))
    return palette


def palette_for(scheme: Scheme) -> QPalette:
    return dark_palette() if scheme is Scheme.DARK else light_palette()


def choice_from_environment(environ: Mapping[str, str] | None = None) -> Choice:
    """The palette ``WRITEBACK_CONSOLE_THEME`` asks for; a value it cannot read is said and ignored."""
    raw = (os.environ if environ is None else environ).get(THEME_ENV, "").strip().lower()
    if not raw:
        return Choice.SYSTEM
    try:
        return Choice(raw)
    except ValueError:
        wanted = ", ".join(c.value for c in Choice)
        log.warning("%s=%r is not a palette; use one of %s (following the system)", THEME_ENV, raw, wanted)
        return Choice.SYSTEM


def set_tone(widget: QWidget, tone: str | None) -> None:
    """Colour a label as the style sheet's ``tone``: ``"error"`` (red text) or ``"notice"`` (a pale
    box); ``None`` gives the plain look back. The colour follows the palette in use."""
    if widget.property("tone") == tone:
        return
    widget.setProperty("tone", tone)
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)
    widget.update()


def manager(app: QApplication) -> ThemeManager | None:
    """The application's theme manager (``make_application`` makes it), if it has one."""
    return app.findChild(ThemeManager, "theme_manager")


class ThemeManager(QObject):
    """Applies the chosen palette to the application and follows the system's scheme while it runs.

    Signals:
        theme_changed(object): the ``Theme`` now in use, after a switch.
    """

    theme_changed = Signal(object)

    def __init__(
        self,
        app: QApplication,
        choice: Choice = Choice.SYSTEM,
        *,
        system_scheme: Callable[[], Qt.ColorScheme] | None = None,
    ) -> None:
        super().__init__(app)
        self.setObjectName("theme_manager")
        self._app = app
        self._choice = choice
        self._system_scheme = system_scheme or app.styleHints().colorScheme
        self._applying = False
        app.styleHints().colorSchemeChanged.connect(self._system_scheme_changed)

    @property
    def choice(self) -> Choice:
        return self._choice

    def set_choice(self, choice: Choice) -> None:
        self._choice = choice
        self.apply()

    def wanted_scheme(self) -> Scheme | None:
        """The scheme to show; None: the system says nothing, so keep the platform's own palette."""
        if self._choice is Choice.LIGHT:
            return Scheme.LIGHT
        if self._choice is Choice.DARK:
            return Scheme.DARK
        system = self._system_scheme()
        if system == Qt.ColorScheme.Dark:
            return Scheme.DARK
        if system == Qt.ColorScheme.Light:
            return Scheme.LIGHT
        return None

    def apply(self) -> Theme:
        """Put the wanted palette and its style sheet on the application; returns the theme in use."""
        if self._applying:
            return current()
        self._applying = True
        try:
            hints = self._app.styleHints()
            # Told, the platform draws its own parts (title bars, native dialogs) in the same scheme.
            if self._choice is Choice.SYSTEM:
                hints.unsetColorScheme()
            else:
                hints.setColorScheme(
                    Qt.ColorScheme.Dark if self._choice is Choice.DARK else Qt.ColorScheme.Light
                )
            self._app.setPalette(QPalette())  # the platform's palette, which may already be the right one
            wanted = self.wanted_scheme()
            if wanted is not None and is_dark(self._app.palette()) != (wanted is Scheme.DARK):
                self._app.setPalette(palette_for(wanted))
            theme = current()
            self._app.setStyleSheet(style_sheet(theme.tokens()))
        finally:
            self._applying = False
        log.info("palette: %s (%s)", theme.scheme.value, self._choice.value)
        self.theme_changed.emit(theme)
        return theme

    @Slot(Qt.ColorScheme)
    def _system_scheme_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self._choice is Choice.SYSTEM:
            self.apply()
