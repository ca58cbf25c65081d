"""The constituent viewer against the Personify360 simulator: real HTTP, real queue database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QTreeWidget, QTreeWidgetItem
from pytestqt.qtbot import QtBot
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, item, row
from tests.helpers.simulator import MakeSimulator
from writeback_console.domain import Kind, Status
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, build_activity
from writeback_console.personify.values import PersonifySettings
from writeback_console.sim.simulator import Simulator
from writeback_console.store import deliveries
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import Delivery, MailingRecipient, Writeback
from writeback_console.ui.dialogs.constituent import ActivityTextBox, ClientFactory, ConstituentViewer
from writeback_console.ui.status_style import local_text
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
    assert "[ref WB-0000000003]" in viewer.text_box.activity_text()
    assert shown[1].text(3) == "WB-0000000003"

    qtbot.waitUntil(lambda: len(viewer.queue_rows) == 2, timeout=5000)
    assert sorted(p.row.id for p in viewer.queue_rows) == sorted(mine)
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


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("not an email@", "'not an email@' is not an email address: nothing follows the @"),
        ("anthony.garcia57479", "'anthony.garcia57479' is not an email address: it has no @"),
        ("@example.org", "nothing comes before the @"),
        ("ann@example", "'ann@example' does not have a valid domain"),
        ("ann lee@example.org", "'ann lee@example.org' is not an email address"),
    ],
)
def test_what_is_not_an_email_is_refused_saying_why_and_nothing_is_asked(
    qtbot: QtBot,
    db: sessionmaker[Session],
    runner: TaskRunner,
    simulator: Simulator,
    email: str,
    problem: str,
) -> None:
    viewer = make_viewer(qtbot, db, runner, client_factory(simulator))
    before = simulator.request_count
    viewer.search(email)
    assert not viewer.busy
    assert problem in viewer.message
    assert "No Personify360 constituent" not in viewer.message
    assert "ann@example.org" in viewer.message  # what a whole address looks like
    assert viewer.details_button.isHidden()
    assert simulator.request_count == before


def _open_viewer_on_ann(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator, activities: int
) -> ConstituentViewer:
    viewer = make_viewer(qtbot, db, runner, client_factory(simulator))
    viewer.search("ann@example.org")
    qtbot.waitUntil(lambda: not viewer.busy and len(viewer.activities) == activities, timeout=10_000)
    return viewer


def test_an_activity_opens_the_queue_row_its_ref_names(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator
) -> None:
    (writeback_id,) = enqueue(db, item(email="ann@example.org"))
    ref = row(db, writeback_id).ref
    add_activity(simulator, "000000000101", 0, Kind.UNSUBSCRIBE, ref, days=0)
    viewer = _open_viewer_on_ann(qtbot, db, runner, simulator, 1)
    assert viewer.open_queue_row_button.isEnabled()
    with qtbot.waitSignal(viewer.open_ref, timeout=5000) as signal:
        viewer.open_queue_row_button.click()
    assert signal.args == [ref]
    # Enter or a double-click on the activity does the same.
    first = viewer.activity_list.topLevelItem(0)
    assert first is not None
    with qtbot.waitSignal(viewer.open_ref, timeout=5000) as signal:
        viewer.activity_list.itemActivated.emit(first, 0)
    assert signal.args == [ref]


def test_a_recipients_activity_opens_its_mailings_row_listed_under_queue(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator
) -> None:
    mailing_id = add_mailing(db, remote=2, name="November News")
    with write_transaction(db) as session:
        session.execute(
            update(MailingRecipient)
            .where(MailingRecipient.mailing_id == mailing_id, MailingRecipient.email == "r0@example.org")
            .values(email="ann@example.org", master_customer_id="000000000101")
        )
    (carrier,) = enqueue(db, item(Kind.MAILING_ACTIVITY, mailing_id=mailing_id))
    with write_transaction(db) as session:
        deliveries.prepare_deliveries(session, carrier, mailing_id, now=T0)
    with db() as session:
        annes = session.execute(
            select(Delivery.ref)
            .join(MailingRecipient, MailingRecipient.id == Delivery.recipient_id)
            .where(MailingRecipient.email == "ann@example.org")
        ).one()
    add_activity(simulator, "000000000101", 0, Kind.UNSUBSCRIBE, annes.ref, days=0)
    viewer = _open_viewer_on_ann(qtbot, db, runner, simulator, 1)

    # The Queue tab lists the mailing's row, found through the recipient, not the (empty) email.
    qtbot.waitUntil(lambda: len(viewer.queue_rows) == 1, timeout=5000)
    carrier_ref = row(db, carrier).ref
    listed = viewer.queue_list.topLevelItem(0)
    assert listed is not None
    assert listed.text(1) == carrier_ref
    assert listed.text(7) == f"November News: {annes.ref} pending"
    assert viewer.tabs.tabText(1) == "Queue (1)"
    with qtbot.waitSignal(viewer.open_ref, timeout=5000) as signal:
        viewer.open_queue_row_button.click()
    assert signal.args == [carrier_ref]


def test_a_ref_no_queue_row_carries_is_said_so(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator
) -> None:
    add_activity(simulator, "000000000101", 0, Kind.UNSUBSCRIBE, "WB-0000000009", days=0)
    viewer = _open_viewer_on_ann(qtbot, db, runner, simulator, 1)
    with qtbot.assertNotEmitted(viewer.open_ref, wait=200):
        viewer.open_queue_row_button.click()
        qtbot.waitUntil(lambda: "No row of this queue carries" in viewer.message, timeout=5000)
    assert "WB\u20110000000009" in viewer.message  # never broken across the label's lines


def _widths_that_break_inside_the_ref(box: ActivityTextBox, text: str) -> list[int]:
    start = text.index("[ref ")
    end = text.index("]", start)
    broken = []
    for width in range(100, 700, 5):
        box.resize(width, 200)
        QApplication.processEvents()
        layout = box.document().firstBlock().layout()
        starts = [layout.lineAt(i).textStart() for i in range(layout.lineCount())]
        broken += [width for s in starts if start < s <= end]
    return broken


def test_a_ref_is_never_broken_across_lines_and_copies_as_written(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator
) -> None:
    add_activity(simulator, "000000000101", 0, Kind.UNSUBSCRIBE, "WB-0000000007", days=0)
    viewer = _open_viewer_on_ann(qtbot, db, runner, simulator, 1)
    text = viewer.activities[0].text
    assert viewer.text_box.activity_text() == text
    box = ActivityTextBox()
    qtbot.addWidget(box)
    box.show()
    box.setPlainText(text)
    assert _widths_that_break_inside_the_ref(box, text)  # as plain text, some widths do
    box.set_activity_text(text)
    assert _widths_that_break_inside_the_ref(box, text) == []
    box.selectAll()
    box.copy()
    assert QApplication.clipboard().text() == text


def test_the_queue_tabs_status_colours_follow_a_palette_switch_while_the_viewer_is_open(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator
) -> None:
    """The Queue tab coloured its status cells once, when filled: switched to dark with the viewer open,
    they kept the light palette's pastel tints on the dark list."""
    from PySide6.QtGui import QPalette

    from writeback_console.domain import Status
    from writeback_console.ui import theme
    from writeback_console.ui.status_style import status_tint

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    manager = theme.ThemeManager(app, theme.Choice.LIGHT, system_scheme=lambda: Qt.ColorScheme.Unknown)
    try:
        manager.apply()
        enqueue(db, item(email="ann@example.org"))
        viewer = make_viewer(qtbot, db, runner, client_factory(simulator))
        viewer.search("ann@example.org")
        qtbot.waitUntil(lambda: len(viewer.queue_rows) == 1, timeout=5000)
        cell = viewer.queue_list.topLevelItem(0)
        assert cell is not None
        assert cell.background(0).color() == status_tint(Status.NEW, scheme=theme.Scheme.LIGHT)

        manager.set_choice(theme.Choice.DARK)

        qtbot.waitUntil(
            lambda: (
                (shown := viewer.queue_list.topLevelItem(0)) is not None
                and shown.background(0).color() == status_tint(Status.NEW, scheme=theme.Scheme.DARK)
            ),
            timeout=2000,
        )
    finally:
        manager.setParent(None)
        manager.deleteLater()
        app.styleHints().unsetColorScheme()
        app.setPalette(QPalette())
        app.setStyleSheet("")


