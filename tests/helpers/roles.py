"""A queue database with the role script applied and a login user for each role, as a DBA would set it
up: ``sql/postgresql/roles.sql`` run by the owner, then ``CREATE ROLE … LOGIN; GRANT writeback_… TO …``.

Roles belong to the whole server, so the users get names of their own per test and are dropped after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import dba_scripts
from writeback_console.store.engine import make_engine, make_session_factory

ROLES = ("support", "staff", "advisor", "dispatcher")


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as psycopg (and psql) take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def run_script(url: str, *, rollback: bool = False) -> None:
    """Run the role script (or its rollback) as the user of ``url``, exactly as shipped."""
    script = dba_scripts.script_text("postgresql-roles", rollback=rollback)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(script.encode("utf-8"))


@dataclass
class RoleQueue:
    """The queue as its owner sees it, and as each role's user does."""

    owner_url: str
    owner: sessionmaker[Session]
    users: dict[str, str]
    urls: dict[str, str]
    factories: dict[str, sessionmaker[Session]] = field(default_factory=dict)
    _engines: list[Engine] = field(default_factory=list)

    def as_(self, role: str) -> sessionmaker[Session]:
        return self.factories[role]

    def dispose(self) -> None:
        for engine in self._engines:
            engine.dispose()


@contextmanager
def queue_with_roles(url: str, *, combined: dict[str, tuple[str, ...]] | None = None) -> Iterator[RoleQueue]:
    """``url``'s queue with the roles applied and one login user per role, all dropped afterwards.

    ``combined`` names more users, each given several roles: ``{"operator": ("staff", "dispatcher")}``.
    """
    run_script(url)
    suffix = uuid.uuid4().hex[:8]
    password = f"pw-{suffix}"
    grants = {role: (role,) for role in ROLES} | dict(combined or {})
    users = {name: f"wbt_{name}_{suffix}" for name in grants}
    owner_engine = make_engine(url)
    queue = RoleQueue(url, make_session_factory(owner_engine), users, {})
    queue._engines.append(owner_engine)
    try:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            for role, user in users.items():
                conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'".encode())
                for granted in grants[role]:
                    conn.execute(f"GRANT writeback_{granted} TO {user}".encode())
        for role, user in users.items():
            role_url = (
                make_url(url).set(username=user, password=password).render_as_string(hide_password=False)
            )
            queue.urls[role] = role_url
            engine = make_engine(role_url)
            queue._engines.append(engine)
            queue.factories[role] = make_session_factory(engine)
        yield queue
    finally:
        queue.dispose()
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            for user in users.values():
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (user,)
                )
                conn.execute(f"DROP ROLE IF EXISTS {user}".encode())
