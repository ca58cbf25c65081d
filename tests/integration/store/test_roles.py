"""The database, not the console, is the guard: each role of ``sql/postgresql/roles.sql``, connected as a
login user of its own on a real PostgreSQL server, may do what it is for through the real functions, and
each forbidden thing is refused by the database even when asked for directly in SQL.

PostgreSQL only: roles are a server's. Under CI these run (``pg_url`` fails without the server).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, fail_runs, item, minutes, run, send
from tests.helpers.dispatching import client_for, cycle, recipients_as_constituents
from tests.helpers.fixtures import create_pg_database, drop_pg_database
from tests.helpers.roles import RoleQueue, libpq_url, queue_with_roles, run_script
from tests.helpers.simulator import SAMPLE_CONSTITUENTS, MakeSimulator
from writeback_console import operations
from writeback_console.domain import AuditAction, Kind, RunResult, Status
from writeback_console.messages import database_refusal, describe_exception, is_database_refusal
from writeback_console.store import counters, listing, runs, switches
from writeback_console.store.audit_trail import record_audit
from writeback_console.store.engine import make_engine, read_session, write_transaction
from writeback_console.store.migrate import alembic_config, upgrade
from writeback_console.store.models import AuditEvent, Setting, WritebackEvent
from writeback_console.store.permissions import Action, Role, read_capabilities
from writeback_console.store.rows import W

LONG_AGO = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)
#: The functions of the triggers on writeback (migrations 0004, 0007, 0010).
TRIGGER_FUNCTIONS = (
    "writeback_event_record",
    "status_count_inserted",
    "status_count_deleted",
    "status_count_updated",
    "writeback_change_notify",
    "writeback_change_notify_update",
)


@pytest.fixture
def queue(pg_url: str) -> Iterator[RoleQueue]:
    with queue_with_roles(pg_url) as q:
        yield q


def refused(call: Any, *args: Any, **kwargs: Any) -> DBAPIError:
    """Call it and return the database's refusal; fails the test if the database allowed it."""
    with pytest.raises(DBAPIError) as caught:
        call(*args, **kwargs)
    assert is_database_refusal(caught.value), caught.value
    return caught.value


def sql(factory: sessionmaker[Session], statement: str, **params: Any) -> int:
    """One statement in its own transaction, as someone with psql would type it; the rows it changed."""
    with write_transaction(factory) as session:
        return int(session.execute(text(statement), params).rowcount)  # type: ignore[attr-defined]


def status_of(queue: RoleQueue, writeback_id: int) -> Status:
    with queue.owner() as session:
        return Status(session.execute(select(W.status).where(W.id == writeback_id)).scalar_one())


def exhausted_error(queue: RoleQueue, email: str = "ann@example.org") -> int:
    """An unsubscribe row in Error with its three attempts used up (a manual retry may grant one more)."""
    (wid,) = enqueue(queue.owner, item(email=email))
    fail_runs(queue.owner, wid, 3)
    assert status_of(queue, wid) is Status.ERROR
    return wid


def old_sent(queue: RoleQueue, email: str = "ann@example.org") -> int:
    """An unsubscribe row Sent long ago: prunable."""
    (wid,) = enqueue(queue.owner, item(email=email), now=LONG_AGO)
    run(queue.owner, LONG_AGO)
    send(queue.owner, wid, LONG_AGO + minutes(1))
    return wid


def scheduled_activity(queue: RoleQueue) -> tuple[int, int]:
    """(mailing id, id of its Scheduled mailing activity), made by the owner."""
    mailing = add_mailing(queue.owner, remote=2)
    at = datetime.now(UTC) + timedelta(days=2)
    made = operations.schedule_mailing_activity(queue.owner, mailing, at=at, actor="owner")
    return mailing, made.row.id


def audit_users(queue: RoleQueue, action: AuditAction) -> list[str | None]:
    with queue.owner() as session:
        return list(session.scalars(select(AuditEvent.db_user).where(AuditEvent.action == action.value)))


# --- the script ------------------------------------------------------------------------------------


def test_the_role_script_may_be_run_again_and_only_by_the_owner(queue: RoleQueue) -> None:
    run_script(queue.owner_url)  # a second time (the fixture ran it once): nothing changes, nothing fails
    with read_session(queue.as_("support")) as session:
        assert listing.count_matching(session, listing.WritebackFilter(), limit=10) == 0
    with pytest.raises(psycopg.errors.RaiseException, match="the owner of the queue's tables"):
        run_script(queue.urls["advisor"])


