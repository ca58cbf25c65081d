"""Sending one writeback (or one recipient of a mailing) to Personify360, in a worker thread.

These functions touch no database: they get plain data, talk to Personify360 and return an
:class:`Outcome`, which the cycle's own thread records. Whatever goes wrong with one writeback ends as
that writeback's outcome — an unexpected exception included — never as the cycle's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from writeback_console.dispatch.lease import RowLease
from writeback_console.domain import utcnow
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.errors import ErrorKind, PersonifyError
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, MailingFacts, build_activity
from writeback_console.personify.values import Activity, Constituent
from writeback_console.store.deliveries import RecipientDelivery
from writeback_console.store.lifecycle import Claimed

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    writeback_id: int
    ok: bool
    message: str = ""
    http_status: int | None = None
    excerpt: str | None = None
    may_have_arrived: bool = False
    activity_id: str | None = None
    #: The failure says Personify360 as a whole is not usable now (503, timeouts, a maintenance page):
    #: it uses an attempt only if the run, all told, turns out not to be an outage.
    service: bool = False
    #: The server itself said so (503, 429, Retry-After, a gateway page): the run stops at once.
    explicit_outage: bool = False
    #: Nothing of the request left this machine (refused, DNS, TLS handshake).
    unreachable: bool = False
    #: Personify360 rejected the credentials: the run stops at once, so the user is never locked out.
    auth: bool = False
    retry_after: float | None = None
    #: Nothing was sent for this row (its lease ran short, or another dispatcher has it now).
    not_sent: bool = False
    #: Personify360 was asked whether an earlier attempt arrived (and answered).
    checked: bool = False
    already_there: bool = False
    resolved: tuple[str, int] | None = None
    delivery_id: int | None = None
    #: When the answer came (the Sent time Personify360 accepted it).
    finished_at: datetime = field(default_factory=utcnow)

    @property
    def held_back(self) -> bool:
        """A failure whose meaning depends on the whole run: an outage costs no attempt."""
        return not self.ok and (self.service or self.auth)

    @classmethod
    def saved(cls, writeback_id: int, activity: Activity, **extra: Any) -> Outcome:
        """Personify360 saved the activity (``activity`` is what Save answered)."""
        return cls(
            writeback_id, True, "saved", http_status=200, activity_id=_id(activity.activity_id), **extra
        )

    @classmethod
    def failure(cls, writeback_id: int, message: str, **extra: object) -> Outcome:
        return cls(writeback_id, False, message, **extra)  # type: ignore[arg-type]

    @classmethod
    def from_error(
        cls,
        writeback_id: int,
        error: PersonifyError,
        *,
        at: datetime,
        checked: bool = False,
        delivery_id: int | None = None,
        resolved: tuple[str, int] | None = None,
    ) -> Outcome:
        auth = error.kind is ErrorKind.AUTH
        return cls(
            writeback_id,
            False,
            error.message,
            http_status=error.status,
            excerpt=error.excerpt or None,
            may_have_arrived=error.may_have_arrived,
            service=error.service and not auth,
            explicit_outage=error.explicit_outage,
            unreachable=error.unreachable,
            auth=auth,
            retry_after=error.retry_after,
            not_sent=error.kind is ErrorKind.NOT_SENT,
            checked=checked,
            delivery_id=delivery_id,
            resolved=resolved,
            finished_at=at,
        )


class ConstituentNotFound(Exception):
    """The email leads to no single Personify360 constituent; the message says why."""


class Resolver:
    """Finds the constituent of an email, once per cycle per email (several rows share addresses)."""

    def __init__(self, client: PersonifyClient) -> None:
        self.client = client
        self._cache: dict[str, tuple[str, int] | str] = {}
        self._lock = threading.Lock()

    def resolve(self, email: str) -> tuple[str, int]:
        key = email.strip().lower()
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = choose_constituent(email, self.client.find_constituents_by_email(email))
            with self._lock:
                self._cache[key] = cached
        if isinstance(cached, str):
            raise ConstituentNotFound(cached)
        return cached


def choose_constituent(email: str, found: list[Constituent]) -> tuple[str, int] | str:
    """One match is it; among several, the single one marked primary; otherwise an error naming them.

    Personify360 marks one communication per person as primary; when one address is shared by
    several records (a household, a duplicate), only a primary flag says whose it is. Guessing
    would write an unsubscribe to the wrong person, so without one the row fails and says why.
    """
    if not found:
        return f"no Personify360 constituent has the email {email}"
    if len(found) == 1:
        return found[0].master_customer_id, found[0].sub_customer_id
    primary = [c for c in found if c.primary]
    if len(primary) == 1:
        return primary[0].master_customer_id, primary[0].sub_customer_id
    names = ", ".join(
        f"{c.master_customer_id}-{c.sub_customer_id} {c.display_name}".strip() for c in found[:10]
    )
    which = "none is" if not primary else f"{len(primary)} are"
    return f"{len(found)} Personify360 constituents share the email {email} and {which} primary: {names}"


def _internal(
    writeback_id: int, exc: BaseException, lease: RowLease, at: datetime, **extra: object
) -> Outcome:
    """An unexpected exception while sending one row: that row's error, with the traceback in the log."""
    log.exception("internal error while sending writeback %s", writeback_id)
    text = " ".join(str(exc).split())[:300]
    return Outcome.failure(
        writeback_id,
        f"internal error: {type(exc).__name__}" + (f": {text}" if text else ""),
        # The write may have gone out before the error: then it must be looked for, not repeated.
        may_have_arrived=lease.write_sent,
        finished_at=at,
        **extra,
    )


