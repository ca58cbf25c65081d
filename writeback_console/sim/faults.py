"""Fault injection for the simulator: what goes wrong, how often, and for whom; changeable while it runs."""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Iterable


class FaultKind(enum.StrEnum):
    """The ways a request can fail, named as on the command line."""

    SERVER_ERROR = "500"
    #: The request is held longer than any client waits, then the connection is closed unanswered.
    TIMEOUT = "timeout"
    #: The connection is closed without an answer.
    DROP = "drop"
    #: 200 with a body cut in half.
    MALFORMED = "malformed"
    #: 400 Personify validation issue; only Save can have one.
    VALIDATION = "validation"
    #: Bytes that are no TLS record, written under the TLS layer, then the connection is closed: the
    #: client's TLS library fails while reading the answer (on plain HTTP: a garbled status line).
    TLS_RESET = "tls_reset"
    #: 503 HTML maintenance page from the front end, with ``Retry-After``.
    UNAVAILABLE = "503"
    #: 429 from the front end, with ``Retry-After``.
    THROTTLED = "429"
    #: 502 HTML page from a gateway that got no good answer from the service.
    BAD_GATEWAY = "502"
    #: 504 HTML page from a gateway that gave up waiting for the service.
    GATEWAY_TIMEOUT = "504"
    #: 200 with an HTML page instead of the service's answer, as a portal or maintenance page gives.
    HTML_PAGE = "html"
    #: The real answer, one byte every ``drip_interval`` seconds: no single read ever times out.
    DRIP = "drip"
    #: Save only: the service is slow to store it (``hold_seconds``), then the connection closes. The
    #: client has given up long before; the activity lands after it did.
    LATE_WRITE = "late_write"


ALL_FAULT_KINDS = frozenset(FaultKind)
#: The default mix, so that a ``fail_rate`` alone gives the service's own faults; the front-end pages,
#: TLS resets and dripped answers are asked for by name.
CLASSIC_FAULT_KINDS = frozenset(
    {FaultKind.SERVER_ERROR, FaultKind.TIMEOUT, FaultKind.DROP, FaultKind.MALFORMED, FaultKind.VALIDATION}
)
#: Faults that on Save can strike after the activity was stored: the caller cannot tell whether it
#: arrived, which is how duplicates happen in real life.
AFTER_WRITE_KINDS = frozenset({FaultKind.TIMEOUT, FaultKind.DROP, FaultKind.TLS_RESET})
#: Faults that distort the real answer, so on Save they always follow the write.
ANSWER_FAULT_KINDS = frozenset({FaultKind.MALFORMED, FaultKind.DRIP})


def parse_fault_kinds(kinds: Iterable[str | FaultKind]) -> frozenset[FaultKind]:
    """The kinds named; ValueError naming the first unknown one."""
    result: set[FaultKind] = set()
    for kind in kinds:
        try:
            result.add(FaultKind(kind.strip() if isinstance(kind, str) else kind))
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault kind {kind!r} (known: {known})") from None
    return frozenset(result)


