"""Errors are told in words, with details to copy that never contain credentials."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot
from sqlalchemy.exc import OperationalError

from writeback_console.personify.errors import ErrorKind, PersonifyError
from writeback_console.settings import SettingsError
from writeback_console.store.rows import QueueError
from writeback_console.ui.dialogs.errors import ErrorDialog, describe_exception


def test_personify_errors_are_described_by_kind() -> None:
    auth = PersonifyError(ErrorKind.AUTH, "Unauthorized", status=401, excerpt="<error>denied</error>")
    message, details = describe_exception(auth)
    assert message.startswith("Personify360 rejected the user name or password")
    assert "HTTP status: 401" in details and "<error>denied</error>" in details and "Kind: AUTH" in details

    refused = PersonifyError(
        ErrorKind.CONNECTION, "could not connect to pds.example.org: the connection was refused"
    )
    assert describe_exception(refused)[0].startswith(
        "Personify360 could not be reached: could not connect to pds.example.org"
    )
    slow = PersonifyError(ErrorKind.TIMEOUT, "Personify360 at pds.example.org did not answer within 30 s")
    assert describe_exception(slow)[0] == "Personify360 at pds.example.org did not answer within 30 s."
    invalid = PersonifyError(ErrorKind.VALIDATION, "Activity Code 'X' is inactive.", status=400)
    assert "Activity Code 'X' is inactive." in describe_exception(invalid)[0]


def test_database_queue_and_settings_errors_are_described() -> None:
    down = OperationalError("SELECT 1", {}, Exception("could not connect to server: Connection refused"))
    assert describe_exception(down)[0].startswith("The queue database is not reachable")
    assert describe_exception(QueueError("the time has already passed"))[0] == "The time has already passed."
    assert "service_root_url: not set" in describe_exception(SettingsError("service_root_url: not set"))[0]


def test_details_never_show_a_password_from_a_url_or_header() -> None:
    exc = RuntimeError(
        "connect to postgresql://writeback:hunter2@db.example.org/q failed; Authorization: Basic dTpw"
    )
    exc.__traceback_text__ = "Traceback: password='hunter2'"  # type: ignore[attr-defined]
    message, details = describe_exception(exc)
    assert "hunter2" not in message + details
    assert "dTpw" not in message + details
    assert "postgresql://writeback:***@db.example.org" in details
    assert "Traceback" in details


def test_error_dialog_hides_details_until_asked_and_copies_them(qtbot: QtBot) -> None:
    dialog = ErrorDialog(
        None, "Lookup", "Personify360 rejected the user name or password.", "HTTP status: 401"
    )
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.details_box.isVisible()
    dialog.details_button.click()
    assert dialog.details_box.isVisible()
    assert dialog.details_button.text() == "Hide details"
    dialog.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    assert "rejected the user name or password" in copied and "HTTP status: 401" in copied
