"""Consoles connected to a shared PostgreSQL queue as a support user and as an advisor, with the role
script applied: support sees everything and can change nothing; the database refuses a retry even
when the console is got round; and the refusal reaches the person in words, never as a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.conftest import wait_loaded
from tests.helpers.builders import T0, enqueue, fail, item, minutes, run
from tests.helpers.roles import RoleQueue, queue_with_roles
from writeback_console import operations
from writeback_console.domain import Status
from writeback_console.settings import AppSettings, PasswordStore, save_settings
from writeback_console.store import listing
from writeback_console.store.permissions import EVERYTHING
from writeback_console.ui.composition_root import Services, open_console, start_services
from writeback_console.ui.dialogs import errors
from writeback_console.ui.dialogs.retry import RetryDialog

Factory = sessionmaker[Session]
NOT_FOUND = "Validation issues: Customer 000000000042-0 does not exist."


@pytest.fixture
def queue(pg_url: str) -> Iterator[RoleQueue]:
    with queue_with_roles(pg_url) as q:
        yield q


def exhausted_error(factory: Factory, email: str) -> int:
    (wid,) = enqueue(factory, item(email=email))
    for k in range(3):
        at = T0 + minutes(10 * k)
        run(factory, at)
        fail(factory, wid, at + timedelta(seconds=5), NOT_FOUND)
    return wid


def services_as(queue: RoleQueue, role: str, tmp_path: Path) -> Services:
    path = tmp_path / f"settings-{role}.json"
    save_settings(AppSettings(), path)
    store = PasswordStore(fallback=tmp_path / "credentials.json", use_keyring=False)
    return start_services(queue.urls[role], settings_path=path, password_store=store)


def status_of(factory: Factory, wid: int) -> Status:
    with factory() as session:
        return listing.get_writeback(session, wid).status


def test_a_support_console_sees_every_row_changes_nothing_and_the_database_refuses_a_direct_retry(
    qtbot: QtBot, queue: RoleQueue, tmp_path: Path
) -> None:
    wid = exhausted_error(queue.owner, "pat@example.org")
    services = services_as(queue, "support", tmp_path)
    try:
        assert services.capabilities.user == queue.users["support"]
        assert not services.capabilities.everything
        console = open_console(services, state_path=tmp_path / "w.ini")
        window = console.window
        qtbot.addWidget(window)
        wait_loaded(qtbot, window.writebacks.model)
        # It sees the queue: the row is listed and its detail read.
        assert window.writebacks.model.row_of_id(wid) is not None
        window.writebacks.table.select_ids([wid], current=wid)
        detail = window.writebacks.detail
        qtbot.waitUntil(lambda: detail.detail is not None and detail.detail.row.id == wid, timeout=10_000)
        # It offers no change, and says which role each needs; a PostgreSQL console does not dispatch.
        assert not window.retry_action.isEnabled()
        assert "needs the advisor role" in window.retry_action.toolTip()
        assert not detail.retry_button.isEnabled()
        assert not window.run_now_action.isEnabled()
        assert not console._dispatching and not console.controller.worker_thread.isRunning()
        # Asked directly, below the console, the database itself refuses.
        with pytest.raises(DBAPIError) as refused:
            operations.retry(services.factory, [wid], actor="sam")
        assert refused.value.orig is not None and refused.value.orig.sqlstate == "42501"
        assert status_of(queue.owner, wid) is Status.ERROR
        console.shut_down()
    finally:
        services.close()


def test_a_refusal_by_the_database_is_shown_in_words_naming_the_user(
    qtbot: QtBot, queue: RoleQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The console's own view is got round (a role revoked after it started): the Retry dialog is
    # opened on a support user's connection, and its Retry is refused by the database.
    wid = exhausted_error(queue.owner, "ann@example.org")
    services = services_as(queue, "support", tmp_path)
    shown: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        errors, "show_error", lambda _p, title, message, details="": shown.append((title, message, details))
    )
    try:
        assert services.capabilities != EVERYTHING
        dialog = RetryDialog(services.factory, services.runner, [wid], filter={"statuses": ["error"]})
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: dialog.preview is not None, timeout=10_000)
        dialog.ok_button.click()
        qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
        (title, message, details) = shown[0]
        assert title == "Retry writebacks"
        assert message.startswith("The database refused: the user " + queue.users["support"] + " may not")
        assert "Nothing was changed" in message
        assert "Traceback" not in message and "psycopg" not in message
        assert "42501" in details or "permission denied" in details
        assert dialog.confirm_label.text() == "The retry failed; nothing was changed."
        assert status_of(queue.owner, wid) is Status.ERROR
        services.runner.wait(5000)
    finally:
        services.close()


def test_an_advisor_console_retries_the_row_a_support_console_may_not(
    qtbot: QtBot, queue: RoleQueue, tmp_path: Path
) -> None:
    wid = exhausted_error(queue.owner, "bo@example.org")
    services = services_as(queue, "advisor", tmp_path)
    try:
        console = open_console(services, state_path=tmp_path / "w.ini")
        window = console.window
        qtbot.addWidget(window)
        wait_loaded(qtbot, window.writebacks.model)
        window.writebacks.table.select_ids([wid], current=wid)
        qtbot.waitUntil(window.retry_action.isEnabled, timeout=10_000)
        result = operations.retry(services.factory, [wid], actor="al")
        assert [i for i, _ref in result.retried] == [wid]
        assert status_of(queue.owner, wid) is Status.NEW
        console.shut_down()
    finally:
        services.close()
