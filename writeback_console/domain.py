"""The writeback domain: kinds, statuses and the rules between them, with no I/O.

Where each rule also runs in SQL, and where it is tested: docs/architecture.md, "Statuses and the rules
between them".
"""

from __future__ import annotations

import enum
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

#: Attempts a writeback gets before only a person can retry it: the first one and two automatic retries.
DEFAULT_MAX_ATTEMPTS = 3
#: A dispatcher that dies while sending a writeback costs it no attempt the first time; from the second
#: interruption in a row on, each one counts, so a row that crashes every dispatcher cannot loop for ever.
FREE_INTERRUPTIONS = 1

#: Characters a reference is made of: Crockford's base 32, which leaves out I, L, O and U so that a
#: reference read over the phone cannot be mistaken.
REF_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REF_PREFIX = "WB-"
REF_LENGTH = 10


class Kind(enum.StrEnum):
    """The writeback elements Informz sends to Personify360."""

    UNSUBSCRIBE = "unsubscribe"
    RESUBSCRIBE = "resubscribe"
    INVALID_EMAIL = "invalid_email"
    MAILING_ACTIVITY = "mailing_activity"
    INTERESTS = "interests"

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]


_KIND_LABELS = {
    Kind.UNSUBSCRIBE: "Unsubscribe",
    Kind.RESUBSCRIBE: "Resubscribe",
    Kind.INVALID_EMAIL: "Invalid Email Address",
    Kind.MAILING_ACTIVITY: "Mailing Activity",
    Kind.INTERESTS: "Interests (IPM)",
}


class Status(enum.StrEnum):
    """Where a writeback is in its life."""

    NEW = "new"
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    SENT = "sent"
    ERROR = "error"
    NO_REMOTE_RECIPIENTS = "no_remote_recipients"
    #: Scheduled mailing activity that staff withdrew: kept, final, never recreated automatically.
    CANCELLED = "cancelled"
    #: An Error an advisor stopped retrying, with a reason: final until a person retries it.
    DISCARDED = "discarded"

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    Status.NEW: "New",
    Status.SCHEDULED: "Scheduled",
    Status.PROCESSING: "Processing",
    Status.SENT: "Sent",
    Status.ERROR: "Error",
    Status.NO_REMOTE_RECIPIENTS: "No Remote Recipients",
    Status.CANCELLED: "Cancelled",
    Status.DISCARDED: "Discarded",
}

#: Statuses no dispatcher acts on. Discarded is one until a person retries it.
FINAL_STATUSES = frozenset({Status.SENT, Status.NO_REMOTE_RECIPIENTS, Status.CANCELLED, Status.DISCARDED})
#: Statuses the dispatcher may still act on; PostgreSQL keeps a partial index over exactly these.
OPEN_STATUSES = frozenset(Status) - FINAL_STATUSES


class AttemptOutcome(enum.StrEnum):
    """How an attempt ended; an attempt still under way has none yet."""

    SENT = "sent"
    ERROR = "error"
    NO_REMOTE_RECIPIENTS = "no_remote_recipients"
    #: The dispatcher that held the row died or lost its lease while sending.
    INTERRUPTED = "interrupted"
    #: Personify360 as a whole was unavailable; the row went back without using an attempt.
    OUTAGE = "outage"
    #: The run stopped part-way through a mailing's recipients.
    STOPPED = "stopped"


class DeliveryStatus(enum.StrEnum):
    """Where one mailing recipient's activity is."""

    PENDING = "pending"
    SENT = "sent"
    ERROR = "error"


class AuditAction(enum.StrEnum):
    """What a person (or automatic scheduling on their behalf) did, as the audit log records it."""

    ENQUEUE = "enqueue"
    IMPORT = "import"
    RETRY = "retry"
    SCHEDULE = "schedule"
    SEND_NOW = "send_now"
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"
    DISCARD = "discard"
    AUTO_SCHEDULE = "auto_schedule"
    SETTING = "setting"
    #: Old finished writebacks deleted by retention (a person's ``prune``, or the daily setting).
    PRUNE = "prune"
    #: Rows written to a file (CSV) from the list: what left the queue, and with which filter.
    EXPORT = "export"
    #: A setting of one console (its config file), such as whether it runs the dispatcher.
    CONSOLE_SETTING = "console_setting"


