"""The `writeback-console` command: everything the console does to the queue, scriptable.

Exit codes: 0 done; 1 refused or failed (the message says why); 2 bad input (usage, a bad file);
3 Personify360 could not be used. The arguments of every command are in ``parser.py``, which loads
nothing heavy; the commands themselves live by what they do: ``queue_commands`` (enqueue, import,
list, show, export), ``summary_command``, ``audit_command`` (the audit log), ``action_commands``
(retry, scheduling, the account switches) and ``run_commands`` (schema, seed, connection check,
dispatcher, settings, SQL scripts, console, demo).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

from writeback_console.cli.exits import EXIT_OK, EXIT_REFUSED, CommandError
from writeback_console.cli.parser import build_parser

__all__ = ["build_parser", "main"]

Handler = Callable[..., int]


def _handler(name: str) -> Handler:
    """The function a command names ("queue_commands.cmd_list"), imported now that it runs."""
    module, _, function = name.rpartition(".")
    if not module.startswith("writeback_console."):
        module = f"writeback_console.cli.{module}"
    return cast(Handler, getattr(importlib.import_module(module), function))


def _database_trouble(exc: BaseException) -> bool:
    """A dropped connection or a database locked for too long, from SQLAlchemy (loaded by then)."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, (errors.OperationalError, errors.InterfaceError))


def _refused(exc: BaseException) -> bool:
    rows = sys.modules.get("writeback_console.store.rows")
    return rows is not None and isinstance(exc, rows.QueueError)


#: What each command does, in the words of ``store.permissions``, so a refusal by the database names the
#: role the command needs.
_ACTION_OF = {
    "queue_commands.cmd_enqueue": "enqueue",
    "queue_commands.cmd_import": "enqueue",
    "queue_commands.cmd_export": "export",
    "action_commands.cmd_retry": "retry",
    "action_commands.cmd_discard": "discard",
    "action_commands.cmd_prune": "prune",
    "action_commands.cmd_schedule_mailing": "schedule",
    "action_commands.cmd_reschedule": "reschedule",
    "action_commands.cmd_send_now": "send_now",
    "action_commands.cmd_cancel": "cancel",
    "action_commands.cmd_account": "switches",
    "support_commands.cmd_switch": "switches",
    "run_commands.cmd_dispatch": "dispatch",
}


def _changes_as(handler: str, args: object) -> str | None:
    """The action a command is about to do to the queue, to be refused up front if the user's roles
    forbid it (row-level security would hide the rows instead, and the command report 0 changed); None
    for a command, or a run of one, that only reads."""
    action = _ACTION_OF.get(handler)
    if action is None or getattr(args, "dry_run", False):
        return None
    if handler == "action_commands.cmd_account" and all(
        getattr(args, name, None) is None for name in ("writeback", "auto_days", "prune_after")
    ):
        return None
    return action


def _database_refusal(exc: BaseException, args: object, handler: str) -> str | None:
    """The database's refusal (a missing grant, a row-level policy) in words, naming the database user
    and the role the command needs; None for anything else."""
    if "sqlalchemy.exc" not in sys.modules:
        return None
    from writeback_console.messages import database_refusal

    engine = getattr(args, "engine", None)
    user = getattr(getattr(engine, "url", None), "username", None)
    return database_refusal(exc, user=user, action=_ACTION_OF.get(handler))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = getattr(args, "handler", None) or "run_commands.cmd_gui"
    handler = _handler(name)
    args.changes_as = _changes_as(name, args)
    try:
        code: int = handler(args)
    except CommandError as exc:
        print(f"writeback-console: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        # `list … | head` closes the pipe early; that is not an error.
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if _refused(exc):
            print(f"writeback-console: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        if _database_trouble(exc):
            # The database went away or stayed locked in the middle of a command (a dropped connection,
            # a long import elsewhere): every command's changes are one transaction, so nothing is half done.
            trouble = _first_line(exc)
            print(
                f"writeback-console: the database could not be used ({trouble}); nothing was changed",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        refusal = _database_refusal(exc, args, name)
        if refusal is not None:
            print(f"writeback-console: {refusal}", file=sys.stderr)
            return EXIT_REFUSED
        raise
    return code


if __name__ == "__main__":
    sys.exit(main())
