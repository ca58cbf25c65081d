"""How a writeback becomes a Personify360 CusActivity: codes, subcodes and text per kind.

The default codes are listed in docs/architecture.md ("Personify360, as the client and the simulator
speak it"); the project's SQL script for Personify360 creates them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from writeback_console.domain import Kind

DEFAULT_ACTIVITY_CODES: dict[Kind, str] = {
    Kind.UNSUBSCRIBE: "INFORMZ_UNSUB",
    Kind.RESUBSCRIBE: "INFORMZ_RESUB",
    Kind.INVALID_EMAIL: "INFORMZ_BADEMAIL",
    Kind.MAILING_ACTIVITY: "INFORMZ_MAILING",
    Kind.INTERESTS: "INFORMZ_IPM",
}

#: Subcodes per activity code; the project's SQL script for Personify360 creates exactly these.
DEFAULT_SUBCODES: dict[str, tuple[str, ...]] = {
    "INFORMZ_MAILING": ("SENT", "OPEN", "CLICK", "BOUNCE", "BLOCK"),
    "INFORMZ_IPM": ("OPTIN", "OPTOUT"),
}

#: Events of one mailing recipient, furthest last; the activity's subcode names the furthest one.
MAILING_EVENTS = ("sent", "open", "click", "bounce", "block")
INTEREST_EVENTS = ("opt_in", "opt_out")

DEFAULT_MAILING_SUBCODES: dict[str, str] = dict(
    zip(MAILING_EVENTS, DEFAULT_SUBCODES["INFORMZ_MAILING"], strict=True)
)
DEFAULT_INTEREST_SUBCODES: dict[str, str] = dict(
    zip(INTEREST_EVENTS, DEFAULT_SUBCODES["INFORMZ_IPM"], strict=True)
)

DEFAULT_TEMPLATES: dict[Kind, str] = {
    Kind.UNSUBSCRIBE: 'Unsubscribed in Informz account "{account}" on {when}. Reason: {reason}',
    Kind.RESUBSCRIBE: 'Resubscribed in Informz account "{account}" on {when}',
    Kind.INVALID_EMAIL: "Email {email} undeliverable: {reason}",
    Kind.MAILING_ACTIVITY: (
        'Mailing "{mailing_name}" (ID {mailing_id}) from Informz account "{account}": {summary}'
    ),
    Kind.INTERESTS: "{interest} opted {direction} via Informz on {when}",
}

_COMMON_PLACEHOLDERS = frozenset({"ref", "account", "email", "when", "master_customer_id", "sub_customer_id"})
#: The placeholders each kind's template may use; anything else is refused when the settings are read.
PLACEHOLDERS: dict[Kind, frozenset[str]] = {
    Kind.UNSUBSCRIBE: _COMMON_PLACEHOLDERS | {"reason"},
    Kind.RESUBSCRIBE: _COMMON_PLACEHOLDERS,
    Kind.INVALID_EMAIL: _COMMON_PLACEHOLDERS | {"reason"},
    Kind.MAILING_ACTIVITY: _COMMON_PLACEHOLDERS | {"mailing_name", "mailing_id", "summary"},
    Kind.INTERESTS: _COMMON_PLACEHOLDERS | {"interest", "direction"},
}

DEFAULT_MAX_TEXT_LENGTH = 2000
ELLIPSIS = "…"
NO_REASON = "not given"

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_CODE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{1,50}")
# Line breaks and tabs inside a value become a space; every other control character is dropped.
_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x85\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def ref_marker(ref: str) -> str:
    """``[ref WB-…]``, the marker that ends every ActivityText and that the client searches for.

    The brackets are part of it so that looking for ``WB-ABC`` never finds ``WB-ABCD``.
    """
    if _REF.fullmatch(ref) is None:
        raise ValueError(f"not a writeback reference: {ref!r}")
    return f"[ref {ref}]"


def format_when(moment: datetime) -> str:
    """``2026-11-20 10:00 UTC``: how times read inside an activity text."""
    return _utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no known instant; give it a time zone")
    return moment.astimezone(UTC)


def clean(value: object) -> str:
    """Text fit for an activity: no control characters, line breaks folded into spaces."""
    return _CONTROL.sub("", _BREAKS.sub(" ", str(value))).strip()


@dataclass(frozen=True)
class MailingFacts:
    """What happened to one recipient of one mailing."""

    mailing_name: str
    mailing_id: int
    sent_at: datetime | None = None
    opened_at: datetime | None = None
    #: (url, when) for every link the recipient followed, in the order they were followed.
    clicks: tuple[tuple[str, datetime], ...] = ()
    bounced_at: datetime | None = None
    bounce_reason: str | None = None
    blocked: bool = False

    @property
    def furthest_event(self) -> str:
        """One of MAILING_EVENTS: a block or bounce outranks any engagement, a click outranks an open."""
        if self.blocked:
            return "block"
        if self.bounced_at is not None:
            return "bounce"
        if self.clicks:
            return "click"
        if self.opened_at is not None:
            return "open"
        return "sent"

    def summary(self) -> str:
        """The recipient's events in plain words, in the order they happen."""
        parts: list[str] = []
        if self.blocked:
            parts.append("blocked, not sent")
        if self.sent_at is not None:
            parts.append(f"sent {format_when(self.sent_at)}")
        if self.opened_at is not None:
            parts.append(f"opened {format_when(self.opened_at)}")
        if self.clicks:
            links = ", ".join(f"{clean(url)} ({format_when(when)})" for url, when in self.clicks)
            noun = "link" if len(self.clicks) == 1 else "links"
            parts.append(f"clicked {len(self.clicks)} {noun}: {links}")
        if self.bounced_at is not None:
            reason = clean(self.bounce_reason) if self.bounce_reason else ""
            parts.append(f"bounced {format_when(self.bounced_at)}" + (f" ({reason})" if reason else ""))
        if not parts:
            parts.append("sent")
        return "; ".join(parts)


