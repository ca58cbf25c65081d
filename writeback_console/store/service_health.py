"""Personify360 as a whole, as the dispatchers last saw it: an outage or refused credentials, shared by
every dispatcher on the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from writeback_console.domain import HealthState
from writeback_console.store.models import RemoteHealth
from writeback_console.store.rows import MESSAGE_LIMIT, cut


@dataclass(frozen=True, slots=True)
class Health:
    """What dispatchers last learnt about one Personify360 service (see :class:`RemoteHealth`)."""

    service: str
    #: ok, outage or auth.
    state: str
    since: datetime | None
    checked_at: datetime
    http_status: int | None
    message: str | None
    not_before: datetime | None
    checked_by: str | None

    @property
    def ok(self) -> bool:
        return self.state == HealthState.OK


def get_health(session: Session, service: str) -> Health | None:
    row = session.get(RemoteHealth, service)
    if row is None:
        return None
    return Health(
        row.service,
        row.state,
        row.since,
        row.checked_at,
        row.http_status,
        row.message,
        row.not_before,
        row.checked_by,
    )


def set_health(
    session: Session,
    service: str,
    *,
    state: HealthState,
    now: datetime,
    by: str,
    http_status: int | None = None,
    message: str | None = None,
    not_before: datetime | None = None,
    learnt_at: datetime | None = None,
) -> Health:
    """Record what a dispatcher just learnt; an outage keeps the time it began.

    Several dispatchers may learn it at the same moment: the row is made if missing (a second insert
    is ignored by the database), then locked and updated, so none of them fails on the other. "ok"
    learnt from a request that began at ``learnt_at`` does not wipe out what another dispatcher
    recorded after that, nor a Retry-After still running: the news that is worse and newer stands.
    """
    state = HealthState(state)
    dialect = session.get_bind().dialect.name
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        make(RemoteHealth)
        .values(service=service, state=state.value, since=None, checked_at=now)
        .on_conflict_do_nothing(index_elements=["service"])
    )
    row = session.get(RemoteHealth, service, with_for_update=True, populate_existing=True)
    assert row is not None
    if state == HealthState.OK and row.state != HealthState.OK:
        newer = learnt_at is not None and row.checked_at > learnt_at
        waiting = row.not_before is not None and row.not_before > now
        if newer or waiting:
            health = get_health(session, service)
            assert health is not None
            return health
    if state == HealthState.OK:
        row.since = None
    elif row.state != state or row.since is None:
        row.since = now
    row.state = state.value
    row.checked_at = now
    row.checked_by = by
    row.http_status = http_status
    row.message = cut(message, MESSAGE_LIMIT)
    row.not_before = not_before
    session.flush()
    health = get_health(session, service)
    assert health is not None
    return health
