"""The assembled console: real pages in place, dispatcher runs update the list, banners, clean close."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests.helpers.builders import T0, enqueue, fail_runs, item, minutes
from tests.helpers.simulator import MakeSimulator
from writeback_console.dispatch.summary import CycleSummary, ProblemKind
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.settings import AppSettings, PasswordStore, save_settings
from writeback_console.sim.simulator import Simulator
from writeback_console.store import audit_trail, listing, operator_actions
from writeback_console.ui.composition_root import Services, open_console, start_services
from writeback_console.ui.console import Console
from writeback_console.ui.dialogs import retry
from writeback_console.ui.dialogs.constituent import ConstituentViewer
from writeback_console.ui.main_window import BANNER_CREDENTIALS, BANNER_DATABASE, BANNER_UNREACHABLE
from writeback_console.ui.pages.mailings import MailingsPage


def services_for(tmp_path: Path, db_url: str, sim: Simulator, password: str = "p") -> Services:
    settings_path = tmp_path / "settings.json"
    save_settings(AppSettings(service_root_url=sim.url, user="u", interval_seconds=3600), settings_path)
    store = PasswordStore(fallback=tmp_path / "credentials.json", use_keyring=False)
    store.set(sim.url, "u", password)
    return start_services(db_url, settings_path=settings_path, password_store=store)


@pytest.fixture
def console(
    qtbot: QtBot, tmp_path: Path, sqlite_url: str, make_simulator: MakeSimulator
) -> Iterator[Console]:
    sim = make_simulator()
    services = services_for(tmp_path, sqlite_url, sim)
    console = open_console(services, state_path=tmp_path / "window.ini")
    qtbot.addWidget(console.window)
    console.sim = sim  # type: ignore[attr-defined]
    yield console
    console.shut_down()
    services.close()


def test_real_pages_replace_the_placeholders(console: Console) -> None:
    pages = console.window.pages
    assert isinstance(pages["mailings"], MailingsPage)
    assert isinstance(pages["constituents"], ConstituentViewer)
    assert "credentials.json" in console.settings_page.summary.text()
    assert console.status.parent() is not None


def test_constituent_lookup_page_is_ready_for_an_email(qtbot: QtBot, console: Console) -> None:
    console.window.show()
    console.window.show_page("constituents")
    qtbot.waitUntil(lambda: console.constituents.email_edit.hasFocus(), timeout=5000)


def test_run_now_sends_and_the_list_shows_it(qtbot: QtBot, console: Console) -> None:
    ids = enqueue(console.services.factory, *(item(Kind.RESUBSCRIBE, "ann@example.org") for _ in range(3)))
    model = console.window.writebacks.model
    console.window.writebacks.reload()
    qtbot.waitUntil(lambda: model.rowCount() == 3, timeout=10_000)
    finished: list[CycleSummary] = []
    console.controller.worker.finished.connect(finished.append)
    console.window.run_now_requested.emit()
    qtbot.waitUntil(lambda: bool(finished), timeout=15_000)
    assert finished[0].sent == 3 and set(finished[0].changed_ids) == set(ids)

    def shown_statuses() -> set[Status]:
        return {model.row_at(n).status for n in range(model.rowCount())}  # type: ignore[union-attr]

    qtbot.waitUntil(lambda: shown_statuses() == {Status.SENT}, timeout=10_000)
    assert "3 sent" in console.status.last_label.text()


def test_rejected_credentials_show_a_banner(
    qtbot: QtBot, tmp_path: Path, sqlite_url: str, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    services = services_for(tmp_path, sqlite_url, sim, password="wrong")
    enqueue(services.factory, *(item(Kind.RESUBSCRIBE, "ann@example.org") for _ in range(5)))
    console = open_console(services, state_path=tmp_path / "window.ini")
    qtbot.addWidget(console.window)
    try:
        console.window.run_now_requested.emit()
        qtbot.waitUntil(lambda: console.window.banner_text(BANNER_CREDENTIALS) is not None, timeout=15_000)
        text = console.window.banner_text(BANNER_CREDENTIALS) or ""
        assert text.startswith("Credentials rejected by Personify360 since ")
        assert "no attempt was used" in text
    finally:
        console.shut_down()
        services.close()


def test_an_outage_banner_says_since_when_and_that_no_attempt_was_used_until_a_clean_run(
    qtbot: QtBot, console: Console
) -> None:
    factory = console.services.factory
    (wid,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org"))
    sim: Simulator = console.sim  # type: ignore[attr-defined]
    # No Retry-After, so that the next run may ask again at once.
    sim.faults.update(fail_rate=1.0, fail_kinds=["503"], retry_after_seconds=None)
    window = console.window
    # The list is filled from the dispatcher's thread; the banner follows on the GUI thread.
    finished: list[CycleSummary] = []
    console.controller.worker.finished.connect(finished.append)
    window.run_now_requested.emit()
    qtbot.waitUntil(lambda: window.banner_text(BANNER_UNREACHABLE) is not None, timeout=15_000)
    (outage,) = finished
    assert (outage.problem, outage.problem_status) == (ProblemKind.OUTAGE, 503)
    assert outage.problem_since is not None
    text = window.banner_text(BANNER_UNREACHABLE) or ""
    assert f"Personify360 unavailable (503) since {outage.problem_since.astimezone():%H:%M}" in text
    assert "no attempt was used" in text
    assert window.banners[BANNER_UNREACHABLE].property("severity") == "error"
    with factory() as session:
        row = listing.get_writeback(session, wid)
    assert (row.status, row.attempts) == (Status.NEW, 0)

    sim.faults.update(fail_rate=0.0)
    window.run_now_requested.emit()
    qtbot.waitUntil(lambda: window.banner_text(BANNER_UNREACHABLE) is None, timeout=15_000)
    assert len(finished) == 2 and finished[1].problem is None and finished[1].sent == 1
    assert not window.banner_area.isVisibleTo(window)


def test_a_database_that_refuses_writes_has_its_own_banner_until_a_clean_run(console: Console) -> None:
    now = utcnow()
    refused = CycleSummary(
        now,
        now,
        problem=ProblemKind.DATABASE,
        stopped_reason="the queue database refused writes (database is locked)",
    )
    console.cycle_finished(refused)
    window = console.window
    assert window.banner_text(BANNER_DATABASE) == "The queue database refused writes (database is locked)."
    assert window.banner_text(BANNER_UNREACHABLE) is None
    assert window.banners[BANNER_DATABASE].property("severity") == "error"
    # Another refusing run keeps one banner, with the newest words.
    console.cycle_finished(CycleSummary(now, now, problem=ProblemKind.DATABASE, stopped_reason="disk full"))
    assert window.banner_text(BANNER_DATABASE) == "Disk full."
    assert len(window.banners) == 1
    console.cycle_finished(CycleSummary(now, now))
    assert window.banner_text(BANNER_DATABASE) is None
    assert not window.banner_area.isVisibleTo(window)


def test_retry_from_the_window_goes_through_the_dialog_and_refreshes(
    qtbot: QtBot, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = console.services.factory
    (wid,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org"))
    fail_runs(factory, wid, 3)
    asked: list[list[int]] = []

    def fake_ask(
        f: object, runner: object, ids: list[int], parent: object = None, **kw: object
    ) -> tuple[list[int], bool]:
        asked.append(list(ids))
        with factory() as session:
            operator_actions.manual_retry(session, ids, actor="advisor")
            session.commit()
        return list(ids), False

    monkeypatch.setattr(retry, "ask_retry", fake_ask)
    console.window.retry_requested.emit([wid])
    assert asked == [[wid]]
    with factory() as session:
        assert listing.get_writeback(session, wid).status is Status.NEW


def test_a_retry_from_the_list_is_audited_with_the_list_s_filter(
    qtbot: QtBot, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = console.services.factory
    (wid,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org"))
    fail_runs(factory, wid, 3)
    page = console.window.writebacks
    with qtbot.waitSignal(page.model.first_page_loaded, timeout=5000):
        page.filter_bar.set_statuses([Status.ERROR])
    qtbot.waitUntil(lambda: not page.model.loading, timeout=5000)

    def run_dialog(
        f: object, runner: object, ids: list[int], parent: object = None, **kw: object
    ) -> tuple[list[int], bool]:
        dialog = retry.RetryDialog(factory, console.services.runner, ids, filter=kw.get("filter"))  # type: ignore[arg-type]
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: dialog.preview is not None, timeout=5000)
        with qtbot.waitSignal(dialog.retried, timeout=5000) as done:
            dialog.ok_button.click()
        return list(done.args[0]), False

    monkeypatch.setattr(retry, "ask_retry", run_dialog)
    page.table.select_ids([wid])
    console.window.retry_action.trigger()
    with factory() as session:
        (entry,) = audit_trail.audit_of(session, wid)
    assert (entry.action, entry.filter) == ("retry", {"statuses": ["error"]})


def test_after_a_retry_with_send_now_the_rows_now_sent_no_longer_offer_retry(
    qtbot: QtBot, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = console.services.factory
    ids = []
    for occurred in (T0, T0 + minutes(1)):
        (wid,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org", occurred_at=occurred))
        fail_runs(factory, wid, 3)  # automatic retries used up
        ids.append(wid)
    window, page = console.window, console.window.writebacks
    with qtbot.waitSignal(page.model.first_page_loaded, timeout=5000):
        page.filter_bar.set_statuses([Status.ERROR])
    qtbot.waitUntil(lambda: not page.model.loading, timeout=5000)
    page.table.select_ids(ids)
    assert window.retry_action.isEnabled() and window.retry_action.text() == "Retry selected (2)…"

    def retry_and_send_now(
        f: object, runner: object, chosen: list[int], parent: object = None, **kw: object
    ) -> tuple[list[int], bool]:
        with factory() as session:
            operator_actions.manual_retry(session, chosen, actor="advisor")
            session.commit()
        return list(chosen), True

    monkeypatch.setattr(retry, "ask_retry", retry_and_send_now)
    window.retry_action.trigger()
    # The filtered list keeps the rows, read again once sent: Retry no longer offers them.
    qtbot.waitUntil(lambda: all(r.status is Status.SENT for r in page.selected_rows()), timeout=10_000)
    assert sorted(page.selected_ids()) == sorted(ids)
    assert not window.retry_action.isEnabled()
    row = page.selected_rows()[0]
    entries = {a.text(): a.isEnabled() for a in page.context_menu_for(row).actions() if a.text()}
    assert entries["Retry selected (0)…"] is False and entries["Discard selected (0)…"] is False


# The two rare accounts are the oldest rows, so they are not on the first page the list reads.
def test_account_filter_offers_every_account_at_once(
    qtbot: QtBot, tmp_path: Path, sqlite_url: str, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    services = services_for(tmp_path, sqlite_url, sim)
    enqueue(
        services.factory,
        *(
            item(Kind.RESUBSCRIBE, f"p{n}@example.org", account=a)
            for n, a in enumerate(["Foundation", "Chapters"] + ["Main"] * 300)
        ),
    )
    console = open_console(services, state_path=tmp_path / "window.ini", dispatcher=False)
    qtbot.addWidget(console.window)
    try:
        combo = console.window.writebacks.filter_bar.account
        qtbot.waitUntil(lambda: combo.count() == 4, timeout=10_000)
        assert [combo.itemText(i) for i in range(1, 4)] == ["Chapters", "Foundation", "Main"]
    finally:
        services.close()


def test_incomplete_settings_show_the_banner_by_kind_not_by_words(console: Console) -> None:
    from writeback_console.ui.dispatcher_worker import CycleFailure, FailureKind

    window, failed = console.window, console.controller.worker.failed
    failed.emit(CycleFailure(FailureKind.SETTINGS, "user: not set"))
    assert "user: not set" in (window.banner_text(BANNER_UNREACHABLE) or "")
    window.hide_banner(BANNER_UNREACHABLE)
    # An internal failure whose words happen to mention settings is not a settings problem.
    failed.emit(CycleFailure(FailureKind.INTERNAL, "could not read the settings cache: disk full"))
    assert window.banner_text(BANNER_UNREACHABLE) is None
    assert "disk full" in console.status.last_label.text()


def test_send_now_on_a_mailing_sends_only_its_writeback(
    qtbot: QtBot, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reproduced: Send now started a full run, and every retryable Error row spent another attempt."""
    from tests.helpers.builders import add_mailing
    from tests.helpers.dispatching import recipients_as_constituents
    from writeback_console.ui.dialogs import schedule

    factory = console.services.factory
    console.sim.add_constituents(recipients_as_constituents(2))  # type: ignore[attr-defined]
    (failed,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org"))
    fail_runs(factory, failed, 1)  # long ago: a full run would retry it now
    (waiting,) = enqueue(factory, item(Kind.RESUBSCRIBE, "bob@example.org"))
    mailing_id = add_mailing(factory, remote=2, name="Spring Appeal")
    page = console.mailings
    page.refresh()
    qtbot.waitUntil(lambda: page.table.topLevelItemCount() == 1, timeout=5000)
    page.table.setCurrentItem(page.table.topLevelItem(0))
    monkeypatch.setattr(schedule, "confirm", lambda *_args: True)
    finished: list[CycleSummary] = []
    console.controller.worker.finished.connect(finished.append)

    page.send_now_action.trigger()

    qtbot.waitUntil(lambda: bool(finished), timeout=15_000)
    (summary,) = finished
    with console.services.factory() as session:
        rows = list(listing.iter_rows(session, listing.WritebackFilter()))
    states = {r.id: (r.status, r.attempts) for r in rows}
    assert summary.claimed == 1 and summary.sent == 1
    assert states[failed] == (Status.ERROR, 1) and states[waiting] == (Status.NEW, 0)
    (activity,) = [r for r in rows if r.mailing_id == mailing_id]
    assert (activity.status, activity.attempts) == (Status.SENT, 1)


def test_the_list_follows_a_long_run_of_the_console_s_own_dispatcher_as_rows_arrive(
    qtbot: QtBot, console: Console
) -> None:
    """Rows show as Sent while the run is still going, not all at once at its end."""
    # Long enough (40 rows, 8 at a time, 0.7 s each) that the run outlasts a few of the list's ticks.
    console.sim.faults.latency_ms = 700  # type: ignore[attr-defined]
    enqueue(console.services.factory, *(item(Kind.RESUBSCRIBE, "ann@example.org") for _ in range(40)))
    page = console.window.writebacks
    model = page.model
    page.reload()
    qtbot.waitUntil(lambda: model.rowCount() == 40, timeout=10_000)
    finished: list[CycleSummary] = []
    console.controller.worker.finished.connect(finished.append)
    console.window.run_now_requested.emit()

    def sent_shown() -> int:
        return sum(1 for n in range(model.rowCount()) if model.row_at(n).status is Status.SENT)  # type: ignore[union-attr]

    qtbot.waitUntil(lambda: sent_shown() > 0, timeout=15_000)
    assert not finished, "the run ended before the list showed any of it"
    assert sent_shown() < 40
    qtbot.waitUntil(lambda: bool(finished), timeout=30_000)
    qtbot.waitUntil(lambda: sent_shown() == 40, timeout=10_000)