def test_the_rollback_may_be_run_twice_and_leaves_the_roles_no_access(queue: RoleQueue) -> None:
    wid = exhausted_error(queue)
    run_script(queue.owner_url, rollback=True)
    run_script(queue.owner_url, rollback=True)
    for role in ("support", "advisor", "dispatcher"):
        refused(sql, queue.as_(role), "SELECT count(*) FROM writeback")
    refused(operations.retry, queue.as_("advisor"), [wid], actor="alice")
    # The roles stay while people have them (the login users here); the owner sees no policy left.
    with psycopg.connect(libpq_url(queue.owner_url), autocommit=True) as conn:
        kept = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'writeback_support'").fetchone()
        policies = conn.execute("SELECT count(*) FROM pg_policies WHERE tablename = 'writeback'").fetchone()
    assert kept == (1,) and policies == (0,)
    run_script(queue.owner_url)  # and back again
    assert operations.retry(queue.as_("advisor"), [wid], actor="alice").retried


def test_what_each_role_may_do_is_read_from_its_memberships(queue: RoleQueue) -> None:
    def caps(factory: sessionmaker[Session]) -> set[Action]:
        with read_session(factory) as session:
            found = read_capabilities(session)
        return {a for a in Action if found.may(a)}

    assert caps(queue.owner) == set(Action)
    assert caps(queue.as_("support")) == {Action.EXPORT}
    staff = {Action.EXPORT, Action.SCHEDULE, Action.RESCHEDULE, Action.CANCEL, Action.SEND_NOW}
    assert caps(queue.as_("staff")) == staff
    advisor = staff | {
        Action.RETRY,
        Action.DISCARD,
        Action.SWITCHES,
        Action.ACCOUNT_SETTINGS,
        Action.ENQUEUE,
        Action.PRUNE,
    }
    assert caps(queue.as_("advisor")) == advisor
    assert caps(queue.as_("dispatcher")) == {Action.DISPATCH}
    with read_session(queue.as_("staff")) as session:
        found = read_capabilities(session)
    assert found.user == queue.users["staff"] and found.roles == {Role.SUPPORT, Role.STAFF}
    assert found.why_not(Action.RETRY) == "needs the advisor role"


# --- support ---------------------------------------------------------------------------------------


def test_support_reads_the_queue_but_may_not_retry(queue: RoleQueue) -> None:
    wid = exhausted_error(queue)
    with read_session(queue.as_("support")) as session:
        assert listing.get_writeback(session, wid).status is Status.ERROR
        assert counters.totals(session)[Status.ERROR] == 1
        assert [r.id for r in listing.iter_rows(session, listing.WritebackFilter())] == [wid]
    exc = refused(operations.retry, queue.as_("support"), [wid], actor="sam")
    assert status_of(queue, wid) is Status.ERROR
    words = database_refusal(exc, user=queue.users["support"], action=Action.RETRY)
    assert words == (
        f"The database refused: the user {queue.users['support']} may not change this writeback "
        "(retry needs the advisor role). Nothing was changed."
    )
    message, details = describe_exception(exc)
    assert message.startswith("The database refused: this database user may not change this writeback")
    assert "permission denied" in details


def test_support_writes_audit_entries_for_exports_and_console_settings_only(queue: RoleQueue) -> None:
    wid = exhausted_error(queue)
    with write_transaction(queue.as_("support")) as session:
        record_audit(session, actor="sam", action=AuditAction.EXPORT, rows=[(wid, "WB-X")], now=T0)
        record_audit(session, actor="sam", action=AuditAction.CONSOLE_SETTING, rows=[], now=T0)
    assert audit_users(queue, AuditAction.EXPORT) == [queue.users["support"]]

    def audit_a_retry() -> None:
        with write_transaction(queue.as_("support")) as session:
            record_audit(session, actor="sam", action=AuditAction.RETRY, rows=[], now=T0)

    exc = refused(audit_a_retry)
    assert "row-level security" in str(exc.orig)
    assert database_refusal(exc, user="sam") == (
        "The database refused: the user sam may not write this entry in the audit log. Nothing was changed."
    )
    assert audit_users(queue, AuditAction.RETRY) == []


def test_nobody_writes_an_audit_entry_in_another_name(queue: RoleQueue) -> None:
    for role in ("support", "staff", "advisor", "dispatcher"):
        refused(
            sql,
            queue.as_(role),
            "INSERT INTO audit_event (at, actor, action, row_count, db_user) "
            "VALUES (now(), 'x', 'prune', 0, 'someone_else')",
        )


