"""Icons and the style sheet: the package ``writeback_console.resources`` (the repository's top-level
``resources/`` folder), found through importlib.resources in a checkout and an installed wheel alike."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

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
)


def path_of(name: str) -> Path:
    """The file of a resource, e.g. ``path_of("style.qss")``; raises FileNotFoundError if it is missing."""
    path = RESOURCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"resource {name!r} is missing from {RESOURCE_DIR}")
    return path


def style_sheet() -> str:
    return path_of("style.qss").read_text(encoding="utf-8")


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


def icon(name: str, color: QColor | None = None) -> QIcon:
    """An action icon in the palette's text colour (light and dark themes alike), greyed when disabled."""
    palette = QApplication.palette()
    normal = color or palette.color(QPalette.ColorRole.WindowText)
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
    result = QIcon()
    for size in (16, 24, 32, 48):
        result.addPixmap(tinted_pixmap(name, normal, size), QIcon.Mode.Normal)
        result.addPixmap(tinted_pixmap(name, disabled, size), QIcon.Mode.Disabled)
    return result
