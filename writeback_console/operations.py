"""Everything a person does to the queue: one function per action, each its own transaction.

The command line and the console call these for every change a person makes (the console off the GUI
thread), so an action means the same from both: the same checks, the same audit entry, the same
transaction boundary. Reads that only show something stay with the screen or command that shows it.

Each function takes the session factory and the acting person (``actor``, the operator's name as the
audit trail and the status history record it); a refusal is a ``QueueError`` whose text says why, and
then nothing was changed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from writeback_console.config import redact_url
from writeback_console.domain import (
    MAX_AUTO_MAILING_ACTIVITY_DAYS,
    AuditAction,
    SortField,
    Status,
    discard_reason_problem,
    retention_days_problem,
    utcnow,
)
from writeback_console.export import write_rows
from writeback_console.intake import WritebackInput
from writeback_console.settings import (
    AppSettings,
    PasswordStore,
    SettingsError,
    load_settings,
    save_settings,
)
from writeback_console.store import audit_trail, lifecycle, listing, operator_actions, retention, switches
from writeback_console.store.engine import read_session, write_transaction
from writeback_console.store.rows import QueueError, WritebackRow, current_actor

Factory = sessionmaker[Session]
RetryResult = operator_actions.RetryResult
DiscardResult = operator_actions.DiscardResult

#: Rows read per page while exporting: the file is written as they come, never all held at once.
EXPORT_PAGE_SIZE = 1000


# --- queueing ------------------------------------------------------------------------------------


def enqueue(factory: Factory, item: WritebackInput, *, actor: str) -> WritebackRow:
    """Queue one validated writeback by hand, with its audit entry."""
    with write_transaction(factory) as session:
        row = lifecycle.enqueue(session, item, actor=actor)
        audit_trail.record_audit(
            session, actor=actor, action=AuditAction.ENQUEUE, rows=[(row.id, row.ref)], now=utcnow()
        )
    return row


# --- manual retry --------------------------------------------------------------------------------


def retry(
    factory: Factory,
    ids: Sequence[int],
    *,
    actor: str,
    filter: Mapping[str, Any] | None = None,
    skip_ineligible: bool = False,
) -> RetryResult:
    """One more attempt for each row; ``filter`` is recorded with the audit entry when rows were chosen by it.

    A row that may not be retried refuses the whole action (``RetryRefused``), unless
    ``skip_ineligible``: then it is skipped and named in the result (rows that changed meanwhile, too).
    """
    with write_transaction(factory) as session:
        return operator_actions.manual_retry(
            session, ids, actor=actor, filter=filter, skip_ineligible=skip_ineligible
        )


def retry_matching(
    factory: Factory, flt: listing.WritebackFilter, *, actor: str, skip_ineligible: bool = False
) -> RetryResult:
    """Retry every row matching ``flt`` that may be retried now, chosen and retried in one transaction."""
    flt = replace(flt, retry_available=True)
    with write_transaction(factory) as session:
        ids = [r.id for r in listing.iter_rows(session, flt, sort="id", descending=False)]
        if not ids:
            raise QueueError("no row matching the filter can be retried now")
        return operator_actions.manual_retry(
            session,
            ids,
            actor=actor,
            filter={**flt.to_json(), "matching": True},
            skip_ineligible=skip_ineligible,
        )


# --- discard -------------------------------------------------------------------------------------


def discard(
    factory: Factory,
    ids: Sequence[int],
    *,
    actor: str,
    reason: str,
    filter: Mapping[str, Any] | None = None,
    skip_ineligible: bool = False,
) -> DiscardResult:
    """Stop retrying Error rows, with the reason; undone by a manual retry.

    A row that may not be discarded (not in Error) refuses the whole action (``DiscardRefused``), unless
    ``skip_ineligible``: then it is skipped and named in the result.
    """
    with write_transaction(factory) as session:
        return operator_actions.discard(
            session, ids, actor=actor, reason=reason, filter=filter, skip_ineligible=skip_ineligible
        )


def discard_matching(
    factory: Factory, flt: listing.WritebackFilter, *, actor: str, reason: str
) -> DiscardResult:
    """Discard every Error row matching ``flt``, chosen and discarded in one transaction."""
    problem = discard_reason_problem(reason)
    if problem:
        raise QueueError(problem)
    narrowed = actionable_filter(flt, "discard")
    with write_transaction(factory) as session:
        ids = (
            []
            if narrowed is None
            else [r.id for r in listing.iter_rows(session, narrowed, sort="id", descending=False)]
        )
        if not ids:
            raise QueueError("no row matching the filter can be discarded (only Error rows can)")
        return operator_actions.discard(
            session,
            ids,
            actor=actor,
            reason=reason,
            filter={**flt.to_json(), "matching": True},
            skip_ineligible=True,
        )


# --- acting on every row matching a filter --------------------------------------------------------

#: Most rows one Retry or Discard of "all matching" may change; narrow the filter for more.
MATCHING_CAP = 50_000
#: Rows per transaction when acting on all matching rows: each batch stays done if a later one fails.
MATCHING_BATCH = 1_000

BulkAction = str  # "retry" or "discard"
BULK_ACTIONS = ("retry", "discard")


def actionable_filter(flt: listing.WritebackFilter, action: BulkAction) -> listing.WritebackFilter | None:
    """``flt`` narrowed to the rows ``action`` may change (retryable rows; Error rows for a discard), or
    None when it leaves none (a discard of a filter on other statuses only)."""
    if action == "retry":
        return replace(flt, retry_available=True)
    if action == "discard":
        if flt.statuses and Status.ERROR not in flt.statuses:
            return None
        return replace(flt, statuses=frozenset({Status.ERROR}), retry_available=False)
    raise ValueError(f"no bulk action {action!r}")


@dataclass(frozen=True, slots=True)
class MatchingPreview:
    """How many rows an action on "all matching" would change, and the first few of them."""

    count: int
    sample: list[WritebackRow]


def preview_matching(
    factory: Factory, flt: listing.WritebackFilter, action: BulkAction, *, sample: int = 10
) -> MatchingPreview:
    """Count (up to one past the cap) and a sample of the rows ``action`` would change; changes nothing."""
    narrowed = actionable_filter(flt, action)
    if narrowed is None:
        return MatchingPreview(0, [])
    with read_session(factory) as session:
        count = listing.count_matching(session, narrowed, limit=MATCHING_CAP + 1)
        rows = list(listing.iter_rows(session, narrowed, sort="id", descending=False, limit=sample))
    return MatchingPreview(count, rows)


def too_many_message(count: int, action: BulkAction, cap: int | None = None) -> str:
    """Why acting on all matching rows is refused: ``count`` (counted up to one past ``cap``) is too many."""
    cap = MATCHING_CAP if cap is None else cap
    more = f"more than {cap:,}" if count > cap else f"{count:,}"
    return (
        f"{more} rows match; one {action} changes at most {cap:,}. Narrow the filter (a kind, "
        "an account, a date range or part of the error) and act on each part."
    )


class BulkProgress:
    """Shared between the thread acting in batches and whoever watches: progress one way, cancel the other."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0
        self.skipped = 0
        self.cancel_requested = threading.Event()


