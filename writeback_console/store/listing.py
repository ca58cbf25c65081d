"""Reading the queue: single rows and their attempts, the filtered and keyset-paged list with its one
sort-key table, counts, and the mailings list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, func, or_, select, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from writeback_console.domain import REF_PREFIX, AttemptOutcome, Kind, SortField, Status, normalize_ref
from writeback_console.error_groups import WILDCARD
from writeback_console.store import counters
from writeback_console.store.models import Attempt, Delivery, Mailing, MailingRecipient, WritebackEvent
from writeback_console.store.progress import with_progress
from writeback_console.store.rows import (
    DELIVERY_TABLE,
    ROW_COLUMNS,
    NotFound,
    W,
    WritebackRow,
    chunks,
    row_from,
)


def get_writeback(session: Session, key: int | str) -> WritebackRow:
    """One writeback by id, or by reference (any case).

    A mailing recipient's activity in Personify360 ends with that recipient's own reference; it
    finds the mailing-activity row that carries it.
    """
    if isinstance(key, str) and not key.isdigit():
        ref = normalize_ref(key)
        condition: ColumnElement[bool] = W.ref == ref
        row = session.execute(select(*ROW_COLUMNS).where(condition)).first()
        if row is None:
            carrier = select(Delivery.writeback_id).where(Delivery.ref == ref).limit(1).scalar_subquery()
            row = session.execute(select(*ROW_COLUMNS).where(W.id == carrier)).first()
    else:
        row = session.execute(select(*ROW_COLUMNS).where(W.id == int(key))).first()
    if row is None:
        raise NotFound(f"no writeback {key}")
    return with_progress(session, [row_from(row)], statuses=None)[0]


def get_writebacks(session: Session, ids: Sequence[int]) -> dict[int, WritebackRow]:
    """Many writebacks by id, a chunk per query (a selection can be thousands of rows)."""
    rows: dict[int, WritebackRow] = {}
    for batch in chunks(list(dict.fromkeys(ids))):
        for r in session.execute(select(*ROW_COLUMNS).where(W.id.in_(batch))):
            row = row_from(r)
            rows[row.id] = row
    return {row.id: row for row in with_progress(session, list(rows.values()))}


def resolve_ids(session: Session, keys: Iterable[str]) -> list[int]:
    """Ids for a mix of ids and references as typed on a command line; unknown ones are an error."""
    ids: list[int] = []
    missing: list[str] = []
    for key in keys:
        try:
            ids.append(get_writeback(session, key).id)
        except NotFound:
            missing.append(key)
    if missing:
        raise NotFound("no writeback " + ", ".join(missing))
    return ids


@dataclass(frozen=True, slots=True)
class AttemptRow:
    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    http_status: int | None
    message: str | None
    response_excerpt: str | None
    dispatcher: str | None
    manual: bool
    #: Whether it used one of the row's attempts (an outage or a first interruption does not).
    counted: bool = True


def attempts_of(session: Session, writeback_id: int) -> list[AttemptRow]:
    return [
        AttemptRow(
            a.number,
            a.started_at,
            a.finished_at,
            a.outcome,
            a.http_status,
            a.message,
            a.response_excerpt,
            a.dispatcher,
            a.manual,
            a.counted,
        )
        for a in session.scalars(
            select(Attempt).where(Attempt.writeback_id == writeback_id).order_by(Attempt.number)
        )
    ]


def failure_messages(session: Session, ids: Sequence[int]) -> dict[int, list[str | None]]:
    """The messages of each row's failed attempts that counted, oldest first (rows without any left out)."""
    found: dict[int, list[str | None]] = {}
    for batch in chunks(list(ids)):
        query = (
            select(Attempt.writeback_id, Attempt.message)
            .where(
                Attempt.writeback_id.in_(batch),
                Attempt.outcome == AttemptOutcome.ERROR.value,
                Attempt.counted.is_(True),
            )
            .order_by(Attempt.writeback_id, Attempt.number)
        )
        for wid, message in session.execute(query):
            found.setdefault(wid, []).append(message)
    return found