def test_nobody_but_the_owner_changes_audit_entries_status_history_or_pruned_lines(
    queue: RoleQueue,
) -> None:
    wid = exhausted_error(queue)
    operations.retry(queue.owner, [wid], actor="owner")
    forbidden = [
        "UPDATE audit_event SET actor = 'x'",
        "DELETE FROM audit_event",
        "UPDATE audit_event_row SET ref = 'x'",
        "DELETE FROM audit_event_row",
        "UPDATE writeback_event SET actor = 'x'",
        "DELETE FROM writeback_event",
        "INSERT INTO writeback_event (writeback_id, to_status, at, attempt) "
        f"VALUES ({wid}, 'sent', now(), 1)",
        "UPDATE pruned_writeback SET ref = 'x'",
        "DELETE FROM pruned_writeback",
    ]
    for role in ("support", "staff", "advisor", "dispatcher"):
        for statement in forbidden:
            refused(sql, queue.as_(role), statement)
    with queue.owner() as session:
        assert session.scalar(select(AuditEvent.actor).where(AuditEvent.action == "retry")) == "owner"


# --- staff -----------------------------------------------------------------------------------------


def test_staff_schedule_reschedule_send_now_and_cancel_mailing_activity(queue: RoleQueue) -> None:
    staff = queue.as_("staff")
    first = add_mailing(queue.owner, remote=2, name="First")
    second = add_mailing(queue.owner, remote=1, name="Second")
    later = datetime.now(UTC) + timedelta(days=3)
    made = operations.schedule_mailing_activity(staff, first, at=later, actor="sue")
    moved = operations.reschedule(staff, made.row.id, at=later + timedelta(days=1), actor="sue")
    assert moved.status is Status.SCHEDULED and moved.scheduled_for == later + timedelta(days=1)
    now = operations.send_mailing_activity_now(staff, second, actor="sue")
    assert now.status is Status.NEW
    cancelled = operations.cancel(staff, made.row.id, actor="sue")
    assert cancelled.status is Status.CANCELLED
    for action in (AuditAction.SCHEDULE, AuditAction.RESCHEDULE, AuditAction.SEND_NOW, AuditAction.CANCEL):
        assert audit_users(queue, action) == [queue.users["staff"]], action
    # The triggers ran as the owner: the status history and the counts have staff's changes.
    with queue.owner() as session:
        history = session.scalars(
            select(WritebackEvent.to_status).where(WritebackEvent.writeback_id == made.row.id)
        ).all()
        assert history == ["scheduled", "cancelled"]
        assert counters.totals(session)[Status.CANCELLED] == 1


def test_staff_may_not_retry_nor_touch_other_kinds(queue: RoleQueue) -> None:
    staff = queue.as_("staff")
    wid = exhausted_error(queue)
    exc = refused(operations.retry, staff, [wid], actor="sue")
    assert "retry needs the advisor role" in str(database_refusal(exc, action=Action.RETRY))
    (waiting,) = enqueue(queue.owner, item(email="bob@example.org"))
    # An unsubscribe row staff can see waiting: refused outright.
    refused(sql, staff, "UPDATE writeback SET status = 'cancelled' WHERE id = :id", id=waiting)
    refused(
        sql, staff, "UPDATE writeback SET scheduled_for = now() + interval '1 day' WHERE id = :id", id=waiting
    )
    # A row out of staff's reach (Error): the update finds nothing to change.
    assert sql(staff, "UPDATE writeback SET status = 'new' WHERE id = :id", id=wid) == 0
    refused(operations.enqueue, staff, item(email="cy@example.org"), actor="sue")
    assert (status_of(queue, waiting), status_of(queue, wid)) == (Status.NEW, Status.ERROR)
    refused(sql, staff, "UPDATE writeback SET payload = '{}' WHERE id = :id", id=waiting)
    refused(operations.set_account_switches, staff, {switches.WRITEBACK_ENABLED: False}, actor="sue")


# --- advisor ---------------------------------------------------------------------------------------


