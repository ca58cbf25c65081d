"""Who may do what, what was done, and how the queue did over time.

- ``dispatcher_run``: every dispatcher run (headless or in a console) with its result and the queue as it
  stood when the run began, so a console that does not dispatch can show the last run, and the charts can
  draw the queue's depth and the age of its oldest waiting writeback over time.
- ``chart_hour`` and ``chart_rollup``: hourly counts of statuses reached (``writeback_event``) and of
  failures by reason (``attempt``), filled for past hours so a chart never counts 30 days of events; and
  an index on ``attempt (outcome, finished_at)`` that the rollup reads.
- ``audit_event``: ``db_user``, the database user who wrote an entry (PostgreSQL fills it with
  ``session_user``; no role may name it); actions ``export`` and ``console_setting``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_ACTIONS = (
    "action IN ('auto_schedule', 'cancel', 'discard', 'enqueue', 'import', 'prune', 'reschedule', "
    "'retry', 'schedule', 'send_now', 'setting')"
)
_NEW_ACTIONS = (
    "action IN ('auto_schedule', 'cancel', 'console_setting', 'discard', 'enqueue', 'export', 'import', "
    "'prune', 'reschedule', 'retry', 'schedule', 'send_now', 'setting')"
)
_RESULTS = "result IN ('disabled', 'ok', 'problem', 'stopped')"

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


@contextmanager
def _batch(table: str, sqlite: bool, **table_kwargs: bool) -> Iterator[BatchOperations]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table(
            table, recreate="always" if sqlite else "auto", table_kwargs=table_kwargs
        ) as batch:
            yield batch


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    by_server = None if sqlite else sa.text("session_user")
    op.create_table(
        "dispatcher_run",
        sa.Column("id", _Id, primary_key=True),
        sa.Column("dispatcher", sa.String(200), nullable=False),
        sa.Column("db_user", sa.String(200), nullable=True, server_default=by_server),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("waiting_new", sa.BigInteger(), nullable=True),
        sa.Column("waiting_scheduled", sa.BigInteger(), nullable=True),
        sa.Column("waiting_error", sa.BigInteger(), nullable=True),
        sa.Column("oldest_waiting_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_RESULTS, name=op.f("ck_dispatcher_run_result")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatcher_run")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_dispatcher_run_finished_at", "dispatcher_run", ["finished_at", "id"])
    op.create_table(
        "chart_hour",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("series", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "series", "label", name=op.f("pk_chart_hour")),
    )
    op.create_table(
        "chart_rollup",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rolled_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_chart_rollup_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chart_rollup")),
    )
    op.execute("INSERT INTO chart_rollup (id, rolled_until) VALUES (1, NULL)")
    op.create_index("ix_attempt_outcome_finished_at", "attempt", ["outcome", "finished_at"])
    with _batch("audit_event", sqlite, sqlite_autoincrement=True) as batch:
        batch.add_column(sa.Column("db_user", sa.String(200), nullable=True, server_default=by_server))
        batch.drop_constraint(op.f("ck_audit_event_action"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_event_action"), sa.text(_NEW_ACTIONS))


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    new = bind.execute(
        sa.text("SELECT count(*) FROM audit_event WHERE action IN ('export', 'console_setting')")
    ).scalar()
    if new:
        raise RuntimeError(
            f"{new:,} audit entries record exports or console settings, which the previous version cannot "
            "keep; nothing was changed"
        )
    with _batch("audit_event", sqlite, sqlite_autoincrement=True) as batch:
        batch.drop_constraint(op.f("ck_audit_event_action"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_event_action"), sa.text(_OLD_ACTIONS))
        batch.drop_column("db_user")
    op.drop_index("ix_attempt_outcome_finished_at", table_name="attempt")
    op.drop_table("chart_rollup")
    op.drop_table("chart_hour")
    op.drop_index("ix_dispatcher_run_finished_at", table_name="dispatcher_run")
    op.drop_table("dispatcher_run")
