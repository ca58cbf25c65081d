"""The filtered, keyset-paged list gives exactly the rows and order a plain reading of the table gives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, item
from tests.helpers.fixtures import BACKENDS, create_pg_database, drop_pg_database
from writeback_console.demo.seed import seed
from writeback_console.domain import Kind, Status
from writeback_console.store import listing, operator_actions
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.migrate import upgrade
from writeback_console.store.models import Mailing, Writeback
from writeback_console.store.rows import WritebackRow

Factory = sessionmaker[Session]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def seeded_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Factory, list[WritebackRow]]]:
    """One seeded database per backend, shared by the read-only tests of this module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('listing') / 'q.sqlite3'}"
    else:
        url = create_pg_database("wblist")
    engine = make_engine(url)
    upgrade(engine)
    seed(engine, 1500, now=NOW, random_seed=7)
    factory = make_session_factory(engine)
    with factory() as session:
        rows = list(listing.iter_rows(session, listing.WritebackFilter(), sort="id", descending=False))
    yield factory, rows
    engine.dispose()
    if request.param == "postgresql":
        drop_pg_database(url)


@pytest.fixture
def seeded(seeded_store: tuple[Factory, list[WritebackRow]]) -> list[WritebackRow]:
    return seeded_store[1]


@pytest.fixture
def seeded_factory(seeded_store: tuple[Factory, list[WritebackRow]]) -> Factory:
    return seeded_store[0]


def _key(row: WritebackRow, sort: str) -> tuple[Any, ...]:
    email = row.email.lower() if row.email is not None else None
    return {
        "created_at": (row.created_at, row.id),
        "ref": (row.ref,),
        "kind": (row.kind.value, row.created_at, row.id),
        "email": (email, row.id),
        "master_customer_id": (row.master_customer_id, row.id),
        "account": (row.account, row.created_at, row.id),
        "status": (row.status.value, row.created_at, row.id),
        "attempts": (row.attempts, row.id),
        "sent_at": (row.sent_at, row.id),
        "scheduled_for": (row.scheduled_for, row.id),
        "id": (row.id,),
    }[sort]


def _reference(rows: list[WritebackRow], sort: str, descending: bool) -> list[int]:
    """What the list must show: sorted in Python, rows without a value last in both directions."""
    present = [r for r in rows if _key(r, sort)[0] is not None]
    missing = [r for r in rows if _key(r, sort)[0] is None]
    present.sort(key=lambda r: _key(r, sort), reverse=descending)
    missing.sort(key=lambda r: r.id, reverse=descending)
    return [r.id for r in present + missing]


@pytest.mark.parametrize("descending", [True, False], ids=["desc", "asc"])
@pytest.mark.parametrize(
    "sort", list(listing.NULLABLE_SORTS | {"created_at", "ref", "kind", "status", "attempts"})
)
def test_keyset_pages_follow_each_sort_exactly(
    seeded: list[WritebackRow], seeded_factory: Factory, sort: listing.SortField, descending: bool
) -> None:
    with seeded_factory() as session:
        shown = [
            r.id
            for r in listing.iter_rows(
                session, listing.WritebackFilter(), sort=sort, descending=descending, page_size=97
            )
        ]
    assert shown == _reference(seeded, sort, descending)


def test_a_page_knows_where_the_next_one_starts_and_when_it_ends(
    seeded: list[WritebackRow], seeded_factory: Factory
) -> None:
    with seeded_factory() as session:
        first = listing.list_page(session, listing.WritebackFilter(), limit=1000)
        second = listing.list_page(session, listing.WritebackFilter(), after=first.next_cursor, limit=1000)
    assert len(first.rows) == 1000 and first.next_cursor is not None
    assert len(second.rows) == 500 and second.next_cursor is None