def test_advisor_retries_discards_enqueues_prunes_and_sets_the_switches(queue: RoleQueue) -> None:
    advisor = queue.as_("advisor")
    retried = exhausted_error(queue, "ann@example.org")
    discarded = exhausted_error(queue, "bob@example.org")
    sent = old_sent(queue, "cy@example.org")
    assert operations.retry(advisor, [retried], actor="al").retried == [
        (retried, listing_ref(queue, retried))
    ]
    assert operations.discard(advisor, [discarded], actor="al", reason="bounced for good").discarded
    added = operations.enqueue(advisor, item(email="dee@example.org"), actor="al")
    operations.set_account_switches(
        advisor, {switches.WRITEBACK_ENABLED: False, switches.PRUNE_SENT_AFTER_DAYS: 30}, actor="al"
    )
    operations.set_writeback_by_account(advisor, {"Main": False}, actor="al")
    pruned = operations.prune(advisor, 30, actor="al")
    assert pruned.total == 1
    assert (status_of(queue, retried), status_of(queue, discarded), status_of(queue, added.id)) == (
        Status.NEW,
        Status.DISCARDED,
        Status.NEW,
    )
    assert operations.account_switches(queue.owner).writeback_enabled is False
    with queue.owner() as session:
        assert session.scalar(select(W.id).where(W.id == sent)) is None
        mine = session.scalars(select(AuditEvent.action).where(AuditEvent.db_user == queue.users["advisor"]))
        assert set(mine) == {"retry", "discard", "enqueue", "setting", "prune"}


def listing_ref(queue: RoleQueue, writeback_id: int) -> str:
    with queue.owner() as session:
        return listing.get_writeback(session, writeback_id).ref


def test_advisor_may_not_send_a_sent_row_again_nor_claim_the_daily_prune(queue: RoleQueue) -> None:
    advisor = queue.as_("advisor")
    sent = old_sent(queue)
    refused(sql, advisor, "UPDATE writeback SET status = 'new' WHERE id = :id", id=sent)
    assert status_of(queue, sent) is Status.SENT
    refused(sql, advisor, "UPDATE writeback SET sent_at = NULL WHERE id = :id", id=sent)
    refused(
        sql,
        advisor,
        "INSERT INTO setting (account, key, value, updated_at) "
        "VALUES ('*', 'retention_last_prune', '\"x\"', now())",
    )
    wid = exhausted_error(queue, "bob@example.org")
    assert sql(advisor, "DELETE FROM writeback WHERE id = :id", id=wid) == 0
    assert status_of(queue, wid) is Status.ERROR


# --- dispatcher ------------------------------------------------------------------------------------


def test_the_dispatcher_sends_schedules_and_prunes_with_its_own_grants(
    queue: RoleQueue, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=[*SAMPLE_CONSTITUENTS, *recipients_as_constituents(3)])
    owner = queue.owner
    old = old_sent(queue, "bob@example.org")
    (abandoned,) = enqueue(owner, item(email="o'brien@example.org"), now=LONG_AGO)
    run(owner, LONG_AGO, dispatcher="gone:1")  # its holder died long ago: the lease ran out
    (plain,) = enqueue(owner, item(email="ann@example.org"), now=datetime.now(UTC))
    (nobody,) = enqueue(owner, item(email="nobody@example.org"), now=datetime.now(UTC))
    mailing = add_mailing(owner, remote=3, name="Sent now")
    activity = operations.send_mailing_activity_now(owner, mailing, actor="owner").id
    with write_transaction(owner) as session:
        switches.set_setting(
            session, switches.AUTO_MAILING_ACTIVITY_DAYS, 2, actor="owner", now=T0 - minutes(60)
        )
        switches.set_setting(session, switches.PRUNE_SENT_AFTER_DAYS, 30, actor="owner")
    automatic = add_mailing(owner, remote=1, name="Scheduled by itself")

    summary = cycle(queue.as_("dispatcher"), client_for(sim), dispatcher="headless:1")

    assert summary.problem is None and summary.stopped_reason is None, summary.describe()
    assert (summary.recovered, summary.auto_scheduled, summary.pruned) == (1, 1, 1), summary.describe()
    assert (summary.sent, summary.failed) == (3, 1), summary.describe()
    assert [status_of(queue, w) for w in (plain, activity, abandoned, nobody)] == [
        Status.SENT,
        Status.SENT,
        Status.SENT,
        Status.ERROR,
    ]
    with queue.owner() as session:
        assert session.scalar(select(W.id).where(W.id == old)) is None
        scheduled = session.scalar(select(W.status).where(W.mailing_id == automatic))
        assert scheduled == Status.SCHEDULED.value
        claim = session.get(Setting, (switches.ALL_ACCOUNTS, "retention_last_prune"))
        assert claim is not None and claim.updated_by == "headless:1"
        assert counters.pending_deltas(session) == 0  # folded by the dispatcher
    assert audit_users(queue, AuditAction.AUTO_SCHEDULE) == [queue.users["dispatcher"]]
    assert audit_users(queue, AuditAction.PRUNE) == [queue.users["dispatcher"]]


