"""SQLAlchemy models of the queue: writebacks, their attempts, mailings, deliveries, audit and settings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

from writeback_console.domain import (
    OPEN_STATUSES,
    AttemptOutcome,
    AuditAction,
    DeliveryStatus,
    HealthState,
    Kind,
    RunResult,
    Status,
)

#: Statuses in which a mailing's activity is still on its way; a mailing has at most one such row.
#: A discarded one still counts: retrying it must never meet a second row for the mailing.
ACTIVE_MAILING_STATUSES = frozenset(
    {Status.NEW, Status.SCHEDULED, Status.PROCESSING, Status.ERROR, Status.DISCARDED}
)

# Integer ids are 64-bit on PostgreSQL; SQLite needs the plain INTEGER PRIMARY KEY to alias its rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def Key(length: int) -> TypeEngine[str]:
    """Text compared byte by byte on both backends, so prefix ranges and sorting agree and use indexes.

    SQLite compares bytes already; on PostgreSQL the database's locale collation would make a range
    such as ``>= 'ann' AND < 'ann\U0010ffff'`` differ from "starts with".
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend stores.

    SQLite has no time zones, so values are stored there as naive UTC and given their zone back on
    the way out; PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where an aware UTC time is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in_list(column: str, values: Iterable[str]) -> str:
    """A CHECK that the column holds one of the enum's values: the enum is the one list of them."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in sorted(values))})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Mailing(Base):
    """A mailing sent from Informz; its mailing activity is written back per recipient."""

    __tablename__ = "mailing"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str | None] = mapped_column(String(500))
    informz_mailing_id: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    recipients: Mapped[list[MailingRecipient]] = relationship(back_populates="mailing")

    __table_args__ = (
        Index("ix_mailing_sent_at", "sent_at"),
        Index("ix_mailing_account_sent_at", "account", "sent_at"),
    )


class MailingRecipient(Base):
    """One recipient of a mailing, with what happened to the email and who they are in Personify360."""

    __tablename__ = "mailing_recipient"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mailing_id: Mapped[int] = mapped_column(ForeignKey("mailing.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    # None when the address belongs to nobody in Personify360: such recipients get no activity.
    master_customer_id: Mapped[str | None] = mapped_column(String(24))
    sub_customer_id: Mapped[int | None] = mapped_column(Integer)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clicks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bounce_reason: Mapped[str | None] = mapped_column(String(500))
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)

    mailing: Mapped[Mailing] = relationship(back_populates="recipients")

    __table_args__ = (
        Index("ix_mailing_recipient_mailing_id", "mailing_id", "id"),
        Index("ix_mailing_recipient_email_lower", func.lower(text("email")), "id"),
        UniqueConstraint("mailing_id", "email"),
    )


class Writeback(Base):
    """One thing Informz has to write to Personify360 as an Activity."""

    __tablename__ = "writeback"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(Key(16), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(100))
    # Mailing activity rows stand for a whole mailing and have no single email.
    email: Mapped[str | None] = mapped_column(Key(254))
    master_customer_id: Mapped[str | None] = mapped_column(Key(24))
    sub_customer_id: Mapped[int | None] = mapped_column(Integer)
    mailing_id: Mapped[int | None] = mapped_column(ForeignKey("mailing.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(24))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the last failure happened; a run may retry the row only if it started after this.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(String(200))
    # When the holder claimed or last renewed the lease, and until when it holds it. Both come from the
    # database's clock, and only the holder sets them: another dispatcher judges the lease by this
    # expiry, never by its own lease setting or its own clock.
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Fencing token: every claim increments it, and a holder's writes to the row name the token it got,
    # so a dispatcher that lost its lease (slept, stalled) cannot write over the next holder's work.
    lease_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Interruptions (a dispatcher died while sending) since the last recorded result; the first is free.
    interruptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the row was before a dispatcher claimed it, so an unsent claim can be put back exactly.
    claimed_from: Mapped[str | None] = mapped_column(String(24))
    # An earlier attempt may have reached Personify360 (timeout, lost lease): check before resending.
    delivery_uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    # When that doubt arose: the row is looked for only a while later (a slow write may still land).
    uncertain_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_http_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Who made the last change: a person, or the dispatcher that holds (or held) the row. Every statement
    # that changes the status sets it, and the database writes the change to writeback_event with it.
    changed_by: Mapped[str | None] = mapped_column(String(200))

    mailing: Mapped[Mailing | None] = relationship()
    attempt_rows: Mapped[list[Attempt]] = relationship(
        back_populates="writeback", order_by="Attempt.number", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint(_in_list("kind", Kind), name="kind"),
        CheckConstraint(_in_list("status", Status), name="status"),
        CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name="attempts"),
        CheckConstraint(
            "status NOT IN ('new', 'scheduled') OR attempts < max_attempts", name="waiting_has_attempt_left"
        ),
        CheckConstraint("status <> 'sent' OR sent_at IS NOT NULL", name="sent_has_time"),
        CheckConstraint("status <> 'scheduled' OR scheduled_for IS NOT NULL", name="scheduled_has_time"),
        CheckConstraint(
            "status <> 'processing' OR lease_expires_at IS NOT NULL", name="processing_has_lease"
        ),
        # Screens list by time within a status, and by time overall; id breaks ties for keyset paging.
        Index("ix_writeback_status_created_at", "status", "created_at", "id"),
        Index("ix_writeback_created_at", "created_at", "id"),
        Index("ix_writeback_kind_created_at", "kind", "created_at", "id"),
        Index("ix_writeback_account_created_at", "account", "created_at", "id"),
        Index("ix_writeback_email_lower", func.lower(text("email")), "id"),
        Index("ix_writeback_master_customer_id", "master_customer_id", "id"),
        Index("ix_writeback_scheduled_for", "scheduled_for", "id"),
        Index("ix_writeback_mailing_id", "mailing_id"),
        Index("ix_writeback_sent_at", "sent_at", "id"),
        Index("ix_writeback_attempts", "attempts", "id"),
        # The dispatcher's working set: small however large the history grows.
        Index(
            "ix_writeback_open",
            "status",
            "next_attempt_at",
            postgresql_where=text(_in_list("status", OPEN_STATUSES)),
            sqlite_where=text(_in_list("status", OPEN_STATUSES)),
        ),
        # One mailing's activity is on its way in at most one row, so two rows never send it at once.
        Index(
            "uq_writeback_active_mailing",
            "mailing_id",
            unique=True,
            postgresql_where=text(
                f"kind = 'mailing_activity' AND {_in_list('status', ACTIVE_MAILING_STATUSES)}"
            ),
            sqlite_where=text(f"kind = 'mailing_activity' AND {_in_list('status', ACTIVE_MAILING_STATUSES)}"),
        ),
        # Ids are never reused, so an audit entry can never come to point at another row.
        {"sqlite_autoincrement": True},
    )


class Attempt(Base):
    """One try at sending a writeback, kept as its error history for as long as the writeback is."""

    __tablename__ = "attempt"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    writeback_id: Mapped[int] = mapped_column(ForeignKey("writeback.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # None while running; then one of AttemptOutcome.
    outcome: Mapped[str | None] = mapped_column(String(24))
    # Whether it used one of the row's attempts: an outage never does, a first interruption neither.
    counted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    http_status: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    dispatcher: Mapped[str | None] = mapped_column(String(200))
    manual: Mapped[bool] = mapped_column(Boolean, default=False)

    writeback: Mapped[Writeback] = relationship(back_populates="attempt_rows")

    __table_args__ = (
        UniqueConstraint("writeback_id", "number"),
        CheckConstraint(f"outcome IS NULL OR {_in_list('outcome', AttemptOutcome)}", name="outcome"),
        # Failures by reason per hour, for the charts' rollup.
        Index("ix_attempt_outcome_finished_at", "outcome", "finished_at"),
    )


class Delivery(Base):
    """One recipient's activity for one mailing, whatever queue rows carry it, so nothing goes twice.

    There is one delivery per mailing recipient: a retry, a new row after a cancelled one, or another
    dispatcher all find it and send only what has not arrived. Its ``ref`` is the idempotency key that
    ends the activity's text in Personify360, so the check "did it arrive?" asks for this recipient's
    activity alone, even when two recipients are the same constituent.
    """

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The row that last worked on it (the mailing's current mailing-activity row).
    writeback_id: Mapped[int] = mapped_column(ForeignKey("writeback.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("mailing_recipient.id", ondelete="CASCADE"))
    ref: Mapped[str] = mapped_column(Key(16))
    status: Mapped[str] = mapped_column(String(24))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    activity_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the doubt arose: it is looked for only once a slow write could have landed.
    uncertain_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A chunk lease, as on a writeback row: several dispatchers share one mailing by claiming chunks of
    # its recipients. The expiry is from the database's clock; every claim increments the fencing token,
    # and a holder's writes name it, so one that lost its chunk changes nothing.
    locked_by: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        UniqueConstraint("recipient_id"),
        CheckConstraint(_in_list("status", DeliveryStatus), name="status"),
        # A chunk is the next pending recipients of a row in id order, read from here.
        Index("ix_delivery_writeback_id_status_id", "writeback_id", "status", "id"),
        Index("ix_delivery_ref", "ref"),
    )


class AuditEvent(Base):
    """Who did what, when, and with which filter: one row per manual action."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The database user who wrote the entry (PostgreSQL: ``session_user``, set by the server and not
    #: grantable, so a role cannot write an entry in another's name); None on SQLite (one user).
    db_user: Mapped[str | None] = mapped_column(String(200), server_default=FetchedValue())

    __table_args__ = (
        Index("ix_audit_event_at", "at"),
        CheckConstraint(_in_list("action", AuditAction), name="action"),
        {"sqlite_autoincrement": True},
    )