@dataclass(frozen=True, slots=True)
class BulkResult:
    action: BulkAction
    changed: int
    skipped: int
    batches: int
    cancelled: bool
    audit_event_ids: list[int]


def act_on_matching(
    factory: Factory,
    flt: listing.WritebackFilter,
    action: BulkAction,
    *,
    actor: str,
    reason: str | None = None,
    progress: BulkProgress | None = None,
    batch_size: int | None = None,
    cap: int | None = None,
    on_batch: Callable[[BulkProgress], None] | None = None,
) -> BulkResult:
    """Retry or discard every row matching ``flt`` that the action may change, a batch per transaction.

    Refused before anything changes when more than ``cap`` rows match. Each batch is chosen afresh
    (rows a dispatcher or a colleague changed meanwhile are no longer chosen), done in its own
    transaction and audited with ``flt``; a cancel stops between batches, and what was done stays done.
    ``on_batch`` is called (in this thread) after each batch is committed.
    """
    if action not in BULK_ACTIONS:
        raise ValueError(f"no bulk action {action!r}")
    batch_size = MATCHING_BATCH if batch_size is None else batch_size
    cap = MATCHING_CAP if cap is None else cap
    if action == "discard":
        problem = discard_reason_problem(reason)
        if problem:
            raise QueueError(problem)
    progress = progress or BulkProgress()
    narrowed = actionable_filter(flt, action)
    total = 0
    if narrowed is not None:
        with read_session(factory) as session:
            total = listing.count_matching(session, narrowed, limit=cap + 1)
    if total > cap:
        raise QueueError(too_many_message(total, action, cap))
    if total == 0:
        raise QueueError(
            f"no row matching the filter can be {'retried' if action == 'retry' else 'discarded'} now"
        )
    progress.total = total
    recorded = {**flt.to_json(), "matching": True}
    after = 0
    events: list[int] = []
    batches = 0
    cancelled = False
    while progress.done + progress.skipped < total:
        if progress.cancel_requested.is_set():
            cancelled = True
            break
        limit = min(batch_size, total - progress.done - progress.skipped)
        assert narrowed is not None
        with write_transaction(factory) as session:
            ids = listing.matching_ids_after(session, narrowed, after=after, limit=limit)
            if not ids:
                break
            after = ids[-1]
            if action == "retry":
                retried = operator_actions.manual_retry(
                    session, ids, actor=actor, filter=recorded, skip_ineligible=True
                )
                changed, event = len(retried.retried), retried.audit_event_id
            else:
                discarded = operator_actions.discard(
                    session, ids, actor=actor, reason=reason or "", filter=recorded, skip_ineligible=True
                )
                changed, event = len(discarded.discarded), discarded.audit_event_id
        batches += 1
        progress.done += changed
        progress.skipped += len(ids) - changed
        if event is not None:
            events.append(event)
        if on_batch is not None:
            on_batch(progress)
    return BulkResult(action, progress.done, progress.skipped, batches, cancelled, events)


