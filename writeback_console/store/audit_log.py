"""Reading the audit log: every recorded action, newest first, filtered and keyset-paged by (at, id),
with the rows each action touched, and each entry in words for the Audit log page and ``audit``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, union_all
from sqlalchemy.orm import Session

from writeback_console.domain import AuditAction, normalize_ref
from writeback_console.store.audit_trail import filter_words
from writeback_console.store.listing import escape_like, keyset_items
from writeback_console.store.models import AuditEvent, AuditEventRow, PrunedWriteback, Writeback

#: How many references each entry of a page carries ("which ones", at a glance).
FIRST_REFS = 3
#: Events whose first references are read in one statement (a UNION ALL of this many parts; SQLite
#: allows 500).
REFS_PER_STATEMENT = 100
#: Settings whose values are never recorded nor shown: their change is recorded as "changed".
SECRET_KEYS = frozenset({"password"})

E = AuditEvent
R = AuditEventRow


@dataclass(frozen=True)
class AuditFilter:
    """Which audit entries to show; every part is applied in SQL."""

    #: The start of the person's name, any case (``alice`` finds ``Alice@desk``); with ``exact_actor``,
    #: the whole name, any case.
    actor: str | None = None
    exact_actor: bool = False
    #: One or several actions; empty: every action.
    actions: frozenset[AuditAction] = frozenset()
    #: At or after (aware).
    since: datetime | None = None
    #: Before (aware).
    until: datetime | None = None
    #: Entries that touched the writeback with this reference (also one retention has since deleted).
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded action as the log shows it."""

    id: int
    at: datetime
    actor: str
    action: AuditAction
    #: How many rows it touched (a prune counts rows it does not link one by one).
    row_count: int
    filter: Mapping[str, Any] | None
    detail: Mapping[str, Any] | None
    #: The PostgreSQL user who wrote it; None on SQLite.
    db_user: str | None
    #: The references of its first linked rows, in id order (at most ``FIRST_REFS``).
    first_refs: tuple[str, ...]

    @property
    def rows_listed(self) -> bool:
        """Whether its rows are linked one by one (a prune's are not)."""
        return bool(self.first_refs)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "db_user": self.db_user,
            "action": self.action.value,
            "row_count": self.row_count,
            "first_refs": list(self.first_refs),
            "filter": dict(self.filter) if self.filter is not None else None,
            "detail": dict(self.detail) if self.detail is not None else None,
            "words": entry_words(self),
        }


Cursor = tuple[datetime, int]


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    #: Where the next page starts, or None at the end.
    next_cursor: Cursor | None


@dataclass(frozen=True, slots=True)
class EventRow:
    """One writeback an entry touched."""

    writeback_id: int
    ref: str
    #: Still in the queue (False: retention has deleted it since).
    in_queue: bool


@dataclass(frozen=True, slots=True)
class EventRowsPage:
    rows: list[EventRow]
    #: The writeback id the next page starts after, or None at the end.
    next_after: int | None


# --- the reference -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedRef:
    writeback_id: int
    #: The prune that deleted it, when retention has.
    pruned_by_event: int | None


def resolve_ref(session: Session, ref: str) -> ResolvedRef | None:
    """The writeback a reference names, in the queue or pruned (both references are unique); None if none."""
    wanted = normalize_ref(ref)
    found = session.execute(select(Writeback.id).where(Writeback.ref == wanted)).scalar_one_or_none()
    if found is not None:
        return ResolvedRef(int(found), None)
    pruned = session.execute(
        select(PrunedWriteback.writeback_id, PrunedWriteback.audit_event_id).where(
            PrunedWriteback.ref == wanted
        )
    ).first()
    if pruned is None:
        return None
    return ResolvedRef(int(pruned[0]), int(pruned[1]))


# --- the entries -------------------------------------------------------------------------------


