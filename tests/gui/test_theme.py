"""The light and dark palettes: chosen from the system or WRITEBACK_CONSOLE_THEME, switched while the
window is open, and every colour of our own (pills, banners, icons, error labels) readable on both."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QCheckBox, QLabel, QStyle, QStyleOptionButton, QWidget
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from writeback_console.domain import Status
from writeback_console.settings import AppSettings
from writeback_console.ui import theme
from writeback_console.ui.composition_root import build_window
from writeback_console.ui.main_window import BANNER_CREDENTIALS, BANNER_DISABLED, Banner
from writeback_console.ui.status_pill import (
    MARGIN,
    PADDING_X,
    PillSpec,
    contrast,
    paint_pill,
    pill_size,
    text_color_on,
)
from writeback_console.ui.status_style import (
    DARK_STATUS_COLORS,
    PALETTE_STATUS_COLORS,
    STATUS_COLORS,
    status_color,
    status_tint,
)
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.theme import THEME_ENV, Choice, Scheme, ThemeManager

Factory = sessionmaker[Session]
SPECS = [PillSpec(s) for s in Status] + [PillSpec(Status.ERROR, retries_remain=True)]
SCHEMES = [Scheme.LIGHT, Scheme.DARK]


class FakeSystem:
    """The platform's answer to "which colour scheme?": offscreen has none, so the tests give one."""

    def __init__(self) -> None:
        self.scheme = Qt.ColorScheme.Unknown

    def __call__(self) -> Qt.ColorScheme:
        return self.scheme


@pytest.fixture
def system() -> FakeSystem:
    return FakeSystem()


@pytest.fixture
def manager(qapp: QApplication, system: FakeSystem) -> Iterator[ThemeManager]:
    """A theme manager on the test application; afterwards the plain palette and no style sheet again,
    as every other test expects."""
    made = ThemeManager(qapp, Choice.SYSTEM, system_scheme=system)
    yield made
    made.setParent(None)
    made.deleteLater()
    qapp.styleHints().unsetColorScheme()
    qapp.setPalette(QPalette())
    qapp.setStyleSheet("")


@pytest.fixture(params=SCHEMES, ids=lambda s: s.value)
def scheme(request: pytest.FixtureRequest, manager: ThemeManager) -> Scheme:
    """Each test runs once on the light palette and once on the dark one."""
    chosen: Scheme = request.param
    manager.set_choice(Choice(chosen.value))
    assert theme.current().scheme is chosen
    return chosen


def ink_contrast(image: QImage, area: QRect, background: QColor) -> float:
    """How far the most distinct pixel in ``area`` stands from ``background``: the text's or icon's
    colour where its strokes are solid."""
    best = 1.0
    for y in range(max(0, area.top()), min(image.height(), area.bottom() + 1)):
        for x in range(max(0, area.left()), min(image.width(), area.right() + 1)):
            best = max(best, contrast(image.pixelColor(x, y), background))
    return best


def test_every_status_has_its_own_colour_on_each_palette() -> None:
    for colours in PALETTE_STATUS_COLORS.values():
        assert set(colours) == set(Status)
        assert len({c.lower() for c in colours.values()}) == len(Status)
    assert PALETTE_STATUS_COLORS[Scheme.LIGHT] is STATUS_COLORS
    assert PALETTE_STATUS_COLORS[Scheme.DARK] is DARK_STATUS_COLORS