class RunResult(enum.StrEnum):
    """How a dispatcher's run ended, as ``dispatcher_run`` records it."""

    #: It ran to the end (it may have had nothing to do).
    OK = "ok"
    #: Writebacks are switched off: it sent nothing.
    DISABLED = "disabled"
    #: Personify360 was unavailable or refused the credentials.
    PROBLEM = "problem"
    #: It stopped early: asked to, or the database gave out.
    STOPPED = "stopped"


class HealthState(enum.StrEnum):
    """Personify360 as a whole, as the dispatchers last found it."""

    OK = "ok"
    #: Unavailable: maintenance, overload, gateway pages, timeouts.
    OUTAGE = "outage"
    #: The credentials were rejected.
    AUTH = "auth"


#: Shifts this process's clock by so many seconds. The chaos tests use it to run dispatchers whose clocks
#: disagree, which must change nothing: leases and eligibility follow the database's clock.
CLOCK_SKEW_ENV = "WRITEBACK_CLOCK_SKEW_SECONDS"


def _skew() -> timedelta:
    try:
        return timedelta(seconds=float(os.environ.get(CLOCK_SKEW_ENV) or 0))
    except (ValueError, OverflowError):
        return timedelta(0)


_SKEW = _skew()


def utcnow() -> datetime:
    return datetime.now(UTC) + _SKEW


def new_ref(length: int = REF_LENGTH) -> str:
    """A fresh writeback reference such as ``WB-7K2M9QX4BD``."""
    return REF_PREFIX + "".join(secrets.choice(REF_ALPHABET) for _ in range(length))


def normalize_ref(text: str) -> str:
    """The reference as stored, from what a person typed (``wb-7k2m…`` finds ``WB-7K2M…``)."""
    return text.strip().upper()


@dataclass(frozen=True, slots=True)
class QueueState:
    """The fields of a writeback that the rules look at."""

    status: Status
    attempts: int
    max_attempts: int
    scheduled_for: datetime | None = None
    #: When an Error row's next automatic attempt is due: one dispatcher interval after its failure, so
    #: retries keep the dispatcher's rhythm whatever starts a run. None (or a past time) is due at once.
    next_attempt_at: datetime | None = None
    #: Since when an earlier write may have reached Personify360 (it is looked for before anything is
    #: sent, and only once a slow write has had time to land); None when there is no such doubt.
    uncertain_since: datetime | None = None


def attempts_left(state: QueueState) -> int:
    return max(0, state.max_attempts - state.attempts)


def retries_exhausted(state: QueueState) -> bool:
    """Error with no automatic attempt left: only a person can send it again."""
    return state.status is Status.ERROR and attempts_left(state) == 0


#: The dispatcher's rhythm, unless Settings (or the command's options) say otherwise: a run every ten
#: minutes, eight writebacks sent at once, 200 rows claimed per statement, and a lease of fifteen
#: minutes on what a run claimed (renewed while it works, so only a dead or frozen holder loses it).
DEFAULT_INTERVAL_SECONDS = 600
DEFAULT_CONCURRENCY = 8
DEFAULT_BATCH_SIZE = 200
#: Recipients of one mailing a dispatcher claims at a time.
DEFAULT_CHUNK_SIZE = 500
DEFAULT_LEASE_SECONDS = 900

#: How long after a write that may have arrived the row waits before Personify360 is asked for it: a
#: slow Save may still be under way on the server after the client gave up (IIS lets a request run for
#: 110 s), and looking too early would find nothing and write it again.
DEFAULT_SETTLE_SECONDS = 120


