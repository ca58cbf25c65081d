"""``audit``: the audit log, newest first, as a table, CSV or JSON (the Audit log page's entries)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable
from typing import IO

from writeback_console.cli.common import open_queue
from writeback_console.cli.exits import EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED, CommandError
from writeback_console.domain import AuditAction
from writeback_console.export import formula_safe, iso_utc
from writeback_console.store import audit_log
from writeback_console.store.audit_log import AuditEntry, AuditFilter

CSV_FIELDS = (
    "id",
    "at",
    "actor",
    "db_user",
    "action",
    "row_count",
    "first_refs",
    "filter_words",
    "filter",
    "detail",
)


def actions_from(values: Iterable[str] | None) -> frozenset[AuditAction]:
    """Actions from repeated or comma-separated ``--action``, by value or label ("send now")."""
    by_label = {audit_log.action_label(a).lower(): a for a in AuditAction}
    chosen: set[AuditAction] = set()
    for value in values or ():
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            action = by_label.get(name) or next(
                (a for a in AuditAction if a.value == name.replace(" ", "_").replace("-", "_")), None
            )
            if action is None:
                known = ", ".join(a.value for a in AuditAction)
                raise CommandError(
                    f"--action: unknown action {part.strip()!r}; one of {known}", EXIT_BAD_INPUT
                )
            chosen.add(action)
    return frozenset(chosen)


def filter_from(args: argparse.Namespace) -> AuditFilter:
    if args.since is not None and args.until is not None and args.since >= args.until:
        raise CommandError(
            f"--since {iso_utc(args.since)} is not before --until {iso_utc(args.until)}", EXIT_BAD_INPUT
        )
    return AuditFilter(
        actor=args.actor,
        actions=actions_from(args.action),
        since=args.since,
        until=args.until,
        ref=args.ref,
    )


def _local(entry: AuditEntry) -> str:
    return entry.at.astimezone().strftime("%Y-%m-%d %H:%M")


def _table(entries: Iterable[AuditEntry], out: IO[str]) -> int:
    header = ("WHEN", "WHO", "ACTION", "ROWS", "FILTER / DETAIL", "REFS")
    widths = (16, 24, 18, 6, 60, 0)
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    count = 0
    for e in entries:
        words = audit_log.entry_words(e).replace("\n", " ")
        refs = ", ".join(e.first_refs) + (", …" if e.row_count > len(e.first_refs) and e.first_refs else "")
        cells = (
            _local(e),
            e.actor[:24],
            audit_log.action_label(e.action)[:18],
            f"{e.row_count:,}" if e.row_count or e.first_refs else "—",
            words if len(words) <= 60 else words[:59] + "…",
            refs,
        )
        out.write("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n")
        count += 1
    return count


def _csv(entries: Iterable[AuditEntry], out: IO[str]) -> None:
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for e in entries:
        writer.writerow(
            formula_safe(v)
            for v in (
                e.id,
                iso_utc(e.at),
                e.actor,
                e.db_user,
                e.action.value,
                e.row_count,
                " ".join(e.first_refs),
                audit_log.entry_words(e),
                json.dumps(e.filter, ensure_ascii=False, sort_keys=True) if e.filter is not None else "",
                json.dumps(e.detail, ensure_ascii=False, sort_keys=True) if e.detail is not None else "",
            )
        )


def cmd_audit(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise CommandError(f"--limit: at least 1, not {args.limit}", EXIT_BAD_INPUT)
    flt = filter_from(args)
    factory = open_queue(args)
    limit = None if args.all else args.limit
    out = sys.stdout
    with factory() as session:
        if flt.ref and audit_log.resolve_ref(session, flt.ref) is None:
            raise CommandError(
                f"--ref: no writeback {flt.ref.strip().upper()}, in the queue or pruned", EXIT_REFUSED
            )
        entries = audit_log.iter_entries(session, flt, limit=limit)
        if args.format == "json":
            out.write("[")
            for n, entry in enumerate(entries):
                out.write(",\n" if n else "\n")
                out.write(json.dumps(entry.to_json(), ensure_ascii=False))
            out.write("\n]\n")
        elif args.format == "csv":
            _csv(entries, out)
        else:
            shown = _table(entries, out)
            if limit is not None and shown == limit:
                print(f"(newest {limit} entries; --limit N or --all for more)", file=sys.stderr)
            elif shown == 0:
                print("(no audit entry matches)", file=sys.stderr)
    return EXIT_OK
