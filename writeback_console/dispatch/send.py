"""Sending one writeback (or one recipient of a mailing) to Personify360, in a worker thread.

These functions touch no database: they get plain data, talk to Personify360 and return an
:class:`Outcome`, which the cycle's own thread records.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from writeback_console.domain import utcnow
from writeback_console.personify.client import Constituent, PersonifyClient
from writeback_console.personify.errors import ErrorKind, PersonifyError
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, MailingFacts, build_activity
from writeback_console.store.queue import Claimed, RecipientDelivery


@dataclass(frozen=True)
class Outcome:
    writeback_id: int
    ok: bool
    message: str = ""
    http_status: int | None = None
    excerpt: str | None = None
    may_have_arrived: bool = False
    activity_id: str | None = None
    #: "auth" or "unreachable" when the failure says Personify360 cannot be used at all.
    breaker: str | None = None
    #: Personify360 was asked whether an earlier attempt arrived (and answered).
    checked: bool = False
    already_there: bool = False
    resolved: tuple[str, int] | None = None
    delivery_id: int | None = None
    #: When the answer came (the Sent time Personify360 accepted it).
    finished_at: datetime = field(default_factory=utcnow)

    @classmethod
    def failure(cls, writeback_id: int, message: str, **extra: object) -> Outcome:
        return cls(writeback_id, False, message, **extra)  # type: ignore[arg-type]

    @classmethod
    def from_error(
        cls,
        writeback_id: int,
        error: PersonifyError,
        *,
        checked: bool = False,
        delivery_id: int | None = None,
        resolved: tuple[str, int] | None = None,
    ) -> Outcome:
        breaker = "auth" if error.kind is ErrorKind.AUTH else "unreachable" if error.unreachable else None
        return cls(
            writeback_id,
            False,
            error.message,
            http_status=error.status,
            excerpt=error.excerpt or None,
            may_have_arrived=error.may_have_arrived,
            breaker=breaker,
            checked=checked,
            delivery_id=delivery_id,
            resolved=resolved,
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
            cached = self._choose(email, self.client.find_constituents_by_email(email))
            with self._lock:
                self._cache[key] = cached
        if isinstance(cached, str):
            raise ConstituentNotFound(cached)
        return cached

    @staticmethod
    def _choose(email: str, found: list[Constituent]) -> tuple[str, int] | str:
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


def send_writeback(
    client: PersonifyClient, resolver: Resolver, mapping: ActivityMapping, c: Claimed
) -> Outcome:
    """Write one writeback's activity, first making sure an earlier attempt did not already do it."""
    resolved: tuple[str, int] | None = None
    checked = False
    try:
        if c.master_customer_id is not None:
            master, sub = c.master_customer_id, c.sub_customer_id or 0
        elif c.email:
            master, sub = resolved = resolver.resolve(c.email)
        else:
            return Outcome.failure(c.id, "neither a constituent id nor an email to find one by")
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
                c.id, f"cannot build the activity: {exc}", checked=checked, resolved=resolved
            )
        saved = client.create_activity(fields)
        return Outcome(
            c.id,
            True,
            "saved",
            http_status=200,
            activity_id=_id(saved.activity_id),
            checked=checked,
            resolved=resolved,
        )
    except ConstituentNotFound as exc:
        return Outcome.failure(c.id, str(exc))
    except PersonifyError as exc:
        return Outcome.from_error(c.id, exc, checked=checked, resolved=resolved)


def send_recipient(
    client: PersonifyClient, mapping: ActivityMapping, c: Claimed, mailing_name: str, r: RecipientDelivery
) -> Outcome:
    """Write one recipient's activity for a mailing-activity writeback."""
    try:
        if r.uncertain:
            existing = client.find_activity_by_ref(r.master_customer_id, r.sub_customer_id, c.ref)
            if existing is not None:
                return Outcome(
                    c.id,
                    True,
                    "already in Personify360",
                    checked=True,
                    already_there=True,
                    activity_id=_id(existing.activity_id),
                    delivery_id=r.delivery_id,
                )
        source = ActivitySource(
            kind=c.kind,
            ref=c.ref,
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
        saved = client.create_activity(build_activity(source, mapping))
        return Outcome(
            c.id,
            True,
            "saved",
            http_status=200,
            activity_id=_id(saved.activity_id),
            delivery_id=r.delivery_id,
        )
    except PersonifyError as exc:
        return Outcome.from_error(c.id, exc, delivery_id=r.delivery_id)
    except ValueError as exc:
        return Outcome.failure(c.id, f"cannot build the activity: {exc}", delivery_id=r.delivery_id)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _id(value: int | str | None) -> str | None:
    return None if value is None else str(value)