# --- mailing activity ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduledActivity:
    """A mailing activity as it stands after scheduling, with its mailing's recipients."""

    row: WritebackRow
    recipients: int
    remote_recipients: int


def schedule_mailing_activity(
    factory: Factory, mailing_id: int, *, at: datetime | None, actor: str
) -> ScheduledActivity:
    """Queue a mailing's activity at ``at``, or at the next dispatcher run when ``at`` is None."""
    with write_transaction(factory) as session:
        row = operator_actions.schedule_mailing_activity(session, mailing_id, at=at, actor=actor)
        total, remote = listing.mailing_recipient_counts(session, mailing_id)
    return ScheduledActivity(row, total, remote)


def reschedule(factory: Factory, writeback_id: int, *, at: datetime | None, actor: str) -> WritebackRow:
    """Move a waiting mailing activity to ``at`` (None: the next dispatcher run)."""
    with write_transaction(factory) as session:
        return operator_actions.reschedule(session, writeback_id, at=at, actor=actor)


def send_mailing_activity_now(factory: Factory, mailing_id: int, *, actor: str) -> WritebackRow:
    """A mailing's activity at the next dispatcher run: its waiting one brought forward, or a new one."""
    with write_transaction(factory) as session:
        waiting = operator_actions.scheduled_activity_of(session, mailing_id)
        if waiting is not None:
            return operator_actions.reschedule(session, waiting, at=None, actor=actor)
        return operator_actions.schedule_mailing_activity(session, mailing_id, at=None, actor=actor)


def cancel(factory: Factory, writeback_id: int, *, actor: str) -> WritebackRow:
    """Withdraw a Scheduled mailing activity; it stays, as Cancelled."""
    with write_transaction(factory) as session:
        return operator_actions.cancel_scheduled(session, writeback_id, actor=actor)


