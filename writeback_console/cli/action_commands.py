"""Commands that change what the queue does: retry, discard, schedule, reschedule, cancel, send now, the
account switches. Each is one call of ``writeback_console.operations``, as the console's dialogs are."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from writeback_console import operations
from writeback_console.cli.common import (
    filter_from,
    iso,
    open_queue,
)
from writeback_console.cli.exits import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    CommandError,
)
from writeback_console.domain import Kind, Status
from writeback_console.store import listing, switches
from writeback_console.store.rows import NotFound, RowsRefused, WritebackRow, current_actor

#: Rows a dry run names.
SAMPLE = 10


def _writebacks(n: int) -> str:
    return "1 writeback" if n == 1 else f"{n:,} writebacks"


def _check_matching(args: argparse.Namespace, verb: str) -> None:
    if args.keys and args.matching:
        raise CommandError(
            f"name the rows to {verb}, or use --matching with filters, not both", EXIT_BAD_INPUT
        )
    if not args.keys and not args.matching:
        raise CommandError(
            f"name the rows to {verb} (ids or refs), or use --matching with filters", EXIT_BAD_INPUT
        )
    if (args.dry_run or args.yes) and not args.matching:
        raise CommandError("--dry-run and --yes go with --matching", EXIT_BAD_INPUT)


def _confirm_matching(
    args: argparse.Namespace, factory: operations.Factory, flt: listing.WritebackFilter, action: str
) -> bool:
    """The dry run's count and sample, or the person's yes; False when nothing is to be done."""
    preview = operations.preview_matching(factory, flt, action, sample=SAMPLE)
    verb = "retried" if action == "retry" else "discarded"
    if preview.count == 0:
        raise CommandError(f"no row matching the filter can be {verb} now")
    if preview.count > operations.MATCHING_CAP:
        raise CommandError(operations.too_many_message(preview.count, action))
    rows = _writebacks(preview.count)
    if args.dry_run:
        print(f"{rows} would be {verb}; nothing was changed. The first {len(preview.sample)}:")
        for r in preview.sample:
            error = (r.last_error or "")[:60]
            print(f"  {r.ref}  {r.kind.label:<22} {r.status.label:<10} {r.email or '':<32} {error}")
        return False
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise CommandError(
            f"{rows} would be {verb}; this is not a terminal to ask on, so add --yes to go ahead "
            "(or --dry-run to see them first)",
            EXIT_BAD_INPUT,
        )
    answer = input(f"{action.capitalize()} {rows} matching the filter? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        print("nothing was changed")
        return False
    return True


def cmd_retry(args: argparse.Namespace) -> int:
    _check_matching(args, "retry")
    factory = open_queue(args)
    try:
        if args.keys:
            with factory() as session:
                ids = listing.resolve_ids(session, args.keys)
            result = operations.retry(
                factory, ids, actor=current_actor(), skip_ineligible=args.skip_ineligible
            )
        else:
            flt = filter_from(args)
            if not _confirm_matching(args, factory, flt, "retry"):
                return EXIT_OK
            result = operations.retry_matching(
                factory, flt, actor=current_actor(), skip_ineligible=args.skip_ineligible
            )
    except NotFound as exc:
        raise CommandError(str(exc)) from None
    except RowsRefused as exc:
        raise CommandError(f"{exc}\nnothing was changed (--skip-ineligible retries the others)") from None
    for refusal in result.skipped:
        print(f"skipped {refusal.ref}: {refusal.reason}", file=sys.stderr)
    print(f"{_writebacks(len(result.retried))} will be retried at the next dispatcher run")
    return EXIT_OK


def cmd_discard(args: argparse.Namespace) -> int:
    _check_matching(args, "discard")
    factory = open_queue(args)
    try:
        if args.keys:
            with factory() as session:
                ids = listing.resolve_ids(session, args.keys)
            result = operations.discard(
                factory, ids, actor=current_actor(), reason=args.reason, skip_ineligible=args.skip_ineligible
            )
        else:
            flt = filter_from(args)
            if not _confirm_matching(args, factory, flt, "discard"):
                return EXIT_OK
            result = operations.discard_matching(factory, flt, actor=current_actor(), reason=args.reason)
    except NotFound as exc:
        raise CommandError(str(exc)) from None
    except RowsRefused as exc:
        raise CommandError(f"{exc}\nnothing was changed (--skip-ineligible discards the others)") from None
    for refusal in result.skipped:
        print(f"skipped {refusal.ref}: {refusal.reason}", file=sys.stderr)
    print(f"{_writebacks(len(result.discarded))} discarded; a manual retry sends one again")
    return EXIT_OK


def _pruned_words(counts: Mapping[Status, int], capped: bool = False) -> str:
    # A prune that deleted nothing has no counts at all; it still says how many: "0 Sent writebacks".
    counts = counts or {Status.SENT: 0}
    plus = "+" if capped else ""
    parts = [f"{n:,}{plus} {status.label}" for status, n in counts.items() if n or status is Status.SENT]
    return " and ".join(parts) + (" writeback" if sum(counts.values()) == 1 else " writebacks")


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:,.1f} MB"


def cmd_prune(args: argparse.Namespace) -> int:
    factory = open_queue(args)
    preview = operations.preview_prune(factory, args.older_than_days)
    before = f"finished before {iso(preview.cutoff)}"
    if preview.total == 0:
        print(f"nothing to prune: no Sent or No Remote Recipients writeback {before}")
    elif args.dry_run:
        print(
            f"{_pruned_words(preview.counts, preview.capped)} {before} would be deleted; nothing was changed"
        )
        print("  kept whatever their age: Error, New, Scheduled, Processing, Cancelled, Discarded, and")
        print("  mailing activity whose deliveries record what each recipient got")
        return EXIT_OK
    else:
        rows = _pruned_words(preview.counts, preview.capped)
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandError(
                    f"{rows} {before} would be deleted; this is not a terminal to ask on, so add --yes "
                    "to go ahead (or --dry-run to count them first)",
                    EXIT_BAD_INPUT,
                )
            answer = input(f"Delete {rows} {before}? Their audit entries are kept. [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing was changed")
                return EXIT_OK

        def progress(done: operations.PruneProgress) -> None:
            print(f"  deleted {done.total:,} of about {preview.total:,}…", file=sys.stderr, flush=True)

        result = operations.prune(factory, args.older_than_days, actor=current_actor(), on_batch=progress)
        print(
            f"deleted {_pruned_words(result.deleted)} {before} in {result.batches:,} batch(es), "
            f"the longest {result.longest_batch_seconds:.2f} s; their audit entries are kept"
        )
    if args.vacuum:
        sizes = operations.vacuum(factory)
        if sizes is None:
            print("vacuumed: PostgreSQL reuses the space for new rows")
        else:
            print(f"the database file went from {_megabytes(sizes[0])} to {_megabytes(sizes[1])}")
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
    factory = open_queue(args)
    if not args.now:
        row = operations.send_mailing_activity_now(factory, args.mailing_id, actor=current_actor())
        print(f"mailing activity {row.ref} of mailing {args.mailing_id} goes out at the next dispatcher run")
        return EXIT_OK
    from writeback_console.cli.run_commands import personify_client_or_nothing_changed, send_only

    # The settings first: a command that cannot send must leave the mailing as it was, so that it can
    # simply be run again once they are fixed.
    settings, client = personify_client_or_nothing_changed()
    try:
        # One left New (a Send now that could not send: Personify360 down, the account switched off)
        # is due already, so it is sent as it is; otherwise the Scheduled one is brought forward.
        row = _waiting_new(factory, args.mailing_id) or operations.send_mailing_activity_now(
            factory, args.mailing_id, actor=current_actor()
        )
        return send_only(
            factory, settings, client, row, f"mailing activity {row.ref} of mailing {args.mailing_id}"
        )
    finally:
        client.close()


def _waiting_new(factory: operations.Factory, mailing_id: int) -> WritebackRow | None:
    """The mailing's mailing activity if it is New (due at the next run), else None."""
    wanted = listing.WritebackFilter(
        statuses=frozenset({Status.NEW}), kinds=frozenset({Kind.MAILING_ACTIVITY}), mailing_id=mailing_id
    )
    with factory() as session:
        return next(iter(listing.iter_rows(session, wanted)), None)


def cmd_cancel(args: argparse.Namespace) -> int:
    factory = open_queue(args)
    row = operations.cancel(factory, _one_id(factory, args.key), actor=current_actor())
    print(f"mailing activity {row.ref} is cancelled; nothing is written for it unless it is scheduled again")
    return EXIT_OK


def cmd_account(args: argparse.Namespace) -> int:
    factory = open_queue(args)
    changes: dict[str, object] = {}
    if args.writeback is not None:
        changes[switches.WRITEBACK_ENABLED] = args.writeback == "on"
    if args.auto_days is not None:
        changes[switches.AUTO_MAILING_ACTIVITY_DAYS] = args.auto_days[0]
    if args.prune_after is not None:
        changes[switches.PRUNE_SENT_AFTER_DAYS] = args.prune_after[0]
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
    if not args.informz_account:
        prune = now.prune_sent_after_days
        print(
            "delete sent writebacks: "
            + ("never" if prune is None else f"older than {prune} days, once a day (every account)")
        )
    return EXIT_OK
