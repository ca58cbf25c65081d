"""Reading the queue by error: the error-text filter, counts per message with their last day, the
failures of a row, and counting and paging ids for actions on all matching rows; on both backends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, fail, item, minutes, run
from writeback_console.domain import Status
from writeback_console.error_groups import error_reason
from writeback_console.store import listing
from writeback_console.store.listing import WritebackFilter

Factory = sessionmaker[Session]


def failed(factory: Factory, messages: list[str], at: list[int]) -> list[int]:
    """One row per message, failed once at T0 + ``at`` hours."""
    ids = enqueue(factory, *[item(email=f"p{n}@example.org") for n in range(len(messages))])
    run(factory, T0)
    for wid, message, hours in zip(ids, messages, at, strict=True):
        fail(factory, wid, T0 + timedelta(hours=hours), message)
    return ids


def test_the_error_text_filter_matches_any_case_with_wildcards_taken_from_a_reason(factory: Factory) -> None:
    ids = failed(
        factory,
        [
            "Validation issues: Customer 000000000017-0 does not exist.",
            "Validation issues: Customer 000000000042-0 does not exist.",
            "no answer from Personify360 within 30 s (read timeout)",
            "100% of 5_000 failed",
        ],
        [0, 0, 0, 0],
    )
    with factory() as session:

        def matching(text: str) -> list[int]:
            return sorted(r.id for r in listing.iter_rows(session, WritebackFilter(error_text=text)))

        reason = error_reason("Validation issues: Customer 000000000017-0 does not exist.")
        assert matching(reason) == sorted(ids[:2])
        assert matching("DOES NOT EXIST") == sorted(ids[:2])
        assert matching("customer * exist") == sorted(ids[:2])
        assert matching("read timeout") == [ids[2]]
        # % and _ are themselves, not wildcards.
        assert matching("100%") == [ids[3]] and matching("5_0") == [ids[3]] and matching("1_0") == []


def test_error_counts_per_message_say_how_many_failed_in_the_last_day_and_the_day_before(
    factory: Factory,
) -> None:
    failed(factory, ["A 1", "A 1", "B", "A 1", "C"], [1, 30, 30, 47, -1])
    with factory() as session:
        counts = listing.error_message_counts(session, now=T0 + timedelta(hours=48))
    assert sorted((c.message, c.rows, c.last_day, c.day_before) for c in counts) == [
        ("A 1", 3, 2, 1),  # 18 h and 1 h ago: the last day; 47 h ago: the day before
        ("B", 1, 1, 0),
        ("C", 1, 0, 0),  # 49 h ago: in neither
    ]


def test_count_matching_stops_at_its_limit_and_ids_come_in_batches_after_an_id(factory: Factory) -> None:
    ids = failed(factory, [f"failure {n}" for n in range(5)], [0] * 5)
    flt = WritebackFilter(statuses=frozenset({Status.ERROR}))
    with factory() as session:
        assert listing.count_matching(session, flt) == 5
        assert listing.count_matching(session, flt, limit=3) == 3
        assert listing.matching_ids_after(session, flt, after=0, limit=2) == ids[:2]
        assert listing.matching_ids_after(session, flt, after=ids[1], limit=10) == ids[2:]


def test_failure_messages_are_a_row_s_failed_attempts_in_order(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    for n in range(3):
        at = T0 + minutes(10 * n)
        run(factory, at)
        fail(factory, wid, at + timedelta(seconds=1), f"failure {n + 1}")
    with factory() as session:
        assert listing.failure_messages(session, [wid]) == {wid: ["failure 1", "failure 2", "failure 3"]}


def test_the_last_day_counts_by_when_a_row_failed_not_when_its_retry_is_due(factory: Factory) -> None:
    """A failure 24 h 5 min ago whose retry came due ten minutes later failed the day before."""
    (wid,) = enqueue(factory, item(email="late@example.org"))
    run(factory, T0)
    fail(factory, wid, T0, "late", retry_after=timedelta(minutes=10))
    with factory() as session:
        (count,) = listing.error_message_counts(session, now=T0 + timedelta(hours=24, minutes=5))
    assert (count.last_day, count.day_before) == (0, 1)