# --- account switches and settings ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountSwitches:
    """The account-wide switches kept in the database (shared by every console and dispatcher)."""

    writeback_enabled: bool
    #: Days after a mailing was sent at which its mailing activity goes out by itself; None: never.
    auto_mailing_activity_days: int | None
    #: Days after which the dispatcher deletes Sent writebacks, once a day (every account); None: never.
    prune_sent_after_days: int | None = None


def account_switches(factory: Factory, account: str = switches.ALL_ACCOUNTS) -> AccountSwitches:
    """The switches for every account (the default), or as set for one Informz account."""
    with read_session(factory) as session:
        enabled = (
            switches.get_setting(session, switches.WRITEBACK_ENABLED, account=account, default=True)
            is not False
        )
        days = switches.get_setting(session, switches.AUTO_MAILING_ACTIVITY_DAYS, account=account)
        prune_days = retention.prune_after_days(session) if account == switches.ALL_ACCOUNTS else None
    return AccountSwitches(enabled, int(days) if isinstance(days, int | float) else None, prune_days)


def set_account_switches(
    factory: Factory, changes: Mapping[str, Any], *, actor: str, account: str = switches.ALL_ACCOUNTS
) -> None:
    """Change switches (``switches.WRITEBACK_ENABLED``, ``AUTO_MAILING_ACTIVITY_DAYS``) together, for
    every account (the default) or for one Informz account; ``switches.PRUNE_SENT_AFTER_DAYS`` (days, or
    None for never) only for every account, since retention is the queue's."""
    unknown = set(changes) - {
        switches.WRITEBACK_ENABLED,
        switches.AUTO_MAILING_ACTIVITY_DAYS,
        switches.PRUNE_SENT_AFTER_DAYS,
    }
    if unknown:
        raise QueueError(f"no account switch called {', '.join(sorted(unknown))}")
    if switches.PRUNE_SENT_AFTER_DAYS in changes:
        prune_days = changes[switches.PRUNE_SENT_AFTER_DAYS]
        if account != switches.ALL_ACCOUNTS:
            raise QueueError(f"{switches.PRUNE_SENT_AFTER_DAYS}: retention is set for every account at once")
        if prune_days is not None and (
            isinstance(prune_days, bool)
            or not isinstance(prune_days, int)
            or retention_days_problem(prune_days)
        ):
            raise QueueError(
                f"{switches.PRUNE_SENT_AFTER_DAYS}: "
                + (
                    retention_days_problem(prune_days) or ""
                    if isinstance(prune_days, int) and not isinstance(prune_days, bool)
                    else f"a number of days, or never; not {prune_days!r}"
                )
            )
    enabled = changes.get(switches.WRITEBACK_ENABLED, True)
    if not isinstance(enabled, bool):
        raise QueueError(f"{switches.WRITEBACK_ENABLED}: on or off, not {enabled!r}")
    days = changes.get(switches.AUTO_MAILING_ACTIVITY_DAYS)
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_AUTO_MAILING_ACTIVITY_DAYS
    ):
        raise QueueError(
            f"{switches.AUTO_MAILING_ACTIVITY_DAYS}: a number of days from 0 to "
            f"{MAX_AUTO_MAILING_ACTIVITY_DAYS}, or never; not {days!r}"
        )
    with write_transaction(factory) as session:
        for key, value in changes.items():
            switches.set_setting(session, key, value, account=account, actor=actor)


def set_writeback_by_account(factory: Factory, states: Mapping[str, bool], *, actor: str) -> None:
    """Switch writebacks on or off for each named Informz account, all in one transaction."""
    for account, on in states.items():
        if not isinstance(account, str) or not account.strip() or account == switches.ALL_ACCOUNTS:
            raise QueueError(f"not an Informz account name: {account!r}")
        if not isinstance(on, bool):
            raise QueueError(f"{account}: on or off, not {on!r}")
    with write_transaction(factory) as session:
        for account, on in states.items():
            switches.set_setting(session, switches.WRITEBACK_ENABLED, on, account=account, actor=actor)


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """What Save in Settings keeps: the settings file, the password and the account switches."""

    settings: AppSettings
    #: The typed password; None keeps the stored one.
    password: str | None = None
    #: The service root URL and user the settings had before, whose password is kept when only they change.
    previous: tuple[str, str] = ("", "")
    account_changes: Mapping[str, Any] = field(default_factory=dict)
    #: Informz account → writebacks on or off, for the accounts whose switch changed.
    account_writeback: Mapping[str, bool] = field(default_factory=dict)


