"""The SQL scripts the project gives database administrators, as shipped in the package.

Each set has a script and its rollback; ``writeback-console sql NAME [--rollback]`` prints or writes
them, so a DBA with only the installed console has them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True)
class ScriptSet:
    """Where a set of scripts lives in the package, and what it is for."""

    package: str
    script: str
    rollback: str
    purpose: str


SCRIPT_SETS: dict[str, ScriptSet] = {
    "personify360": ScriptSet(
        "writeback_console.sql.personify360",
        "informz_activity_codes.sql",
        "informz_activity_codes_rollback.sql",
        "SQL Server: the Informz activity codes in the Personify360 database (idempotent, one transaction)",
    ),
    "postgresql-roles": ScriptSet(
        "writeback_console.sql.postgresql",
        "roles.sql",
        "roles_rollback.sql",
        "PostgreSQL: the roles support, staff, advisor and dispatcher in the queue's database, run by the "
        "owner of its tables (idempotent, one transaction)",
    ),
}


def script_text(name: str, *, rollback: bool = False) -> str:
    """The text of a set's script (or its rollback); KeyError names the sets there are."""
    try:
        chosen = SCRIPT_SETS[name]
    except KeyError:
        raise KeyError(f"no SQL scripts called {name!r}; there are: {', '.join(SCRIPT_SETS)}") from None
    file = chosen.rollback if rollback else chosen.script
    return (files(chosen.package) / file).read_text(encoding="utf-8")


def file_name(name: str, *, rollback: bool = False) -> str:
    chosen = SCRIPT_SETS[name]
    return chosen.rollback if rollback else chosen.script