class Faults:
    """What the simulator does wrong. Every attribute can be changed at any time from any thread.

    ``fail_rate`` is the fraction of requests that fail, each with a kind drawn from ``fail_kinds`` among
    those that fit the request (a validation issue only fits Save); the default mix is
    ``CLASSIC_FAULT_KINDS``. On Save, a timeout, dropped connection or TLS reset happens after the
    activity was stored in ``after_write_share`` of the cases, and a malformed or dripped answer always
    does (it is the answer to a stored activity); a 500, a validation issue and the front-end pages (503,
    429, 502, 504, html) never store. ``retry_after_seconds`` is the 503's and 429's ``Retry-After``
    (rounded up; None sends none), ``drip_interval`` the pause before each byte of a dripped answer.
    ``fail_emails`` always fail: Save for a constituent with such an email gets a validation issue, a
    lookup whose filter names one gets a 500. ``unauthorized`` answers 401 to everything.
    """

    def __init__(
        self,
        latency_ms: float = 0.0,
        fail_rate: float = 0.0,
        fail_kinds: Iterable[str | FaultKind] = CLASSIC_FAULT_KINDS,
        fail_emails: Iterable[str] = (),
        unauthorized: bool = False,
        hold_seconds: float = 30.0,
        after_write_share: float = 0.5,
        retry_after_seconds: float | None = 30.0,
        drip_interval: float = 0.5,
        seed: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.fail_kinds = fail_kinds
        self.fail_emails = fail_emails
        self.unauthorized = unauthorized
        self.hold_seconds = hold_seconds
        self.after_write_share = after_write_share
        self.retry_after_seconds = retry_after_seconds
        self.drip_interval = drip_interval

    # Plain attribute writes are atomic in CPython; the properties are there to validate, and the lock
    # to keep the random generator and multi-field decisions consistent.

    @property
    def latency_ms(self) -> float:
        return self._latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        if value < 0:
            raise ValueError("latency_ms must not be negative")
        self._latency_ms = float(value)

    @property
    def fail_rate(self) -> float:
        return self._fail_rate

    @fail_rate.setter
    def fail_rate(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        self._fail_rate = float(value)

    @property
    def fail_kinds(self) -> frozenset[FaultKind]:
        return self._fail_kinds

    @fail_kinds.setter
    def fail_kinds(self, value: Iterable[str | FaultKind]) -> None:
        self._fail_kinds = parse_fault_kinds(value)

    @property
    def fail_emails(self) -> frozenset[str]:
        return self._fail_emails

    @fail_emails.setter
    def fail_emails(self, value: Iterable[str]) -> None:
        if isinstance(value, str):
            raise TypeError("fail_emails takes a collection of emails, not one string")
        # Personify's database compares case-insensitively, so the simulator does too.
        self._fail_emails = frozenset(e.strip().lower() for e in value if e.strip())

    @property
    def unauthorized(self) -> bool:
        return self._unauthorized

    @unauthorized.setter
    def unauthorized(self, value: bool) -> None:
        self._unauthorized = bool(value)

    @property
    def hold_seconds(self) -> float:
        return self._hold_seconds

    @hold_seconds.setter
    def hold_seconds(self, value: float) -> None:
        if value < 0:
            raise ValueError("hold_seconds must not be negative")
        self._hold_seconds = float(value)

    @property
    def after_write_share(self) -> float:
        return self._after_write_share

    @after_write_share.setter
    def after_write_share(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError("after_write_share must be between 0 and 1")
        self._after_write_share = float(value)

    @property
    def retry_after_seconds(self) -> float | None:
        return self._retry_after_seconds

    @retry_after_seconds.setter
    def retry_after_seconds(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise ValueError("retry_after_seconds must not be negative")
        self._retry_after_seconds = None if value is None else float(value)

    @property
    def drip_interval(self) -> float:
        return self._drip_interval

    @drip_interval.setter
    def drip_interval(self, value: float) -> None:
        if value < 0:
            raise ValueError("drip_interval must not be negative")
        self._drip_interval = float(value)

    def update(self, **changes: object) -> None:
        """Change several settings at once, so no request sees half of the change."""
        with self._lock:
            for name, value in changes.items():
                if name.startswith("_") or not isinstance(getattr(type(self), name, None), property):
                    raise AttributeError(f"Faults has no setting {name!r}")
                setattr(self, name, value)

    def draw(self, is_save: bool) -> tuple[FaultKind | None, bool]:
        """Whether this request fails, how, and (on Save) whether after the activity is stored."""
        with self._lock:
            if self._fail_rate <= 0.0 or self._random.random() >= self._fail_rate:
                return None, False
            kinds = (
                self._fail_kinds
                if is_save
                else self._fail_kinds - {FaultKind.VALIDATION, FaultKind.LATE_WRITE}
            )
            if not kinds:
                return None, False
            kind = self._random.choice(sorted(kinds))
            if not is_save:
                return kind, False
            if kind in ANSWER_FAULT_KINDS or kind is FaultKind.LATE_WRITE:
                return kind, True
            after = kind in AFTER_WRITE_KINDS and self._random.random() < self._after_write_share
            return kind, after

    def is_failing_email(self, email: str) -> bool:
        return email.strip().lower() in self._fail_emails

    def __repr__(self) -> str:
        kinds = ",".join(sorted(k.value for k in self._fail_kinds))
        return (
            f"Faults(latency_ms={self._latency_ms}, fail_rate={self._fail_rate}, fail_kinds={kinds}, "
            f"fail_emails={len(self._fail_emails)}, unauthorized={self._unauthorized}, "
            f"hold_seconds={self._hold_seconds}, after_write_share={self._after_write_share}, "
            f"retry_after_seconds={self._retry_after_seconds}, drip_interval={self._drip_interval})"
        )