@dataclass(frozen=True)
class ActivitySource:
    """The facts of one writeback that its activity is made from."""

    kind: Kind
    ref: str
    account: str
    email: str
    occurred_at: datetime
    master_customer_id: str
    sub_customer_id: int
    #: Unsubscribe and Invalid Email Address.
    reason: str | None = None
    #: Interests (IPM): the interest and whether the person opted in (True) or out (False).
    interest: str | None = None
    opted_in: bool | None = None
    #: Mailing Activity: one recipient of one mailing.
    mailing: MailingFacts | None = None


@dataclass(frozen=True)
class ActivityMapping:
    """Activity codes, subcodes and text templates per kind: a setting, since codes are site-specific.

    Values are validated on construction, so a mapping that exists can always build an activity.
    """

    codes: Mapping[Kind, str] = field(default_factory=lambda: dict(DEFAULT_ACTIVITY_CODES))
    #: Mailing Activity subcode per event in MAILING_EVENTS.
    mailing_subcodes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MAILING_SUBCODES))
    #: Interests subcode for opting in and opting out.
    interest_subcodes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_INTEREST_SUBCODES))
    templates: Mapping[Kind, str] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    #: ACTIVITY_TEXT is a long text column, but sites cap what they accept; the reference always fits.
    max_text_length: int = DEFAULT_MAX_TEXT_LENGTH
    subsystem: str = "CUS"

    def __post_init__(self) -> None:
        codes = _checked_codes("codes", self.codes)
        mailing = _checked_subcodes("subcodes.mailing_activity", self.mailing_subcodes, MAILING_EVENTS)
        interests = _checked_subcodes("subcodes.interests", self.interest_subcodes, INTEREST_EVENTS)
        if not isinstance(self.templates, Mapping):
            raise ValueError("templates: must be a table")
        templates: dict[Kind, str] = {}
        for key, template in self.templates.items():
            kind = _kind(f"templates.{key}", key)
            _check_template(f"templates.{kind.value}", template, PLACEHOLDERS[kind])
            templates[kind] = template
        _require_all("templates", templates, set(Kind))
        if not isinstance(self.max_text_length, int) or isinstance(self.max_text_length, bool):
            raise ValueError("max_text_length: must be a whole number")
        # Room for the longest reference marker, a space and an ellipsis, plus some actual text.
        if self.max_text_length < 100:
            raise ValueError("max_text_length: must be at least 100 characters")
        if not isinstance(self.subsystem, str) or _CODE.fullmatch(self.subsystem) is None:
            raise ValueError(f"subsystem: not a valid subsystem code: {self.subsystem!r}")
        # Read-only views, so that a mapping shared by the dispatcher's workers cannot change under them.
        object.__setattr__(self, "codes", MappingProxyType(codes))
        object.__setattr__(self, "mailing_subcodes", MappingProxyType(mailing))
        object.__setattr__(self, "interest_subcodes", MappingProxyType(interests))
        object.__setattr__(self, "templates", MappingProxyType(templates))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActivityMapping:
        """Read the mapping from the settings file; keys left out keep their defaults."""
        if not isinstance(data, Mapping):
            raise ValueError("activity mapping: must be a table of settings")
        known = {"codes", "subcodes", "templates", "max_text_length", "subsystem"}
        for key in data:
            if key not in known:
                raise ValueError(f"{key}: unknown activity mapping setting")
        codes: dict[Kind, str] = dict(DEFAULT_ACTIVITY_CODES)
        for key, value in _table("codes", data.get("codes", {})).items():
            codes[_kind(f"codes.{key}", key)] = value
        subcodes = _table("subcodes", data.get("subcodes", {}))
        for key in subcodes:
            if key not in (Kind.MAILING_ACTIVITY.value, Kind.INTERESTS.value):
                raise ValueError(f"subcodes.{key}: only mailing_activity and interests have subcodes")
        mailing = {**DEFAULT_MAILING_SUBCODES}
        mailing.update(_table("subcodes.mailing_activity", subcodes.get(Kind.MAILING_ACTIVITY.value, {})))
        interests = {**DEFAULT_INTEREST_SUBCODES}
        interests.update(_table("subcodes.interests", subcodes.get(Kind.INTERESTS.value, {})))
        templates: dict[Kind, str] = dict(DEFAULT_TEMPLATES)
        for key, value in _table("templates", data.get("templates", {})).items():
            templates[_kind(f"templates.{key}", key)] = value
        return cls(
            codes=codes,
            mailing_subcodes=mailing,
            interest_subcodes=interests,
            templates=templates,
            max_text_length=data.get("max_text_length", DEFAULT_MAX_TEXT_LENGTH),
            subsystem=data.get("subsystem", "CUS"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The mapping as plain JSON/TOML-ready data; ``from_dict(to_dict())`` gives it back."""
        return {
            "codes": {kind.value: self.codes[kind] for kind in Kind},
            "subcodes": {
                Kind.MAILING_ACTIVITY.value: dict(self.mailing_subcodes),
                Kind.INTERESTS.value: dict(self.interest_subcodes),
            },
            "templates": {kind.value: self.templates[kind] for kind in Kind},
            "max_text_length": self.max_text_length,
            "subsystem": self.subsystem,
        }

    def expected_codes(self) -> dict[str, tuple[str, ...]]:
        """Activity code → the subcodes it must have, as ``PersonifyClient.check_activity_codes`` takes."""
        expected: dict[str, tuple[str, ...]] = {}
        for kind in Kind:
            subcodes: tuple[str, ...] = ()
            if kind is Kind.MAILING_ACTIVITY:
                subcodes = tuple(self.mailing_subcodes[event] for event in MAILING_EVENTS)
            elif kind is Kind.INTERESTS:
                subcodes = tuple(self.interest_subcodes[event] for event in INTEREST_EVENTS)
            # Two kinds may share a code at a site; then the code needs the union of their subcodes.
            known = expected.get(self.codes[kind], ())
            expected[self.codes[kind]] = known + tuple(s for s in subcodes if s not in known)
        return expected


def build_activity(source: ActivitySource, mapping: ActivityMapping) -> dict[str, Any]:
    """The CusActivity fields for one writeback (for Mailing Activity: for one recipient).

    ActivityDate is the datetime itself; the client writes it in the service's date format.
    """
    occurred_at = _utc(source.occurred_at)
    marker = ref_marker(source.ref)
    values: dict[str, object] = {
        "ref": source.ref,
        "account": source.account,
        "email": source.email,
        "when": format_when(occurred_at),
        "master_customer_id": source.master_customer_id,
        "sub_customer_id": source.sub_customer_id,
    }
    subcode: str | None = None
    kind = source.kind
    if kind in (Kind.UNSUBSCRIBE, Kind.INVALID_EMAIL):
        values["reason"] = source.reason if source.reason and clean(source.reason) else NO_REASON
    elif kind is Kind.INTERESTS:
        if not source.interest or source.opted_in is None:
            raise ValueError("an Interests writeback needs the interest and whether it was opted in or out")
        values["interest"] = source.interest
        values["direction"] = "in" if source.opted_in else "out"
        subcode = mapping.interest_subcodes["opt_in" if source.opted_in else "opt_out"]
    elif kind is Kind.MAILING_ACTIVITY:
        if source.mailing is None:
            raise ValueError("a Mailing Activity writeback needs the recipient's mailing facts")
        values["mailing_name"] = source.mailing.mailing_name
        values["mailing_id"] = source.mailing.mailing_id
        values["summary"] = source.mailing.summary()
        subcode = mapping.mailing_subcodes[source.mailing.furthest_event]
    if not source.master_customer_id:
        raise ValueError("the activity needs the constituent's MasterCustomerId")

    body = render(mapping.templates[kind], values)
    fields: dict[str, Any] = {
        "MasterCustomerId": source.master_customer_id,
        "SubCustomerId": source.sub_customer_id,
        "ActivityCode": mapping.codes[kind],
        "ActivityDate": occurred_at,
        "ActivityText": fit_text(body, marker, mapping.max_text_length),
        "Subsystem": mapping.subsystem,
    }
    if subcode is not None:
        fields["ActivitySubcode"] = subcode
    return fields


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill the template's placeholders with cleaned values.

    Only the template is parsed; values are pasted in as they are, so a ``{`` in someone's reason is
    just a character and can never reach into other values or attributes.
    """
    out: list[str] = []
    for literal_text, name, _spec, _conversion in string.Formatter().parse(template):
        out.append(literal_text)
        if name is not None:
            out.append(clean(values[name]))
    return "".join(out).strip()


def fit_text(body: str, marker: str, max_length: int) -> str:
    """``body marker``, with the body cut and ended by an ellipsis when the whole would be too long."""
    text = f"{body} {marker}" if body else marker
    if len(text) <= max_length:
        return text
    room = max_length - len(marker) - len(ELLIPSIS) - 1
    if room < 0:
        raise ValueError(f"max_text_length {max_length} leaves no room for the reference {marker}")
    # A cut that lands after a separator reads better without it: "a, b…" rather than "a, b,…".
    return f"{body[:room].rstrip(' ,;:')}{ELLIPSIS} {marker}"


def _kind(key: str, value: object) -> Kind:
    if isinstance(value, Kind):
        return value
    if isinstance(value, str) and value in _KIND_VALUES:
        return Kind(value)
    allowed = ", ".join(sorted(_KIND_VALUES))
    raise ValueError(f"{key}: unknown kind (expected one of {allowed})")


_KIND_VALUES = frozenset(kind.value for kind in Kind)


def _table(key: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: must be a table")
    return value


def _checked_codes(key: str, table: Mapping[Any, Any]) -> dict[Kind, str]:
    if not isinstance(table, Mapping):
        raise ValueError(f"{key}: must be a table")
    checked = {}
    for name, code in table.items():
        kind = _kind(f"{key}.{name}", name)
        checked[kind] = _code(f"{key}.{kind.value}", code)
    _require_all(key, checked, set(Kind))
    return checked


def _checked_subcodes(key: str, table: Mapping[Any, Any], events: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(table, Mapping):
        raise ValueError(f"{key}: must be a table")
    checked = {}
    for event, code in table.items():
        if event not in events:
            raise ValueError(f"{key}.{event}: unknown event (expected one of {', '.join(events)})")
        checked[event] = _code(f"{key}.{event}", code)
    _require_all(key, checked, set(events))
    return checked


def _code(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: the code must not be empty")
    if _CODE.fullmatch(value) is None:
        raise ValueError(f"{key}: {value!r} is not a valid code (at most 50 characters, no spaces)")
    return value


def _require_all(key: str, table: Mapping[Any, Any], required: set[Any]) -> None:
    missing = [getattr(item, "value", item) for item in required if item not in table]
    if missing:
        raise ValueError(f"{key}: missing {', '.join(sorted(missing))}")


def _check_template(key: str, template: object, allowed: frozenset[str]) -> None:
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"{key}: must be non-empty text")
    if _CONTROL.search(template):
        raise ValueError(f"{key}: control characters are not allowed")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{key}: {exc} (write a literal brace as {{{{ or }}}})") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed:
            names = ", ".join("{" + n + "}" for n in sorted(allowed))
            raise ValueError(f"{key}: unknown placeholder {{{name}}} (allowed: {names})")
        if spec or conversion:
            raise ValueError(f"{key}: placeholder {{{name}}} may not carry a format or conversion")
