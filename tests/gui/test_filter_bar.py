"""The filter bar: a toggle per status with its count, Cancelled included, wrapping on a narrow window."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from writeback_console.domain import Status
from writeback_console.store import listing
from writeback_console.store.listing import WritebackFilter
from writeback_console.ui.filter_bar import FilterBar
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import PILL_ROLE, Column
from writeback_console.ui.writeback_view import WritebackListPage

Factory = sessionmaker[Session]
#: Counts as large as a real queue's, which make the toggles as wide as they get.
BIG_COUNTS = dict.fromkeys(Status, 123_456)


def test_cancelled_has_a_toggle_of_its_own_with_its_count(qtbot: QtBot) -> None:
    bar = FilterBar()
    qtbot.addWidget(bar)
    assert list(bar.status_buttons) == list(Status)
    button = bar.status_buttons[Status.CANCELLED]
    assert not button.icon().isNull()
    bar.set_counts({**dict.fromkeys(Status, 0), Status.CANCELLED: 1_234})
    assert button.text() == "Cancelled  1,234"
    with qtbot.waitSignal(bar.filter_changed):
        button.setChecked(True)
    assert bar.build_filter().statuses == {Status.CANCELLED}


def test_cancelled_toggle_lists_only_cancelled_rows_with_struck_pills(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner
) -> None:
    with small_factory() as session:
        counts = listing.count_by_status(session)
    assert counts[Status.CANCELLED] > 0, "the seed has no cancelled mailing activity"
    page = WritebackListPage(small_factory, runner)
    qtbot.addWidget(page)
    page.start()
    wait_loaded(qtbot, page.model)
    with qtbot.waitSignal(page.counts_changed, timeout=10_000):
        page.filter_bar.set_statuses([Status.CANCELLED])
    wait_loaded(qtbot, page.model)
    button = page.filter_bar.status_buttons[Status.CANCELLED]
    assert button.text() == f"Cancelled  {counts[Status.CANCELLED]:,}"
    assert page.model.rowCount() == counts[Status.CANCELLED]
    for n in range(page.model.rowCount()):
        spec = page.model.index(n, Column.STATUS).data(PILL_ROLE)
        assert spec.status is Status.CANCELLED and spec.struck


def test_status_toggles_wrap_onto_another_line_when_the_window_is_narrow(qtbot: QtBot) -> None:
    bar = FilterBar()
    qtbot.addWidget(bar)
    bar.set_counts(BIG_COUNTS)
    one_line = sum(b.sizeHint().width() for b in bar.status_buttons.values())
    # On a 1024-pixel screen the list gets about 780 pixels beside the navigation.
    assert one_line > 780
    assert bar.minimumSizeHint().width() <= 780
    bar.resize(780, bar.heightForWidth(780))
    bar.show()
    qtbot.waitExposed(bar)
    shown = [b.geometry() for b in bar.status_buttons.values()]
    inside = QRect(0, 0, 780, bar.height())
    assert all(inside.contains(g) for g in shown), "a toggle is cut off"
    assert len({g.top() for g in shown}) == 2, "the toggles should take exactly two lines"
    assert not any(a.intersects(b) for n, a in enumerate(shown) for b in shown[n + 1 :])
    assert bar.heightForWidth(780) > bar.heightForWidth(one_line + 100)


def test_counts_past_the_cap_say_so_and_count_exactly_on_request(
    qtbot: QtBot, small_factory: Factory, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text filter matching more rows than the cap shows "at least" counts, then exact ones on request."""
    flt = WritebackFilter(text="a")
    with small_factory() as session:
        exact = listing.count_by_status(session, flt)
    cap = sum(exact.values()) // 2
    assert cap > 10, "the seed has too few rows starting with a"
    monkeypatch.setattr(listing, "COUNT_CAP", cap)
    page = WritebackListPage(small_factory, runner)
    qtbot.addWidget(page)
    page.start()
    wait_loaded(qtbot, page.model)
    bar = page.filter_bar
    with qtbot.waitSignal(page.counts_changed, timeout=10_000):
        bar.set_text("a")
    shown = {s: b.text() for s, b in bar.status_buttons.items()}
    assert all(text.endswith("+") for text in shown.values()), shown
    assert bar.exact_count.isVisibleTo(bar)
    assert page.matching_text() == f"{cap + 1:,}+"
    with qtbot.waitSignal(page.counts_changed, timeout=10_000):
        bar.exact_count.click()
    for status, button in bar.status_buttons.items():
        assert button.text() == f"{status.label}  {exact[status]:,}"
    assert not bar.exact_count.isVisibleTo(bar)
    assert page.matching_rows() == sum(exact.values())
