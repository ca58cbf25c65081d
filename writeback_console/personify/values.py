"""What the Personify360 client is configured with, and what it answers with: plain values, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class PersonifySettings:
    """Where Personify Data Services lives and how to talk to it."""

    #: The full service root, e.g. https://host/PersonifyDataServices/PersonifyData.svc (differs per site).
    service_root_url: str
    user: str
    password: str = field(repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    #: Recorded by Personify360 as the operator who added the activity (the AddModOper header).
    operator: str = "INFORMZ"
    verify_tls: bool = True
    #: Plain http:// to a host other than this computer; Basic auth then sends the password readable.
    allow_insecure_http: bool = field(default=False, kw_only=True)
    pool_size: int = 16
    #: The longest any one request may take, start to end, however the server trickles its answer.
    request_deadline: float = 60.0
    #: A file of CA certificates to trust instead of the system's (a site with its own CA).
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        if (
            not isinstance(self.request_deadline, int | float)
            or isinstance(self.request_deadline, bool)
            or not 1 <= self.request_deadline <= 3600
        ):
            raise ValueError("request_deadline: must be a number of seconds from 1 to 3600")
        parts = urlsplit(self.service_root_url) if isinstance(self.service_root_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "service_root_url: must be an http:// or https:// address with a host, such as "
                "https://host/PersonifyDataServices/PersonifyData.svc"
            )
        # Credentials in the address would end up in logs and error texts; they belong in user/password.
        if parts.username is not None or parts.password is not None:
            raise ValueError("service_root_url: must not contain a user name or password")
        if parts.query or parts.fragment:
            raise ValueError("service_root_url: must not contain a query (?…) or fragment (#…)")
        try:
            parts.port  # noqa: B018 - reading it validates it
        except ValueError:
            raise ValueError("service_root_url: the port is not a number between 0 and 65535") from None
        if parts.scheme == "http" and not self.allow_insecure_http:
            import ipaddress

            # Loopback never leaves this computer: the local simulator, or a tunnel that encrypts itself.
            try:
                loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ValueError(
                    "service_root_url: http:// would send the Personify360 password unencrypted; "
                    "use https://, or allow plain http explicitly (allow_insecure_http) only on a network "
                    "you trust"
                )
        if not self.user:
            raise ValueError("user: must not be empty")
        for name in ("user", "password"):
            lone = next((ch for ch in getattr(self, name) if "\ud800" <= ch <= "\udfff"), None)
            if lone is not None:
                # Text read with surrogateescape from an odd byte; it has no UTF-8 form to send.
                code = f"U+{ord(lone):04X}"
                raise ValueError(f"{name}: holds an unpaired surrogate ({code}) and cannot be sent")
        if ":" in self.user:
            raise ValueError("user: must not contain ':' (HTTP Basic ends the user name at the first colon)")
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name}: must be a positive number of seconds")
        if not isinstance(self.pool_size, int) or not 1 <= self.pool_size <= 256:
            raise ValueError("pool_size: must be a whole number from 1 to 256")
        check_operator(self.operator)

    @property
    def root(self) -> str:
        return self.service_root_url.rstrip("/")


def check_operator(value: object) -> None:
    """ValueError naming what is wrong if ``value`` cannot be sent as the AddModOper header."""
    operator = value if isinstance(value, str) else ""
    # Anything but printable ASCII would be mangled, or refused, on its way through an HTTP header.
    odd = next((ch for ch in operator if not " " <= ch <= "~"), None)
    problem, advice = None, "use plain ASCII letters, digits and punctuation"
    if odd is not None:
        problem = f"{odd!r} (U+{ord(odd):04X})"
    elif not operator.strip(" "):
        problem = "an empty or blank name"
    elif len(operator) > 50:
        problem, advice = f"a name of {len(operator)} characters", "use at most 50"
    if problem is not None:
        raise ValueError(f"operator: {problem} cannot be sent in the AddModOper header: {advice}")


@dataclass(frozen=True)
class Constituent:
    """A Personify360 customer found by an email address."""

    master_customer_id: str
    sub_customer_id: int
    label_name: str | None
    first_name: str | None
    last_name: str | None
    record_type: str | None
    #: The address is this constituent's primary email.
    primary: bool
    email: str

    @property
    def display_name(self) -> str:
        if self.label_name:
            return self.label_name
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return name or f"{self.master_customer_id}-{self.sub_customer_id}"


@dataclass(frozen=True)
class Activity:
    """One CusActivity row, as CRM360 shows it under System Activities."""

    #: The Edm.Int64 key, read from either JSON form (a string, as OData v2 writes it, or a number).
    activity_id: int | None
    master_customer_id: str
    sub_customer_id: int
    code: str | None
    subcode: str | None
    date: datetime | None
    text: str
    subsystem: str | None
    add_operator: str | None
    #: Every field the service sent (without __metadata), for the detail view.
    raw: Mapping[str, Any] = field(hash=False, compare=False, repr=False)


@dataclass(frozen=True)
class CodeCheck:
    """Whether the activity codes the mapping uses are set up in Personify360."""

    missing_codes: tuple[str, ...] = ()
    #: Codes with OPTION_1 = 'Y': contact tracking, so their activities would not show in System Activities.
    contact_tracking_codes: tuple[str, ...] = ()
    inactive_codes: tuple[str, ...] = ()
    #: (code, subcode) pairs that are not set up; only meaningful when subcodes_checked.
    missing_subcodes: tuple[tuple[str, str], ...] = ()
    inactive_subcodes: tuple[tuple[str, str], ...] = ()
    #: False when the service offers no way to read subcodes, so only the codes could be checked.
    subcodes_checked: bool = True

    @property
    def ok(self) -> bool:
        return not (
            self.missing_codes
            or self.contact_tracking_codes
            or self.inactive_codes
            or self.missing_subcodes
            or self.inactive_subcodes
        )

    def describe(self) -> str:
        """The result in words for the settings dialog."""
        lines: list[str] = []
        if self.missing_codes:
            lines.append(f"Missing activity codes: {', '.join(self.missing_codes)}.")
        if self.inactive_codes:
            lines.append(f"Inactive activity codes: {', '.join(self.inactive_codes)}.")
        if self.contact_tracking_codes:
            lines.append(
                f"Contact-tracking codes (Option 1 = Y, hidden from System Activities): "
                f"{', '.join(self.contact_tracking_codes)}."
            )
        if self.missing_subcodes:
            pairs = ", ".join(f"{code}/{sub}" for code, sub in self.missing_subcodes)
            lines.append(f"Missing subcodes: {pairs}.")
        if self.inactive_subcodes:
            pairs = ", ".join(f"{code}/{sub}" for code, sub in self.inactive_subcodes)
            lines.append(f"Inactive subcodes: {pairs}.")
        if not lines:
            lines.append("All activity codes are set up in Personify360.")
        if not self.subcodes_checked:
            lines.append("Subcodes could not be checked: the service does not offer them.")
        elif self.ok:
            lines[0] = "All activity codes and subcodes are set up in Personify360."
        if not self.ok:
            lines.append("Run sql/personify360/informz_activity_codes.sql or change the activity mapping.")
        return "\n".join(lines)
