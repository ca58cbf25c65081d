"""What dispatchers remember about Personify360 as a whole, shared by every dispatcher on the queue."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, minutes
from writeback_console.store import service_health
from writeback_console.store.engine import write_transaction

Factory = sessionmaker[Session]
SERVICE = "https://pds.example.org/PersonifyDataServices/PersonifyData.svc"


def test_an_outage_keeps_the_time_it_began_until_personify360_answers_again(factory: Factory) -> None:
    with write_transaction(factory) as session:
        service_health.set_health(session, SERVICE, state="outage", now=T0, by="a:1", http_status=503)
    with write_transaction(factory) as session:
        later = service_health.set_health(
            session,
            SERVICE,
            state="outage",
            now=T0 + minutes(10),
            by="b:2",
            http_status=503,
            not_before=T0 + minutes(12),
        )
    assert (later.since, later.checked_at, later.not_before) == (T0, T0 + minutes(10), T0 + minutes(12))
    with write_transaction(factory) as session:
        ok = service_health.set_health(session, SERVICE, state="ok", now=T0 + minutes(20), by="a:1")
    assert (ok.ok, ok.since, ok.not_before) == (True, None, None)
    with write_transaction(factory) as session:
        refused = service_health.set_health(
            session, SERVICE, state="auth", now=T0 + minutes(30), by="a:1", http_status=401
        )
    assert refused.since == T0 + minutes(30)


def test_dispatchers_reporting_at_the_same_moment_never_fail_on_each_other(factory: Factory) -> None:
    failures: list[BaseException] = []
    for round_ in range(8):
        service = f"{SERVICE}/{round_}"
        gate = threading.Barrier(3)

        def report(n: int, service: str = service, gate: threading.Barrier = gate) -> None:
            try:
                gate.wait(5)
                with write_transaction(factory) as session:
                    service_health.set_health(
                        session,
                        service,
                        state="outage",
                        now=T0 + timedelta(seconds=n),
                        by=f"d:{n}",
                        http_status=503,
                    )
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=report, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        with factory() as session:
            health = service_health.get_health(session, service)
        assert health is not None and health.state == "outage"
    assert failures == []
