"""Who may do what on a shared queue: the PostgreSQL roles of ``sql/postgresql/roles.sql`` and what each
one allows, read once from the connected user's memberships.

The database is the guard: a role's grants and policies refuse what it may not do, however it is
asked. This module only tells a console what to offer, so it can disable an action and say which role
it needs, instead of letting a person try and be refused. A SQLite file has one user, who may do
everything; so does the owner of the tables (who migrates them) and a superuser.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session


class Role(enum.StrEnum):
    """The roles the role script makes; each includes the one before it, except the dispatcher's."""

    SUPPORT = "writeback_support"
    STAFF = "writeback_staff"
    ADVISOR = "writeback_advisor"
    DISPATCHER = "writeback_dispatcher"

    @property
    def label(self) -> str:
        return _ROLE_LABELS[self]


_ROLE_LABELS = {
    Role.SUPPORT: "support",
    Role.STAFF: "staff",
    Role.ADVISOR: "advisor",
    Role.DISPATCHER: "dispatcher",
}


class Action(enum.StrEnum):
    """What a person (or a console's dispatcher) may do to the queue."""

    #: Write the list, or a person's history, to a file: every role that can read may.
    EXPORT = "export"
    SCHEDULE = "schedule"
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"
    SEND_NOW = "send_now"
    RETRY = "retry"
    DISCARD = "discard"
    #: The writeback switches, for all accounts and one by one.
    SWITCHES = "switches"
    #: Account-wide settings: automatic mailing activity, daily retention.
    ACCOUNT_SETTINGS = "account_settings"
    #: Add writebacks by hand or from a file.
    ENQUEUE = "enqueue"
    #: Delete old finished writebacks by hand.
    PRUNE = "prune"
    #: Run the dispatcher in this console.
    DISPATCH = "dispatch"


#: The role each action needs; the roles that include it (staff includes support, advisor staff) may too.
NEEDS: dict[Action, Role] = {
    Action.EXPORT: Role.SUPPORT,
    Action.SCHEDULE: Role.STAFF,
    Action.RESCHEDULE: Role.STAFF,
    Action.CANCEL: Role.STAFF,
    Action.SEND_NOW: Role.STAFF,
    Action.RETRY: Role.ADVISOR,
    Action.DISCARD: Role.ADVISOR,
    Action.SWITCHES: Role.ADVISOR,
    Action.ACCOUNT_SETTINGS: Role.ADVISOR,
    Action.ENQUEUE: Role.ADVISOR,
    Action.PRUNE: Role.ADVISOR,
    Action.DISPATCH: Role.DISPATCHER,
}

#: Roles a role includes, by the role script's grants (``GRANT writeback_support TO writeback_staff``…).
INCLUDES: dict[Role, frozenset[Role]] = {
    Role.SUPPORT: frozenset({Role.SUPPORT}),
    Role.STAFF: frozenset({Role.SUPPORT, Role.STAFF}),
    Role.ADVISOR: frozenset({Role.SUPPORT, Role.STAFF, Role.ADVISOR}),
    Role.DISPATCHER: frozenset({Role.DISPATCHER}),
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the connected user may do; ``everything`` for SQLite, the tables' owner and a superuser."""

    everything: bool
    #: The writeback roles the user is a member of, directly or through another role.
    roles: frozenset[Role] = frozenset()
    user: str = ""
    #: SQLite: one person, no roles.
    single_user: bool = False

    def may(self, action: Action) -> bool:
        return self.everything or NEEDS[action] in self.roles

    def why_not(self, action: Action) -> str | None:
        """Why this user may not, in the words a tooltip uses ("needs the advisor role"); None if they may."""
        if self.may(action):
            return None
        return f"needs the {NEEDS[action].label} role"

    def describe(self) -> str:
        """Who the console is connected as, for Settings and the status bar."""
        if self.single_user:
            return "A SQLite file has one user, who may do everything; roles apply on PostgreSQL."
        if self.everything:
            return f"Connected as {self.user}, who owns the queue's tables: every action is allowed."
        if not self.roles:
            return f"Connected as {self.user}, who has none of the writeback roles: nothing may be changed."
        named = ", ".join(r.label for r in Role if r in self.roles)
        return f"Connected as {self.user}, with the role{'s' if len(self.roles) > 1 else ''} {named}."


EVERYTHING = Capabilities(everything=True, single_user=True)


def expand(direct: frozenset[Role]) -> frozenset[Role]:
    """The roles that ``direct`` memberships include."""
    out: set[Role] = set()
    for role in direct:
        out |= INCLUDES[role]
    return frozenset(out)


def read_capabilities(session: Session) -> Capabilities:
    """What the connected user may do, from the database's own view of their memberships."""
    if session.get_bind().dialect.name != "postgresql":
        return EVERYTHING
    user, superuser, owner = session.execute(
        text(
            "SELECT current_user, r.rolsuper, "
            "coalesce(pg_has_role(current_user, c.relowner, 'USAGE'), false) "
            "FROM pg_roles r LEFT JOIN pg_class c "
            "ON c.oid = to_regclass('writeback') "
            "WHERE r.rolname = current_user"
        )
    ).one()
    names = session.scalars(
        text(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(:names) "
            "AND pg_has_role(current_user, oid, 'USAGE')"
        ),
        {"names": [r.value for r in Role]},
    ).all()
    roles = expand(frozenset(Role(n) for n in names))
    return Capabilities(everything=bool(superuser or owner), roles=roles, user=str(user))
