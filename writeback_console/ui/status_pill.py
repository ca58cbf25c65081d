"""The status of a writeback drawn as a coloured pill with icon and text, never colour alone."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from writeback_console.domain import Status
from writeback_console.ui.resources import tinted_pixmap
from writeback_console.ui.status_style import STRUCK_STATUSES, status_color, status_icon_name

DARK_TEXT = QColor("#1d1d1d")
LIGHT_TEXT = QColor("#ffffff")

PADDING_X = 8
ICON_GAP = 4
MARGIN = 3


def _luminance(color: QColor) -> float:
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF()) + 0.0722 * channel(color.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio between two colours (1 to 21)."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def text_color_on(background: QColor) -> QColor:
    """White or near-black, whichever reads better on ``background``."""
    return QColor(_text_color_for(background.rgba()))


@cache
def _text_color_for(rgba: int) -> int:
    background = QColor.fromRgba(rgba)
    light = contrast(LIGHT_TEXT, background) >= contrast(DARK_TEXT, background)
    return (LIGHT_TEXT if light else DARK_TEXT).rgba()


@dataclass(frozen=True, slots=True)
class PillSpec:
    """What a pill shows."""

    status: Status
    retries_remain: bool = False
    #: Said after the status, e.g. how far a mailing activity being sent has come ("31%").
    detail: str | None = None

    @property
    def background(self) -> QColor:
        return status_color(self.status, self.retries_remain)

    @property
    def foreground(self) -> QColor:
        return text_color_on(self.background)

    @property
    def text(self) -> str:
        return self.status.label if not self.detail else f"{self.status.label} · {self.detail}"

    @property
    def struck(self) -> bool:
        return self.status in STRUCK_STATUSES


def pill_font(spec: PillSpec, font: QFont) -> QFont:
    """The font of the pill's label: ``font``, struck through for a withdrawn status."""
    if not spec.struck:
        return font
    struck = QFont(font)
    struck.setStrikeOut(True)
    return struck


def pill_size(spec: PillSpec, font: QFont) -> QSize:
    metrics = QFontMetrics(pill_font(spec, font))
    height = metrics.height() + 4
    icon = height - 6
    return QSize(PADDING_X * 2 + icon + ICON_GAP + metrics.horizontalAdvance(spec.text), height)


def paint_pill(painter: QPainter, rect: QRect, spec: PillSpec, font: QFont) -> QRect:
    """Draw the pill left-aligned and vertically centred in ``rect``; returns where it went."""
    wanted = pill_size(spec, font)
    height = min(wanted.height(), rect.height() - 2)
    width = min(wanted.width(), rect.width() - 2 * MARGIN)
    if width <= 0 or height <= 0:
        return QRect()
    pill = QRect(rect.left() + MARGIN, rect.top() + (rect.height() - height) // 2, width, height)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(spec.background)
    painter.drawRoundedRect(QRectF(pill), height / 2, height / 2)

    icon_size = max(8, height - 6)
    ratio = painter.device().devicePixelRatioF() if painter.device() is not None else 1.0
    pixmap = tinted_pixmap(status_icon_name(spec.status), spec.foreground, icon_size, ratio)
    icon_left = pill.left() + PADDING_X
    painter.drawPixmap(icon_left, pill.top() + (height - icon_size) // 2, pixmap)

    text_rect = QRect(icon_left + icon_size + ICON_GAP, pill.top(), 0, height)
    text_rect.setRight(pill.right() - PADDING_X + 2)
    label_font = pill_font(spec, font)
    painter.setFont(label_font)
    painter.setPen(spec.foreground)
    metrics = QFontMetrics(label_font)
    text = metrics.elidedText(spec.text, Qt.TextElideMode.ElideRight, max(0, text_rect.width()))
    painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), text)
    painter.restore()
    return pill


class StatusPillDelegate(QStyledItemDelegate):
    """Paints the status column: the model gives a ``PillSpec`` under ``role``."""

    def __init__(self, role: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._role = role

    def _spec(self, index: QModelIndex | QPersistentModelIndex) -> PillSpec | None:
        spec = index.data(self._role)
        return spec if isinstance(spec, PillSpec) else None

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        spec = self._spec(index)
        if spec is None:
            super().paint(painter, option, index)
            return
        # The selection and focus background come from the style; the cell's own text is the pill.
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        paint_pill(painter, opt.rect, spec, opt.font)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        spec = self._spec(index)
        if spec is None:
            return super().sizeHint(option, index)
        size = pill_size(spec, option.font)
        return QSize(size.width() + 2 * MARGIN, size.height() + 2 * MARGIN)


class StatusPill(QWidget):
    """A pill on its own, for headers such as the detail pane's."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._spec: PillSpec | None = None

    def set_spec(self, spec: PillSpec | None) -> None:
        self._spec = spec
        self.setToolTip(spec.text if spec else "")
        self.updateGeometry()
        self.update()

    def spec(self) -> PillSpec | None:
        return self._spec

    def sizeHint(self) -> QSize:
        if self._spec is None:
            return QSize(0, 0)
        size = pill_size(self._spec, self.font())
        return QSize(size.width() + 2 * MARGIN, size.height() + 2 * MARGIN)

    def paintEvent(self, event: QPaintEvent) -> None:
        if self._spec is None:
            return
        painter = QPainter(self)
        paint_pill(painter, self.rect(), self._spec, self.font())
        painter.end()
