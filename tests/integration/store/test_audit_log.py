"""The audit log as the Audit log page and ``audit`` read it: newest first, keyset-paged, filtered in SQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, fail, item, minutes, run, send
from writeback_console import importer, operations
from writeback_console.domain import AuditAction, Status
from writeback_console.store import audit_log, audit_trail, listing, switches
from writeback_console.store.audit_log import AuditFilter
from writeback_console.store.engine import read_session, write_transaction

Factory = sessionmaker[Session]
EVERY = AuditFilter()
GOOD_LINE = {
    "kind": "unsubscribe",
    "account": "Main",
    "reason": "Too many emails",
    "master_customer_id": "000000001475",
    "sub_customer_id": 0,
    "occurred_at": "2026-11-20T10:00:00Z",
}


def record(factory: Factory, *, actor: str, action: AuditAction, at_minute: float, rows: int = 0) -> int:
    with write_transaction(factory) as session:
        return audit_trail.record_audit(
            session,
            actor=actor,
            action=action,
            rows=[(9000 + n, f"WB-FAKE{n:04d}") for n in range(rows)],
            now=T0 + minutes(at_minute),
        )


def all_pages(factory: Factory, flt: AuditFilter, limit: int) -> list[list[int]]:
    pages: list[list[int]] = []
    after = None
    with read_session(factory) as session:
        while True:
            page = audit_log.audit_page(session, flt, after=after, limit=limit)
            pages.append([e.id for e in page.entries])
            if page.next_cursor is None:
                return pages
            after = page.next_cursor


def ids_of(factory: Factory, flt: AuditFilter) -> list[int]:
    with read_session(factory) as session:
        return [e.id for e in audit_log.iter_entries(session, flt)]


def error_rows(factory: Factory, n: int) -> list[int]:
    """``n`` Error rows whose automatic attempts are used up (three failed runs)."""
    ids = enqueue(factory, *(item(email=f"p{k}@example.org") for k in range(n)))
    for attempt in range(3):
        at = T0 + minutes(10 * attempt + 1)
        assert sorted(c.id for c in run(factory, at)) == sorted(ids)
        for wid in ids:
            fail(factory, wid, at + timedelta(seconds=5), message="Activity Code NEWS is inactive.")
    return ids


def test_entries_come_newest_first_and_pages_resume_inside_a_tie_in_time(factory: Factory) -> None:
    early = record(factory, actor="ann", action=AuditAction.ENQUEUE, at_minute=1)
    tied = [record(factory, actor="bob", action=AuditAction.RETRY, at_minute=5) for _ in range(7)]
    late = record(factory, actor="cy", action=AuditAction.CANCEL, at_minute=9)

    pages = all_pages(factory, EVERY, limit=3)

    assert [len(p) for p in pages] == [3, 3, 3]
    assert [i for p in pages for i in p] == [late, *reversed(tied), early]


def test_a_bulk_retry_is_found_with_its_filter_and_every_row(factory: Factory) -> None:
    ids = error_rows(factory, 5)
    flt = listing.WritebackFilter(statuses=frozenset({Status.ERROR}), error_text="inactive")
    done = operations.act_on_matching(factory, flt, "retry", actor="Advisor@desk", batch_size=2)
    assert done.changed == 5

    with read_session(factory) as session:
        entries = list(audit_log.iter_entries(session, AuditFilter(actions=frozenset({AuditAction.RETRY}))))
        # Each batch is its own transaction and its own entry, all with the filter.
        assert sorted(e.id for e in entries) == sorted(done.audit_event_ids)
        assert [e.row_count for e in entries] == [1, 2, 2]
        for entry in entries:
            assert audit_log.entry_words(entry).startswith(
                'all matching: status=error, error contains "inactive"'
            )
            assert entry.actor == "Advisor@desk"
            assert entry.rows_listed
        refs = {listing.get_writeback(session, wid).ref for wid in ids}
        seen: list[str] = []
        for entry in entries:
            after = None
            while True:
                page = audit_log.event_rows(session, entry.id, after=after, limit=1)
                seen.extend(r.ref for r in page.rows)
                assert all(r.in_queue for r in page.rows)
                if page.next_after is None:
                    break
                after = page.next_after
        assert sorted(seen) == sorted(refs)
        assert {r for e in entries for r in e.first_refs} == refs


def test_entries_without_rows_are_listed_and_say_what_changed(factory: Factory) -> None:
    operations.set_account_switches(factory, {switches.WRITEBACK_ENABLED: False}, actor="ann")
    operations.set_writeback_by_account(factory, {"Chapter": False}, actor="ann")

    with read_session(factory) as session:
        entries = list(audit_log.iter_entries(session, EVERY))
    assert [e.action for e in entries] == [AuditAction.SETTING, AuditAction.SETTING]
    assert all(e.row_count == 0 and not e.rows_listed for e in entries)
    assert [audit_log.entry_words(e) for e in entries] == [
        "writeback_enabled for account Chapter: not set → off",
        "writeback_enabled for every account: not set → off",
    ]
    assert audit_log.rows_words(entries[0]) == "—"


def test_a_person_is_found_by_the_start_of_their_name_in_any_case(factory: Factory) -> None:
    alice = record(factory, actor="Alice@desk", action=AuditAction.RETRY, at_minute=1)
    alicia = record(factory, actor="alicia@desk", action=AuditAction.RETRY, at_minute=2)
    record(factory, actor="bob@desk", action=AuditAction.RETRY, at_minute=3)
    # LIKE's own characters in a name mean themselves.
    odd = record(factory, actor="a_b%c", action=AuditAction.RETRY, at_minute=4)
    record(factory, actor="axbyc", action=AuditAction.RETRY, at_minute=5)

    assert ids_of(factory, AuditFilter(actor="ALI")) == [alicia, alice]
    assert ids_of(factory, AuditFilter(actor="alice@DESK", exact_actor=True)) == [alice]
    assert ids_of(factory, AuditFilter(actor="alice", exact_actor=True)) == []
    assert ids_of(factory, AuditFilter(actor="a_b%")) == [odd]


def test_actions_and_a_date_range_narrow_the_log(factory: Factory) -> None:
    retry = record(factory, actor="a", action=AuditAction.RETRY, at_minute=10)
    discard = record(factory, actor="a", action=AuditAction.DISCARD, at_minute=20)
    export = record(factory, actor="a", action=AuditAction.EXPORT, at_minute=30)

    both = frozenset({AuditAction.RETRY, AuditAction.EXPORT})
    assert ids_of(factory, AuditFilter(actions=both)) == [export, retry]
    # Since is inclusive, until exclusive.
    window = AuditFilter(since=T0 + minutes(10), until=T0 + minutes(30))
    assert ids_of(factory, window) == [discard, retry]
    assert ids_of(factory, AuditFilter(since=T0 + minutes(11))) == [export, discard]


def test_a_reference_finds_the_entries_of_its_writeback_also_after_it_was_pruned(factory: Factory) -> None:
    kept, gone = enqueue(factory, item(email="kept@example.org"), item(email="gone@example.org"))
    with read_session(factory) as session:
        kept_ref = listing.get_writeback(session, kept).ref
        gone_ref = listing.get_writeback(session, gone).ref
    with write_transaction(factory) as session:
        both = audit_trail.record_audit(
            session,
            actor="a",
            action=AuditAction.SCHEDULE,
            rows=[(kept, kept_ref), (gone, gone_ref)],
            now=T0 + minutes(1),
        )
        only_gone = audit_trail.record_audit(
            session, actor="a", action=AuditAction.CANCEL, rows=[(gone, gone_ref)], now=T0 + minutes(2)
        )
    assert gone in {c.id for c in run(factory, T0 + minutes(3))}
    send(factory, gone, T0 + minutes(3))
    pruned = operations.prune(factory, 30, actor="a", now=T0 + timedelta(days=40))
    assert pruned.total == 1

    assert ids_of(factory, AuditFilter(ref=kept_ref.lower())) == [both]
    prune_entry, *rest = ids_of(factory, AuditFilter(ref=gone_ref))
    assert rest == [only_gone, both]
    with read_session(factory) as session:
        entry = audit_log.get_entry(session, prune_entry)
        assert entry is not None and entry.action is AuditAction.PRUNE
        page = audit_log.event_rows(session, both)
        assert {(r.ref, r.in_queue) for r in page.rows} == {(kept_ref, True), (gone_ref, False)}
    assert ids_of(factory, AuditFilter(ref="WB-NEVERGIVEN")) == []


def test_a_page_reads_only_its_own_entries_and_their_first_references(factory: Factory) -> None:
    big = record(factory, actor="a", action=AuditAction.RETRY, at_minute=1, rows=250)
    small = record(factory, actor="a", action=AuditAction.RETRY, at_minute=2, rows=2)
    with read_session(factory) as session:
        page = audit_log.audit_page(session, EVERY, limit=1)
        assert [e.id for e in page.entries] == [small]
        assert page.entries[0].first_refs == ("WB-FAKE0000", "WB-FAKE0001")
        (entry,) = audit_log.audit_page(session, EVERY, after=page.next_cursor, limit=1).entries
    assert entry.id == big
    assert entry.first_refs == ("WB-FAKE0000", "WB-FAKE0001", "WB-FAKE0002")
    assert audit_log.rows_words(entry) == "250: WB-FAKE0000, WB-FAKE0001, WB-FAKE0002, …"


def test_a_reference_finds_the_import_that_created_its_writeback_with_every_imported_row(
    factory: Factory, tmp_path: Path
) -> None:
    lines = [json.dumps(GOOD_LINE | {"email": f"p{k}@example.org"}) for k in range(5)]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # Batches of two, so the rows are linked over several of them.
    report = importer.import_file(path, factory, actor="importer@desk", now=T0, batch=2)
    assert report.added == 5

    with read_session(factory) as session:
        refs = [r.ref for r in listing.iter_rows(session, listing.WritebackFilter())]
        assert len(refs) == 5
        page = audit_log.audit_page(session, AuditFilter(ref=refs[2]))
        (entry,) = page.entries
        assert entry.action is AuditAction.IMPORT and entry.actor == "importer@desk"
        assert entry.row_count == 5 and entry.rows_listed
        assert entry.detail is not None and entry.detail["file"] == "batch.jsonl"
        linked = audit_log.event_rows(session, entry.id, limit=100)
        assert sorted(r.ref for r in linked.rows) == sorted(refs)
        assert all(r.in_queue for r in linked.rows)