def test_the_dispatcher_may_not_change_settings_retry_or_delete_unfinished_rows(queue: RoleQueue) -> None:
    dispatcher = queue.as_("dispatcher")
    wid = exhausted_error(queue)
    with write_transaction(queue.owner) as session:
        switches.set_setting(session, switches.WRITEBACK_ENABLED, True, actor="owner")
    # A setting other than the daily prune's claim is out of its reach, and cannot be made.
    assert sql(dispatcher, "UPDATE setting SET value = 'false' WHERE key = 'writeback_enabled'") == 0
    refused(
        sql,
        dispatcher,
        "INSERT INTO setting (account, key, value, updated_at) "
        "VALUES ('Main', 'writeback_enabled', 'false', now())",
    )
    assert operations.account_switches(queue.owner).writeback_enabled is True
    # Only Sent and No Remote Recipients rows may be deleted: an Error row stays.
    assert sql(dispatcher, "DELETE FROM writeback WHERE id = :id", id=wid) == 0
    assert status_of(queue, wid) is Status.ERROR
    refused(operations.retry, dispatcher, [wid], actor="headless:1")
    refused(operations.enqueue, dispatcher, item(email="bob@example.org"), actor="headless:1")
    refused(sql, dispatcher, "SELECT detail FROM audit_event")
    assert status_of(queue, wid) is Status.ERROR


def test_the_dispatcher_records_its_runs_and_deletes_only_month_old_ones(queue: RoleQueue) -> None:
    dispatcher = queue.as_("dispatcher")
    now = datetime.now(UTC)
    with write_transaction(dispatcher) as session:
        for age in (40, 31, 1):
            at = now - timedelta(days=age)
            runs.record_run(
                session,
                dispatcher="headless:1",
                started_at=at,
                finished_at=at,
                result=RunResult.OK,
                summary="claimed 0, sent 0, failed 0 in 0.1 s",
                interval_seconds=60,
            )
    with write_transaction(dispatcher) as session:
        assert runs.trim(session, now) == 1  # the 40-day-old one: store.runs keeps 35 days
    assert sql(dispatcher, "DELETE FROM dispatcher_run WHERE finished_at > now() - interval '2 days'") == 0
    with read_session(queue.owner) as session:
        kept = runs.latest_runs(session, 10)
    assert len(kept) == 2
    assert {r.db_user for r in kept} == {queue.users["dispatcher"]}
    refused(sql, queue.as_("support"), "DELETE FROM dispatcher_run")
    refused(
        sql,
        queue.as_("advisor"),
        "INSERT INTO dispatcher_run (dispatcher, started_at, finished_at, result, summary, claimed, sent, "
        "failed) VALUES ('forged', now(), now(), 'ok', '', 0, 0, 0)",
    )


def test_a_kind_other_than_mailing_activity_is_never_added_by_staff_or_the_dispatcher(
    queue: RoleQueue,
) -> None:
    for role in ("staff", "dispatcher"):
        exc = refused(
            sql,
            queue.as_(role),
            "INSERT INTO writeback (ref, kind, account, payload, occurred_at, status, attempts, "
            "max_attempts, delivery_uncertain, created_at, updated_at) VALUES ('WB-R-' || :role, "
            "'unsubscribe', 'Main', '{}', now(), 'new', 0, 3, false, now(), now())",
            role=role,
        )
        assert "row-level security" in str(exc.orig)
    with queue.owner() as session:
        assert session.scalar(select(W.id).where(W.kind == Kind.UNSUBSCRIBE.value)) is None


# --- migration 0013 --------------------------------------------------------------------------------


def _trigger_functions(url: str) -> dict[str, tuple[bool, list[str] | None]]:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT proname, prosecdef, proconfig FROM pg_proc WHERE proname = ANY(%s)",
            (list(TRIGGER_FUNCTIONS),),
        ).fetchall()
    return {name: (definer, config) for name, definer, config in rows}


def test_the_trigger_functions_run_as_the_owner_and_the_downgrade_undoes_it(pg_url: str) -> None:
    assert _trigger_functions(pg_url) == dict.fromkeys(
        TRIGGER_FUNCTIONS, (True, ["search_path=public, pg_temp"])
    )
    url = create_pg_database("wbroles")
    engine = make_engine(url)
    try:
        upgrade(engine)
        command.downgrade(alembic_config(engine), "0012")
        assert _trigger_functions(url) == dict.fromkeys(TRIGGER_FUNCTIONS, (False, None))
        upgrade(engine)
        assert {f: d for f, (d, _) in _trigger_functions(url).items()} == dict.fromkeys(
            TRIGGER_FUNCTIONS, True
        )
    finally:
        engine.dispose()
        drop_pg_database(url)