class AuditEventRow(Base):
    """Which writebacks an audit event touched.

    Audit entries are kept for good, also when retention deletes their writeback; ``writeback_id`` then
    names a ``pruned_writeback`` line. There is no foreign key to ``writeback`` for that reason; ids are
    never reused, so an entry can never come to point at another row.
    """

    __tablename__ = "audit_event_row"

    event_id: Mapped[int] = mapped_column(ForeignKey("audit_event.id", ondelete="CASCADE"), primary_key=True)
    writeback_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(Key(16))

    __table_args__ = (Index("ix_audit_event_row_writeback_id", "writeback_id"),)


class PrunedWriteback(Base):
    """What a writeback deleted by retention was: enough for its audit entries, a reference read off a
    CRM360 activity, and automatic scheduling (a mailing whose activity was pruned is not given another).
    """

    __tablename__ = "pruned_writeback"

    writeback_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    ref: Mapped[str] = mapped_column(Key(16), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(24))
    mailing_id: Mapped[int | None] = mapped_column(BigId)
    #: When it was Sent, or became No Remote Recipients.
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The prune that deleted it: who, when, with which cutoff.
    audit_event_id: Mapped[int] = mapped_column(ForeignKey("audit_event.id"))

    __table_args__ = (Index("ix_pruned_writeback_mailing_id", "mailing_id"),)


