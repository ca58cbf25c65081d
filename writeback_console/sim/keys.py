"""Keys in a request's address: ``CustomerInfos(MasterCustomerId='000000001475',SubCustomerId=0)`` and
quoted service-operation parameters such as ``EntityName='CusActivity'``, and the ``$skiptoken`` of a
paged answer (the key of the last row sent), refused with WCF's 400s."""

from __future__ import annotations

from writeback_console.sim.entities import EntitySet
from writeback_console.sim.odata_filter import EdmType, FilterError, TokenKind, tokenize
from writeback_console.sim.wcf import ODataError


def _bad_request(message: str) -> ODataError:
    return ODataError(400, message)


def unquote_string(raw: str, name: str) -> str:
    """The value of a quoted service-operation parameter such as ``EntityName='CusActivity'``."""
    if len(raw) < 2 or raw[0] != "'" or raw[-1] != "'" or "'" in raw[1:-1].replace("''", ""):
        raise _bad_request(
            f"Bad Request - Error in query syntax: parameter '{name}' must be a quoted string."
        )
    return raw[1:-1].replace("''", "'")


def parse_key(entity: EntitySet, text: str) -> dict[str, object]:
    """The key values in ``(…)`` after an entity set name; 400 if malformed or not the entity's keys."""
    values: dict[str, object] = {}
    parts = _split_key(text)
    if len(parts) == 1 and parts[0][0] is None and len(entity.keys) == 1:
        values[entity.keys[0]] = parts[0][1]
    else:
        for name, value in parts:
            if name is None or name not in entity.keys or name in values:
                raise _bad_request("Bad Request - Error in query syntax.")
            values[name] = value
    if set(values) != set(entity.keys):
        raise _bad_request(f"Bad Request - the key of '{entity.set_name}' is ({', '.join(entity.keys)}).")
    for name, value in values.items():
        want_string = entity.by_name[name].type is EdmType.STRING
        if want_string != isinstance(value, str):
            raise _bad_request(f"Bad Request - Error in query syntax: wrong type for key '{name}'.")
    return values


def _split_key(text: str) -> list[tuple[str | None, object]]:
    """``Name='v',Other=3`` or a lone literal, as (name or None, value) pairs."""
    # '=' is not part of the filter syntax, so split on it outside string literals before tokenizing.
    pieces: list[tuple[str | None, object]] = []
    for part in _split_outside_quotes(text, ","):
        halves = _split_outside_quotes(part, "=")
        if len(halves) > 2:
            raise _bad_request("Bad Request - Error in query syntax.")
        name: str | None = None
        if len(halves) == 2:
            name = halves[0].strip()
            if not name.isidentifier():
                raise _bad_request("Bad Request - Error in query syntax.")
        try:
            tokens = tokenize(halves[-1])
        except FilterError:
            raise _bad_request("Bad Request - Error in query syntax.") from None
        if len(tokens) != 2 or tokens[0].kind not in (TokenKind.STRING, TokenKind.INTEGER):
            raise _bad_request("Bad Request - Error in query syntax.")
        pieces.append((name, tokens[0].value))
    return pieces


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    for ch in text:
        if ch == "'":
            # A doubled quote toggles twice, which leaves the state as it was: exactly right.
            in_quotes = not in_quotes
        if ch == separator and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def skiptoken(entity: EntitySet, row: dict[str, object]) -> str:
    """The ``$skiptoken`` WCF writes for the page that ends with ``row``: its key values, in key order, as
    URI literals (``'000000000101',0``, ``12345L``)."""
    return ",".join(entity.key_literal(name, row[name]) for name in entity.keys)


def parse_skiptoken(entity: EntitySet, text: str) -> list[object]:
    """The key values of a ``$skiptoken`` such as ``'000000000101',0``; 400 if it is not one of ours."""
    refused = _bad_request(f"The skip token '{text[:60]}' is not valid for '{entity.set_name}'.")
    try:
        tokens = tokenize(text)
    except FilterError:
        raise refused from None
    values: list[object] = []
    for position, token in enumerate(tokens[:-1]):
        if position % 2:
            if token.kind is not TokenKind.COMMA:
                raise refused
            continue
        if token.kind not in (TokenKind.STRING, TokenKind.INTEGER):
            raise refused
        values.append(token.value)
    if len(values) != len(entity.keys) or len(tokens) != 2 * len(values):
        raise refused
    for name, value in zip(entity.keys, values, strict=True):
        if (entity.by_name[name].type is EdmType.STRING) != isinstance(value, str):
            raise refused
    return values
