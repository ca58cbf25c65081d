"""The one exception the Personify360 client raises, and the defensive reading of WCF error documents."""

from __future__ import annotations

import base64
import enum
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

#: Error bodies larger than this are not parsed at all: a hostile or broken server must not make the
#: client spend memory or time on an error page.
MAX_ERROR_BODY = 1_000_000
EXCERPT_LENGTH = 500
REDACTED = "***"
# Nesting deeper than this in an error document is not a real WCF stack; stop walking there.
_MAX_DEPTH = 64


class ErrorKind(enum.Enum):
    """What went wrong, in the terms the dispatcher and the UI act on."""

    AUTH = "auth"
    NOT_FOUND = "not_found"
    VALIDATION = "validation"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DROPPED = "dropped"
    MALFORMED = "malformed"
    TLS = "tls"


class PersonifyError(Exception):
    """A request to Personify Data Services that did not give the expected answer.

    ``message`` is for people (the deepest message of the server's error document when there is one),
    ``excerpt`` the start of the response body for the attempt history; both are already free of
    credentials.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        excerpt: str = "",
        write: bool = False,
        during_connect: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.excerpt = excerpt
        #: The request was a write (Save): what matters then is whether it may have been applied.
        self.write = write
        #: The failure happened before the request could be sent (connect timeout, refused, TLS).
        self.during_connect = during_connect

    @property
    def may_have_arrived(self) -> bool:
        """True when a write may have been applied although no good answer came back.

        The dispatcher then asks Personify360 for the writeback's reference before sending again.
        """
        if not self.write or self.during_connect:
            return False
        # CONNECTION counts only when it did not fail while connecting: an unforeseen network error.
        return self.kind in {
            ErrorKind.TIMEOUT,
            ErrorKind.DROPPED,
            ErrorKind.SERVER,
            ErrorKind.MALFORMED,
            ErrorKind.CONNECTION,
        }

    @property
    def unreachable(self) -> bool:
        """Personify360 could not be reached at all: the console shows a banner rather than row errors."""
        if self.kind in {ErrorKind.CONNECTION, ErrorKind.TLS}:
            return True
        return self.kind is ErrorKind.TIMEOUT and self.during_connect

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status is not None else self.message

    def __repr__(self) -> str:
        return f"PersonifyError(kind={self.kind.name}, status={self.status!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions, and errors are
        # handed between processes and threads by the dispatcher.
        return (
            _rebuild,
            (self.kind, self.message, self.status, self.excerpt, self.write, self.during_connect),
        )


def _rebuild(
    kind: ErrorKind, message: str, status: int | None, excerpt: str, write: bool, during_connect: bool
) -> PersonifyError:
    return PersonifyError(
        kind, message, status=status, excerpt=excerpt, write=write, during_connect=during_connect
    )


def kind_for_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return ErrorKind.AUTH
    if status in (404, 410):
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status >= 500:
        return ErrorKind.SERVER
    if 400 <= status < 500:
        # 400 is what WCF answers for a Personify validation issue; the rest of 4xx (405, 409, 415…)
        # also mean "the request as sent is refused", which resending will not change.
        return ErrorKind.VALIDATION
    # 1xx and 3xx were not expected; requests follows redirects, so seeing one means a loop or a
    # redirect to something that is not the service.
    return ErrorKind.MALFORMED


class Scrubber:
    """Removes the password and the Basic token, in every spelling we could echo, from text.

    Only whole values count: an occurrence with a letter or digit glued to it on either side is part of
    another word and stays. Replacing it there would show where the password's characters are, and
    with them a short password ("decry***tion" for the password "p").
    """

    def __init__(self, user: str, password: str) -> None:
        secrets: set[str] = set()
        if password:
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            secrets.update({password, quote(password, safe=""), quote(password), token})
            secrets.add(base64.b64encode(password.encode()).decode("ascii"))
        # Longest first, so that the token is removed whole before the password inside it is looked for.
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self._patterns = [re.compile(rf"(?<![^\W_]){re.escape(s)}(?![^\W_])") for s in self._secrets]
        self.longest = len(self._secrets[0]) if self._secrets else 0

    def __call__(self, text: str) -> str:
        for secret, whole in zip(self._secrets, self._patterns, strict=True):
            # The plain search is far cheaper, and most texts hold no secret at all.
            if secret in text:
                text = whole.sub(REDACTED, text)
        return text

    def excerpt(self, text: str, length: int = EXCERPT_LENGTH) -> str:
        # Whether a secret near the cut stands alone depends on the characters after it, and each pass
        # can change those for the next one: scrub enough more than we keep for every pass to see them.
        head = text[: length + len(self._secrets) * (self.longest + 1)]
        scrubbed = self(head)
        if scrubbed == head:
            return head[:length]
        # A replacement moved the cut: whatever follows in the text may now fall inside the excerpt.
        return self(text)[:length]


def body_text(body: bytes, limit: int = MAX_ERROR_BODY) -> str:
    return body[:limit].decode("utf-8", errors="replace")


def deepest_message(body: bytes, content_type: str = "") -> str | None:
    """The innermost message of a WCF Data Services error document, or None if there is none.

    Never raises: the body comes from the network and may be anything, including an attack.
    """
    if not body or len(body) > MAX_ERROR_BODY:
        return None
    stripped = body.lstrip()
    try:
        if stripped.startswith(b"<") or "xml" in content_type:
            return _deepest_xml(stripped)
        if stripped.startswith(b"{") or "json" in content_type:
            return _deepest_json(stripped)
    except Exception:
        # Any failure of a parser on hostile input simply means "no message found".
        return None
    return None


def _local(tag: object) -> str:
    name = tag if isinstance(tag, str) else ""
    return name.rsplit("}", 1)[-1].lower()


def _deepest_xml(body: bytes) -> str | None:
    # A DOCTYPE is how entity-expansion attacks start and WCF never sends one, so the parser refuses it
    # (and any entity declaration) in whatever encoding the document is written, before expanding anything.
    try:
        root: ET.Element = defused_fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        return None
    if _local(root.tag) != "error":
        return None
    node: ET.Element | None = root
    found: str | None = None
    depth = 0
    while node is not None and depth < _MAX_DEPTH:
        depth += 1
        deeper: ET.Element | None = None
        for child in node:
            name = _local(child.tag)
            if name == "message" and child.text and child.text.strip():
                found = child.text.strip()
            elif name in ("innererror", "internalexception") and deeper is None:
                deeper = child
        node = deeper
    return found


def _deepest_json(body: bytes) -> str | None:
    document = json.loads(body)
    if not isinstance(document, dict):
        return None
    node = document.get("error", document.get("odata.error"))
    found: str | None = None
    depth = 0
    while isinstance(node, dict) and depth < _MAX_DEPTH:
        depth += 1
        message = _message_text(node.get("message"))
        if message:
            found = message
        node = node.get("innererror", node.get("internalexception"))
    return found


def _message_text(value: Any) -> str | None:
    # WCF writes the top message as {"lang": …, "value": …} and the inner ones as plain strings.
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """Every exception wrapped inside ``exc``: requests and urllib3 nest them through ``args``,
    ``reason``, ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 50:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested: Iterable[object] = (
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *current.args,
        )
        pending.extend(item for item in nested if isinstance(item, BaseException))
