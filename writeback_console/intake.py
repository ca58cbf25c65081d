"""Validation of writebacks coming in from outside (import files, the command line), with exact messages."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from writeback_console.domain import REF_ALPHABET, REF_PREFIX, Kind, normalize_ref, utcnow

DEFAULT_ACCOUNT = "Main"
MAX_LINE_BYTES = 64 * 1024
MAX_EMAIL = 254
MAX_EMAIL_LOCAL = 64
MAX_ACCOUNT = 100
MAX_REASON = 1000
MAX_INTEREST = 200
MAX_CUSTOMER_ID = 24
MAX_SUB_CUSTOMER_ID = 2**31 - 1
#: Clocks disagree a little; an event more than a day ahead is a mistake in the file, not skew.
FUTURE_TOLERANCE = timedelta(days=1)

_DOMAIN_LABEL = re.compile(r"^(?!-)[^\W_](?:[\w-]{0,61}[^\W_])?$", re.UNICODE)
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9-]+$")
_REF = re.compile("^" + re.escape(REF_PREFIX) + "[" + REF_ALPHABET + "]{6,12}$")

FIELDS: dict[str, str] = {
    "kind": "required: unsubscribe, resubscribe, invalid_email, mailing_activity or interests",
    "email": f"required except for mailing_activity: the address, at most {MAX_EMAIL} characters",
    "account": f"Informz account name, at most {MAX_ACCOUNT} characters (default {DEFAULT_ACCOUNT!r})",
    "reason": f"unsubscribe and invalid_email: why, at most {MAX_REASON} characters",
    "interest": f"interests: the interest's name, at most {MAX_INTEREST} characters (required)",
    "opted_in": "interests: true for opt-in, false for opt-out (required)",
    "master_customer_id": f"Personify360 MasterCustomerId, letters/digits/-, at most {MAX_CUSTOMER_ID}",
    "sub_customer_id": "Personify360 SubCustomerId, an integer >= 0 (default 0 with master_customer_id)",
    "occurred_at": "when it happened, ISO-8601 with a time zone (default: now)",
    "mailing_id": "mailing_activity: the id of a mailing in this database (required)",
    "scheduled_for": "mailing_activity: send at this ISO-8601 time instead of at the next run",
    "ref": "optional reference WB- plus 6 to 12 of 0-9 A-Z (no I L O U); refused if already used",
}


class InputError(ValueError):
    """One thing wrong with one field of one writeback."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class WritebackInput:
    """A writeback that passed validation and may be written to the queue."""

    kind: Kind
    account: str
    occurred_at: datetime
    email: str | None = None
    master_customer_id: str | None = None
    sub_customer_id: int | None = None
    mailing_id: int | None = None
    scheduled_for: datetime | None = None
    ref: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.problem}"


def _text(raw: Mapping[str, Any], name: str, limit: int, *, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise InputError(name, "is required")
        return None
    if not isinstance(value, str):
        raise InputError(name, f"must be text, not {_json_type(value)}")
    if "\x00" in value:
        raise InputError(name, "contains a NUL byte")
    odd = odd_character(value, free_text=name in FREE_TEXT_FIELDS)
    if odd is not None:
        raise InputError(name, f"contains {odd}")
    value = value.strip()
    if not value:
        if required:
            raise InputError(name, "is empty")
        return None
    if len(value) > limit:
        raise InputError(name, f"is {len(value):,} characters long, at most {limit:,} allowed")
    return value


#: Fields of prose, where tabs and line breaks are fine; everywhere else they are a mistake.
FREE_TEXT_FIELDS = frozenset({"reason"})
_SEPARATORS = {"\u2028": "a line separator", "\u2029": "a paragraph separator", "\ufeff": "a byte order mark"}


def odd_character(value: str, *, free_text: bool = False) -> str | None:
    """The first character with no place in such a field, in words with its code point; None if clean.

    Control characters (C0, DEL and the C1 block), unpaired surrogates (which JSON's \\ud800 escapes
    produce), Unicode line separators and noncharacters break the layers behind Personify360 — an OData
    filter, an HTTP header, SQL Server — or hide what an address really is. Outside prose, invisible
    formatting characters (a right-to-left override in an email, say) are refused too.
    """
    for ch in value:
        code = ord(ch)
        where = f"(U+{code:04X})"
        if 0xD800 <= code <= 0xDFFF:
            return f"an unpaired surrogate {where}"
        category = unicodedata.category(ch)
        if category == "Cc":
            if free_text and ch in "\t\n\r":
                continue
            return f"a control character {where}"
        if ch in _SEPARATORS:
            return f"{_SEPARATORS[ch]} {where}"
        if code in (0xFFFE, 0xFFFF) or 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFF) in (0xFFFE, 0xFFFF):
            return f"a noncharacter {where}"
        if category == "Cf" and not free_text:
            return f"an invisible formatting character {where}"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def validate_email(value: str, name: str = "email") -> str:
    if len(value) > MAX_EMAIL:
        raise InputError(name, f"is {len(value)} characters long, at most {MAX_EMAIL} allowed")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise InputError(name, f"{value!r} is not an email address (no local part, @ and domain)")
    if "@" in local or any(c.isspace() for c in value):
        raise InputError(name, f"{value!r} is not an email address")
    if len(local) > MAX_EMAIL_LOCAL:
        raise InputError(name, f"the part before @ is longer than {MAX_EMAIL_LOCAL} characters")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise InputError(name, f"{value!r} does not have a valid domain")
    return value


def parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise InputError(name, f"must be an ISO-8601 time as text, not {_json_type(value)}")
    text = value.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise InputError(name, f"{value!r} is not an ISO-8601 time such as 2026-11-20T10:00:00Z") from None
    if when.tzinfo is None:
        raise InputError(name, f"{value!r} has no time zone; add Z or an offset such as +01:00")
    return when


def _int(raw: Mapping[str, Any], name: str, minimum: int, maximum: int) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    # JSON true is an int to Python; a flag in an id field is a mistake in the file.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(name, f"must be a whole number, not {_json_type(value)}")
    if not minimum <= value <= maximum:
        raise InputError(name, f"must be between {minimum} and {maximum:,}, not {value}")
    return value


def validate_writeback(raw: Mapping[str, Any], *, now: datetime | None = None) -> WritebackInput:
    """Check one writeback given as a JSON-like mapping; raise InputError naming the first bad field."""
    now = now or utcnow()
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise InputError(unknown[0], f"unknown field (known fields: {', '.join(FIELDS)})")

    kind_text = _text(raw, "kind", 40, required=True) or ""
    try:
        kind = Kind(kind_text)
    except ValueError:
        raise InputError("kind", f"unknown kind {kind_text!r}; one of {', '.join(Kind)}") from None

    email = _text(raw, "email", MAX_EMAIL + 1, required=kind is not Kind.MAILING_ACTIVITY)
    if email is not None:
        email = validate_email(email)
    account = _text(raw, "account", MAX_ACCOUNT) or DEFAULT_ACCOUNT

    master = _text(raw, "master_customer_id", MAX_CUSTOMER_ID)
    if master is not None and not _CUSTOMER_ID.match(master):
        raise InputError("master_customer_id", f"{master!r} may hold only letters, digits and -")
    sub = _int(raw, "sub_customer_id", 0, MAX_SUB_CUSTOMER_ID)
    if sub is not None and master is None:
        raise InputError("sub_customer_id", "given without master_customer_id")
    if master is not None and sub is None:
        sub = 0

    occurred_at = now if raw.get("occurred_at") is None else parse_time(raw["occurred_at"], "occurred_at")
    if occurred_at > now + FUTURE_TOLERANCE:
        raise InputError("occurred_at", f"{raw['occurred_at']} is in the future")

    payload: dict[str, Any] = {}
    reason = _text(raw, "reason", MAX_REASON)
    if reason is not None:
        if kind not in (Kind.UNSUBSCRIBE, Kind.INVALID_EMAIL):
            raise InputError("reason", f"is only used by unsubscribe and invalid_email, not {kind}")
        payload["reason"] = reason

    interest = _text(raw, "interest", MAX_INTEREST, required=kind is Kind.INTERESTS)
    opted_in = raw.get("opted_in")
    if kind is Kind.INTERESTS:
        if opted_in is None:
            raise InputError("opted_in", "is required for interests (true or false)")
        if not isinstance(opted_in, bool):
            raise InputError("opted_in", f"must be true or false, not {_json_type(opted_in)}")
        payload["interest"] = interest
        payload["opted_in"] = opted_in
    else:
        for name in ("interest", "opted_in"):
            if raw.get(name) is not None:
                raise InputError(name, f"is only used by interests, not {kind}")

    mailing_id = _int(raw, "mailing_id", 1, 2**63 - 1)
    scheduled_for = None
    if kind is Kind.MAILING_ACTIVITY:
        if mailing_id is None:
            raise InputError("mailing_id", "is required for mailing_activity")
        if raw.get("scheduled_for") is not None:
            scheduled_for = parse_time(raw["scheduled_for"], "scheduled_for")
    else:
        for name in ("mailing_id", "scheduled_for"):
            if raw.get(name) is not None:
                raise InputError(name, f"is only used by mailing_activity, not {kind}")

    ref = _text(raw, "ref", 40)
    if ref is not None:
        ref = normalize_ref(ref)
        if not _REF.match(ref):
            raise InputError("ref", f"{raw['ref']!r} is not WB- followed by 6 to 12 of {REF_ALPHABET}")

    return WritebackInput(
        kind=kind,
        account=account,
        occurred_at=occurred_at,
        email=email,
        master_customer_id=master,
        sub_customer_id=sub,
        mailing_id=mailing_id,
        scheduled_for=scheduled_for,
        ref=ref,
        payload=payload,
    )


def parse_line(line: bytes, number: int, *, now: datetime | None = None) -> WritebackInput | LineError:
    """One line of a JSONL import file: a validated writeback, or what is wrong with it."""
    if len(line) > MAX_LINE_BYTES:
        return LineError(number, "line", f"is {len(line):,} bytes long, at most {MAX_LINE_BYTES:,} allowed")
    if b"\x00" in line:
        return LineError(number, "line", "contains a NUL byte")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LineError(number, "line", f"is not UTF-8 (byte {exc.start + 1})")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return LineError(number, "line", f"invalid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(raw, dict):
        return LineError(number, "line", f"must be a JSON object, not {_json_type(raw)}")
    try:
        return validate_writeback(raw, now=now)
    except InputError as exc:
        return LineError(number, exc.field, exc.problem)