def is_eligible(state: QueueState, run_started_at: datetime, settle: timedelta = timedelta(0)) -> bool:
    """Whether a dispatcher run that started at ``run_started_at`` may claim the row.

    New rows go at once, Scheduled ones once their time has passed, and Error rows with attempts left
    once their automatic retry is due (``after_failure`` sets it one dispatcher interval after the
    failure), so a row that fails is never retried in the same run, nor in a run started at once by a
    person or another dispatcher. A row whose last write may have arrived waits ``settle`` after that
    failure, whatever its status.
    """
    if (
        settle > timedelta(0)
        and state.uncertain_since is not None
        and state.uncertain_since >= run_started_at - settle
    ):
        return False
    if state.status is Status.NEW:
        return True
    if state.status is Status.SCHEDULED:
        return state.scheduled_for is not None and state.scheduled_for <= run_started_at
    if state.status is Status.ERROR:
        due = state.next_attempt_at is None or state.next_attempt_at <= run_started_at
        return attempts_left(state) > 0 and due
    return False


@dataclass(frozen=True, slots=True)
class RetryDecision:
    allowed: bool
    reason: str


def manual_retry_decision(state: QueueState) -> RetryDecision:
    """Whether a person may retry the row now, and if not, why not in words they understand.

    A Discarded row may always be retried: that is how a discard is undone.
    """
    if state.status is Status.DISCARDED:
        return RetryDecision(True, "discarded; a retry sends it once more")
    if state.status is not Status.ERROR:
        return RetryDecision(
            False, f"status is {state.status.label}, only Error or Discarded rows can be retried"
        )
    left = attempts_left(state)
    if left > 0:
        plural = "retry is" if left == 1 else "retries are"
        return RetryDecision(False, f"{left} automatic {plural} still to come")
    return RetryDecision(True, "automatic retries used up")


def after_manual_retry(state: QueueState) -> QueueState:
    """The state a manual retry leaves: exactly one more attempt, queued for the next run.

    A New row is due at once, so the time a mailing activity was once scheduled for stays as history.
    """
    decision = manual_retry_decision(state)
    if not decision.allowed:
        raise ValueError(decision.reason)
    return QueueState(
        status=Status.NEW,
        attempts=state.attempts,
        max_attempts=state.attempts + 1,
        scheduled_for=state.scheduled_for,
        next_attempt_at=None,
        uncertain_since=state.uncertain_since,
    )


#: The longest reason a discard keeps (it is shown in the row's timeline and kept in the audit log).
DISCARD_REASON_LIMIT = 500


def discard_decision(state: QueueState) -> RetryDecision:
    """Whether a person may discard the row (stop retrying it), and if not, why not."""
    if state.status is Status.ERROR:
        return RetryDecision(True, "automatic retries stop; a manual retry undoes it")
    if state.status is Status.PROCESSING:
        return RetryDecision(False, "a dispatcher is sending it right now; discard it if it ends as Error")
    if state.status is Status.DISCARDED:
        return RetryDecision(False, "already discarded")
    return RetryDecision(False, f"status is {state.status.label}, only Error rows can be discarded")


def discard_reason_problem(reason: str | None) -> str | None:
    """What is wrong with a discard's reason as typed, or None when it will do."""
    text = (reason or "").strip()
    if not text:
        return "a reason is required: say why the writeback should not be retried"
    if len(text) > DISCARD_REASON_LIMIT:
        return f"the reason is {len(text):,} characters long; at most {DISCARD_REASON_LIMIT} are kept"
    if any(ord(c) < 32 and c not in "\t\n" for c in text):
        return "the reason holds control characters; type it as plain text"
    return None


def after_discard(state: QueueState) -> QueueState:
    """The state a discard leaves: Discarded, its attempts as they were, never claimed again."""
    decision = discard_decision(state)
    if not decision.allowed:
        raise ValueError(decision.reason)
    return QueueState(
        status=Status.DISCARDED,
        attempts=state.attempts,
        max_attempts=state.max_attempts,
        scheduled_for=state.scheduled_for,
        next_attempt_at=state.next_attempt_at,
        uncertain_since=state.uncertain_since,
    )