def save_all_settings(
    change: SettingsChange,
    *,
    store: PasswordStore,
    path: Path | None,
    actor: str,
    factory: Factory | None = None,
) -> AppSettings:
    """Database switches first (the likeliest to fail), then the password, then the settings file.

    Settings that could not work are refused (SettingsError) before anything is written.
    """
    change.settings.check_before_saving()
    if change.account_changes or change.account_writeback:
        if factory is None:
            raise ValueError("account switches are kept in the database: give the session factory")
        if change.account_changes:
            set_account_switches(factory, change.account_changes, actor=actor)
        if change.account_writeback:
            set_writeback_by_account(factory, change.account_writeback, actor=actor)
    settings, password = change.settings, change.password
    current = (settings.service_root_url, settings.user)
    audited = console_setting_changes(_saved_settings(path), settings)
    if change.password is not None and all(current) and change.password != store.get(*current, environ={}):
        audited.append({"key": "password", "changed": True})
    if password is None and current != change.previous and all(change.previous):
        # The password is stored per URL and user: keep it when only those changed.
        password = store.get(*change.previous, environ={})

    def keep() -> None:
        if password and all(current):
            store.set(settings.service_root_url, settings.user, password)
        save_settings(settings, path)

    if factory is None or not audited:
        keep()
        return settings
    # The entries commit once the file is written: a save that fails leaves no entry of it.
    with write_transaction(factory) as session:
        now = utcnow()
        for detail in audited:
            audit_trail.record_audit(
                session, actor=actor, action=AuditAction.CONSOLE_SETTING, rows=[], now=now, detail=detail
            )
        keep()
    return settings


#: Console settings whose values the audit log never holds: their change is recorded as "changed".
SECRET_SETTINGS = frozenset({"password"})


def _saved_settings(path: Path | None) -> AppSettings:
    """The settings file as it is before a save (the defaults when it is missing or unreadable)."""
    try:
        return load_settings(path, environ={})
    except SettingsError:
        return AppSettings()


def _shown_url(url: str | None) -> str | None:
    return redact_url(url) if url else None


def console_setting_changes(before: AppSettings, after: AppSettings) -> list[dict[str, Any]]:
    """Each setting of the console's file that a save changes, as its audit entry's detail: the key,
    the value before and after (a URL without any password in it; a secret only as "changed")."""
    old, new = before.to_json(), after.to_json()
    changes: list[dict[str, Any]] = []
    for key, value in new.items():
        if old.get(key) == value:
            continue
        if key in SECRET_SETTINGS:
            changes.append({"key": key, "changed": True})
        elif key == "service_root_url":
            changes.append({"key": key, "from": _shown_url(old.get(key)), "to": _shown_url(value)})
        else:
            changes.append({"key": key, "from": old.get(key), "to": value})
    return changes


# --- retention -----------------------------------------------------------------------------------

PruneProgress = retention.PruneProgress
PruneResult = retention.PruneResult


