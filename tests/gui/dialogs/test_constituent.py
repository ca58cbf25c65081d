"""The constituent viewer against the Personify360 simulator: real HTTP, real queue database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, item
from tests.helpers.simulator import MakeSimulator
from writeback_console.domain import Kind
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, build_activity
from writeback_console.personify.values import PersonifySettings
from writeback_console.sim.simulator import Simulator
from writeback_console.ui.dialogs.constituent import ClientFactory, ConstituentViewer
from writeback_console.ui.tasks import TaskRunner


def client_factory(sim: Simulator, password: str = "p") -> ClientFactory:
    settings = PersonifySettings(sim.url, "u", password, read_timeout=5)
    return lambda: PersonifyClient(settings)


def add_activity(sim: Simulator, master: str, sub: int, kind: Kind, ref: str, days: int) -> None:
    source = ActivitySource(
        kind=kind,
        ref=ref,
        account="Main",
        email="someone@example.org",
        occurred_at=T0 + timedelta(days=days),
        master_customer_id=master,
        sub_customer_id=sub,
        reason="too many emails",
    )
    with client_factory(sim)() as client:
        client.create_activity(build_activity(source, ActivityMapping()))


def top_items(tree: QTreeWidget) -> list[QTreeWidgetItem]:
    items = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    return [i for i in items if i is not None]


def make_viewer(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, factory: ClientFactory
) -> ConstituentViewer:
    viewer = ConstituentViewer(db, runner, factory)
    qtbot.addWidget(viewer)
    return viewer


def test_shows_exactly_the_activities_the_simulator_holds_newest_first_and_the_queue_rows(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator
) -> None:
    add_activity(simulator, "000000000101", 0, Kind.UNSUBSCRIBE, "WB-0000000001", days=0)
    add_activity(simulator, "000000000101", 0, Kind.RESUBSCRIBE, "WB-0000000002", days=2)
    add_activity(simulator, "000000000101", 0, Kind.INVALID_EMAIL, "WB-0000000003", days=1)
    add_activity(simulator, "000000000102", 0, Kind.UNSUBSCRIBE, "WB-0000000004", days=3)
    mine = enqueue(db, item(email="ann@example.org"), item(Kind.RESUBSCRIBE, email="ANN@example.org"))
    enqueue(db, item(email="ann@example.org.uk"), item(email="bob@example.org"))

    viewer = make_viewer(qtbot, db, runner, client_factory(simulator))
    viewer.search("ann@example.org")
    # While Personify360 is being asked, the search is visibly busy and cannot be started again.
    assert not viewer.search_button.isEnabled()
    assert viewer.progress.isVisibleTo(viewer)
    qtbot.waitUntil(lambda: not viewer.busy and len(viewer.activities) == 3, timeout=10_000)
    assert viewer.search_button.isEnabled()

    held = simulator.activities("000000000101")
    assert sorted(a.text for a in viewer.activities) == sorted(str(r["ACTIVITY_TEXT"]) for r in held)
    shown = top_items(viewer.activity_list)
    assert [i.text(1) for i in shown] == [
        "INFORMZ_RESUB",
        "INFORMZ_BADEMAIL",
        "INFORMZ_UNSUB",
    ]
    assert viewer.tabs.tabText(0) == "System Activities (3)"

    # The detail pane shows every field the service sent for the selected activity.
    viewer.activity_list.setCurrentItem(shown[1])
    cells = [
        (viewer.detail_table.item(r, 0), viewer.detail_table.item(r, 1))
        for r in range(viewer.detail_table.rowCount())
    ]
    fields = {name.text(): value.text() for name, value in cells if name is not None and value is not None}
    raw = viewer.activities[1].raw
    assert set(fields) == set(raw) - {"__metadata"}
    assert fields["ActivityCode"] == "INFORMZ_BADEMAIL"
    assert fields["MasterCustomerId"] == "000000000101"
    assert "[ref WB-0000000003]" in viewer.text_box.toPlainText()

    qtbot.waitUntil(lambda: len(viewer.queue_rows) == 2, timeout=5000)
    assert sorted(r.id for r in viewer.queue_rows) == sorted(mine)
    first = viewer.queue_list.topLevelItem(0)
    assert first is not None
    with qtbot.waitSignal(viewer.open_ref, timeout=2000) as signal:
        viewer.queue_list.itemActivated.emit(first, 1)
    assert signal.args == [first.data(1, Qt.ItemDataRole.UserRole)]
    assert signal.args[0].startswith("WB-")


def test_several_constituents_sharing_an_email_are_listed_to_choose_from(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator
) -> None:
    add_activity(simulator, "000000000103", 1, Kind.UNSUBSCRIBE, "WB-0000000005", days=0)
    viewer = make_viewer(qtbot, db, runner, client_factory(simulator))
    viewer.search("shared@example.org")
    qtbot.waitUntil(lambda: not viewer.busy and len(viewer.constituents) == 2, timeout=10_000)
    assert viewer.constituent_list.isVisibleTo(viewer)
    rows = top_items(viewer.constituent_list)
    assert [(r.text(0), r.text(1)) for r in rows] == [
        ("000000000102-0", "Bob Ray"),
        ("000000000103-1", "Cy Ng"),
    ]
    assert "2 Personify360 constituents share the email" in viewer.message
    assert viewer.activities == []
    viewer.constituent_list.setCurrentItem(rows[1])
    qtbot.waitUntil(lambda: not viewer.busy and len(viewer.activities) == 1, timeout=10_000)
    assert viewer.activities[0].master_customer_id == "000000000103"


def test_an_unknown_email_gets_a_clear_message(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator
) -> None:
    viewer = make_viewer(qtbot, db, runner, client_factory(simulator))
    viewer.search("nobody@example.org")
    qtbot.waitUntil(lambda: not viewer.busy and "nobody@example.org" in viewer.message, timeout=10_000)
    assert viewer.message.startswith("No Personify360 constituent has the email nobody@example.org.")
    assert viewer.activity_list.topLevelItemCount() == 0
    assert not viewer.details_button.isVisible()


def test_rejected_credentials_are_told_in_words_with_details_to_copy(
    qtbot: QtBot,
    db: sessionmaker[Session],
    runner: TaskRunner,
    make_simulator: MakeSimulator,
    shown_errors: list[tuple[str, str, str]],
) -> None:
    sim = make_simulator(users={"someone-else": "pw"})
    viewer = make_viewer(qtbot, db, runner, client_factory(sim, password="s3cret-pw"))
    viewer.show()
    viewer.search("ann@example.org")
    qtbot.waitUntil(lambda: not viewer.busy and viewer.details_button.isVisible(), timeout=10_000)
    assert viewer.message.startswith("Personify360 rejected the user name or password")
    viewer.details_button.click()
    ((_title, message, details),) = shown_errors
    assert "HTTP status: 401" in details
    assert "s3cret-pw" not in message + details


@pytest.mark.parametrize("email", ["", "   "])
def test_an_empty_search_asks_for_an_address(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, email: str
) -> None:
    def never() -> PersonifyClient:
        raise AssertionError("no lookup for an empty address")

    viewer = make_viewer(qtbot, db, runner, never)
    viewer.search(email)
    assert not viewer.busy
    assert viewer.message == "Type an email address to look up."