# --- what no role's grants may be bent into --------------------------------------------------------


def sent_activity(queue: RoleQueue) -> int:
    """A mailing's activity the dispatcher sent (staff scheduled it for now): Sent, with its time."""
    mailing = add_mailing(queue.owner, remote=1)
    made = operations.schedule_mailing_activity(queue.owner, mailing, at=None, actor="owner")
    run(queue.owner, datetime.now(UTC))
    send(queue.owner, made.row.id, datetime.now(UTC))
    assert status_of(queue, made.row.id) is Status.SENT
    return made.row.id


def test_the_dispatcher_may_not_retry_cancel_or_send_a_row_by_hand(queue: RoleQueue) -> None:
    # A dispatcher claims, records and puts back; a person's transitions are not its to make, whatever
    # its column grants allow: no attempts given back, nothing cancelled, nothing Sent without a claim.
    dispatcher = queue.as_("dispatcher")
    used_up = exhausted_error(queue)
    refused(
        sql,
        dispatcher,
        "UPDATE writeback SET attempts = 0, status = 'new', changed_by = 'dana' WHERE id = :id",
        id=used_up,
    )
    (waiting,) = enqueue(queue.owner, item(email="bob@example.org"))
    refused(sql, dispatcher, "UPDATE writeback SET status = 'cancelled' WHERE id = :id", id=waiting)
    refused(
        sql, dispatcher, "UPDATE writeback SET status = 'sent', sent_at = now() WHERE id = :id", id=waiting
    )
    # A claim uses an attempt: one that uses none would let a put-back give an attempt back.
    refused(sql, dispatcher, "UPDATE writeback SET status = 'processing' WHERE id = :id", id=used_up)
    assert (status_of(queue, used_up), status_of(queue, waiting)) == (Status.ERROR, Status.NEW)


def test_the_advisor_may_not_send_a_sent_mailing_activity_again_nor_revive_a_finished_row(
    queue: RoleQueue,
) -> None:
    advisor = queue.as_("advisor")
    sent = sent_activity(queue)
    refused(
        sql,
        advisor,
        "UPDATE writeback SET status = 'new', max_attempts = attempts + 1 WHERE id = :id",
        id=sent,
    )
    assert status_of(queue, sent) is Status.SENT
    used_up = exhausted_error(queue)
    refused(sql, advisor, "UPDATE writeback SET status = 'cancelled' WHERE id = :id", id=used_up)
    assert status_of(queue, used_up) is Status.ERROR


def test_the_dispatcher_keeps_the_failure_history_and_the_charts_counts(queue: RoleQueue) -> None:
    dispatcher = queue.as_("dispatcher")
    used_up = exhausted_error(queue)
    with queue.owner() as session:
        before = session.execute(
            text("SELECT count(*) FROM attempt WHERE writeback_id = :id"), {"id": used_up}
        )
        attempts = before.scalar_one()
    assert sql(dispatcher, "DELETE FROM attempt WHERE writeback_id = :id", id=used_up) == 0
    assert sql(dispatcher, "UPDATE attempt SET message = 'x' WHERE writeback_id = :id", id=used_up) == 0
    with queue.owner() as session:
        after = session.execute(
            text("SELECT count(*) FROM attempt WHERE writeback_id = :id"), {"id": used_up}
        )
        assert after.scalar_one() == attempts
    refused(sql, dispatcher, "UPDATE chart_hour SET total = 0")
    refused(sql, dispatcher, "DELETE FROM chart_hour")


def test_the_status_history_names_the_login_that_made_each_change_whatever_the_writer_calls_itself(
    queue: RoleQueue,
) -> None:
    staff = queue.as_("staff")
    _mailing, wid = scheduled_activity(queue)
    sql(
        staff, "UPDATE writeback SET status = 'cancelled', changed_by = 'someone-else' WHERE id = :id", id=wid
    )
    with queue.owner() as session:
        last = session.scalars(
            select(WritebackEvent)
            .where(WritebackEvent.writeback_id == wid)
            .order_by(WritebackEvent.id.desc())
        ).first()
    assert last is not None
    assert (last.to_status, last.actor, last.db_user) == ("cancelled", "someone-else", queue.users["staff"])
