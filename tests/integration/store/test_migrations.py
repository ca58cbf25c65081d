"""Migrations build an empty database on both backends, and the models and migrations agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from tests.helpers.fixtures import create_pg_database, drop_pg_database
from writeback_console import operations
from writeback_console.domain import Status
from writeback_console.store import counters
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.migrate import alembic_config, current_revision, head_revision, upgrade
from writeback_console.store.models import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
        yield engine
        engine.dispose()
        return
    url = create_pg_database("wbmig")
    engine = make_engine(url)
    yield engine
    engine.dispose()
    drop_pg_database(url)


def test_upgrade_builds_an_empty_database_to_head(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    tables = set(inspect(empty_engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


# SQLite cannot reflect the lower(email) expression index, so neither alembic nor SQLAlchemy compare it
# there; test_indexes_the_screens_rely_on_exist checks it by name instead.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": not_a_search_index}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def not_a_search_index(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """The mailing-name trigram indexes of migration 0011 are each backend's own (an FTS5 table and its
    shadow tables on SQLite, a GIN index on PostgreSQL) and have no model."""
    return not (name or "").startswith(("mailing_name_search", "ix_mailing_name_trgm"))


def test_downgrade_to_nothing_and_back(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    command.downgrade(alembic_config(empty_engine), "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_indexes_the_screens_rely_on_exist(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        if empty_engine.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'writeback'"
        else:
            query = "SELECT indexname FROM pg_indexes WHERE tablename = 'writeback'"
        names = set(conn.exec_driver_sql(query).scalars())
    for wanted in (
        "ix_writeback_status_created_at",
        "ix_writeback_email_lower",
        "ix_writeback_kind_created_at",
        "ix_writeback_mailing_id",
        "ix_writeback_open",
    ):
        assert wanted in names
    uniques = inspect(empty_engine).get_unique_constraints("writeback")
    assert any(u["column_names"] == ["ref"] for u in uniques)
    if empty_engine.dialect.name == "postgresql":
        with empty_engine.connect() as conn:
            definition = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_writeback_open'"
            ).scalar_one()
        assert "WHERE" in definition and "'processing'" in definition and "'sent'" not in definition


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.sqlite3'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()


def test_the_head_revision_the_fast_check_knows_is_the_newest_migration() -> None:
    # ensure_schema compares with HEAD_REVISION without loading Alembic; a new migration must move it.
    from writeback_console.store.schema_version import HEAD_REVISION

    assert head_revision() == HEAD_REVISION


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_0006_keeps_the_rows_their_history_triggers_and_indexes_and_takes_discarded(
    empty_engine: Engine,
) -> None:
    upgrade(empty_engine, "0005")
    with empty_engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO writeback (ref, kind, account, email, payload, occurred_at, status, attempts, "
            "max_attempts, created_at, updated_at, lease_token, interruptions, delivery_uncertain) VALUES "
            "('WB-OLD0000001', 'unsubscribe', 'Main', 'a@b.org', '{}', '2026-11-01 10:00:00', 'error', 3, 3, "
            "'2026-11-01 10:00:00', '2026-11-01 10:00:00', 0, 0, false)"
        )
    upgrade(empty_engine, "0006")
    with empty_engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE writeback SET status = 'discarded', changed_by = 'advisor' WHERE ref = 'WB-OLD0000001'"
        )
        events = conn.exec_driver_sql(
            "SELECT from_status, to_status, actor FROM writeback_event ORDER BY id"
        ).all()
        conn.exec_driver_sql(
            "INSERT INTO audit_event (at, actor, action, row_count) "
            "VALUES ('2026-11-02 10:00:00', 'a', 'discard', 1)"
        )
        if empty_engine.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'writeback'"
        else:
            query = "SELECT indexname FROM pg_indexes WHERE tablename = 'writeback'"
        names = set(conn.exec_driver_sql(query).scalars())
    assert [tuple(e) for e in events] == [(None, "error", None), ("error", "discarded", "advisor")]
    assert {"ix_writeback_email_lower", "ix_writeback_open", "uq_writeback_active_mailing"} <= names
    # The previous version cannot hold a discarded row: going back is refused, with nothing changed.
    command.downgrade(alembic_config(empty_engine), "0006")
    with pytest.raises(Exception, match="discarded row"):
        command.downgrade(alembic_config(empty_engine), "0005")
    assert current_revision(empty_engine) == "0006"


def test_0007_counts_the_rows_already_in_the_queue_and_keeps_counting(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0006")
    row = (
        "INSERT INTO writeback (ref, kind, account, email, payload, occurred_at, status, attempts, "
        "max_attempts, created_at, updated_at, lease_token, interruptions, delivery_uncertain) VALUES "
        "('{ref}', 'unsubscribe', 'Main', 'a@b.org', '{{}}', '2026-11-01 10:00:00', '{status}', 1, 3, "
        "'2026-11-01 10:00:00', '2026-11-01 10:00:00', 0, 0, false)"
    )
    with empty_engine.begin() as conn:
        for n, status in enumerate(("error", "error", "cancelled", "cancelled")):
            conn.exec_driver_sql(row.format(ref=f"WB-OLD000000{n}", status=status))
    upgrade(empty_engine)
    with Session(empty_engine) as session:
        assert counters.totals(session)[Status.ERROR] == 2
        assert counters.totals(session)[Status.CANCELLED] == 2
        session.execute(text("UPDATE writeback SET status = 'new', attempts = 1 WHERE status = 'error'"))
        session.execute(text("DELETE FROM writeback_event"))
        session.execute(text("DELETE FROM writeback WHERE status = 'cancelled'"))
        session.commit()
        totals = counters.totals(session)
    assert totals == {**dict.fromkeys(Status, 0), Status.NEW: 2}


def test_0008_lets_an_audited_row_be_pruned_and_keeps_its_audit(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0007")
    with empty_engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO writeback (ref, kind, account, email, payload, occurred_at, status, attempts, "
            "max_attempts, sent_at, created_at, updated_at, lease_token, interruptions, delivery_uncertain) "
            "VALUES ('WB-OLD0000001', 'unsubscribe', 'Main', 'a@b.org', '{}', '2026-01-01 10:00:00', 'sent', "
            "1, 3, '2026-01-01 10:00:00', '2026-01-01 10:00:00', '2026-01-01 10:00:00', 0, 0, false)"
        )
        wid = conn.exec_driver_sql("SELECT id FROM writeback").scalar_one()
        conn.exec_driver_sql(
            "INSERT INTO audit_event (at, actor, action, row_count) "
            "VALUES ('2026-01-01 10:00:00', 'a', 'enqueue', 1)"
        )
        event = conn.exec_driver_sql("SELECT id FROM audit_event").scalar_one()
        conn.exec_driver_sql(
            "INSERT INTO audit_event_row (event_id, writeback_id, ref) "
            f"VALUES ({event}, {wid}, 'WB-OLD0000001')"
        )
    upgrade(empty_engine, "0008")
    factory = make_session_factory(empty_engine)
    assert operations.prune(factory, 180, actor="advisor").total == 1
    with empty_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM writeback").scalar_one() == 0
        assert conn.exec_driver_sql("SELECT writeback_id FROM audit_event_row").scalar_one() == wid
        assert conn.exec_driver_sql("SELECT ref FROM pruned_writeback").scalar_one() == "WB-OLD0000001"
    # The previous version requires every audit entry's row to exist: it refuses, changing nothing.
    with pytest.raises(RuntimeError, match="1 writeback"):
        command.downgrade(alembic_config(empty_engine), "0007")
    assert current_revision(empty_engine) == "0008"


def test_0009_puts_in_doubt_the_recipients_of_a_mailing_being_sent_without_chunk_leases(
    empty_engine: Engine,
) -> None:
    upgrade(empty_engine, "0006")
    at = "'2026-11-01 10:00:00'"
    with empty_engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO mailing (id, account, name, sent_at, created_at) "
            f"VALUES (1, 'Main', 'M', {at}, {at})"
        )
        conn.exec_driver_sql(
            "INSERT INTO mailing_recipient (id, mailing_id, email, master_customer_id, sub_customer_id, "
            "clicks, blocked) VALUES (1, 1, 'a@b.org', '000000000001', 0, '[]', false), "
            "(2, 1, 'c@d.org', '000000000002', 0, '[]', false), "
            "(3, 1, 'e@f.org', '000000000003', 0, '[]', false)"
        )
        conn.exec_driver_sql(
            "INSERT INTO writeback (id, ref, kind, account, mailing_id, payload, occurred_at, status, "
            "attempts, max_attempts, created_at, updated_at, lease_token, interruptions, "
            "delivery_uncertain, locked_by, locked_at, lease_expires_at) VALUES (1, 'WB-OLD0000001', "
            f"'mailing_activity', 'Main', 1, '{{}}', {at}, 'processing', 1, 3, {at}, {at}, 1, 0, false, "
            f"'old:1', {at}, {at})"
        )
        conn.exec_driver_sql(
            "INSERT INTO delivery (writeback_id, recipient_id, ref, status, attempts, uncertain, updated_at) "
            f"VALUES (1, 1, 'WB-D00000000001', 'sent', 1, false, {at}), "
            f"(1, 2, 'WB-D00000000002', 'pending', 0, false, {at}), "
            f"(1, 3, 'WB-D00000000003', 'error', 1, false, {at})"
        )
    upgrade(empty_engine)
    with empty_engine.begin() as conn:
        doubt = conn.exec_driver_sql(
            "SELECT recipient_id, uncertain, lease_token, locked_by FROM delivery ORDER BY recipient_id"
        ).all()
    # The previous version sent them without chunk leases: whatever was not recorded as sent is looked for.
    assert [tuple(d) for d in doubt] == [(1, False, 0, None), (2, True, 0, None), (3, True, 0, None)]


def test_0014_leaves_earlier_events_without_a_database_user_and_names_it_for_later_ones(
    empty_engine: Engine,
) -> None:
    upgrade(empty_engine, "0013")
    at = "'2026-11-01 10:00:00'"
    with empty_engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO writeback (id, ref, kind, account, email, payload, occurred_at, status, attempts, "
            "max_attempts, created_at, updated_at, lease_token, interruptions, delivery_uncertain) VALUES "
            f"(1, 'WB-OLD0000001', 'unsubscribe', 'Main', 'a@b.org', '{{}}', {at}, 'new', 0, 3, {at}, {at}, "
            "0, 0, false)"
        )
    upgrade(empty_engine)
    with empty_engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE writeback SET status = 'scheduled', scheduled_for = updated_at WHERE id = 1"
        )
        users = conn.exec_driver_sql("SELECT db_user FROM writeback_event ORDER BY id").scalars().all()
        me = (
            None
            if empty_engine.dialect.name == "sqlite"
            else conn.exec_driver_sql("SELECT session_user").scalar()
        )
    # The event of before the upgrade is not put on the migrating user; the one after names the login.
    assert users == [None, me]