class WritebackEvent(Base):
    """One status transition of a writeback, from whoever made it: the dispatcher's and a person's alike.

    The database writes these itself (triggers on ``writeback``, created by migration 0004) in the
    transaction of the change, so no path that changes a status can forget one. ``attempt`` is the row's
    attempt count after the change. The first event of a row has no ``from_status``.
    """

    __tablename__ = "writeback_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    writeback_id: Mapped[int] = mapped_column(ForeignKey("writeback.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)
    #: The database user whose change it was (PostgreSQL: ``session_user``, filled by the server, so
    #: ``actor``, which a writer names itself, can be checked); None on SQLite and before migration 0014.
    db_user: Mapped[str | None] = mapped_column(String(200), server_default=FetchedValue())

    __table_args__ = (
        # The timeline of one row, in order.
        Index("ix_writeback_event_writeback_id", "writeback_id", "id"),
        # "Errors per hour over the last 30 days": a range of time, per status reached.
        Index("ix_writeback_event_to_status_at", "to_status", "at"),
        Index("ix_writeback_event_at", "at"),
        {"sqlite_autoincrement": True},
    )


class StatusCount(Base):
    """How many writebacks have each status, kind and account, kept exact by triggers on ``writeback``
    (migration 0007).

    On PostgreSQL the changes since the last fold wait in ``status_count_delta``; ``counters`` reads
    both and folds the one into the other.
    """

    __tablename__ = "status_count"

    status: Mapped[str] = mapped_column(String(24), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    account: Mapped[str] = mapped_column(String(100), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger)


class StatusCountDelta(Base):
    """A change to the per-status totals not yet folded into ``status_count`` (PostgreSQL only)."""

    __tablename__ = "status_count_delta"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    status: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(100))
    delta: Mapped[int] = mapped_column(BigInteger)


