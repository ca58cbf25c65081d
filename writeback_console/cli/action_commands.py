"""Commands that change what the queue does: retry, schedule, reschedule, cancel, send now, the account
switches. Each is one call of ``writeback_console.operations``, as the console's dialogs are."""

from __future__ import annotations

import argparse
import sys

from writeback_console import operations
from writeback_console.cli.common import (
    EXIT_OK,
    AddCommand,
    CommandError,
    add_filter_arguments,
    filter_from,
    iso,
    open_queue,
    time_arg,
)
from writeback_console.store import listing, switches
from writeback_console.store.rows import NotFound, RetryRefused, WritebackRow, current_actor


def cmd_retry(args: argparse.Namespace) -> int:
    factory = open_queue(args)
    try:
        if args.keys:
            with factory() as session:
                ids = listing.resolve_ids(session, args.keys)
            result = operations.retry(
                factory, ids, actor=current_actor(), skip_ineligible=args.skip_ineligible
            )
        elif args.matching:
            result = operations.retry_matching(
                factory, filter_from(args), actor=current_actor(), skip_ineligible=args.skip_ineligible
            )
        else:
            raise CommandError("name the rows to retry (ids or refs), or use --matching with filters", 2)
    except NotFound as exc:
        raise CommandError(str(exc)) from None
    except RetryRefused as exc:
        raise CommandError(f"{exc}\nnothing was changed (--skip-ineligible retries the others)") from None
    for refusal in result.skipped:
        print(f"skipped {refusal.ref}: {refusal.reason}", file=sys.stderr)
    print(f"{len(result.retried):,} writeback(s) will be retried at the next dispatcher run")
    return EXIT_OK


def _when(row: WritebackRow) -> str:
    return f"at {iso(row.scheduled_for)}" if row.scheduled_for else "at the next dispatcher run"


def cmd_schedule_mailing(args: argparse.Namespace) -> int:
    done = operations.schedule_mailing_activity(
        open_queue(args), args.mailing_id, at=args.at, actor=current_actor()
    )
    print(f"queued mailing activity {done.row.ref} for mailing {args.mailing_id} {_when(done.row)}")
    print(f"  {done.recipients:,} recipients, {done.remote_recipients:,} known in Personify360")
    if done.remote_recipients == 0:
        print("  warning: no recipient is known in Personify360; it will end as No Remote Recipients")
    return EXIT_OK


def _one_id(factory: operations.Factory, key: str) -> int:
    try:
        with factory() as session:
            return listing.resolve_ids(session, [key])[0]
    except NotFound as exc:
        raise CommandError(str(exc)) from None


def cmd_reschedule(args: argparse.Namespace) -> int:
    factory = open_queue(args)
    row = operations.reschedule(factory, _one_id(factory, args.key), at=args.at, actor=current_actor())
    print(f"mailing activity {row.ref} goes out {_when(row)}")
    return EXIT_OK


def cmd_send_now(args: argparse.Namespace) -> int:
    row = operations.send_mailing_activity_now(open_queue(args), args.mailing_id, actor=current_actor())
    print(f"mailing activity {row.ref} of mailing {args.mailing_id} goes out at the next dispatcher run")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    factory = open_queue(args)
    row = operations.cancel(factory, _one_id(factory, args.key), actor=current_actor())
    print(f"mailing activity {row.ref} is cancelled; nothing is written for it unless it is scheduled again")
    return EXIT_OK


def _days(text: str) -> int | None:
    if text.strip().lower() in ("never", "off", "none"):
        return None
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of days or 'never', not {text!r}") from None
    if not 0 <= days <= operations.MAX_AUTO_MAILING_ACTIVITY_DAYS:
        raise argparse.ArgumentTypeError(
            f"between 0 and {operations.MAX_AUTO_MAILING_ACTIVITY_DAYS} days, not {days}"
        )
    return days


def cmd_account(args: argparse.Namespace) -> int:
    factory = open_queue(args)
    changes: dict[str, object] = {}
    if args.writeback is not None:
        changes[switches.WRITEBACK_ENABLED] = args.writeback == "on"
    if args.auto_days is not None:
        changes[switches.AUTO_MAILING_ACTIVITY_DAYS] = args.auto_days[0]
    account = args.informz_account or switches.ALL_ACCOUNTS
    if changes:
        operations.set_account_switches(factory, changes, actor=current_actor(), account=account)
    now = operations.account_switches(factory, account)
    if args.informz_account:
        print(f"Informz account {args.informz_account}:")
    days = now.auto_mailing_activity_days
    print(f"writeback: {'on' if now.writeback_enabled else 'off (the dispatcher sends nothing)'}")
    print(
        "mailing activity by itself: "
        + ("never" if days is None else f"{days} day(s) after each mailing was sent")
    )
    return EXIT_OK


def register(command: AddCommand) -> None:
    p = command("retry", cmd_retry, "grant one more attempt to rows whose automatic retries are used up")
    p.add_argument("keys", nargs="*", metavar="ID|REF")
    p.add_argument("--matching", action="store_true", help="every retryable row matching the filters")
    p.add_argument("--skip-ineligible", action="store_true", help="retry the eligible rows, skip the others")
    add_filter_arguments(p)

    p = command("schedule-mailing", cmd_schedule_mailing, "queue the mailing activity of a mailing")
    p.add_argument("mailing_id", type=int, metavar="MAILING_ID")
    p.add_argument("--at", type=time_arg, metavar="WHEN", help="ISO-8601 time (default: the next run)")

    p = command("reschedule", cmd_reschedule, "move a waiting mailing activity to another time")
    p.add_argument("key", metavar="ID|REF")
    p.add_argument("--at", type=time_arg, metavar="WHEN", help="ISO-8601 time (default: the next run)")

    p = command("send-now", cmd_send_now, "send a mailing's activity at the next run, scheduled or not")
    p.add_argument("mailing_id", type=int, metavar="MAILING_ID")

    p = command("cancel", cmd_cancel, "cancel a scheduled mailing activity (it stays, as Cancelled)")
    p.add_argument("key", metavar="ID|REF")

    p = command("account", cmd_account, "show or change the account switches every console shares")
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
