"""OData v2 plumbing for Personify Data Services: literal escaping, filter building, query strings,
result unwrapping, and reading the primitive values of an answer (the WCF ``/Date(ms)/`` format, Int64
and Decimal as strings or numbers)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# C0 controls, DEL and the C1 block: none of them belongs in an email, a name or a reference, and some
# (NUL above all) are cut or mangled by the WCF and SQL Server layers behind the service.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DATE = re.compile(r"/Date\((-?\d{1,16})(?:([+-])(\d{2})(\d{2}))?\)/")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# ASCII digits only: "²" is a digit to str.isdigit and "１２" an int to int(), neither a number in JSON.
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,20}")
_DECIMAL_TEXT = re.compile(r"-?[0-9]{1,40}(?:\.[0-9]{1,40})?")
_INT32_RANGE = (-(2**31), 2**31 - 1)
_INT64_RANGE = (-(2**63), 2**63 - 1)

#: A value that can stand in a filter: strings are quoted, integers and booleans written bare.
FilterValue = str | int | bool | None


def quote_literal(value: str) -> str:
    """The OData string literal for ``value``: single-quoted with inner quotes doubled.

    Every piece of text that goes into a ``$filter`` passes through here, so this is the one place
    where an email such as ``x' or 1 eq 1 or 'a@b.c`` is kept inside its literal.
    """
    if not isinstance(value, str):
        raise TypeError(f"OData string literal must be str, not {type(value).__name__}")
    match = _CONTROL.search(value)
    if match is not None:
        raise ValueError(f"control character U+{ord(match.group()):04X} is not allowed in a filter value")
    return "'" + value.replace("'", "''") + "'"


def literal(value: FilterValue) -> str:
    """Any filter value written as OData v2 expects it."""
    # bool before int: True is an int in Python but must be written `true`, not `1`.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return quote_literal(value)


def field(name: str) -> str:
    """A property name, checked so that a caller's typo or input can never become filter syntax."""
    if not isinstance(name, str) or _FIELD_NAME.fullmatch(name) is None:
        raise ValueError(f"not a valid OData property name: {name!r}")
    return name


def eq(name: str, value: FilterValue) -> str:
    return f"{field(name)} eq {literal(value)}"


def ne(name: str, value: FilterValue) -> str:
    return f"{field(name)} ne {literal(value)}"


def substringof(needle: str, name: str) -> str:
    """OData v2 argument order: the text looked for comes first, the property second."""
    return f"substringof({quote_literal(needle)},{field(name)})"


def startswith(name: str, prefix: str) -> str:
    return f"startswith({field(name)},{quote_literal(prefix)})"


def _combine(operator: str, clauses: Iterable[str]) -> str:
    parts = list(clauses)
    if not parts:
        raise ValueError(f"'{operator}' needs at least one clause")
    if len(parts) == 1:
        return parts[0]
    # Parenthesise every operand so that mixing and/or never depends on precedence rules.
    return f" {operator} ".join(f"({part})" for part in parts)


def and_(*clauses: str) -> str:
    return _combine("and", clauses)


def or_(*clauses: str) -> str:
    return _combine("or", clauses)


def entity_key(**keys: FilterValue) -> str:
    """The key segment ``(MasterCustomerId='…',SubCustomerId=0)`` of an entity address."""
    if not keys:
        raise ValueError("an entity key needs at least one property")
    return "(" + ",".join(f"{field(name)}={literal(value)}" for name, value in keys.items()) + ")"


def query_string(options: Mapping[str, str]) -> str:
    """``$filter=…&$select=…`` with every value percent-encoded.

    Built by hand rather than by requests' ``params``: that encodes spaces as ``+``, which some WCF
    hosts read literally, so here a space is always ``%20`` and a quote ``%27``.
    """
    pairs = []
    for key, value in options.items():
        # Keys are our own option names; `$` stays readable because OData servers match it literally.
        pairs.append(f"{quote(key, safe='$')}={quote(value, safe='')}")
    return "&".join(pairs)


def path_segment(text: str) -> str:
    """A path segment such as an entity key, encoded except for the OData punctuation it relies on."""
    return quote(text, safe="()',=$")


class UnexpectedShape(ValueError):
    """A 2xx answer whose body is not the JSON that OData promises."""


def unwrap_results(body: Any) -> list[dict[str, Any]]:
    """The entities inside an OData v2 JSON answer, without their ``__metadata``.

    Both shapes seen in the wild are accepted — ``{"d": [...]}`` and ``{"d": {"results": [...]}}`` —
    as is a single entity ``{"d": {...}}``, which comes back as a list of one.
    """
    return unwrap_page(body)[0]


