"""The change feed: the database's own news of changed writebacks (NOTIFY on PostgreSQL, the change table
and data_version on SQLite), which keeps every console's list live. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, fail, item, minutes, run
from writeback_console.store import changes, lifecycle, operator_actions
from writeback_console.store.changes import ChangeFeed, Changes
from writeback_console.store.engine import make_engine, write_transaction

Factory = sessionmaker[Session]
#: What the issue asks: another console's change shows within five seconds.
WITHIN = 5.0


@pytest.fixture
def feed(engine: Engine) -> Iterator[ChangeFeed]:
    feed = ChangeFeed(engine, poll_seconds=0.1)
    feed.start()
    assert feed.listening.wait(5)
    yield feed
    feed.stop()


def news(feed: ChangeFeed, until: float = WITHIN, want: set[int] | None = None) -> Changes:
    """Everything the feed brings within ``until`` seconds (or as soon as ``want`` is all there)."""
    got = Changes()
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        taken = feed.take()
        got.ids |= taken.ids
        got.everything = got.everything or taken.everything
        if want is not None and (want <= got.ids or got.everything):
            break
        time.sleep(0.05)
    return got


def test_another_connection_s_new_and_changed_rows_are_news_within_five_seconds(
    factory: Factory, feed: ChangeFeed
) -> None:
    started = time.monotonic()
    ids = enqueue(factory, item(), item(email="bo@example.org"))
    assert news(feed, want=set(ids)).ids == set(ids)
    run(factory, T0)
    fail(factory, ids[0], T0 + timedelta(seconds=1))
    got = news(feed, want=set(ids))
    assert got.ids == set(ids) and not got.everything
    assert time.monotonic() - started < 2 * WITHIN


def test_a_person_s_action_on_one_row_is_news_of_that_row_alone(factory: Factory, feed: ChangeFeed) -> None:
    ids = enqueue(factory, item(), item(email="bo@example.org"))
    run(factory, T0)
    fail(factory, ids[0], T0 + timedelta(seconds=1))
    news(feed, until=1.0)
    with write_transaction(factory) as session:
        operator_actions.discard(session, [ids[0]], actor="advisor", reason="merged", now=T0 + minutes(5))
    assert news(feed, want={ids[0]}).ids == {ids[0]}


def test_a_lease_renewal_is_no_news(factory: Factory, feed: ChangeFeed) -> None:
    (wid,) = enqueue(factory, item())
    (claimed,) = run(factory, T0)
    news(feed, until=1.0)
    with write_transaction(factory) as session:
        renewed = lifecycle.renew_leases(
            session, {wid: claimed.token}, lease_seconds=600, now=T0 + minutes(1)
        )
    assert renewed
    assert not news(feed, until=1.0)


def test_a_change_rolled_back_is_no_news(factory: Factory, feed: ChangeFeed) -> None:
    enqueue(factory, item())
    news(feed, until=1.0)
    with pytest.raises(RuntimeError), write_transaction(factory) as session:
        session.execute(text("UPDATE writeback SET last_error = 'x'"))
        raise RuntimeError("abandoned")
    assert not news(feed, until=1.0)


def test_too_many_changes_at_once_are_news_of_everything(
    factory: Factory, feed: ChangeFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "MAX_IDS", 5)
    enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(12)))
    got = news(feed, until=2.0)
    assert got.everything


def test_a_dropped_connection_is_news_of_everything_and_the_feed_listens_again(
    db_url: str, factory: Factory
) -> None:
    engine = make_engine(db_url)
    feed = ChangeFeed(engine, poll_seconds=0.1)
    feed.start()
    try:
        assert feed.listening.wait(5)
        if engine.dialect.name == "postgresql":
            with write_transaction(factory) as session:
                session.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE (query LIKE 'LISTEN%' OR query = 'SELECT 1') AND datname = current_database() "
                        "AND pid <> pg_backend_pid()"
                    )
                )
            assert news(feed, until=WITHIN).everything
            assert feed.listening.wait(10)
        (wid,) = enqueue(factory, item(email="late@example.org"))
        assert wid in news(feed, want={wid}).ids
    finally:
        feed.stop()
        engine.dispose()


def test_the_dispatcher_keeps_only_the_newest_change_entries(factory: Factory) -> None:
    enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(10)))
    with write_transaction(factory) as session:
        changes.trim(session, keep=3)
    with write_transaction(factory) as session:
        left = session.execute(text("SELECT count(*) FROM writeback_change")).scalar_one()
    sqlite = factory.kw["bind"].dialect.name == "sqlite"
    assert left == (3 if sqlite else 0)
