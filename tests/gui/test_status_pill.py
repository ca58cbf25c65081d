"""The status pill: colour, icon and text for every status, readable on light and dark palettes."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QPainter,
    QPalette,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import QStyleOptionViewItem, QTableView
from pytestqt.qtbot import QtBot

from writeback_console.domain import Status
from writeback_console.ui.resources import svg_image
from writeback_console.ui.status_pill import PillSpec, StatusPillDelegate, contrast, paint_pill
from writeback_console.ui.status_style import (
    ERROR_RETRYING_COLOR,
    STATUS_COLORS,
    status_color,
    status_icon_name,
)
from writeback_console.ui.writeback_model import PILL_ROLE

SPECS = [PillSpec(s) for s in Status] + [PillSpec(Status.ERROR, retries_remain=True)]


def _ids(spec: PillSpec) -> str:
    return spec.status.value + ("_retrying" if spec.retries_remain else "")


def _pixels(image: QImage) -> list[QColor]:
    return [image.pixelColor(x, y) for y in range(image.height()) for x in range(image.width())]


def _near(a: QColor, b: QColor, tolerance: int = 6) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a.getRgb()[:3], b.getRgb()[:3], strict=True))


def render(spec: PillSpec, background: QColor, width: int = 220, height: int = 28) -> QImage:
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    image.fill(background)
    painter = QPainter(image)
    paint_pill(painter, QRect(0, 0, width, height), spec, QFont())
    painter.end()
    return image


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
@pytest.mark.parametrize("page", ["#ffffff", "#202124"], ids=["light", "dark"])
def test_pill_paints_its_colour_with_readable_text_and_icon(qtbot: QtBot, spec: PillSpec, page: str) -> None:
    image = render(spec, QColor(page))
    pixels = _pixels(image)
    fill = sum(_near(p, spec.background) for p in pixels)
    ink = sum(_near(p, spec.foreground, 40) for p in pixels)
    assert fill > 500, "the pill's colour is missing"
    assert ink > 40, "the pill has no text or icon in its text colour"
    # Icon and text are both there: ink to the left of the text (the icon) and further right.
    left = image.copy(QRect(0, 0, 30, image.height()))
    assert any(_near(p, spec.foreground, 40) for p in _pixels(left)), "no icon"
    assert contrast(spec.foreground, spec.background) >= 4.5


def test_error_is_lighter_while_automatic_retries_remain() -> None:
    exhausted, retrying = status_color(Status.ERROR), status_color(Status.ERROR, retries_remain=True)
    assert retrying == QColor(ERROR_RETRYING_COLOR)
    assert retrying.lightness() > exhausted.lightness()
    assert len({c.lower() for c in STATUS_COLORS.values()}) == len(Status)


def test_delegate_paints_the_pill_from_the_model(qtbot: QtBot) -> None:
    model = QStandardItemModel(1, 1)
    cell = QStandardItem("Sent")
    cell.setData(PillSpec(Status.SENT), PILL_ROLE)
    model.setItem(0, 0, cell)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    delegate = StatusPillDelegate(PILL_ROLE, view)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, 200, 30)  # type: ignore[attr-defined]
    option.widget = view  # type: ignore[attr-defined]
    option.palette = view.palette()  # type: ignore[attr-defined]
    image = QImage(200, 30, QImage.Format.Format_ARGB32)
    image.fill(view.palette().color(QPalette.ColorRole.Base))
    painter = QPainter(image)
    delegate.paint(painter, option, model.index(0, 0))
    painter.end()
    sent = status_color(Status.SENT)
    assert sum(_near(p, sent) for p in _pixels(image)) > 500
    hint = delegate.sizeHint(option, model.index(0, 0))
    assert hint.width() > 40 and hint.height() > 10
    assert Qt.ItemDataRole.UserRole < PILL_ROLE


def longest_ink_run(image: QImage, ink: QColor, left: int) -> int:
    """The longest horizontal run of ``ink`` pixels right of ``left`` (past the icon), on any line."""
    best = 0
    for y in range(image.height()):
        run = 0
        for x in range(left, image.width()):
            run = run + 1 if _near(image.pixelColor(x, y), ink, 60) else 0
            best = max(best, run)
    return best


def test_cancelled_is_a_grey_pill_whose_label_is_struck_through(qtbot: QtBot) -> None:
    cancelled, plain = PillSpec(Status.CANCELLED), PillSpec(Status.NO_REMOTE_RECIPIENTS)
    assert cancelled.struck and not plain.struck
    background = cancelled.background
    assert abs(background.red() - background.green()) < 8 and abs(background.green() - background.blue()) < 8
    # A line through the label is far longer than any stroke of the letters themselves.
    text_width = QFontMetrics(QFont()).horizontalAdvance(cancelled.text)
    struck = longest_ink_run(render(cancelled, QColor("#ffffff")), cancelled.foreground, 30)
    unstruck = longest_ink_run(render(plain, QColor("#ffffff")), plain.foreground, 30)
    assert struck >= 0.8 * text_width
    assert unstruck < 0.5 * text_width


def test_every_status_has_an_icon_of_its_own(qtbot: QtBot) -> None:
    drawn = {s: svg_image(status_icon_name(s), QColor("#000000"), 24) for s in Status}
    assert len({image.bits().tobytes() for image in drawn.values()}) == len(Status)
