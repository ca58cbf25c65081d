"""Icons and the style sheet: the package ``writeback_console.resources`` (the repository's top-level
``resources/`` folder), found through importlib.resources in a checkout and an installed wheel alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from string import Template

from PySide6.QtCore import QByteArray, QEvent, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QIconEngine, QImage, QPainter, QPaintEvent, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication, QSizePolicy, QWidget

#: The package installs as files on disk (never zipped), so its folder is a real path Qt can read.
RESOURCE_DIR = Path(str(files("writeback_console.resources")))

#: The action icons the window uses; each is ``<name>.svg`` drawn in ``currentColor``.
ACTION_ICONS = (
    "retry",
    "schedule",
    "export",
    "run-now",
    "pause",
    "refresh",
    "search",
    "settings",
    "close",
    "warning",
    "dashboard",
    "list",
    "mailing",
    "constituent",
    "folder",
    "audit",
)


def path_of(name: str) -> Path:
    """The file of a resource, e.g. ``path_of("style.qss")``; raises FileNotFoundError if it is missing."""
    path = RESOURCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"resource {name!r} is missing from {RESOURCE_DIR}")
    return path


def style_sheet(tokens: Mapping[str, str] | None = None) -> str:
    """The style sheet with its ``${name}`` colours filled from ``tokens`` (a theme's); without tokens,
    the light theme's."""
    if tokens is None:
        from writeback_console.ui.theme import LIGHT  # the theme module builds on this one

        tokens = LIGHT.tokens()
    # The style sheet's images (the checkbox's tick) are files of this folder.
    tokens = {**tokens, "resource_dir": RESOURCE_DIR.as_posix()}
    return Template(path_of("style.qss").read_text(encoding="utf-8")).substitute(tokens)


def app_icon() -> QIcon:
    return QIcon(str(path_of("app.svg")))


@cache
def _svg_source(name: str) -> str:
    return path_of(f"{name}.svg").read_text(encoding="utf-8")


def svg_image(name: str, color: QColor, size: int, device_pixel_ratio: float = 1.0) -> QImage:
    """The icon ``name`` drawn in ``color``: the SVGs use ``currentColor`` so one file serves any palette."""
    source = _svg_source(name).replace("currentColor", color.name())
    pixels = max(1, round(size * device_pixel_ratio))
    image = QImage(pixels, pixels, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    renderer = QSvgRenderer(QByteArray(source.encode("utf-8")))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, pixels, pixels))
    painter.end()
    image.setDevicePixelRatio(device_pixel_ratio)
    return image


_pixmaps: dict[tuple[str, str, int, float], QPixmap] = {}


def tinted_pixmap(name: str, color: QColor, size: int, device_pixel_ratio: float = 1.0) -> QPixmap:
    """A cached pixmap of ``svg_image``; painting a table cell must not parse SVG every time."""
    key = (name, color.name(QColor.NameFormat.HexArgb), size, device_pixel_ratio)
    pixmap = _pixmaps.get(key)
    if pixmap is None:
        pixmap = QPixmap.fromImage(svg_image(name, color, size, device_pixel_ratio))
        _pixmaps[key] = pixmap
    return pixmap


#: How an icon is coloured: a fixed colour, a function asked each time it is drawn, or None for the
#: palette's text colour.
Tone = QColor | Callable[[], QColor] | None


class TintedIconEngine(QIconEngine):
    """Draws an SVG icon in its tone at the moment it is painted, so that an icon made once follows a
    change of palette (light to dark) without being made again; disabled, it takes the palette's
    disabled text colour."""

    def __init__(self, name: str, tone: Tone = None) -> None:
        super().__init__()
        self._name = name
        self._tone = tone

    def color(self, mode: QIcon.Mode) -> QColor:
        palette = QApplication.palette()
        if mode == QIcon.Mode.Disabled:
            return palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
        if self._tone is None:
            return palette.color(QPalette.ColorRole.WindowText)
        return self._tone() if callable(self._tone) else QColor(self._tone)

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        return tinted_pixmap(self._name, self.color(mode), max(1, min(size.width(), size.height())))

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        ratio = painter.device().devicePixelRatioF() if painter.device() is not None else 1.0
        side = min(rect.width(), rect.height())
        pixmap = tinted_pixmap(self._name, self.color(mode), max(1, side), ratio)
        painter.drawPixmap(
            rect.left() + (rect.width() - side) // 2, rect.top() + (rect.height() - side) // 2, pixmap
        )

    def clone(self) -> QIconEngine:
        return TintedIconEngine(self._name, self._tone)


def icon(name: str, color: Tone = None) -> QIcon:
    """An action icon in ``color`` (by default the palette's text colour), greyed when disabled; it is
    drawn anew in the palette in use whenever it is painted."""
    return QIcon(TintedIconEngine(name, color))


class IconLabel(QWidget):
    """An icon on its own (a banner's, a dashboard card's), painted from its ``QIcon`` each time, so that
    it follows the palette as buttons do; a ``QLabel`` would keep the pixmap of the old palette."""

    def __init__(self, icon_: QIcon, size: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._icon = icon_
        self._size = size
        self.setFixedSize(size, size)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def icon(self) -> QIcon:
        return self._icon

    def set_icon(self, icon_: QIcon) -> None:
        self._icon = icon_
        self.update()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self.update()
        super().changeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        mode = QIcon.Mode.Normal if self.isEnabled() else QIcon.Mode.Disabled
        self._icon.paint(painter, self.rect(), Qt.AlignmentFlag.AlignCenter, mode)
        painter.end()