@pytest.mark.parametrize(
    "spec", SPECS, ids=lambda s: s.status.value + ("_retrying" if s.retries_remain else "")
)
def test_pill_text_and_icon_read_on_both_palettes(qtbot: QtBot, scheme: Scheme, spec: PillSpec) -> None:
    page = QApplication.palette().color(QPalette.ColorRole.Base)
    font = QFont()
    size = pill_size(spec, font)
    image = QImage(size.width() + 2 * MARGIN + 10, size.height() + 2 * MARGIN, QImage.Format.Format_ARGB32)
    image.fill(page)
    painter = QPainter(image)
    pill = paint_pill(painter, image.rect(), spec, font)
    painter.end()
    # The painted pill's own colour, between its rounded end and the icon.
    background = image.pixelColor(pill.left() + PADDING_X // 2, pill.center().y())
    assert background == status_color(spec.status, spec.retries_remain, scheme)
    icon_side = max(8, pill.height() - 6)
    icon_area = QRect(pill.left() + PADDING_X, pill.top(), icon_side, pill.height())
    text_area = QRect(icon_area.right() + 1, pill.top(), pill.right() - icon_area.right(), pill.height())
    assert ink_contrast(image, text_area, background) >= 4.5, f"{spec.text} on {background.name()}"
    assert ink_contrast(image, icon_area, background) >= 3.0


@pytest.mark.parametrize("kind", [BANNER_DISABLED, BANNER_CREDENTIALS], ids=["warning", "error"])
def test_banner_text_and_icon_read_on_both_palettes(qtbot: QtBot, scheme: Scheme, kind: str) -> None:
    banner = Banner(kind, "Writebacks")  # short: the label's right-hand end is bare background
    qtbot.addWidget(banner)
    banner.resize(600, 40)
    banner.show()
    qtbot.waitExposed(banner)
    image = banner.grab().toImage()
    label = banner.label.geometry()
    background = image.pixelColor(label.right() - 4, label.center().y())
    page = QApplication.palette().color(QPalette.ColorRole.Window)
    assert background != page, "the banner has no background of its own"
    assert (background.lightness() < 128) == (scheme is Scheme.DARK)
    assert ink_contrast(image, label, background) >= 4.5
    assert ink_contrast(image, banner.icon.geometry(), background) >= 3.0


def test_error_and_notice_labels_read_on_both_palettes(qtbot: QtBot, scheme: Scheme) -> None:
    holder = QWidget()
    qtbot.addWidget(holder)
    error, notice = QLabel("Could not save", holder), QLabel("Already scheduled", holder)
    theme.set_tone(error, "error")
    theme.set_tone(notice, "notice")
    notice.move(0, 30)
    for label in (error, notice):
        label.adjustSize()
    holder.resize(300, 80)
    holder.show()
    qtbot.waitExposed(holder)
    image = holder.grab().toImage()
    page = image.pixelColor(299, 79)
    assert ink_contrast(image, error.geometry(), page) >= 4.5
    notice_background = image.pixelColor(notice.geometry().right() - 3, notice.geometry().center().y())
    assert ink_contrast(image, notice.geometry().adjusted(2, 2, -2, -2), notice_background) >= 4.5
    theme.set_tone(error, None)
    image = holder.grab().toImage()
    plain = ink_contrast(image, error.geometry(), page)
    assert plain >= 4.5 and error.property("tone") is None


def test_status_tints_carry_readable_text_on_both_palettes(scheme: Scheme) -> None:
    for status in Status:
        tint = status_tint(status)
        assert contrast(text_color_on(tint), tint) >= 7, f"{status} tint {tint.name()}"
        assert (tint.lightness() < 128) == (scheme is Scheme.DARK)


def test_an_error_with_retries_left_sits_nearer_the_page_than_the_exhausted_one(scheme: Scheme) -> None:
    page = QApplication.palette().color(QPalette.ColorRole.Base)
    exhausted, retrying = status_color(Status.ERROR), status_color(Status.ERROR, retries_remain=True)
    assert contrast(retrying, page) < contrast(exhausted, page)


def test_the_environment_chooses_the_palette(caplog: pytest.LogCaptureFixture) -> None:
    assert theme.choice_from_environment({THEME_ENV: "dark"}) is Choice.DARK
    assert theme.choice_from_environment({THEME_ENV: " Light "}) is Choice.LIGHT
    assert theme.choice_from_environment({}) is Choice.SYSTEM
    with caplog.at_level(logging.WARNING):
        assert theme.choice_from_environment({THEME_ENV: "purple"}) is Choice.SYSTEM
    assert "WRITEBACK_CONSOLE_THEME='purple' is not a palette; use one of system, light, dark" in caplog.text


def test_the_console_follows_the_system_scheme_while_it_runs(
    qapp: QApplication, manager: ThemeManager, system: FakeSystem
) -> None:
    shown: list[Scheme] = []
    manager.theme_changed.connect(lambda t: shown.append(t.scheme))
    system.scheme = Qt.ColorScheme.Dark
    manager.apply()
    assert theme.is_dark(qapp.palette()) and shown == [Scheme.DARK]
    system.scheme = Qt.ColorScheme.Light
    qapp.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert not theme.is_dark(qapp.palette()) and shown == [Scheme.DARK, Scheme.LIGHT]
    # An explicit choice wins over the system until the user goes back to "system".
    manager.set_choice(Choice.DARK)
    qapp.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert theme.is_dark(qapp.palette())
    manager.set_choice(Choice.SYSTEM)
    assert not theme.is_dark(qapp.palette())


def test_a_platform_without_a_scheme_keeps_its_own_palette(qapp: QApplication, manager: ThemeManager) -> None:
    before = QPalette().color(QPalette.ColorRole.Window)
    manager.apply()
    assert qapp.palette().color(QPalette.ColorRole.Window) == before


def test_switching_the_palette_restyles_the_open_window(
    qtbot: QtBot, manager: ThemeManager, small_factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    manager.set_choice(Choice.LIGHT)
    window = build_window(small_factory, AppSettings(), runner=runner, state_path=tmp_path / "w.ini")
    qtbot.addWidget(window)
    window.show_banner(BANNER_CREDENTIALS, "Personify360 rejected the user name or password")
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    wait_loaded(qtbot, window.writebacks.model)
    table = window.writebacks.table

    def look() -> dict[str, QColor]:
        banner = window.banners[BANNER_CREDENTIALS]
        shot = banner.grab().toImage()
        label = banner.label.geometry()
        bar = window.findChild(QWidget, "mainToolbar")
        assert bar is not None
        toolbar = bar.grab().toImage()
        bare = toolbar.pixelColor(toolbar.width() - 3, toolbar.height() // 2)
        ink = max(
            (toolbar.pixelColor(x, y) for x in range(0, toolbar.width(), 2) for y in range(toolbar.height())),
            key=lambda c: contrast(c, bare),
        )
        cell = table.visualRect(window.writebacks.model.index(0, 1))
        rows = table.viewport().grab().toImage()
        symbol = window.dashboard.cards[Status.SENT.value].symbol.grab().toImage()
        sent = status_color(Status.SENT)
        assert any(
            contrast(symbol.pixelColor(x, y), sent) < 1.1
            for x in range(symbol.width())
            for y in range(symbol.height())
        ), "the dashboard's Sent icon is not in the palette's Sent colour"
        return {
            "banner": shot.pixelColor(label.right() - 4, label.center().y()),
            "toolbar_ink": ink,
            "table": rows.pixelColor(cell.right() - 2, cell.center().y()),
        }

    light = look()
    manager.set_choice(Choice.DARK)
    qtbot.wait(10)
    dark = look()
    assert light["banner"].lightness() > 200 and dark["banner"].lightness() < 80
    assert light["table"].lightness() > 200 and dark["table"].lightness() < 80
    # The toolbar's icons and text were near black; on the dark palette they are near white.
    assert light["toolbar_ink"].lightness() < 60 and dark["toolbar_ink"].lightness() > 180
    assert window.writebacks.model.rowCount() > 0
    window.close()


def test_a_checkbox_square_stands_out_from_the_page_on_both_palettes(qtbot: QtBot, scheme: Scheme) -> None:
    """WCAG's non-text contrast: the square of an unchecked box is at least 3:1 against the page."""
    holder = QWidget()
    qtbot.addWidget(holder)
    box = QCheckBox("Stuck in Processing", holder)
    box.move(10, 10)
    box.adjustSize()
    holder.resize(260, 50)
    holder.show()
    qtbot.waitExposed(holder)
    option = QStyleOptionButton()
    box.initStyleOption(option)
    square = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
    image = holder.grab().toImage()
    page = image.pixelColor(255, 45)
    assert ink_contrast(image, square.translated(box.pos()), page) >= 3.0
    box.setChecked(True)
    image = holder.grab().toImage()
    edge = square.translated(box.pos())
    assert contrast(image.pixelColor(edge.left(), edge.center().y()), page) >= 3.0
