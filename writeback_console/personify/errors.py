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
    #: 502/503/504/429: the service, or the front end before it, says it cannot serve now.
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DROPPED = "dropped"
    MALFORMED = "malformed"
    TLS = "tls"
    #: The request was refused before any byte of it left (a dispatcher's lease ran out, say).
    NOT_SENT = "not_sent"
    #: The request could not be made at all (a header value that cannot be sent, …).
    REQUEST = "request"


#: Failures that only mean "Personify360 is not answering properly right now", not "this writeback is
#: wrong": when most of a run's requests end like this, the run stops and uses no attempt.
SERVICE_KINDS = frozenset(
    {ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.DROPPED, ErrorKind.TLS}
)
#: Statuses with which a server says, by itself, that the service as a whole is unavailable.
UNAVAILABLE_STATUSES = frozenset({429, 502, 503, 504})


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
        sent: bool | None = None,
        retry_after: float | None = None,
        page: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.excerpt = excerpt
        #: The request was a write (Save): what matters then is whether it may have been applied.
        self.write = write
        #: Whether any byte of the request left: False (it cannot have arrived), True, or None when
        #: the transport could not tell.
        self.sent: bool | None = False if (sent is None and during_connect) else sent
        #: Seconds the server asked to wait (Retry-After), if it said.
        self.retry_after = retry_after
        #: The answer was a web page (a maintenance or gateway page), not an OData answer.
        self.page = page

    @property
    def during_connect(self) -> bool:
        """The failure happened before the request could be sent (refused, DNS, TLS handshake)."""
        return self.sent is False

    @property
    def may_have_arrived(self) -> bool:
        """True when a write may have been applied although no good answer came back.

        The dispatcher then asks Personify360 for the writeback's reference before sending again.
        Only a failure before any byte of the request left, or an answer saying it was refused,
        counts as "not applied".
        """
        if not self.write or self.sent is False:
            return False
        if self.kind in (ErrorKind.AUTH, ErrorKind.NOT_FOUND, ErrorKind.VALIDATION, ErrorKind.NOT_SENT):
            return False
        if self.kind is ErrorKind.UNAVAILABLE:
            # A gateway that timed out (504) or got a broken answer (502) had passed the request on;
            # 503 and 429 refuse it at the door.
            return self.status in (502, 504)
        return True

    @property
    def unreachable(self) -> bool:
        """Personify360 could not be reached at all: nothing of the request left this machine."""
        if self.sent is None:
            # No tracking transport: judge by the kind of failure, as well as one can.
            if self.kind in {ErrorKind.CONNECTION, ErrorKind.TLS}:
                return True
            return self.kind is ErrorKind.TIMEOUT and self.during_connect
        return self.sent is False and self.kind in {ErrorKind.CONNECTION, ErrorKind.TLS, ErrorKind.TIMEOUT}

    @property
    def service(self) -> bool:
        """The failure says something about Personify360 as a whole, not about this writeback."""
        if self.kind in SERVICE_KINDS:
            return True
        return self.page and self.status is not None and (self.status < 300 or self.status >= 500)

    @property
    def explicit_outage(self) -> bool:
        """The server itself said the service is unavailable (503, 429, Retry-After, a gateway page)."""
        if self.status in (503, 429) or (self.retry_after is not None and self.kind is ErrorKind.UNAVAILABLE):
            return True
        return self.status in (502, 504) and self.page

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status is not None else self.message

    def __repr__(self) -> str:
        return f"PersonifyError(kind={self.kind.name}, status={self.status!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions, and errors are
        # handed between processes and threads by the dispatcher.
        return (
            _rebuild,
            (
                self.kind,
                self.message,
                self.status,
                self.excerpt,
                self.write,
                self.sent,
                self.retry_after,
                self.page,
            ),
        )


def _rebuild(
    kind: ErrorKind,
    message: str,
    status: int | None,
    excerpt: str,
    write: bool,
    sent: bool | None,
    retry_after: float | None,
    page: bool,
) -> PersonifyError:
    return PersonifyError(
        kind,
        message,
        status=status,
        excerpt=excerpt,
        write=write,
        sent=sent,
        retry_after=retry_after,
        page=page,
    )


def kind_for_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return ErrorKind.AUTH
    if status in (404, 410):
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status in UNAVAILABLE_STATUSES:
        return ErrorKind.UNAVAILABLE
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
            # surrogatepass: a password that settings would refuse must still never make scrubbing fail.
            def b64(value: str) -> str:
                return base64.b64encode(value.encode("utf-8", "surrogatepass")).decode("ascii")

            secrets.update({password, b64(f"{user}:{password}"), b64(password)})
            secrets.update(quote(password, safe=safe, errors="surrogatepass") for safe in ("", "/"))
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
