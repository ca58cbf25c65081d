"""The dialogs' status colours and symbols: one of each for every status, none shared."""

from __future__ import annotations

from writeback_console.domain import Status
from writeback_console.ui.dialogs import STATUS_COLOURS, STATUS_SYMBOLS, status_colour, status_text


def test_every_status_has_a_colour_and_a_symbol_of_its_own() -> None:
    assert set(STATUS_COLOURS) == set(Status) == set(STATUS_SYMBOLS)
    assert len({c.lower() for c in STATUS_COLOURS.values()}) == len(Status)
    assert len(set(STATUS_SYMBOLS.values())) == len(Status)
    for status in Status:
        assert status_colour(status).isValid()
        assert status_text(status).endswith(" " + status.label)


def test_cancelled_reads_as_cancelled_not_as_no_remote_recipients() -> None:
    assert status_text(Status.CANCELLED) == "⊗ Cancelled"
    assert STATUS_SYMBOLS[Status.CANCELLED] != STATUS_SYMBOLS[Status.NO_REMOTE_RECIPIENTS]