@dataclass(frozen=True, slots=True)
class PrunePreview:
    """What a prune would delete now: per status, each counted up to ``retention.COUNT_CAP`` + 1."""

    cutoff: datetime
    counts: Mapping[Status, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def capped(self) -> bool:
        return any(n > retention.COUNT_CAP for n in self.counts.values())


def _cutoff(older_than_days: int, now: datetime | None) -> datetime:
    problem = retention_days_problem(older_than_days)
    if problem:
        raise QueueError(problem)
    return (now or utcnow()) - timedelta(days=older_than_days)


def preview_prune(factory: Factory, older_than_days: int, *, now: datetime | None = None) -> PrunePreview:
    """How many Sent and No Remote Recipients writebacks finished more than so many days ago would go."""
    cutoff = _cutoff(older_than_days, now)
    with read_session(factory) as session:
        return PrunePreview(cutoff, retention.count_prunable(session, cutoff))


def prune(
    factory: Factory,
    older_than_days: int,
    *,
    actor: str,
    now: datetime | None = None,
    on_batch: Callable[[PruneProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int | None = None,
) -> PruneResult:
    """Delete Sent and No Remote Recipients writebacks finished more than ``older_than_days`` ago.

    Never Error, New, Scheduled, Processing, Cancelled or Discarded rows, nor mailing activity whose
    deliveries record what each recipient got. In batches, each its own short transaction audited as
    ``prune``; the rows' audit entries stay, and ``pruned_row`` still says what each one was. Refused
    for an age under ``MIN_RETENTION_DAYS``.
    """
    cutoff = _cutoff(older_than_days, now)
    return retention.prune(
        factory,
        cutoff,
        actor=actor,
        now=now or utcnow(),
        detail={"older_than_days": older_than_days},
        batch_size=batch_size or retention.BATCH,
        on_batch=on_batch,
        should_stop=should_stop,
    )


def vacuum(factory: Factory) -> tuple[int, int] | None:
    """Give the space pruned rows left back: SQLite rewrites its file (returns its size before and
    after, in bytes); PostgreSQL vacuums the tables, making the space reusable (returns None)."""
    with factory() as session:
        engine = session.get_bind()
    return retention.vacuum(engine)  # type: ignore[arg-type]


# --- export --------------------------------------------------------------------------------------


class ExportCancelled(Exception):
    """The export was cancelled; the partial file has been removed."""


class ExportProgress:
    """Shared between the exporting thread and whoever watches: progress goes one way, cancel the other.

    Plain attributes written by one thread and read by another; an int is replaced atomically.
    """

    def __init__(self) -> None:
        self.total: int | None = None
        self.written = 0
        self.cancel_requested = threading.Event()


def _counted(rows: Iterable[WritebackRow], progress: ExportProgress) -> Iterator[WritebackRow]:
    for row in rows:
        yield row
        progress.written += 1
        if progress.written % EXPORT_PAGE_SIZE == 0 and progress.cancel_requested.is_set():
            raise ExportCancelled


def export_csv(
    factory: Factory,
    flt: listing.WritebackFilter,
    path: Path,
    *,
    sort: SortField = "created_at",
    descending: bool = True,
    progress: ExportProgress | None = None,
    actor: str | None = None,
) -> int:
    """Write every row matching ``flt`` to ``path`` as CSV in the list's order; returns the rows written.

    The rows are streamed into a temporary file beside ``path``, which replaces ``path`` only when
    complete: a cancelled or failed export leaves no half file and keeps an older file of that name.
    What left the queue is audited as ``export`` (the filter, the rows written, the file's name; who is
    ``actor``, by default this computer's user), in a transaction that commits once the file is there.
    """
    progress = progress or ExportProgress()
    partial = path.with_name(path.name + ".part")
    try:
        with read_session(factory) as session:
            counts = listing.count_by_status(session, flt)
            statuses = flt.statuses or frozenset(Status)
            progress.total = sum(n for s, n in counts.items() if s in statuses)
            # The byte-order mark makes spreadsheets read the file as UTF-8 rather than the local code page.
            with partial.open("w", newline="", encoding="utf-8-sig") as out:
                rows = listing.iter_rows(
                    session, flt, sort=sort, descending=descending, page_size=EXPORT_PAGE_SIZE
                )
                write_rows(_counted(rows, progress), out)
        if progress.cancel_requested.is_set():
            raise ExportCancelled
        with write_transaction(factory) as session:
            audit_trail.record_audit(
                session,
                actor=actor or current_actor(),
                action=AuditAction.EXPORT,
                rows=[],
                row_count=progress.written,
                now=utcnow(),
                filter=flt.to_json(),
                detail={"file": path.name, "sort": sort, "descending": descending},
            )
            os.replace(partial, path)
        return progress.written
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