def test_a_sent_mailing_without_a_delivery_for_the_person_reads_as_sent_under_queue(
    qtbot: QtBot, db: sessionmaker[Session], runner: TaskRunner, simulator: Simulator
) -> None:
    # Mailings sent before deliveries were kept per recipient have none: the row's Sent says it all.
    mailing_id = add_mailing(db, remote=2, name="Member Update – Nov 17, 2026")
    with write_transaction(db) as session:
        session.execute(
            update(MailingRecipient)
            .where(MailingRecipient.mailing_id == mailing_id, MailingRecipient.email == "r0@example.org")
            .values(email="ann@example.org", master_customer_id="000000000101")
        )
    (carrier,) = enqueue(db, item(Kind.MAILING_ACTIVITY, mailing_id=mailing_id))
    sent_at = T0 + timedelta(hours=2)
    with write_transaction(db) as session:
        session.execute(
            update(Writeback).where(Writeback.id == carrier).values(status=Status.SENT.value, sent_at=sent_at)
        )
    viewer = _open_viewer_on_ann(qtbot, db, runner, simulator, 0)
    qtbot.waitUntil(lambda: len(viewer.queue_rows) == 1, timeout=5000)
    listed = viewer.queue_list.topLevelItem(0)
    assert listed is not None
    assert listed.text(7) == f"Member Update – Nov 17, 2026: sent {local_text(sent_at)}"