def _conditions(session: Session, flt: AuditFilter) -> list[ColumnElement[bool]] | None:
    """The filter's conditions; None when it can match nothing (a reference no writeback ever had)."""
    where: list[ColumnElement[bool]] = []
    actor = (flt.actor or "").strip().lower()
    if actor:
        pattern = escape_like(actor) + ("" if flt.exact_actor else "%")
        where.append(func.lower(E.actor).like(pattern, escape="\\"))
    if flt.actions:
        where.append(E.action.in_(sorted(a.value for a in flt.actions)))
    if flt.since is not None:
        where.append(E.at >= flt.since)
    if flt.until is not None:
        where.append(E.at < flt.until)
    ref = (flt.ref or "").strip()
    if ref:
        resolved = resolve_ref(session, ref)
        if resolved is None:
            return None
        touched = select(R.event_id).where(R.writeback_id == resolved.writeback_id)
        condition: ColumnElement[bool] = E.id.in_(touched.scalar_subquery())
        if resolved.pruned_by_event is not None:
            condition = or_(condition, E.id == resolved.pruned_by_event)
        where.append(condition)
    return where


def audit_page(
    session: Session, flt: AuditFilter, *, after: Cursor | None = None, limit: int = 100
) -> AuditPage:
    """One page of entries, newest first, continuing after ``after``: keyset paging on (at, id), never
    OFFSET; each page reads at most ``limit + 1`` entries and the first references of those."""
    where = _conditions(session, flt)
    if where is None:
        return AuditPage([], None)
    query = select(E).where(*where)
    if after is not None:
        at, event_id = after
        # Spelt out rather than a row comparison, so that the index on ``at`` bounds the scan.
        query = query.where(E.at <= at, or_(E.at < at, and_(E.at == at, E.id < event_id)))
    query = query.order_by(E.at.desc(), E.id.desc()).limit(limit + 1)
    events = list(session.scalars(query))
    more = len(events) > limit
    events = events[:limit]
    refs = _first_refs(session, [e.id for e in events])
    entries = [_entry(e, refs.get(e.id, ())) for e in events]
    last = entries[-1] if entries else None
    return AuditPage(entries, (last.at, last.id) if more and last is not None else None)


def iter_entries(
    session: Session, flt: AuditFilter, *, limit: int | None = None, page_size: int = 500
) -> Iterator[AuditEntry]:
    """Every matching entry, newest first, read a page at a time (``limit``: at most so many)."""

    def fetch(after: Cursor | None, size: int) -> tuple[Sequence[AuditEntry], Cursor | None]:
        page = audit_page(session, flt, after=after, limit=size)
        return page.entries, page.next_cursor

    return keyset_items(fetch, page_size=page_size, limit=limit)


def get_entry(session: Session, event_id: int) -> AuditEntry | None:
    event = session.get(E, event_id)
    if event is None:
        return None
    return _entry(event, _first_refs(session, [event.id]).get(event.id, ()))


def _entry(e: AuditEvent, refs: tuple[str, ...]) -> AuditEntry:
    return AuditEntry(
        int(e.id),
        e.at,
        e.actor,
        AuditAction(e.action),
        int(e.row_count or 0),
        e.filter,
        e.detail,
        e.db_user,
        refs,
    )