#: Every order of the list, written once: the row fields it sorts by, ending in a unique one so that keyset
#: paging can resume after any row. Each is backed by an index of the same columns (see models); email
#: sorts without regard to case.
SORT_KEYS: dict[SortField, tuple[str, ...]] = {
    "created_at": ("created_at", "id"),
    "ref": ("ref",),
    "kind": ("kind", "created_at", "id"),
    "email": ("email", "id"),
    "master_customer_id": ("master_customer_id", "id"),
    "account": ("account", "created_at", "id"),
    "status": ("status", "created_at", "id"),
    "attempts": ("attempts", "id"),
    "sent_at": ("sent_at", "id"),
    "scheduled_for": ("scheduled_for", "id"),
    "id": ("id",),
}


def _sort_columns(sort: SortField) -> tuple[ColumnElement[Any], ...]:
    return tuple(func.lower(W.email) if name == "email" else W[name] for name in SORT_KEYS[sort])


#: Sorts whose first column may be NULL; NULLs come last in both directions, on both backends.
NULLABLE_SORTS = frozenset(sort for sort, keys in SORT_KEYS.items() if W[keys[0]].nullable)


def _has_value(column: ColumnElement[Any], sort: SortField) -> ColumnElement[bool]:
    """``column`` is not NULL, written so that its index can seek past the NULLs.

    SQLite takes ``IS NOT NULL`` as a range on a plain column's index but not on an expression index:
    sorting a 5-million-row queue by email (lower(email), 1.25 million NULLs) read and sorted the whole
    table, 10 s, where ``>= ''`` seeks, 0.2 ms.
    """
    return column >= "" if sort == "email" else column.is_not(None)


PREFIX_END = "\U0010ffff"


def escape_like(text: str, escape: str = "\\") -> str:
    """``text`` for a LIKE pattern, with its own % and _ taken literally."""
    return text.replace(escape, escape * 2).replace("%", escape + "%").replace("_", escape + "_")