def unwrap_page(body: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The entities of one answer, as :func:`unwrap_results` reads them, and its ``__next`` link.

    A site that pages its answers server-side (WCF's ``SetEntitySetPageSize``) sends at most a page of
    rows with ``{"d": {"results": [...], "__next": "…?$skiptoken=…"}}``; None when no page follows.
    """
    if not isinstance(body, dict) or "d" not in body:
        raise UnexpectedShape("the answer has no 'd' member")
    inner = body["d"]
    next_link: str | None = None
    if isinstance(inner, dict) and isinstance(inner.get("results"), list):
        rows: list[Any] = inner["results"]
        raw_next = inner.get("__next")
        if raw_next is not None and not (isinstance(raw_next, str) and raw_next.strip()):
            raise UnexpectedShape("'__next' is not an address")
        next_link = raw_next.strip() if isinstance(raw_next, str) else None
    elif isinstance(inner, list):
        rows = inner
    elif isinstance(inner, dict):
        rows = [inner]
    else:
        raise UnexpectedShape(f"'d' holds {type(inner).__name__}, not entities")
    entities = []
    for row in rows:
        if not isinstance(row, dict):
            raise UnexpectedShape(f"an entity is {type(row).__name__}, not an object")
        entities.append({key: value for key, value in row.items() if key != "__metadata"})
    return entities, next_link


class BadValue(UnexpectedShape):
    """A property whose value is not of its type in either JSON form a site may write."""


def _shown(value: Any) -> str:
    """A JSON value as the answer had it, cut short, for a message."""
    if isinstance(value, str):
        return repr(value[:40])
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)[:40]
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def _integer(value: Any, name: str, edm_type: str, bounds: tuple[int, int]) -> int:
    number: int | None = None
    # bool before int: True is an int in Python but a JSON boolean is no number.
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        number = int(value)
    if number is None:
        raise BadValue(f"{name} is {_shown(value)}, not an {edm_type} (a whole number)")
    if not bounds[0] <= number <= bounds[1]:
        raise BadValue(f"{name} is {_shown(value)}, out of the range of an {edm_type}")
    return number


def read_int64(value: Any, name: str) -> int:
    """An Edm.Int64 property: OData v2's JSON format writes it as a string (``"12345"``), as WCF does;
    some sites write a JSON number. Either is read; anything else is :class:`BadValue` naming ``name``."""
    return _integer(value, name, "Edm.Int64", _INT64_RANGE)


def read_int32(value: Any, name: str) -> int:
    """An Edm.Int32 property: a JSON number, or the string of one (as a site that writes every number as
    text sends it); anything else is :class:`BadValue` naming ``name``."""
    return _integer(value, name, "Edm.Int32", _INT32_RANGE)


def read_decimal(value: Any, name: str) -> Decimal:
    """An Edm.Decimal property: a string (``"12.50"``) in OData v2's JSON format, or a JSON number; read
    exactly from the string. Anything else is :class:`BadValue` naming ``name``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A JSON number came through float already; str() gives its shortest exact spelling.
        text = str(value)
    elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        text = value
    else:
        raise BadValue(f"{name} is {_shown(value)}, not an Edm.Decimal (a number)")
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise BadValue(f"{name} is {_shown(value)}, not an Edm.Decimal (a number)")
    return number


def parse_date(value: str) -> datetime:
    """An aware UTC datetime from ``/Date(ms)/`` or ``/Date(ms+hhmm)/``.

    The milliseconds are always UTC in the WCF format; the offset only records the zone the value
    came from, so it is validated but does not move the instant.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a /Date()/ value: {type(value).__name__}")
    match = _DATE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not a /Date()/ value: {value[:40]!r}")
    millis, _sign, hours, minutes = match.groups()
    if hours is not None and (int(hours) > 23 or int(minutes) > 59):
        raise ValueError(f"impossible UTC offset in {value[:40]!r}")
    try:
        return _EPOCH + timedelta(milliseconds=int(millis))
    except OverflowError as exc:
        raise ValueError(f"date out of range: {value[:40]!r}") from exc


def parse_optional_date(value: Any) -> datetime | None:
    """Like :func:`parse_date`, but ``None``, empty text and anything unreadable give ``None``.

    Used where one odd date must not hide a whole list from the reader.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_date(value)
    except ValueError:
        return None


def format_date(moment: datetime) -> str:
    """``/Date(ms)/`` for an aware datetime; naive ones are refused because their instant is unknown."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no known instant; give it a time zone")
    delta = moment - _EPOCH
    millis = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return f"/Date({millis})/"