class WritebackChange(Base):
    """A writeback inserted, changed or deleted, in commit order, for the live list (SQLite only).

    Written by triggers (migration 0010); PostgreSQL sends the same news by NOTIFY and leaves this
    empty. ``store.changes`` reads it; the dispatcher keeps only the newest entries.
    """

    __tablename__ = "writeback_change"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True)
    writeback_id: Mapped[int] = mapped_column(BigId)

    __table_args__ = ({"sqlite_autoincrement": True},)


class DispatcherRun(Base):
    """One run of a dispatcher, headless or in a console, as the database saw it: who, when, what it did,
    and how the queue stood when it began.

    A console that does not dispatch shows the newest one (and warns when none has finished for two
    intervals); the dashboard draws the queue's depth and the age of its oldest waiting writeback over
    time from the samples, since a count of the moment cannot be read back from status transitions.
    """

    __tablename__ = "dispatcher_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dispatcher: Mapped[str] = mapped_column(String(200))
    #: The database user it ran as (PostgreSQL: set by the server); None on SQLite.
    db_user: Mapped[str | None] = mapped_column(String(200), server_default=FetchedValue())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: How often it runs (``dispatch --forever``, a console's interval); None for a single run.
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    #: One of RunResult.
    result: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    #: The queue when the run began: New, Scheduled that was due, Error with attempts left.
    waiting_new: Mapped[int | None] = mapped_column(BigInteger)
    waiting_scheduled: Mapped[int | None] = mapped_column(BigInteger)
    waiting_error: Mapped[int | None] = mapped_column(BigInteger)
    #: When the oldest of those was created; None when nothing was waiting.
    oldest_waiting_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(_in_list("result", RunResult), name="result"),
        Index("ix_dispatcher_run_finished_at", "finished_at", "id"),
        {"sqlite_autoincrement": True},
    )


class ChartHour(Base):
    """How many writebacks reached a status, or failed for a reason, in one hour of UTC: the charts'
    rollup of ``writeback_event`` and ``attempt``, for every hour before ``chart_rollup.rolled_until``.

    ``series`` is ``status`` (``label`` a status reached) or ``reason`` (``label`` an error reason, as
    ``error_groups`` words it). Rows outlive the events they count, which retention may delete.
    """

    __tablename__ = "chart_hour"

    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    series: Mapped[str] = mapped_column(String(16), primary_key=True)
    label: Mapped[str] = mapped_column(String(200), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger)


class ChartRollup(Base):
    """Up to when ``chart_hour`` holds every hour (one row); later hours are counted when drawn."""

    __tablename__ = "chart_rollup"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rolled_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)


class Setting(Base):
    """An account-wide setting (writeback enabled, automatic mailing-activity delay, …) as JSON."""

    __tablename__ = "setting"

    account: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=lambda: datetime.now(UTC))
    updated_by: Mapped[str | None] = mapped_column(String(200))


class RemoteHealth(Base):
    """What the dispatchers last learnt about a Personify360 service as a whole.

    An outage (maintenance page, 503, timeouts) or rejected credentials is remembered here, shared by
    every dispatcher and console on the queue: until ``not_before`` (the service's own Retry-After)
    nobody sends anything, and after it each run sends one probe before anything else.
    """

    __tablename__ = "remote_health"

    service: Mapped[str] = mapped_column(String(500), primary_key=True)
    #: One of HealthState.
    state: Mapped[str] = mapped_column(String(16))
    #: When the current outage or refusal began (None while ok).
    since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    http_status: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (CheckConstraint(_in_list("state", HealthState), name="state"),)