@dataclass(frozen=True)
class WritebackFilter:
    """What the Writeback List and ``list`` show; every part is applied in SQL."""

    statuses: frozenset[Status] = frozenset()
    kinds: frozenset[Kind] = frozenset()
    accounts: frozenset[str] = frozenset()
    created_from: datetime | None = None
    created_to: datetime | None = None
    #: Matches the start of the email, reference or constituent id, or (three characters or more) any part
    #: of a mailing's name.
    text: str | None = None
    retried: bool = False
    #: Processing rows whose lease ran out before this time (their dispatcher stopped).
    stuck_before: datetime | None = None
    #: Rows a person may retry now: Error rows whose automatic retries are used up, and Discarded rows
    #: when the filter asks for Discarded (so "retry everything matching" never undoes a discard that
    #: was not asked for).
    retry_available: bool = False
    mailing_id: int | None = None
    #: Part of the last error, any case; ``…`` (or ``*``) stands for anything, as in a Top errors group.
    error_text: str | None = None
    #: Rows that reached this status (an event of their history) from ``reached_from`` up to
    #: ``reached_to``: the writebacks a bar of the dashboard's charts counted.
    reached: Status | None = None
    reached_from: datetime | None = None
    reached_to: datetime | None = None
    #: Rows with an attempt that failed from ``failed_from`` up to ``failed_to`` (the charts' failures).
    failed_from: datetime | None = None
    failed_to: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.statuses:
            data["statuses"] = sorted(self.statuses)
        if self.kinds:
            data["kinds"] = sorted(self.kinds)
        if self.accounts:
            data["accounts"] = sorted(self.accounts)
        for name in ("created_from", "created_to", "stuck_before"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value.isoformat()
        if self.text:
            data["text"] = self.text
        if self.retried:
            data["retried"] = True
        if self.retry_available:
            data["retry_available"] = True
        if self.mailing_id is not None:
            data["mailing_id"] = self.mailing_id
        if self.error_text:
            data["error_text"] = self.error_text
        if self.reached is not None:
            data["reached"] = self.reached.value
        for name in ("reached_from", "reached_to", "failed_from", "failed_to"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value.isoformat()
        return data

    def conditions(self, *, include_status: bool = True) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if include_status and self.statuses:
            where.append(W.status.in_(sorted(s.value for s in self.statuses)))
        if self.kinds:
            where.append(W.kind.in_(sorted(k.value for k in self.kinds)))
        if self.accounts:
            where.append(W.account.in_(sorted(self.accounts)))
        if self.created_from is not None:
            where.append(W.created_at >= self.created_from)
        if self.created_to is not None:
            where.append(W.created_at < self.created_to)
        if self.retried:
            where.append(W.attempts > 1)
        if self.stuck_before is not None:
            # The holder's lease, as the holder set it, ran out: it stopped without finishing.
            where.append(and_(W.status == Status.PROCESSING.value, W.lease_expires_at < self.stuck_before))
        if self.retry_available:
            exhausted = and_(W.status == Status.ERROR.value, W.attempts >= W.max_attempts)
            if Status.DISCARDED in self.statuses:
                where.append(or_(exhausted, W.status == Status.DISCARDED.value))
            else:
                where.append(exhausted)
        if self.mailing_id is not None:
            where.append(W.mailing_id == self.mailing_id)
        text = (self.text or "").strip()
        if text:
            where.append(_text_condition(text))
        error_text = (self.error_text or "").strip()
        if error_text:
            where.append(func.lower(W.last_error).like(error_like_pattern(error_text), escape="\\"))
        if self.reached is not None:
            where.append(W.id.in_(_reached_ids(self.reached, self.reached_from, self.reached_to)))
        if self.failed_from is not None or self.failed_to is not None:
            where.append(W.id.in_(_failed_ids(self.failed_from, self.failed_to)))
        return where


def _reached_ids(status: Status, start: datetime | None, end: datetime | None) -> Select[Any]:
    """The writebacks with an event reaching ``status`` in [start, end) (index on ``to_status, at``)."""
    query = select(WritebackEvent.writeback_id).where(WritebackEvent.to_status == status.value)
    if start is not None:
        query = query.where(WritebackEvent.at >= start)
    if end is not None:
        query = query.where(WritebackEvent.at < end)
    return query


def _failed_ids(start: datetime | None, end: datetime | None) -> Select[Any]:
    """The writebacks with an attempt that failed in [start, end) (index on ``outcome, finished_at``)."""
    query = select(Attempt.writeback_id).where(Attempt.outcome == AttemptOutcome.ERROR.value)
    if start is not None:
        query = query.where(Attempt.finished_at >= start)
    if end is not None:
        query = query.where(Attempt.finished_at < end)
    return query


#: The filter that chooses nothing: every writeback.
EVERYTHING = WritebackFilter()


def error_like_pattern(text: str) -> str:
    """The LIKE pattern (escape ``\\``) for an error-text filter: a part of the message, any case, with
    ``…`` or ``*`` standing for anything (the placeholders of a Top errors group)."""
    parts = text.strip().lower().replace("*", WILDCARD).split(WILDCARD)
    return "%" + "%".join(escape_like(p) for p in parts) + "%"


def _prefix(column: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    # A range rather than LIKE: it uses the index on both backends, and % or _ mean themselves.
    return and_(column >= prefix, column < prefix + PREFIX_END)


#: The shortest text that is also looked for inside mailing names. A trigram index answers three characters
#: or more; one or two match nearly every mailing (all 1.25 million names of a 5-million-row queue contain
#: "a"), which is no search at all and took seconds.
MAILING_NAME_MIN = 3


class MailingNameMatch(ColumnElement[bool]):
    """``writeback.mailing_id`` is a mailing whose name contains ``part`` (any case), answered by the
    trigram index of each backend (migration 0011) rather than by reading every mailing."""

    inherit_cache = False
    # Not Boolean: on SQLite that renders it as "(…) = 1", which hides the condition from the index.
    type = NullType()  # type: ignore[assignment]  # a condition, but not one SQLite must compare to 1

    def __init__(self, part: str) -> None:
        self.part = part.lower()


@compiles(MailingNameMatch, "sqlite")
def _sqlite_mailing_name(element: MailingNameMatch, compiler: Any, **kw: Any) -> str:
    if "%" in element.part or "_" in element.part:
        # FTS5 uses its index only for a LIKE without ESCAPE: a part with LIKE's own characters is
        # looked for the slow way, reading every mailing's name.
        pattern = compiler.process(bindparam(None, "%" + escape_like(element.part) + "%", unique=True), **kw)
        return (
            "writeback.mailing_id IN (SELECT mailing.id FROM mailing "
            f"WHERE lower(mailing.name) LIKE {pattern} ESCAPE '\\')"
        )
    pattern = compiler.process(bindparam(None, "%" + element.part + "%", unique=True), **kw)
    return f"writeback.mailing_id IN (SELECT rowid FROM mailing_name_search WHERE name LIKE {pattern})"


@compiles(MailingNameMatch)
def _mailing_name(element: MailingNameMatch, compiler: Any, **kw: Any) -> str:
    # ANY(ARRAY(…)) rather than IN (SELECT …): an array computed once is a condition PostgreSQL can use
    # an index for inside the filter's OR (a bitmap OR), where a sub-select makes it scan every row.
    pattern = compiler.process(bindparam(None, "%" + escape_like(element.part) + "%", unique=True), **kw)
    return (
        "writeback.mailing_id = ANY (ARRAY(SELECT mailing.id FROM mailing "
        f"WHERE lower(mailing.name) LIKE {pattern} ESCAPE '\\'))"
    )


def _text_condition(text: str) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [
        _prefix(func.lower(W.email), text.lower()),
        _prefix(W.ref, normalize_ref(text)),
        _prefix(W.master_customer_id, text),
    ]
    if len(text) >= MAILING_NAME_MIN:
        conditions.append(MailingNameMatch(text))
    ref = normalize_ref(text)
    if ref.startswith(REF_PREFIX) and len(ref) > len(REF_PREFIX):
        # A recipient's reference, as support copies it from an activity in CRM360.
        carriers = select(Delivery.writeback_id).where(_prefix(DELIVERY_TABLE.c.ref, ref))
        conditions.append(W.id.in_(carriers.scalar_subquery()))
    return or_(*conditions)


Cursor = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[WritebackRow]
    #: Where the next page starts, or None at the end.
    next_cursor: Cursor | None


def _cursor_of(row: WritebackRow, sort: SortField) -> Cursor:
    def value(column: str) -> Any:
        if column == "email":
            return row.email.lower() if row.email is not None else None
        return getattr(row, column)

    names = SORT_KEYS[sort]
    return tuple(v.value if isinstance(v, (Kind, Status)) else v for v in (value(n) for n in names))


def list_page(
    session: Session,
    flt: WritebackFilter,
    *,
    sort: SortField = "created_at",
    descending: bool = True,
    after: Cursor | None = None,
    limit: int = 100,
) -> Page:
    """One page of the filtered list, continuing after ``after``: keyset paging, never OFFSET."""
    columns = _sort_columns(sort)
    base = select(*ROW_COLUMNS).where(*flt.conditions())
    rows: list[WritebackRow] = []
    nullable = sort in NULLABLE_SORTS
    in_null_part = after is not None and nullable and after[0] is None

    if not in_null_part:
        query = base
        if nullable:
            query = query.where(_has_value(columns[0], sort))
        if after is not None:
            key, bound = tuple_(*columns), tuple_(*after)
            query = query.where(key < bound if descending else key > bound)
        query = _ordered(query, columns, descending).limit(limit + 1)
        rows = [row_from(r) for r in session.execute(query)]
    if nullable and len(rows) <= limit:
        # The rows without a value follow the others, ordered by id.
        query = base.where(columns[0].is_(None))
        if in_null_part and after is not None:
            query = query.where(W.id < after[-1] if descending else W.id > after[-1])
        query = query.order_by(W.id.desc() if descending else W.id).limit(limit + 1 - len(rows))
        rows.extend(row_from(r) for r in session.execute(query))
    more = len(rows) > limit
    rows = with_progress(session, rows[:limit])
    return Page(rows, _cursor_of(rows[-1], sort) if more and rows else None)


def arrivals(
    session: Session,
    flt: WritebackFilter,
    ids: Sequence[int],
    *,
    sort: SortField = "created_at",
    descending: bool = True,
    last: Cursor | None = None,
) -> list[int]:
    """Of ``ids`` (rows changed elsewhere that a list does not show), those that match ``flt`` and sort
    no later than ``last``, the list's last loaded row (None: the list is read to its end) — the rows
    that would now appear among those shown."""
    columns = _sort_columns(sort)
    found: list[int] = []
    for batch in chunks(list(ids)):
        query = select(W.id).where(*flt.conditions(), W.id.in_(batch))
        if last is not None:
            bound = tuple_(*columns) <= tuple_(*last) if not descending else tuple_(*columns) >= tuple_(*last)
            if sort in NULLABLE_SORTS and last[0] is None:
                # The list has reached the rows without a value: every row with one comes before.
                after_id = W.id >= last[-1] if descending else W.id <= last[-1]
                query = query.where(or_(_has_value(columns[0], sort), and_(columns[0].is_(None), after_id)))
            elif sort in NULLABLE_SORTS:
                query = query.where(_has_value(columns[0], sort), bound)
            else:
                query = query.where(bound)
        found.extend(session.scalars(query))
    return found


def _ordered(query: Select[Any], columns: Sequence[ColumnElement[Any]], descending: bool) -> Select[Any]:
    return query.order_by(*(c.desc() if descending else c.asc() for c in columns))


def iter_rows(
    session: Session,
    flt: WritebackFilter,
    *,
    sort: SortField = "created_at",
    descending: bool = True,
    page_size: int = 1000,
    limit: int | None = None,
) -> Iterator[WritebackRow]:
    """Every row of the filter in order, a page at a time, so an export never holds them all."""

    def fetch(after: Cursor | None, size: int) -> tuple[Sequence[WritebackRow], Cursor | None]:
        page = list_page(session, flt, sort=sort, descending=descending, after=after, limit=size)
        return page.rows, page.next_cursor

    return keyset_items(fetch, page_size=page_size, limit=limit)


_T = TypeVar("_T")
_C = TypeVar("_C")


def keyset_items(
    fetch: Callable[[_C | None, int], tuple[Sequence[_T], _C | None]],
    *,
    page_size: int,
    limit: int | None = None,
) -> Iterator[_T]:
    """Every item of a keyset-paged query, a page at a time: ``fetch(after, size)`` gives a page and the
    cursor of the next one (None at the end); ``limit``: at most so many items."""
    after: _C | None = None
    given = 0
    while True:
        size = page_size if limit is None else min(page_size, limit - given)
        if size <= 0:
            return
        items, after = fetch(after, size)
        yield from items
        given += len(items)
        if after is None:
            return


def list_accounts(session: Session) -> list[str]:
    """Every Informz account that has writebacks or mailings, for the account filter."""
    accounts = set(session.scalars(select(W.account).distinct()))
    accounts.update(session.scalars(select(Mailing.account).distinct()))
    return sorted(accounts)


def count_matching(session: Session, flt: WritebackFilter, *, limit: int | None = None) -> int:
    """Rows matching ``flt``, counted up to ``limit`` (a count past a cap need not go on)."""
    chosen = select(W.id).where(*flt.conditions())
    if limit is not None:
        chosen = chosen.limit(limit)
    return int(session.execute(select(func.count()).select_from(chosen.subquery())).scalar_one())


def matching_ids_after(session: Session, flt: WritebackFilter, *, after: int, limit: int) -> list[int]:
    """The ids of up to ``limit`` rows matching ``flt`` past id ``after``, in id order (for batches)."""
    query = select(W.id).where(*flt.conditions(), W.id > after).order_by(W.id).limit(limit)
    return list(session.scalars(query))


def count_by_status(session: Session, flt: WritebackFilter | None = None) -> dict[Status, int]:
    """Rows per status under a filter (its own status choice left out, so every status has a count),
    exactly. A filter of kinds and accounts alone reads the kept totals (constant time); any other
    condition counts the matching rows, however many: ``bounded_counts`` is what a screen asks for."""
    if _kept(flt):
        return _kept_totals(session, flt)
    where = flt.conditions(include_status=False) if flt else []
    counts = dict.fromkeys(Status, 0)
    for status, n in session.execute(select(W.status, func.count()).where(*where).group_by(W.status)):
        counts[Status(status)] = n
    return counts


def _kept(flt: WritebackFilter | None) -> bool:
    """Whether the totals the database keeps answer ``flt``: it chooses only statuses, kinds, accounts."""
    return (
        flt is None
        or replace(flt, statuses=frozenset(), kinds=frozenset(), accounts=frozenset()) == EVERYTHING
    )


def _kept_totals(session: Session, flt: WritebackFilter | None) -> dict[Status, int]:
    if flt is None:
        return counters.totals(session)
    return counters.totals(session, kinds=flt.kinds, accounts=flt.accounts)


#: A filtered count stops here: past it, a screen shows "2,000+" and counts exactly on request. Each row
#: counted is a lookup in the table wherever the row lies: at 10,000 the count of a text filter took three
#: times its page on a 5-million-row queue; 2,000 stays well under it on both backends.
COUNT_CAP = 2_000


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """Rows per status under a filter (without its status choice), exact or counted up to a cap."""

    counts: dict[Status, int]
    #: Counting stopped at the cap: each count is then a lower bound ("at least"), exact otherwise.
    bounded: bool = False

    def total(self, statuses: Iterable[Status] | None = None) -> int:
        wanted = frozenset(statuses) if statuses else frozenset(Status)
        return sum(n for s, n in self.counts.items() if s in wanted)

    def text(self, n: int) -> str:
        """``n`` as a screen shows it: "1,912" or, when bounded, "1,912+"."""
        return f"{n:,}+" if self.bounded else f"{n:,}"


def bounded_counts(
    session: Session, flt: WritebackFilter | None = None, *, cap: int | None = None
) -> StatusCounts:
    """Rows per status under ``flt``, at a cost that does not grow with the queue.

    With no condition but statuses, kinds and accounts: the kept totals, exact. Otherwise the first
    ``cap + 1`` matching rows are counted by status: exact when there are no more than ``cap``, a lower
    bound for each status (``bounded``) when there are. ``cap`` defaults to ``COUNT_CAP``.
    """
    cap = COUNT_CAP if cap is None else cap
    if _kept(flt):
        return StatusCounts(_kept_totals(session, flt))
    where = flt.conditions(include_status=False) if flt else []
    sample = select(W.status).where(*where).limit(cap + 1).subquery()
    counts = dict.fromkeys(Status, 0)
    for status, n in session.execute(select(sample.c.status, func.count()).group_by(sample.c.status)):
        counts[Status(status)] = int(n)
    return StatusCounts(counts, bounded=sum(counts.values()) > cap)


@dataclass(frozen=True, slots=True)
class ErrorMessageCount:
    """Rows in Error now with one last error message, and when they last failed."""

    message: str
    rows: int
    #: Of those rows, how many failed last within the 24 hours before ``now``, and in the 24 before that.
    last_day: int
    day_before: int


def error_message_counts(
    session: Session, *, now: datetime, flt: WritebackFilter | None = None
) -> list[ErrorMessageCount]:
    """Error rows per exact last error, for grouping by reason (``messages.error_group``).

    One pass over the Error rows (the status index), grouped in SQL; the caller groups the messages
    further, so what comes back is one row per distinct message, not per writeback.
    """
    day, two_days = now - timedelta(days=1), now - timedelta(days=2)
    failed = W.updated_at  # an Error row last changed when it last failed
    query = (
        select(
            W.last_error,
            func.count(),
            func.sum(case((failed >= day, 1), else_=0)),
            func.sum(case((and_(failed >= two_days, failed < day), 1), else_=0)),
        )
        .where(W.status == Status.ERROR.value, *(flt.conditions(include_status=False) if flt else []))
        .group_by(W.last_error)
    )
    return [
        ErrorMessageCount(message or "", int(n), int(recent or 0), int(before or 0))
        for message, n, recent, before in session.execute(query)
    ]


def mailing_recipient_counts(session: Session, mailing_id: int) -> tuple[int, int]:
    """(recipients, recipients known in Personify360) of a mailing."""
    total, remote = session.execute(
        select(
            func.count(),
            func.count(MailingRecipient.master_customer_id),
        ).where(MailingRecipient.mailing_id == mailing_id)
    ).one()
    return int(total), int(remote)


@dataclass(frozen=True, slots=True)
class MailingRow:
    """A mailing as staff choose it for mailing activity."""

    id: int
    account: str
    name: str
    sent_at: datetime | None
    recipients: int
    remote_recipients: int
    #: The mailing's mailing-activity writeback, if it has one.
    activity_id: int | None
    activity_ref: str | None
    activity_status: Status | None
    scheduled_for: datetime | None


def list_mailings(session: Session, *, text: str | None = None, limit: int = 200) -> list[MailingRow]:
    """Mailings, most recently sent first, whose name contains ``text`` (any case, taken literally)."""
    query = select(Mailing.id, Mailing.account, Mailing.name, Mailing.sent_at)
    if text and text.strip():
        pattern = "%" + escape_like(text.strip().lower()) + "%"
        query = query.where(func.lower(Mailing.name).like(pattern, escape="\\"))
    mailings = session.execute(
        query.order_by(Mailing.sent_at.desc().nulls_last(), Mailing.id.desc()).limit(limit)
    ).all()
    ids = [m.id for m in mailings]
    counts: dict[int, tuple[int, int]] = {}
    activity: dict[int, Any] = {}
    for batch in chunks(ids):
        for mid, total, remote in session.execute(
            select(
                MailingRecipient.mailing_id,
                func.count(),
                func.count(MailingRecipient.master_customer_id),
            )
            .where(MailingRecipient.mailing_id.in_(batch))
            .group_by(MailingRecipient.mailing_id)
        ):
            counts[mid] = (int(total), int(remote))
        for r in session.execute(
            select(W.id, W.ref, W.status, W.scheduled_for, W.mailing_id)
            .where(W.mailing_id.in_(batch), W.kind == Kind.MAILING_ACTIVITY.value)
            .order_by(W.id)
        ):
            activity[r.mailing_id] = r
    rows = []
    for m in mailings:
        total, remote = counts.get(m.id, (0, 0))
        a = activity.get(m.id)
        rows.append(
            MailingRow(
                id=m.id,
                account=m.account,
                name=m.name,
                sent_at=m.sent_at,
                recipients=total,
                remote_recipients=remote,
                activity_id=a.id if a else None,
                activity_ref=a.ref if a else None,
                activity_status=Status(a.status) if a else None,
                scheduled_for=a.scheduled_for if a else None,
            )
        )
    return rows
