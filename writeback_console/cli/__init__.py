"""The `writeback-console` command: everything the console does to the queue, scriptable.

Exit codes: 0 done; 1 refused or failed (the message says why); 2 bad input (usage, a bad file);
3 Personify360 could not be used. The commands live by what they do: ``queue_commands`` (enqueue, import,
list, show, summary, export), ``action_commands`` (retry, scheduling, the account switches) and
``run_commands`` (schema, seed, connection check, dispatcher, settings, console, demo).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from writeback_console import __version__
from writeback_console.cli import action_commands, queue_commands, run_commands
from writeback_console.cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    CommandError,
    Handler,
    first_line,
)
from writeback_console.store.rows import QueueError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="writeback-console",
        description="The Informz → Personify360 writeback queue, from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL or SQLite file (default: $WRITEBACK_DB_URL or the embedded file)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    queue_commands.register(command)
    action_commands.register(command)
    run_commands.register(command)
    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: Any) -> None:
    """Commands that live in their own packages, wired in when present."""
    try:
        from writeback_console.sim import cli as sim_cli
    except ImportError:
        return
    p = sub.add_parser(
        "sim", help="run the Personify360 simulator", description="run the Personify360 simulator"
    )
    sim_cli.add_arguments(p)
    p.set_defaults(handler=sim_cli.run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        args.handler = run_commands.cmd_gui
    try:
        code: int = args.handler(args)
    except CommandError as exc:
        print(f"writeback-console: {exc}", file=sys.stderr)
        return exc.code
    except QueueError as exc:
        print(f"writeback-console: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (OperationalError, InterfaceError) as exc:
        # The database went away or stayed locked in the middle of a command (a dropped connection,
        # a long import elsewhere): every command's changes are one transaction, so nothing is half done.
        print(
            f"writeback-console: the database could not be used ({first_line(exc)}); nothing was changed",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    except BrokenPipeError:
        # `list … | head` closes the pipe early; that is not an error.
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