def _first_refs(session: Session, event_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """The first ``FIRST_REFS`` references of each event, a few index seeks each (the primary key of
    ``audit_event_row`` starts with the event), never all the rows of a bulk action."""
    found: dict[int, list[str]] = {}
    for start in range(0, len(event_ids), REFS_PER_STATEMENT):
        batch = event_ids[start : start + REFS_PER_STATEMENT]
        parts = [
            select(R.event_id, R.writeback_id, R.ref)
            .where(R.event_id == event_id)
            .order_by(R.writeback_id)
            .limit(FIRST_REFS)
            .subquery()
            .select()
            for event_id in batch
        ]
        query = parts[0] if len(parts) == 1 else union_all(*parts)
        for event_id, _wid, ref in sorted(session.execute(query), key=lambda r: (r[0], r[1])):
            found.setdefault(int(event_id), []).append(ref)
    return {k: tuple(v) for k, v in found.items()}


def event_rows(
    session: Session, event_id: int, *, after: int | None = None, limit: int = 200
) -> EventRowsPage:
    """The writebacks an entry touched, in id order, a page at a time after writeback id ``after``."""
    query = select(R.writeback_id, R.ref).where(R.event_id == event_id)
    if after is not None:
        query = query.where(R.writeback_id > after)
    found = session.execute(query.order_by(R.writeback_id).limit(limit + 1)).all()
    more = len(found) > limit
    found = found[:limit]
    ids = [int(r[0]) for r in found]
    present = set(session.scalars(select(Writeback.id).where(Writeback.id.in_(ids)))) if ids else set()
    rows = [EventRow(int(wid), ref, int(wid) in present) for wid, ref in found]
    return EventRowsPage(rows, rows[-1].writeback_id if more and rows else None)


# --- in words ----------------------------------------------------------------------------------

ACTION_LABELS: dict[AuditAction, str] = {
    AuditAction.ENQUEUE: "Enqueue",
    AuditAction.IMPORT: "Import",
    AuditAction.RETRY: "Retry",
    AuditAction.SCHEDULE: "Schedule",
    AuditAction.SEND_NOW: "Send now",
    AuditAction.RESCHEDULE: "Reschedule",
    AuditAction.CANCEL: "Cancel",
    AuditAction.DISCARD: "Discard",
    AuditAction.AUTO_SCHEDULE: "Automatic schedule",
    AuditAction.SETTING: "Account setting",
    AuditAction.PRUNE: "Prune",
    AuditAction.EXPORT: "Export",
    AuditAction.CONSOLE_SETTING: "Console setting",
}


def action_label(action: AuditAction) -> str:
    return ACTION_LABELS.get(action, action.value)


def value_words(value: Any) -> str:
    """A recorded setting value as a person reads it: on/off, "not set", text as is, the rest as JSON."""
    if value is None or value == "":
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _setting_words(detail: Mapping[str, Any], *, account: bool) -> str:
    key = str(detail.get("key", "?"))
    if key in SECRET_KEYS or detail.get("changed") is True:
        return f"{key} changed"
    where = ""
    if account:
        name = detail.get("account")
        where = " for every account" if name in (None, "*") else f" for account {name}"
    return f"{key}{where}: {value_words(detail.get('from'))} → {value_words(detail.get('to'))}"


def detail_text(entry: AuditEntry) -> str:
    """The entry's detail in words: a setting's old and new value, an export's file, else name=value pairs."""
    detail = entry.detail
    if not detail:
        return ""
    if entry.action is AuditAction.SETTING and "key" in detail:
        return _setting_words(detail, account=True)
    if entry.action is AuditAction.CONSOLE_SETTING and "key" in detail:
        return _setting_words(detail, account=False)
    if entry.action is AuditAction.EXPORT and "file" in detail:
        rest = {k: v for k, v in detail.items() if k != "file"}
        said = f"to {detail['file']}"
        return f"{said}, {_pairs(rest)}" if rest else said
    return _pairs(detail)


def _pairs(detail: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{n}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}" for n, v in detail.items()
    )


def filter_text(entry: AuditEntry) -> str:
    """The filter an entry was taken under, in words; empty when none was recorded."""
    if entry.filter is not None and not entry.filter:
        return "filter: none (every row)"
    return filter_words(entry.filter)


def entry_words(entry: AuditEntry) -> str:
    """The filter an entry was taken under and its detail, on one line ("Filter / detail")."""
    return "; ".join(w for w in (filter_text(entry), detail_text(entry)) if w)


def rows_words(entry: AuditEntry) -> str:
    """The rows column: how many, and the first references."""
    if not entry.row_count and not entry.first_refs:
        return "—"
    count = f"{entry.row_count:,}"
    if not entry.first_refs:
        return count
    more = ", …" if entry.row_count > len(entry.first_refs) else ""
    return f"{count}: {', '.join(entry.first_refs)}{more}"
