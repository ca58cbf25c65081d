"""Errors from any layer in words a user understands, with technical details ready to copy.

Used by the console's dialogs and the command line alike; nothing here knows Qt.
"""

from __future__ import annotations

import re
import traceback

from sqlalchemy.exc import DBAPIError, OperationalError

from writeback_console.personify.errors import ErrorKind, PersonifyError
from writeback_console.settings import SettingsError
from writeback_console.store.permissions import NEEDS, Action, Capabilities
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


#: SQLSTATE insufficient_privilege: a grant of the role script is missing, or one of its row-level
#: security policies refused the row ("new row violates row-level security policy").
INSUFFICIENT_PRIVILEGE = "42501"

_REFUSED_TABLE = re.compile(
    r'(?:permission denied for (?:table|relation|sequence|schema) "?|row-level security policy for table ")'
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
)
#: What a person was doing to a table, by the table the database named.
_THINGS = {
    "writeback": "this writeback",
    "attempt": "this writeback",
    "delivery": "this writeback",
    "mailing": "mailings",
    "mailing_recipient": "mailings",
    "setting": "the account settings",
    "remote_health": "Personify360's health",
    "pruned_writeback": "the record of pruned writebacks",
    "status_count": "the status counts",
    "status_count_delta": "the status counts",
    "writeback_event": "the status history",
    "dispatcher_run": "the dispatcher runs",
    "chart_hour": "the charts",
    "chart_rollup": "the charts",
}
_AUDIT_TABLES = ("audit_event", "audit_event_row")


def is_database_refusal(exc: BaseException) -> bool:
    """Whether the database refused this for want of a privilege (a grant or a row-level policy)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE


#: The database user this process connected as, once known (the console sets it at start): a refusal
#: names it when the caller does not.
_connected_user: str | None = None


def set_connected_user(user: str | None) -> None:
    global _connected_user
    _connected_user = user or None


def database_refusal(
    exc: BaseException, *, user: str | None = None, action: Action | str | None = None
) -> str | None:
    """What the database refused and why, in words, when it refused for want of a privilege; else None.

    ``user`` is the database user the console or command connected as; ``action`` what the person was
    doing, when the caller knows, so the words can name the role it needs.
    """
    if not is_database_refusal(exc):
        return None
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    found = _REFUSED_TABLE.search(str(orig))
    table = found["name"] if found else ""
    if table.endswith("_id_seq"):
        table = table.removesuffix("_id_seq")
    statement = (getattr(exc, "statement", None) or "").lstrip().upper()
    verb = {"INSERT": "add", "DELETE": "delete", "SELECT": "read"}.get(statement.split(" ", 1)[0], "change")
    if "FOR UPDATE" in statement:
        verb = "change"
    if table in _AUDIT_TABLES:
        what = "write this entry in the audit log"
    elif table == "writeback" and verb == "add":
        what = "add this writeback"
    elif table in _THINGS:
        what = f"{verb} {_THINGS[table]}"
    elif table:
        what = f"{verb} the {table} table"
    else:
        what = "do this"
    return _refusal_words(user=user, what=what, action=action)


def _refusal_words(*, user: str | None, what: str, action: Action | str | None) -> str:
    """The one wording of a refusal by the roles, whether the database said it or was known to."""
    user = user or _connected_user
    who = f"the user {user}" if user else "this database user"
    why = ""
    if action is not None:
        try:
            needed = NEEDS[Action(action)]
        except ValueError:
            pass
        else:
            why = f" ({Action(action).value.replace('_', ' ')} needs the {needed.label} role)"
    return f"The database refused: {who} may not {what}{why}. Nothing was changed."


#: What each action changes, in the words of a refusal, for one said before the database is asked.
_ACTION_THINGS = {
    Action.EXPORT: "read writebacks",
    Action.SCHEDULE: "change writebacks",
    Action.RESCHEDULE: "change writebacks",
    Action.CANCEL: "change writebacks",
    Action.SEND_NOW: "change writebacks",
    Action.RETRY: "change writebacks",
    Action.DISCARD: "change writebacks",
    Action.SWITCHES: "change the account settings",
    Action.ACCOUNT_SETTINGS: "change the account settings",
    Action.ENQUEUE: "add writebacks",
    Action.PRUNE: "delete writebacks",
    Action.DISPATCH: "claim writebacks",
}


def permission_refusal(capabilities: Capabilities, action: Action | str) -> str | None:
    """The refusal the database would give (in the same words), when the user may not do ``action``.

    Row-level security hides rows from an UPDATE or DELETE instead of refusing it, so a change the
    roles forbid can succeed on no rows; asking first is how a command says so instead of "0 changed".
    """
    action = Action(action)
    if capabilities.may(action):
        return None
    return _refusal_words(user=capabilities.user or None, what=_ACTION_THINGS[action], action=action)


def describe_exception(
    exc: BaseException, *, user: str | None = None, action: Action | str | None = None
) -> tuple[str, str]:
    """(message in words for the user, technical details to copy) for an exception from any layer.

    ``user`` and ``action`` (see :func:`database_refusal`) make a refusal by the database name who was
    refused and the role the action needs.
    """
    refusal = database_refusal(exc, user=user, action=action)
    if refusal is not None:
        message = refusal
    elif isinstance(exc, PersonifyError):
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