def after_failure(state: QueueState, failed_at: datetime, retry_after: timedelta) -> QueueState:
    """The state a failed attempt leaves: Error, retried automatically while attempts remain.

    The automatic retry is due ``retry_after`` (the failing dispatcher's interval) after the failure.
    """
    if retry_after <= timedelta(0):
        raise ValueError("retry_after: must be positive, or a row could be retried in the run it failed in")
    return QueueState(
        status=Status.ERROR,
        attempts=state.attempts,
        max_attempts=state.max_attempts,
        scheduled_for=state.scheduled_for,
        next_attempt_at=failed_at + retry_after,
        uncertain_since=state.uncertain_since,
    )


def mailing_activity_outcome(remote_recipients: int, delivered: int) -> Status:
    """Final status of a mailing-activity writeback once every recipient has been tried."""
    if remote_recipients == 0:
        return Status.NO_REMOTE_RECIPIENTS
    return Status.SENT if delivered >= remote_recipients else Status.ERROR


def mailing_activity_error(remote_recipients: int, delivered: int) -> str:
    failed = remote_recipients - delivered
    return f"{failed:,} of {remote_recipients:,} recipients failed"


#: The longest wait, in days after a mailing was sent, for its mailing activity to go out by itself.
MAX_AUTO_MAILING_ACTIVITY_DAYS = 365

#: What the Writeback List (and `list --sort`) can be ordered by; each has its key columns in
#: ``store.listing.SORT_KEYS``.
SortField = Literal[
    "created_at",
    "ref",
    "kind",
    "email",
    "master_customer_id",
    "account",
    "status",
    "attempts",
    "sent_at",
    "scheduled_for",
    "id",
]
SORT_FIELDS: tuple[SortField, ...] = get_args(SortField)


# --- retention -------------------------------------------------------------------------------------

#: What retention may delete once it is old enough. Error, New, Scheduled and Processing are work not
#: done; Cancelled is staff's recorded decision (automatic scheduling relies on it) and Discarded an
#: advisor's, which a manual retry can still undo: all of them stay.
PRUNABLE_STATUSES = (Status.SENT, Status.NO_REMOTE_RECIPIENTS)
#: The shortest age retention accepts: a typo such as ``1d`` for ``1y`` must not empty the queue.
MIN_RETENTION_DAYS = 7
#: The longest, ten years: anything beyond is a mistake.
MAX_RETENTION_DAYS = 3650
_AGE_UNITS = {"d": 1, "w": 7, "m": 30, "y": 365}


def parse_retention_age(text: str) -> int:
    """``180d``, ``26w``, ``6m`` (30-day months), ``1y`` (365 days) or a bare number of days → days.

    Raises ``ValueError`` naming what is wrong: an unknown unit, a number out of range, an age shorter
    than ``MIN_RETENTION_DAYS``.
    """
    value = text.strip().lower()
    number, unit = (value[:-1], value[-1]) if value[-1:].isalpha() else (value, "d")
    if not number.isdigit():
        raise ValueError(
            f"{text!r} is not an age: write a whole number and d (days), w (weeks), m (30-day months) "
            "or y (365-day years), e.g. 180d"
        )
    if unit not in _AGE_UNITS:
        raise ValueError(
            f"{text!r}: unknown unit {unit!r}; retention counts d (days), w (weeks), m (30-day months) "
            "or y (365-day years)"
        )
    days = int(number) * _AGE_UNITS[unit]
    problem = retention_days_problem(days)
    if problem:
        raise ValueError(f"{text!r}: {problem}")
    return days


def retention_days_problem(days: int) -> str | None:
    """Why a retention age in days is refused, or None."""
    if days < MIN_RETENTION_DAYS:
        return (
            f"{days} day(s) is shorter than the {MIN_RETENTION_DAYS} days retention allows; "
            "recent writebacks are what support looks up"
        )
    if days > MAX_RETENTION_DAYS:
        return f"{days:,} days is more than the {MAX_RETENTION_DAYS:,} days (ten years) retention allows"
    return None
