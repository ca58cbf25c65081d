"""Every status looks the same everywhere: one colour, tint, symbol and icon of its own, and one time text."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtGui import QColor

from writeback_console.domain import Status
from writeback_console.ui import resources
from writeback_console.ui.status_pill import DARK_TEXT, contrast
from writeback_console.ui.status_style import (
    ERROR_RETRYING_COLOR,
    NONE_TEXT,
    STATUS_COLORS,
    STATUS_SYMBOLS,
    local_text,
    status_color,
    status_icon_name,
    status_text,
    status_tint,
)


def test_every_status_has_a_colour_a_symbol_and_an_icon_of_its_own() -> None:
    assert set(STATUS_COLORS) == set(Status) == set(STATUS_SYMBOLS)
    assert len({c.lower() for c in STATUS_COLORS.values()}) == len(Status)
    assert len(set(STATUS_SYMBOLS.values())) == len(Status)
    for status in Status:
        assert status_color(status).isValid()
        assert status_text(status).endswith(" " + status.label)
        assert resources.path_of(status_icon_name(status) + ".svg").is_file()


def test_tints_are_the_status_colours_made_pale_and_dark_text_reads_on_every_one() -> None:
    tints = {(s, False): status_tint(s) for s in Status} | {
        (Status.ERROR, True): status_tint(Status.ERROR, True)
    }
    assert len({t.name() for t in tints.values()}) == len(tints)
    for (status, retrying), tint in tints.items():
        strong = status_color(status, retrying)
        assert tint.lightness() > strong.lightness() or strong.lightness() > 240
        # The same hue, give or take rounding to whole channels.
        assert abs((tint.hue() - strong.hue() + 180) % 360 - 180) <= 6 or strong.saturation() < 10
        assert contrast(DARK_TEXT, tint) >= 7, f"{status} tint {tint.name()} is too dark for text"


def test_an_error_with_retries_left_is_the_lighter_red_in_colour_and_tint() -> None:
    assert status_color(Status.ERROR, retries_remain=True) == QColor(ERROR_RETRYING_COLOR)
    assert status_tint(Status.ERROR, True).lightness() > status_tint(Status.ERROR).lightness()


def test_cancelled_reads_as_cancelled_not_as_no_remote_recipients() -> None:
    assert status_text(Status.CANCELLED) == "⊗ Cancelled"
    assert STATUS_SYMBOLS[Status.CANCELLED] != STATUS_SYMBOLS[Status.NO_REMOTE_RECIPIENTS]


def test_times_are_local_to_the_minute_and_a_missing_one_is_a_dash() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert local_text(moment) == moment.astimezone().strftime("%Y-%m-%d %H:%M")
    assert local_text(moment, seconds=True).endswith(moment.astimezone().strftime(":%M:%S"))
    assert local_text(None) == NONE_TEXT
