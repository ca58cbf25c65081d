"""Test connection: does the service root URL answer, are the credentials accepted, do the activity
codes exist? Each step in words; the Settings dialog and ``writeback-console check-connection`` both
ask it."""

from __future__ import annotations

from dataclasses import dataclass

from writeback_console.messages import describe_exception
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.errors import ErrorKind, PersonifyError
from writeback_console.settings import AppSettings, PasswordStore, SettingsError


@dataclass(frozen=True)
class Check:
    """One step of Test connection, in words."""

    name: str
    #: True passed, False failed, None not checked (an earlier step failed).
    ok: bool | None
    text: str
    details: str = ""


def check_connection(settings: AppSettings, password: str | None, store: PasswordStore) -> list[Check]:
    """Does the URL answer, are the credentials accepted, do the activity codes exist? In words."""
    url, user = settings.service_root_url, settings.user
    skipped = "an earlier check failed"
    answer = Check("Service root URL", None, skipped)
    login = Check("User name and password", None, skipped)
    codes = Check("Activity codes", None, skipped)
    if password is None:
        password = store.get(url, user) if url and user else None
    try:
        client_settings = settings.personify(password or "")
    except SettingsError as exc:
        return [Check("Settings", False, describe_exception(exc)[0]), answer, login, codes]
    if not password:
        login = Check(login.name, False, "No password is typed or stored for this user.")
    mapping = settings.activity_mapping
    try:
        with PersonifyClient(client_settings) as client:
            result = client.check_activity_codes(mapping.expected_codes())
    except PersonifyError as exc:
        message, details = describe_exception(exc)
        if exc.kind is ErrorKind.AUTH:
            answer = Check(answer.name, True, f"Personify360 answers at {url}.")
            login = Check(login.name, False, message, details)
        elif exc.kind in (ErrorKind.NOT_FOUND, ErrorKind.MALFORMED):
            answer = Check(
                answer.name,
                False,
                f"Something answers at {url}, but not Personify Data Services: {message}",
                details,
            )
        elif exc.kind in (ErrorKind.VALIDATION, ErrorKind.SERVER):
            answer = Check(answer.name, True, f"Personify360 answers at {url}.")
            login = Check(login.name, True, "Accepted.")
            codes = Check(codes.name, False, message, details)
        else:
            answer = Check(answer.name, False, message, details)
        return [answer, login, codes]
    answer = Check(answer.name, True, f"Personify360 answers at {url}.")
    login = Check(login.name, True, f"Accepted for {user}.")
    codes = Check(codes.name, result.ok, result.describe())
    return [answer, login, codes]
