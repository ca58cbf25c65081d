"""Errors from any layer in words a user understands, with technical details ready to copy.

Used by the console's dialogs and the command line alike; nothing here knows Qt.
"""

from __future__ import annotations

import re
import traceback

from sqlalchemy.exc import DBAPIError, OperationalError

from writeback_console.personify.errors import ErrorKind, PersonifyError
from writeback_console.settings import SettingsError
from writeback_console.store.rows import QueueError

# Whatever reaches the details box must not carry a secret, even one a lower layer forgot to scrub:
# a password inside a URL, or an Authorization header echoed back by a proxy.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")
_AUTH_HEADER = re.compile(r"(?i)(?P<head>authorization['\"]?\s*[:=]\s*['\"]?(basic|bearer)\s+)[^\s'\",}]+")
#: A password field's value: quoted (spaces and commas inside belong to it), or up to a separator.
_PASSWORD_FIELD = re.compile(
    r"(?i)(?P<head>password['\"]?\s*[:=]\s*)(?P<value>\"[^\"]*\"?|'[^']*'?|[^\s'\",}&;]+)"
)


def scrub(text: str) -> str:
    """``text`` with passwords in URLs, Authorization headers and password fields replaced by ***."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    text = _AUTH_HEADER.sub(r"\g<head>***", text)
    return _PASSWORD_FIELD.sub(_hidden_field, text)


def _hidden_field(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "'\"" else ""
    return f"{match['head']}{quote}***{quote}"


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def _personify_message(exc: PersonifyError) -> str:
    detail = exc.message.strip()
    kind = exc.kind
    if kind is ErrorKind.AUTH:
        if exc.status == 403:
            return (
                "Personify360 refused access: the user may not use this service. Check the user in Settings."
            )
        return "Personify360 rejected the user name or password. Check them in Settings."
    if kind is ErrorKind.CONNECTION:
        return f"Personify360 could not be reached: {detail}. Check the service root URL and the network."
    if kind is ErrorKind.TIMEOUT:
        # The client's message already names the host and the number of seconds waited.
        if exc.during_connect:
            return f"Personify360 could not be reached: {detail}."
        return _sentence(detail)
    if kind is ErrorKind.TLS:
        return f"The secure connection to Personify360 failed: {detail}."
    if kind is ErrorKind.DROPPED:
        return _sentence(f"Personify360 closed the connection early ({detail})") + " Try again."
    if kind is ErrorKind.VALIDATION:
        return _sentence(f"Personify360 refused the request: {detail}")
    if kind is ErrorKind.NOT_FOUND:
        return _sentence(
            f"Personify360 does not know what was asked for ({detail}); check the service root URL"
        )
    if kind is ErrorKind.SERVER:
        return _sentence(f"Personify360 reported an internal error: {detail}")
    if kind is ErrorKind.UNAVAILABLE:
        status = f" ({exc.status})" if exc.status else ""
        return _sentence(f"Personify360 is unavailable right now{status}: {detail}") + " Try again later."
    if kind in (ErrorKind.NOT_SENT, ErrorKind.REQUEST):
        # Nothing reached Personify360: the words must not suggest it answered.
        return _sentence(f"Nothing was sent to Personify360: {detail}")
    return _sentence(f"Personify360 answered with something unexpected: {detail}")


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(message in words for the user, technical details to copy) for an exception from any layer."""
    if isinstance(exc, PersonifyError):
        message = _personify_message(exc)
    elif isinstance(exc, OperationalError):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else ""
        message = "The queue database is not reachable or is busy" + (f" ({reason})." if reason else ".")
        message += " Try again in a moment; if it persists, check the database connection."
    elif isinstance(exc, DBAPIError):
        message = "The queue database refused the operation. Nothing was changed."
    elif isinstance(exc, QueueError):
        message = _sentence(str(exc))
    elif isinstance(exc, SettingsError):
        message = _sentence(f"The settings are incomplete or wrong: {exc}")
    elif isinstance(exc, (ValueError, OSError)):
        message = _sentence(str(exc) or type(exc).__name__)
    else:
        message = f"Something unexpected went wrong ({type(exc).__name__}: {exc})."
    return scrub(message), scrub(exception_details(exc))


def exception_details(exc: BaseException) -> str:
    """Type, message, HTTP status, response excerpt and traceback, as plain text."""
    lines = [f"Type: {type(exc).__module__}.{type(exc).__qualname__}", f"Message: {exc}"]
    if isinstance(exc, PersonifyError):
        lines.append(f"Kind: {exc.kind.name}")
        if exc.status is not None:
            lines.append(f"HTTP status: {exc.status}")
        if exc.excerpt:
            lines += ["Response excerpt:", exc.excerpt]
    text = getattr(exc, "__traceback_text__", None)
    if not text and exc.__traceback__ is not None:
        text = "".join(traceback.format_exception(exc))
    if text:
        lines += ["", str(text).rstrip()]
    return "\n".join(lines)