def send_writeback(
    client: PersonifyClient,
    resolver: Resolver,
    mapping: ActivityMapping,
    c: Claimed,
    lease: RowLease,
    clock: Clock = utcnow,
) -> Outcome:
    """Write one writeback's activity, first making sure an earlier attempt did not already do it."""
    resolved: tuple[str, int] | None = None
    checked = False
    try:
        with client.guarded(lease):
            if c.master_customer_id is not None:
                master, sub = c.master_customer_id, c.sub_customer_id or 0
            elif c.email:
                master, sub = resolved = resolver.resolve(c.email)
            else:
                return Outcome.failure(
                    c.id, "neither a constituent id nor an email to find one by", finished_at=clock()
                )
            if c.delivery_uncertain:
                existing = client.find_activity_by_ref(master, sub, c.ref)
                checked = True
                if existing is not None:
                    return Outcome(
                        c.id,
                        True,
                        "already in Personify360 from an earlier attempt",
                        checked=True,
                        already_there=True,
                        activity_id=_id(existing.activity_id),
                        resolved=resolved,
                        finished_at=clock(),
                    )
            source = ActivitySource(
                kind=c.kind,
                ref=c.ref,
                account=c.account,
                email=c.email or "",
                occurred_at=c.occurred_at,
                master_customer_id=master,
                sub_customer_id=sub,
                reason=_text(c.payload.get("reason")),
                interest=_text(c.payload.get("interest")),
                opted_in=c.payload.get("opted_in") if isinstance(c.payload.get("opted_in"), bool) else None,
            )
            try:
                fields = build_activity(source, mapping)
            except ValueError as exc:
                return Outcome.failure(
                    c.id,
                    f"cannot build the activity: {exc}",
                    checked=checked,
                    resolved=resolved,
                    finished_at=clock(),
                )
            saved = client.create_activity(fields)
        return Outcome.saved(c.id, saved, checked=checked, resolved=resolved, finished_at=clock())
    except ConstituentNotFound as exc:
        return Outcome.failure(c.id, str(exc), finished_at=clock())
    except PersonifyError as exc:
        return Outcome.from_error(c.id, exc, at=clock(), checked=checked, resolved=resolved)
    except Exception as exc:
        return _internal(c.id, exc, lease, clock(), checked=checked, resolved=resolved)


def send_recipient(
    client: PersonifyClient,
    mapping: ActivityMapping,
    c: Claimed,
    mailing_name: str,
    r: RecipientDelivery,
    lease: RowLease,
    clock: Clock = utcnow,
) -> Outcome:
    """Write one recipient's activity for a mailing, under that recipient's own reference."""
    # Each recipient has its own lease view for what it wrote; the row's lease decides when to stop.
    mine = _RecipientGuard(lease)
    try:
        with client.guarded(mine):
            if r.uncertain:
                found = client.find_activities_by_ref(r.master_customer_id, r.sub_customer_id, r.ref)
                # With a reference shared by several recipients of one constituent (carried over from
                # the previous version), the activities found are counted out among them.
                existing = found[r.rank] if len(found) > r.rank else None
                if existing is not None:
                    return Outcome(
                        c.id,
                        True,
                        "already in Personify360",
                        checked=True,
                        already_there=True,
                        activity_id=_id(existing.activity_id),
                        delivery_id=r.delivery_id,
                        finished_at=clock(),
                    )
            source = ActivitySource(
                kind=c.kind,
                ref=r.ref,
                account=c.account,
                email=r.email,
                occurred_at=r.sent_at or c.occurred_at,
                master_customer_id=r.master_customer_id,
                sub_customer_id=r.sub_customer_id,
                mailing=MailingFacts(
                    mailing_name=mailing_name,
                    mailing_id=c.mailing_id or 0,
                    sent_at=r.sent_at,
                    opened_at=r.opened_at,
                    clicks=r.clicks,
                    bounced_at=r.bounced_at,
                    bounce_reason=r.bounce_reason,
                    blocked=r.blocked,
                ),
            )
            try:
                fields = build_activity(source, mapping)
            except ValueError as exc:
                return Outcome.failure(
                    c.id, f"cannot build the activity: {exc}", delivery_id=r.delivery_id, finished_at=clock()
                )
            saved = client.create_activity(fields)
        return Outcome.saved(c.id, saved, delivery_id=r.delivery_id, finished_at=clock())
    except PersonifyError as exc:
        return Outcome.from_error(c.id, exc, at=clock(), delivery_id=r.delivery_id)
    except Exception as exc:
        log.exception("internal error while sending a recipient of writeback %s", c.id)
        return Outcome.failure(
            c.id,
            f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
            may_have_arrived=mine.write_sent,
            delivery_id=r.delivery_id,
            finished_at=clock(),
        )


class _RecipientGuard:
    """The row's lease decides whether and how long; what was written is this recipient's own."""

    def __init__(self, lease: RowLease) -> None:
        self.lease = lease
        self.write_sent = False

    def check(self) -> None:
        self.lease.check()

    def deadline(self) -> float:
        return self.lease.deadline()

    def wrote(self) -> None:
        self.write_sent = True


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _id(value: int | str | None) -> str | None:
    return None if value is None else str(value)
