"""WCF Data Services wire details: error documents in XML and JSON, and the ``/Date(ms)/`` JSON dates."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from xml.sax.saxutils import escape

#: How collections are wrapped (``{"d": [...]}`` or ``{"d": {"results": [...]}}``; both occur in the wild).
JsonShape = Literal["d", "results"]
#: The error document WCF writes: XML (its default) or JSON.
ErrorFormat = Literal["xml", "json"]
JSON_SHAPES: tuple[JsonShape, ...] = ("d", "results")
ERROR_FORMATS: tuple[ErrorFormat, ...] = ("xml", "json")

METADATA_NS = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
GENERIC_MESSAGE = "An error occurred while processing this request."

_FAKE_STACK = "   at System.Data.Services.DataService`1.HandleRequest()"


@dataclass(frozen=True, slots=True)
class Inner:
    """One level of ``innererror`` / ``internalexception``."""

    message: str
    type: str
    stacktrace: str = _FAKE_STACK


@dataclass
class ODataError(Exception):
    """An error the service answers with a WCF error document.

    ``inner`` is the exception chain: the first entry becomes ``innererror``, each following one the
    ``internalexception`` of the one before, so the last entry holds the deepest message.
    """

    status: int
    message: str
    inner: tuple[Inner, ...] = field(default=())
    code: str = ""

    def __str__(self) -> str:
        return self.inner[-1].message if self.inner else self.message


def validation_issue(reason: str) -> ODataError:
    """A Personify validation issue: the reason sits two levels deep, as Save reports it."""
    return ODataError(
        400,
        GENERIC_MESSAGE,
        (
            Inner(
                "Exception has been thrown by the target of an invocation.",
                "System.Reflection.TargetInvocationException",
            ),
            Inner("Validation Issues", "Personify.DataServices.PersonifyValidationException"),
            Inner(reason, "Personify.ErrorHandling.ValidationIssue"),
        ),
    )


def server_fault() -> ODataError:
    """An internal error of the kind a busy Personify database produces."""
    return ODataError(
        500,
        GENERIC_MESSAGE,
        (
            Inner(
                "An error occurred while executing the command definition. "
                "See the inner exception for details.",
                "System.Data.EntityCommandExecutionException",
            ),
            Inner(
                "Transaction (Process ID 57) was deadlocked on lock resources with another process and has "
                "been chosen as the deadlock victim. Rerun the transaction. (simulated fault)",
                "System.Data.SqlClient.SqlException",
            ),
        ),
    )


#: Characters XML 1.0 cannot carry at all, not even escaped; a message may quote them from a request.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", text))


def render_xml(error: ODataError) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8" standalone="yes"?>',
        f'<error xmlns="{METADATA_NS}">',
        f"<code>{_xml_text(error.code)}</code>",
        f'<message xml:lang="en-US">{_xml_text(error.message)}</message>',
    ]
    closing: list[str] = []
    for depth, inner in enumerate(error.inner):
        tag = "innererror" if depth == 0 else "internalexception"
        parts.append(
            f"<{tag}><message>{_xml_text(inner.message)}</message><type>{_xml_text(inner.type)}</type>"
            f"<stacktrace>{_xml_text(inner.stacktrace)}</stacktrace>"
        )
        closing.append(f"</{tag}>")
    parts.extend(reversed(closing))
    parts.append("</error>")
    return "".join(parts).encode()


def render_json(error: ODataError) -> bytes:
    nested: dict[str, object] | None = None
    for depth in range(len(error.inner) - 1, -1, -1):
        inner = error.inner[depth]
        level: dict[str, object] = {
            "message": inner.message,
            "type": inner.type,
            "stacktrace": inner.stacktrace,
        }
        if nested is not None:
            level["internalexception"] = nested
        nested = level
    body: dict[str, object] = {"code": error.code, "message": {"lang": "en-US", "value": error.message}}
    if nested is not None:
        body["innererror"] = nested
    return json.dumps({"error": body}).encode()


_JSON_DATE = re.compile(r"/Date\((-?\d{1,15})([+-]\d{4})?\)/\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_json_date(text: str) -> datetime:
    """The UTC instant of a ``/Date(ms)/`` or ``/Date(ms+hhmm)/`` value; ValueError if it is neither.

    As in WCF, the milliseconds are UTC already and an offset only says where the value came from.
    """
    match = _JSON_DATE.match(text)
    if match is None:
        raise ValueError(f"not a /Date(ms)/ value: {text[:40]!r}")
    return _EPOCH + timedelta(milliseconds=int(match.group(1)))
