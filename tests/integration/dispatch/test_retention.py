"""Retention with real dispatcher cycles against the simulator: a pruned mailing's recipients are never
written twice, and the daily prune setting runs once a day across dispatchers, bounded per run."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import add_mailing, enqueue, item, run, send
from tests.helpers.dispatching import client_for, cycle, recipients_as_constituents, refs_in
from tests.helpers.simulator import MakeSimulator
from writeback_console import operations
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.store import lifecycle, listing, operator_actions, retention, switches
from writeback_console.store.engine import read_session, write_transaction
from writeback_console.store.models import AuditEvent, Setting
from writeback_console.store.rows import QueueError

Factory = sessionmaker[Session]


def _old_sent(factory: Factory, n: int, days_ago: int = 400, tag: str = "p") -> list[int]:
    at = utcnow() - timedelta(days=days_ago)
    ids = enqueue(factory, *(item(email=f"{tag}{k}@example.org") for k in range(n)), now=at)
    run(factory, at)
    for wid in ids:
        send(factory, wid, at + timedelta(seconds=1))
    return ids


def _left(factory: Factory, ids: list[int]) -> int:
    with read_session(factory) as session:
        return sum(1 for r in listing.iter_rows(session, listing.WritebackFilter()) if r.id in ids)


def test_a_pruned_mailing_never_gets_its_recipients_written_twice(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=recipients_as_constituents(3))
    client = client_for(sim)
    mailing = add_mailing(factory, remote=3, unknown=1)
    with write_transaction(factory) as session:
        first = operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff").id
    assert cycle(factory, client).sent == 1
    assert len(refs_in(sim)) == 3

    # A year later retention runs; the mailing's recipients keep the record of what they got.
    later = utcnow() + timedelta(days=365)
    operations.prune(factory, 180, actor="advisor", now=later)
    # However the mailing comes to have another activity row (a cancelled one scheduled anew, an
    # import, an upgrade), it finds every recipient already written and writes none again.
    with write_transaction(factory) as session:
        again = lifecycle.enqueue(session, item(Kind.MAILING_ACTIVITY, mailing_id=mailing)).id
    summary = cycle(factory, client)

    assert len(refs_in(sim)) == 3 and len(set(refs_in(sim))) == 3
    assert summary.sent == 1
    with read_session(factory) as session:
        assert listing.get_writeback(session, first).status is Status.SENT
        assert listing.get_writeback(session, again).status is Status.SENT


def _switch_on(factory: Factory, days: int = 180) -> None:
    operations.set_account_switches(factory, {switches.PRUNE_SENT_AFTER_DAYS: days}, actor="advisor")


def _last_prune_a_day_ago(factory: Factory) -> None:
    with write_transaction(factory) as session:
        session.execute(
            update(Setting)
            .where(Setting.key == retention.LAST_PRUNE)
            .values(updated_at=utcnow() - timedelta(days=1, seconds=1))
        )


def test_the_dispatcher_prunes_nothing_while_the_setting_is_off(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    ids = _old_sent(factory, 2)
    assert operations.account_switches(factory).prune_sent_after_days is None
    assert cycle(factory, client_for(make_simulator())).pruned == 0
    assert _left(factory, ids) == 2


def test_the_daily_prune_runs_once_a_day_whichever_dispatcher_comes_first(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    client = client_for(make_simulator())
    _switch_on(factory)
    assert operations.account_switches(factory).prune_sent_after_days == 180
    first = _old_sent(factory, 3, tag="a")
    recent = _old_sent(factory, 1, days_ago=100, tag="r")
    summary = cycle(factory, client, dispatcher="host-a:1")
    assert summary.pruned == 3 and "old writebacks pruned 3" in summary.describe()
    assert _left(factory, first) == 0 and _left(factory, recent) == 1

    more = _old_sent(factory, 2, tag="b")
    assert cycle(factory, client, dispatcher="host-b:2").pruned == 0  # the same day: not again
    _last_prune_a_day_ago(factory)
    assert cycle(factory, client, dispatcher="host-b:2").pruned == 2
    assert _left(factory, more) == 0
    with read_session(factory) as session:
        actors = session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "prune")).all()
    assert sorted(actors) == ["host-a:1", "host-b:2"]


def test_two_dispatchers_asking_at_the_same_moment_prune_once(factory: Factory) -> None:
    _switch_on(factory)
    _old_sent(factory, 4)
    results: list[retention.PruneResult | None] = []
    start = threading.Barrier(2)

    def dispatcher(name: str) -> None:
        start.wait()
        results.append(retention.daily_prune(factory, by=name))

    threads = [threading.Thread(target=dispatcher, args=(f"host-{n}:1",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r for r in results if r is not None]
    assert len(results) == 2 and len(done) == 1 and done[0].total == 4


def test_the_daily_prune_stops_at_its_limit_and_the_next_run_goes_on(factory: Factory) -> None:
    _switch_on(factory)
    ids = _old_sent(factory, 5)
    first = retention.daily_prune(factory, by="host-a:1", limit=3)
    assert first is not None and first.total == 3 and first.more_left
    second = retention.daily_prune(factory, by="host-b:1", limit=3)
    assert second is not None and second.total == 2 and not second.more_left
    assert retention.daily_prune(factory, by="host-a:1", limit=3) is None
    assert _left(factory, ids) == 0


def test_the_retention_setting_is_for_every_account_and_at_least_seven_days(factory: Factory) -> None:
    with pytest.raises(QueueError, match="shorter than the 7 days"):
        _switch_on(factory, 3)
    with pytest.raises(QueueError, match="a number of days, or never"):
        operations.set_account_switches(factory, {switches.PRUNE_SENT_AFTER_DAYS: "180"}, actor="advisor")
    with pytest.raises(QueueError, match="every account at once"):
        operations.set_account_switches(
            factory, {switches.PRUNE_SENT_AFTER_DAYS: 180}, actor="advisor", account="Main"
        )
    _switch_on(factory, 30)
    operations.set_account_switches(factory, {switches.PRUNE_SENT_AFTER_DAYS: None}, actor="advisor")
    assert operations.account_switches(factory).prune_sent_after_days is None
    with read_session(factory) as session:
        assert switches.get_setting(session, switches.PRUNE_SENT_AFTER_DAYS) is None
