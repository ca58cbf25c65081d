"""The dashboard's charts: bars for what the status history holds, a bar that opens the list of exactly
the writebacks it counted, and axes that follow the palette."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCharts import QBarSeries, QBarSet
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from tests.helpers.builders import enqueue, fail, item, run, send
from writeback_console.domain import Status, utcnow
from writeback_console.settings import AppSettings
from writeback_console.store import charts
from writeback_console.ui import theme
from writeback_console.ui.composition_root import build_window
from writeback_console.ui.main_window import PAGE_DASHBOARD, PAGE_WRITEBACKS, MainWindow
from writeback_console.ui.status_style import status_color
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.theme import Choice, ThemeManager

Factory = sessionmaker[Session]


def _history(factory: Factory) -> tuple[list[int], list[int]]:
    """Three writebacks sent three hours ago, two sent and one failed an hour ago; returns the ids sent
    three hours ago and the one that failed."""
    hour = charts.hour_floor(utcnow())
    ids = enqueue(
        factory, *(item(email=f"p{n}@example.org") for n in range(6)), now=hour - timedelta(hours=4)
    )
    three_ago, one_ago = hour - timedelta(hours=3), hour - timedelta(hours=1)
    run(factory, three_ago + timedelta(minutes=1), limit=3)
    for wid in ids[:3]:
        send(factory, wid, three_ago + timedelta(minutes=2))
    run(factory, one_ago + timedelta(minutes=1))
    send(factory, ids[3], one_ago + timedelta(minutes=2))
    send(factory, ids[4], one_ago + timedelta(minutes=3))
    fail(factory, ids[5], one_ago + timedelta(minutes=4))
    return ids[:3], ids[5:]


def _open(qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path) -> MainWindow:
    window = build_window(factory, AppSettings(), runner=runner, state_path=tmp_path / "w.ini")
    qtbot.addWidget(window)
    window.resize(1024, 700)
    window.show()
    wait_loaded(qtbot, window.writebacks.model)
    window.show_page(PAGE_DASHBOARD)
    qtbot.waitUntil(lambda: window.dashboard.charts.shown is not None, timeout=10_000)
    return window


def _bar_sets(window: MainWindow) -> tuple[QBarSeries, list[QBarSet]]:
    (series,) = window.dashboard.charts.sent_failed.plot.series()
    assert isinstance(series, QBarSeries)
    return series, series.barSets()


def test_the_chart_shows_a_bar_for_each_hour_s_sends_and_failures(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    _history(factory)
    window = _open(qtbot, factory, runner, tmp_path)
    _series, (sent, failed) = _bar_sets(window)
    assert sent.label() == "Sent" and failed.label().startswith("Failed attempts")
    values = [int(sent.at(i)) for i in range(sent.count())]
    assert len(values) == 24 and values[-4] == 3 and values[-2] == 2 and sum(values) == 5
    assert [int(failed.at(i)) for i in range(failed.count())][-2] == 1
    assert not window.dashboard.charts.empty.isVisible()
    assert "5 sent, 1 failed attempts" in window.dashboard.charts.note.text()
    window.close()


def test_with_nothing_sent_the_chart_says_so(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path
) -> None:
    window = _open(qtbot, factory, runner, tmp_path)
    empty = window.dashboard.charts.empty
    assert empty.isVisible() and empty.text() == "No sends or failures in the last 24 hours"
    window.close()


@pytest.mark.parametrize("which", ["sent", "failed"])
def test_clicking_a_bar_opens_the_list_of_the_writebacks_it_counted(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path, which: str
) -> None:
    sent_ids, failed_ids = _history(factory)
    window = _open(qtbot, factory, runner, tmp_path)
    series, (sent, failed) = _bar_sets(window)
    view = window.dashboard.charts.sent_failed
    window.dashboard.scroller.ensureWidgetVisible(view)
    index, bar_set, offset = (20, sent, -0.2) if which == "sent" else (22, failed, 0.2)
    # The middle of the bar, on screen: the sets stand side by side, each a fifth of a category wide.
    point = view.plot.mapToPosition(QPointF(index + offset, bar_set.at(index) / 2), series)
    target = view.mapFromScene(view.plot.mapToScene(point))
    with qtbot.waitSignal(window.dashboard.bar_clicked, timeout=3000) as picked:
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=target)
    assert picked.args is not None
    assert window.current_page() == PAGE_WRITEBACKS
    flt = window.writebacks.current_filter()
    bars = window.dashboard.charts.shown.sent_and_failed.bars  # type: ignore[union-attr]
    if which == "sent":
        assert (flt.reached, flt.reached_from, flt.reached_to) == (Status.SENT, bars[20].start, bars[20].end)
    else:
        assert (flt.failed_from, flt.failed_to) == (bars[22].start, bars[22].end)
    chip = window.writebacks.filter_bar.period_chip
    assert chip.isVisible() and chip.text().startswith(
        "Became Sent" if which == "sent" else "Failed an attempt"
    )
    wait_loaded(qtbot, window.writebacks.model)
    shown = {r.id for r in window.writebacks.model.loaded_rows()}
    assert shown == set(sent_ids if which == "sent" else failed_ids)
    chip.click()  # the chip removes its filter: every row again
    wait_loaded(qtbot, window.writebacks.model)
    assert not chip.isVisible() and len(window.writebacks.model.loaded_rows()) == 6
    window.close()


@pytest.fixture
def themes(qapp: QApplication) -> Iterator[ThemeManager]:
    made = ThemeManager(qapp, Choice.LIGHT, system_scheme=lambda: Qt.ColorScheme.Unknown)
    yield made
    made.setParent(None)
    made.deleteLater()
    qapp.setPalette(QPalette())
    qapp.setStyleSheet("")


def test_a_palette_switch_redraws_axes_legend_and_bars_in_the_new_palette(
    qtbot: QtBot, factory: Factory, runner: TaskRunner, tmp_path: Path, themes: ThemeManager
) -> None:
    _history(factory)
    themes.set_choice(Choice.LIGHT)
    window = _open(qtbot, factory, runner, tmp_path)
    for choice in (Choice.DARK, Choice.LIGHT):
        themes.set_choice(choice)
        qtbot.wait(50)
        text = window.palette().color(QPalette.ColorRole.WindowText)
        plot = window.dashboard.charts.sent_failed.plot
        for axis in plot.axes():
            assert axis.labelsColor() == text, f"{axis.titleText()} on {choice.value}"
        assert plot.legend().labelColor() == text
        assert plot.titleBrush().color() == text
        _series, (sent, failed) = _bar_sets(window)
        assert sent.color() == status_color(Status.SENT) and failed.color() == status_color(Status.ERROR)
        assert theme.current().scheme.value == choice.value
    window.close()