FILTERS: list[tuple[str, listing.WritebackFilter, Any]] = [
    (
        "several statuses",
        listing.WritebackFilter(statuses=frozenset({Status.ERROR, Status.SCHEDULED})),
        lambda r: r.status in (Status.ERROR, Status.SCHEDULED),
    ),
    ("kind", listing.WritebackFilter(kinds=frozenset({Kind.INTERESTS})), lambda r: r.kind is Kind.INTERESTS),
    (
        "account",
        listing.WritebackFilter(accounts=frozenset({"Foundation"})),
        lambda r: r.account == "Foundation",
    ),
    (
        "date range",
        listing.WritebackFilter(created_from=NOW - timedelta(days=30), created_to=NOW - timedelta(days=10)),
        lambda r: NOW - timedelta(days=30) <= r.created_at < NOW - timedelta(days=10),
    ),
    ("retried", listing.WritebackFilter(retried=True), lambda r: r.attempts > 1),
    (
        "stuck in processing",
        listing.WritebackFilter(stuck_before=NOW - timedelta(hours=1)),
        lambda r: r.status is Status.PROCESSING and r.lease_expires_at < NOW - timedelta(hours=1),
    ),
    (
        "retry available",
        listing.WritebackFilter(retry_available=True),
        lambda r: r.status is Status.ERROR and r.attempts >= r.max_attempts,
    ),
    (
        "combined",
        listing.WritebackFilter(
            statuses=frozenset({Status.ERROR}), kinds=frozenset({Kind.UNSUBSCRIBE}), retried=True
        ),
        lambda r: r.status is Status.ERROR and r.kind is Kind.UNSUBSCRIBE and r.attempts > 1,
    ),
]


@pytest.mark.parametrize(("name", "flt", "wanted"), FILTERS, ids=[f[0] for f in FILTERS])
def test_each_filter_gives_the_rows_a_plain_reading_gives(
    seeded: list[WritebackRow],
    seeded_factory: Factory,
    name: str,
    flt: listing.WritebackFilter,
    wanted: Any,
) -> None:
    with seeded_factory() as session:
        shown = [r.id for r in listing.iter_rows(session, flt, page_size=200)]
    expected = _reference([r for r in seeded if wanted(r)], "created_at", True)
    assert expected, f"the seeded data should hold rows for filter {name!r}"
    assert shown == expected


def test_counts_per_status_follow_the_other_filters(
    seeded: list[WritebackRow], seeded_factory: Factory
) -> None:
    flt = listing.WritebackFilter(statuses=frozenset({Status.ERROR}), kinds=frozenset({Kind.UNSUBSCRIBE}))
    with seeded_factory() as session:
        counts = listing.count_by_status(session, flt)
        everything = listing.count_by_status(session)
    for status in Status:
        assert counts[status] == sum(1 for r in seeded if r.kind is Kind.UNSUBSCRIBE and r.status is status)
        assert everything[status] == sum(1 for r in seeded if r.status is status)
    assert all(everything[s] > 0 for s in Status)


def test_text_search_finds_email_ref_constituent_and_mailing(
    seeded: list[WritebackRow], seeded_factory: Factory
) -> None:
    person = next(r for r in seeded if r.email and r.master_customer_id)
    mailing_row = next(r for r in seeded if r.mailing_id is not None)
    with seeded_factory() as session:
        by_email = listing.iter_rows(session, listing.WritebackFilter(text=person.email.upper()))  # type: ignore[union-attr]
        assert person.id in {r.id for r in by_email}
        by_ref = list(listing.iter_rows(session, listing.WritebackFilter(text=person.ref.lower())))
        assert [r.id for r in by_ref] == [person.id]
        by_customer = {
            r.id for r in listing.iter_rows(session, listing.WritebackFilter(text=person.master_customer_id))
        }
        assert person.id in by_customer
        assert all(
            r.master_customer_id == person.master_customer_id
            or (r.email or "").startswith(person.master_customer_id or "")
            for r in seeded
            if r.id in by_customer
        )
        name = mailing_row.payload["mailing_name"]
        part = name.split(" – ")[0][3:12].upper()
        by_mailing = {r.id for r in listing.iter_rows(session, listing.WritebackFilter(text=part))}
        assert mailing_row.id in by_mailing


