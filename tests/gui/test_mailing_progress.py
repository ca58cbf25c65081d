"""A mailing activity being sent shows how far it has come, in the list and in the detail pane."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from tests.helpers.builders import add_mailing, enqueue, item
from writeback_console.domain import Kind
from writeback_console.store import deliveries, lifecycle
from writeback_console.store.engine import write_transaction
from writeback_console.ui.detail_pane import DetailPane
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import PILL_ROLE, Column, WritebackTableModel

Factory = sessionmaker[Session]


def _mailing_part_sent(factory: Factory, recipients: int, arrived: int) -> tuple[int, int]:
    """A mailing activity a dispatcher is sending, ``arrived`` of its recipients written; and a plain row."""
    mailing = add_mailing(factory, remote=recipients)
    (wid,) = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing))
    (plain,) = enqueue(factory, item())
    with write_transaction(factory) as session:
        now = lifecycle.database_now(session)
        (claimed,) = lifecycle.claim(
            session, dispatcher="d:1", run_started_at=now, limit=1, lease_seconds=600, only=[wid]
        )
        deliveries.prepare_deliveries(session, wid, mailing, now=now)
        chunk = deliveries.claim_chunk(session, dispatcher="d:1", limit=arrived, lease_seconds=600)
        assert chunk is not None
        deliveries.record_deliveries(
            session,
            [
                deliveries.DeliveryResult(did, wid, claimed.token, True, now, chunk_token=token)
                for did, token in chunk.tokens.items()
            ],
        )
    return wid, plain


def test_the_list_shows_how_many_recipients_of_a_mailing_being_sent_have_arrived(
    qtbot: QtBot, factory: Factory, runner: TaskRunner
) -> None:
    wid, plain = _mailing_part_sent(factory, 1200, 350)
    model = WritebackTableModel(factory, runner)
    model.reload()
    wait_loaded(qtbot, model)
    mailing_row, plain_row = model.row_of_id(wid), model.row_of_id(plain)
    assert mailing_row is not None and plain_row is not None
    assert model.index(mailing_row, Column.SENT).data() == "350 of 1,200 recipients"
    tooltip = model.index(mailing_row, Column.STATUS).data(Qt.ItemDataRole.ToolTipRole)
    assert "350 of 1,200 recipients arrived" in tooltip
    # The status pill says how far it has come at any width of the window.
    assert model.index(mailing_row, Column.STATUS).data(PILL_ROLE).text == "Processing · 29%"
    assert model.index(plain_row, Column.SENT).data() == ""
    assert model.index(plain_row, Column.STATUS).data(PILL_ROLE).text == "New"


def test_the_detail_pane_shows_how_far_a_mailing_activity_has_come(
    qtbot: QtBot, factory: Factory, runner: TaskRunner
) -> None:
    wid, plain = _mailing_part_sent(factory, 40, 12)
    pane = DetailPane(factory, runner)
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(wid)
    assert pane.values["recipients"].text() == "12 of 40 recipients arrived — being sent"
    with qtbot.waitSignal(pane.loaded, timeout=5000):
        pane.show_writeback(plain)
    assert pane.values["recipients"].text() == "—"
