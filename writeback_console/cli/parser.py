"""Every command and its arguments, built without loading the queue, the client or Qt, so that
``writeback-console --help`` (and a mistyped option) answers at once. Each command names its handler
as ``module.function`` under ``writeback_console.cli``; the module is imported only when it runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from writeback_console import __version__
from writeback_console.dba_scripts import SCRIPT_SETS
from writeback_console.domain import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_SETTLE_SECONDS,
    MAX_AUTO_MAILING_ACTIVITY_DAYS,
    SORT_FIELDS,
    Kind,
    parse_retention_age,
)
from writeback_console.intake import InputError, parse_time

#: The demo's profiles (``writeback_console.demo.PROFILES``, which a test holds this to), the default first.
DEMO_PROFILES = ("realistic", "stress")
#: Adds a subcommand: name, its handler as "module.function", one line of help; returns its parser.
AddCommand = Callable[[str, str, str], argparse.ArgumentParser]


def time_arg(text: str) -> datetime:
    """An ISO-8601 time, or a date (taken as midnight UTC), for --from/--to/--at."""
    value = text.strip()
    if len(value) == 10:
        value += "T00:00:00Z"
    try:
        return parse_time(value, "time")
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


#: A relative age for --since/--until: hours, days or weeks before now.
_AGE_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def since_arg(text: str) -> datetime:
    """A date (midnight UTC), an ISO-8601 time, or an age before now such as 24h, 7d or 2w."""
    value = text.strip().lower()
    if value[-1:] in _AGE_HOURS and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(hours=int(value[:-1]) * _AGE_HOURS[value[-1]])
    try:
        return time_arg(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-11-30), a time with its zone (2026-11-30T14:00:00Z) "
            "or an age before now (24h, 7d, 2w)"
        ) from None


def _days(text: str) -> int | None:
    if text.strip().lower() in ("never", "off", "none"):
        return None
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of days or 'never', not {text!r}") from None
    if not 0 <= days <= MAX_AUTO_MAILING_ACTIVITY_DAYS:
        raise argparse.ArgumentTypeError(f"between 0 and {MAX_AUTO_MAILING_ACTIVITY_DAYS} days, not {days}")
    return days


def age_arg(text: str) -> int:
    """A retention age such as 180d, 26w, 6m or 1y, in days."""
    try:
        return parse_retention_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _age_or_never(text: str) -> int | None:
    if text.strip().lower() in ("never", "off", "none"):
        return None
    return age_arg(text)


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (all must match)")
    group.add_argument("--status", action="append", metavar="S", help="status; repeat or comma-separate")
    group.add_argument("--kind", action="append", metavar="K", help="kind; repeat or comma-separate")
    group.add_argument("--account", action="append", metavar="NAME", help="Informz account; repeatable")
    group.add_argument("--search", metavar="TEXT", help="start of email, ref or constituent id; mailing name")
    group.add_argument(
        "--from", dest="created_from", type=time_arg, metavar="WHEN", help="created at or after"
    )
    group.add_argument("--to", dest="created_to", type=time_arg, metavar="WHEN", help="created before")
    group.add_argument("--retried", action="store_true", help="only rows tried more than once")
    group.add_argument(
        "--stuck",
        type=int,
        metavar="MINUTES",
        help="only Processing rows whose lease ran out at least this many minutes ago (0: at all)",
    )
    group.add_argument("--retry-available", action="store_true", help="only rows a person may retry now")
    group.add_argument("--mailing", type=int, metavar="ID", help="only rows of this mailing")
    group.add_argument(
        "--error",
        dest="error_text",
        metavar="TEXT",
        help="part of the last error, any case; … or * for anything",
    )


def add_matching_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run", action="store_true", help="with --matching: count and show some; change nothing"
    )
    p.add_argument("--yes", action="store_true", help="with --matching: do not ask for confirmation")


def add_order_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sort", default="created_at", choices=SORT_FIELDS)
    p.add_argument("--ascending", action="store_true", help="oldest/smallest first")


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

    def command(name: str, handler: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = command("enqueue", "queue_commands.cmd_enqueue", "queue one writeback")
    p.add_argument("kind_name", metavar="KIND", choices=[k.value for k in Kind])
    p.add_argument("--email")
    p.add_argument("--account")
    p.add_argument("--reason")
    p.add_argument("--master-customer-id", dest="master_customer_id")
    p.add_argument("--sub-customer-id", dest="sub_customer_id", type=int)
    p.add_argument("--occurred-at", dest="occurred_at", metavar="WHEN")
    p.add_argument("--interest")
    p.add_argument("--opted", dest="opted_in", choices=("in", "out"))
    p.add_argument("--mailing-id", dest="mailing_id", type=int)
    p.add_argument("--scheduled-for", dest="scheduled_for", metavar="WHEN")
    p.add_argument("--ref")

    p = command(
        "import",
        "queue_commands.cmd_import",
        "queue every writeback of a JSONL file, or none if any line is bad",
    )
    p.add_argument("file", metavar="FILE.jsonl")

    p = command("list", "queue_commands.cmd_list", "list writebacks, newest first")
    add_filter_arguments(p)
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N rows (default 50)")
    p.add_argument("--all", action="store_true", help="every matching row")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    add_order_arguments(p)

    p = command(
        "show", "queue_commands.cmd_show", "every field of one writeback, its attempts and audit trail"
    )
    p.add_argument("key", metavar="ID|REF")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = command("summary", "summary_command.cmd_summary", "writebacks per status")
    p.add_argument(
        "--verify",
        action="store_true",
        help="count every row as well and compare with the totals the database keeps (exit 1 if they differ)",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="with --verify: set the kept totals to the real count if they differ",
    )

    p = command(
        "export",
        "queue_commands.cmd_export",
        "write the matching writebacks to a CSV file, as the console exports them",
    )
    p.add_argument("file", metavar="FILE.csv")
    add_filter_arguments(p)
    add_order_arguments(p)

    p = command(
        "retry",
        "action_commands.cmd_retry",
        "grant one more attempt to rows whose automatic retries are used up",
    )
    p.add_argument("keys", nargs="*", metavar="ID|REF")
    p.add_argument("--matching", action="store_true", help="every retryable row matching the filters")
    p.add_argument("--skip-ineligible", action="store_true", help="retry the eligible rows, skip the others")
    add_matching_arguments(p)
    add_filter_arguments(p)

    p = command(
        "discard",
        "action_commands.cmd_discard",
        "stop retrying Error rows, with a reason (a manual retry undoes it)",
    )
    p.add_argument("keys", nargs="*", metavar="ID|REF")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why they should not be retried (kept)")
    p.add_argument("--matching", action="store_true", help="every Error row matching the filters")
    p.add_argument("--skip-ineligible", action="store_true", help="discard the Error rows, skip the others")
    add_matching_arguments(p)
    add_filter_arguments(p)

    p = command(
        "prune",
        "action_commands.cmd_prune",
        "delete old Sent and No Remote Recipients writebacks; their audit entries are kept",
    )
    p.add_argument(
        "--sent-older-than",
        dest="older_than_days",
        type=age_arg,
        required=True,
        metavar="AGE",
        help="finished longer ago than this: 180d, 26w, 6m (30-day months), 1y; at least 7 days",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would be deleted; change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--vacuum",
        action="store_true",
        help="then give the space back: SQLite rewrites its file (writers wait meanwhile), "
        "PostgreSQL vacuums the tables",
    )

    p = command(
        "schedule-mailing", "action_commands.cmd_schedule_mailing", "queue the mailing activity of a mailing"
    )
    p.add_argument("mailing_id", type=int, metavar="MAILING_ID")
    p.add_argument("--at", type=time_arg, metavar="WHEN", help="ISO-8601 time (default: the next run)")

    p = command(
        "reschedule", "action_commands.cmd_reschedule", "move a waiting mailing activity to another time"
    )
    p.add_argument("key", metavar="ID|REF")
    p.add_argument("--at", type=time_arg, metavar="WHEN", help="ISO-8601 time (default: the next run)")

    p = command(
        "send-now",
        "action_commands.cmd_send_now",
        "send a mailing's activity at the next run, scheduled or not (--now: here and now, and only it)",
    )
    p.add_argument("mailing_id", type=int, metavar="MAILING_ID")
    p.add_argument(
        "--now",
        action="store_true",
        help="send it at once with a dispatcher cycle for this writeback alone (needs Personify360 settings)",
    )

    p = command(
        "cancel", "action_commands.cmd_cancel", "cancel a scheduled mailing activity (it stays, as Cancelled)"
    )
    p.add_argument("key", metavar="ID|REF")

    p = command(
        "account", "action_commands.cmd_account", "show or change the account switches every console shares"
    )
    p.add_argument(
        "--account",
        dest="informz_account",
        metavar="NAME",
        help="the switches of one Informz account (default: those for every account)",
    )
    p.add_argument("--writeback", choices=("on", "off"), help="off: the dispatcher sends nothing")
    p.add_argument(
        "--auto-mailing-activity-days",
        dest="auto_days",
        type=_days,
        nargs=1,
        metavar="DAYS|never",
        help="send each mailing's activity by itself this many days after it was sent",
    )
    p.add_argument(
        "--prune-sent-after",
        dest="prune_after",
        type=_age_or_never,
        nargs=1,
        metavar="AGE|never",
        help="every account: a dispatcher deletes Sent writebacks older than this once a day (180d, 26w…)",
    )

    db = command("db", "run_commands.cmd_db_upgrade", "database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="create or upgrade the schema to this version")
    up.set_defaults(handler="run_commands.cmd_db_upgrade")

    p = command("seed", "run_commands.cmd_seed", "add realistic demo data in every kind and status")
    p.add_argument("--rows", type=int, default=10_000, metavar="N")
    p.add_argument("--random-seed", type=int, default=20261127, metavar="S")

    command(
        "check-connection",
        "run_commands.cmd_check_connection",
        "does Personify360 answer, accept the credentials and know the activity codes?",
    )

    p = command("dispatch", "run_commands.cmd_dispatch", "send queued writebacks to Personify360")
    once = p.add_mutually_exclusive_group(required=True)
    once.add_argument("--once", action="store_true", help="run one cycle and exit")
    once.add_argument("--forever", action="store_true", help="run a cycle every --interval seconds")
    for flag, metavar, default, what in (
        ("--interval", "S", DEFAULT_INTERVAL_SECONDS, "seconds between cycles"),
        ("--concurrency", "N", DEFAULT_CONCURRENCY, "writebacks sent at once"),
        ("--lease-seconds", "S", DEFAULT_LEASE_SECONDS, "lease on claimed rows"),
        ("--batch-size", "N", DEFAULT_BATCH_SIZE, "rows claimed per statement"),
        ("--chunk-size", "N", DEFAULT_CHUNK_SIZE, "recipients of a mailing claimed at a time"),
        (
            "--settle-seconds",
            "S",
            DEFAULT_SETTLE_SECONDS,
            "wait before looking for a possible write",
        ),
    ):
        p.add_argument(
            flag, type=int, metavar=metavar, help=f"{what} (default: the settings, else {default})"
        )

    p = command("settings", "run_commands.cmd_settings", "show the settings of this user, or change them")
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="change one setting (repeatable); VALUE is JSON where it parses, else text",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="store the password read from standard input",
    )

    p = command("sql", "run_commands.cmd_sql", "print or write the SQL scripts for database administrators")
    p.add_argument(
        "set",
        metavar="SCRIPTS",
        choices=list(SCRIPT_SETS),
        help="; ".join(f"{name}: {s.purpose}" for name, s in SCRIPT_SETS.items()),
    )
    p.add_argument("--rollback", action="store_true", help="the script that undoes it")
    p.add_argument("--output", metavar="FILE|DIR", help="write it there instead of printing it")

    command(
        "gui", "run_commands.cmd_gui", "open the desktop console on the configured database (the default)"
    )

    p = command(
        "demo",
        "run_commands.cmd_demo",
        "a fresh seeded demo queue and Personify360 simulator, opened in the console",
    )
    p.add_argument(
        "--profile",
        choices=DEMO_PROFILES,
        default=DEMO_PROFILES[0],
        help="realistic: a queue at rest, as 90 days of a real association leave it (the default); "
        "stress: every status evenly over many rows, for benchmarks and screenshots of each status",
    )
    p.add_argument(
        "--rows",
        type=int,
        metavar="N",
        help="writebacks to make (default: 20,000 realistic, 800,000 stress)",
    )
    p.add_argument("--folder", metavar="DIR", help="where the demo lives (default: the data folder's demo/)")
    p.add_argument(
        "--no-gui", action="store_true", help="prepare the demo and serve its simulator until Ctrl+C"
    )

    _add_support_commands(command)
    _add_audit_command(command)
    _add_simulator(sub)
    return parser


def _add_support_commands(command: AddCommand) -> None:
    """``lookup``, ``switch`` and ``check`` (``support_commands`` and the connection check)."""
    p = command(
        "lookup",
        "support_commands.cmd_lookup",
        "one person by email: constituents, System Activities and queue rows",
    )
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.epilog = (
        "Each activity is printed with every field Personify360 sent; the queue rows are those for the "
        "email and the mailing activity of every mailing sent to it, with the person's own delivery."
    )

    p = command(
        "switch",
        "support_commands.cmd_switch",
        "switch one Informz account's writebacks on or off ('*': every account)",
    )
    p.add_argument("informz_account", metavar="ACCOUNT")
    p.add_argument("state", choices=("on", "off"), metavar="on|off")
    p.epilog = "While an account is off its writebacks queue up and nothing is sent; every console says so."

    command(
        "check",
        "run_commands.cmd_check_connection",
        "test the connection to Personify360, as Settings does (same as check-connection)",
    )


def _add_audit_command(command: AddCommand) -> None:
    """``audit``: the audit log (``audit_command``)."""
    p = command(
        "audit",
        "audit_command.cmd_audit",
        "every recorded action, newest first: who, when, what, the filter used and which rows",
    )
    p.add_argument("--since", type=since_arg, metavar="WHEN", help="at or after: 2026-11-30, a time, 24h, 7d")
    p.add_argument("--until", type=since_arg, metavar="WHEN", help="before: 2026-11-30, a time, 24h, 7d")
    p.add_argument("--actor", metavar="NAME", help="who: the start of the name, any case")
    p.add_argument("--action", action="append", metavar="A", help="action; repeat or comma-separate")
    p.add_argument("--ref", metavar="REF", help="only entries that touched this writeback (also pruned)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N entries (default 50)")
    p.add_argument("--all", action="store_true", help="every matching entry")
    p.epilog = (
        "A retry or discard of all matching rows is recorded once per batch of rows, each with the filter; "
        "imports and prunes count their rows without listing them."
    )


def _add_simulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The simulator's own command, when its package is there."""
    try:
        from writeback_console.sim.arguments import add_arguments
    except ImportError:
        return
    p = sub.add_parser(
        "sim", help="run the Personify360 simulator", description="run the Personify360 simulator"
    )
    add_arguments(p)
    p.set_defaults(handler="writeback_console.sim.cli.run")