def test_like_metacharacters_in_search_text_are_taken_literally(factory: Factory) -> None:
    literal_id, other_id, _ = enqueue(
        factory,
        item(email="a_b@example.org"),
        item(email="axb@example.org"),
        item(email="a%b@example.org"),
    )
    with write_transaction(factory) as session:
        sale = session.execute(
            insert(Mailing)
            .values(account="Main", name="50% off renewals", created_at=T0)
            .returning(Mailing.id)
        ).scalar_one()
        session.execute(insert(Mailing).values(account="Main", name="50 offers", created_at=T0))
        operator_actions.schedule_mailing_activity(session, sale, at=None, actor="staff", now=T0)
    with factory() as session:
        underscore = [r.email for r in listing.iter_rows(session, listing.WritebackFilter(text="a_b"))]
        percent = [r.email for r in listing.iter_rows(session, listing.WritebackFilter(text="a%"))]
        sale_rows = [r.mailing_id for r in listing.iter_rows(session, listing.WritebackFilter(text="50%"))]
        # Three characters or more are looked for inside mailing names, the % taken as itself.
        percent_part = listing.WritebackFilter(text="0% o")
        only_percent = [r.mailing_id for r in listing.iter_rows(session, percent_part)]
    assert underscore == ["a_b@example.org"]
    assert percent == ["a%b@example.org"]
    assert sale_rows == [sale]
    assert only_percent == [sale]
    assert literal_id != other_id


def test_hostile_search_text_is_only_text(factory: Factory) -> None:
    enqueue(factory, item(email="ann@example.org"))
    with factory() as session:
        for text in ("' OR 1=1 --", "x'); DROP TABLE writeback; --", "\\", "'", "%_%"):
            assert list(listing.iter_rows(session, listing.WritebackFilter(text=text))) == []
        assert len(list(listing.iter_rows(session, listing.WritebackFilter()))) == 1


def test_a_mailing_is_found_by_any_part_of_its_name_as_it_is_now(factory: sessionmaker[Session]) -> None:
    """The name search's index follows every new and renamed mailing (triggers, migration 0011)."""
    mailing_id = add_mailing(factory, remote=1, name="Spring Gala Invitation")
    (wid,) = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing_id))

    def found(text: str) -> list[int]:
        with factory() as session:
            return [r.id for r in listing.iter_rows(session, listing.WritebackFilter(text=text))]

    assert found("gala invi") == [wid]
    assert found("GALA") == [wid]
    with write_transaction(factory) as session:
        session.execute(update(Mailing).where(Mailing.id == mailing_id).values(name="Autumn Dinner"))
    assert found("gala") == []
    assert found("tumn din") == [wid]


def test_a_text_shorter_than_three_characters_is_not_looked_for_inside_mailing_names(
    factory: sessionmaker[Session],
) -> None:
    """One or two letters match nearly every mailing's name: they match the starts of emails, references
    and constituent ids only."""
    mailing_id = add_mailing(factory, remote=1, name="Annual Appeal")
    enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing_id))
    (person,) = enqueue(factory, item(email="an@example.org"))
    with factory() as session:
        short = [r.id for r in listing.iter_rows(session, listing.WritebackFilter(text="an"))]
        longer = [r.kind for r in listing.iter_rows(session, listing.WritebackFilter(text="ann"))]
    assert short == [person]
    assert longer == [Kind.MAILING_ACTIVITY]


def test_mailings_of_a_bulk_seed_are_found_by_part_of_their_name(
    seeded_factory: Factory, seeded: list[WritebackRow]
) -> None:
    """A bulk load writes with the search index's triggers suspended; the index is made at its end."""
    with seeded_factory() as session:
        name = session.execute(
            select(Mailing.name).join(Writeback, Writeback.mailing_id == Mailing.id).limit(1)
        ).scalar_one()
        part = name.split()[0][:6]
        found = {r.id for r in listing.iter_rows(session, listing.WritebackFilter(text=part))}
        expected = {
            wid
            for (wid,) in session.execute(
                select(Writeback.id)
                .join(Mailing, Writeback.mailing_id == Mailing.id)
                .where(func.lower(Mailing.name).contains(part.lower()))
            )
        }
    assert len(part) >= 3 and expected and expected <= found
