"""Commands that queue and read writebacks: enqueue, import, list, show, export (summary: summary_command).

The reading commands load only the store; the operations (and the settings behind them) are loaded by
the commands that change something, so that `summary` or `list` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from writeback_console.cli.common import (
    filter_from,
    iso,
    open_queue,
    short,
)
from writeback_console.cli.exits import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    CommandError,
)
from writeback_console.export import write_rows
from writeback_console.intake import InputError, validate_writeback
from writeback_console.store import audit_trail, listing
from writeback_console.store.rows import NotFound, WritebackRow, current_actor

LIST_FIELDS = (
    "id",
    "ref",
    "kind",
    "email",
    "account",
    "status",
    "attempts",
    "max_attempts",
    "last_error",
    "last_http_status",
    "sent_at",
    "scheduled_for",
    "created_at",
    "occurred_at",
    "master_customer_id",
    "sub_customer_id",
    "mailing_id",
)


def cmd_enqueue(args: argparse.Namespace) -> int:
    raw: dict[str, Any] = {"kind": args.kind_name}
    for name in (
        "email",
        "account",
        "reason",
        "master_customer_id",
        "sub_customer_id",
        "occurred_at",
        "interest",
        "mailing_id",
        "scheduled_for",
        "ref",
    ):
        value = getattr(args, name)
        if value is not None:
            raw[name] = value
    if args.opted_in is not None:
        raw["opted_in"] = args.opted_in == "in"
    try:
        item = validate_writeback(raw)
    except InputError as exc:
        raise CommandError(f"--{exc.field.replace('_', '-')}: {exc.problem}", EXIT_BAD_INPUT) from None
    from writeback_console import operations

    row = operations.enqueue(open_queue(args), item, actor=current_actor())
    print(f"queued {row.ref} (id {row.id}, {row.kind.label}, {row.status.label})")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from writeback_console.importer import FileChanged, ImportRefused, import_file

    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"{path}: no such file", EXIT_BAD_INPUT)
    factory = open_queue(args)
    try:
        report = import_file(path, factory, actor=current_actor())
    except ImportRefused as exc:
        print(f"{path}: {exc.total_errors:,} problem(s); nothing was imported", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileChanged as exc:
        raise CommandError(str(exc)) from None
    kinds = ", ".join(f"{n:,} {k.label}" for k, n in sorted(report.by_kind.items()))
    print(f"imported {report.added:,} writebacks from {path} ({kinds})")
    return EXIT_OK


def _table(rows: Iterable[WritebackRow], out: IO[str]) -> int:
    header = (
        "REF",
        "CREATED",
        "KIND",
        "STATUS",
        "TRIES",
        "EMAIL / MAILING",
        "ACCOUNT",
        "SENT/DUE",
        "LAST ERROR",
    )
    widths = (13, 16, 21, 20, 5, 36, 10, 16, 0)
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    count = 0
    for r in rows:
        who = r.email or (f"mailing {r.mailing_id}" if r.mailing_id else "")
        due = r.sent_at or r.scheduled_for
        cells = (
            r.ref,
            short(r.created_at),
            r.kind.label,
            r.status.label,
            f"{r.attempts}/{r.max_attempts}",
            who[:36],
            r.account[:10],
            short(due),
            (r.last_error or "").replace("\n", " ")[:70],
        )
        out.write("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n")
        count += 1
    return count


def _json_row(r: WritebackRow) -> dict[str, Any]:
    data = r.to_json()
    out = {name: data[name] for name in LIST_FIELDS}
    out["payload"] = data["payload"]
    return out


def cmd_list(args: argparse.Namespace) -> int:
    flt = filter_from(args)
    factory = open_queue(args)
    limit = None if args.all else args.limit
    out = sys.stdout
    with factory() as session:
        rows = listing.iter_rows(session, flt, sort=args.sort, descending=not args.ascending, limit=limit)
        if args.format == "json":
            out.write("[")
            for n, row in enumerate(rows):
                out.write(",\n" if n else "\n")
                out.write(json.dumps(_json_row(row), ensure_ascii=False))
            out.write("\n]\n")
        elif args.format == "csv":
            write_rows(rows, out)
        else:
            shown = _table(rows, out)
            if limit is not None and shown == limit:
                print(f"(first {limit} rows; --limit N or --all for more)", file=sys.stderr)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    factory = open_queue(args)
    with factory() as session:
        try:
            row = listing.get_writeback(session, args.key)
        except NotFound as exc:
            key = args.key.strip()
            pruned = audit_trail.pruned_row(session, int(key) if key.isdigit() else key)
            if pruned is None:
                raise CommandError(str(exc)) from None
            return _show_pruned(args, pruned, audit_trail.audit_of(session, pruned.writeback_id))
        attempts = listing.attempts_of(session, row.id)
        audit = audit_trail.audit_of(session, row.id)
    data = row.to_json()
    if args.format == "json":
        data["attempt_history"] = [
            {k: iso(v) if isinstance(v, datetime) else v for k, v in dataclasses.asdict(a).items()}
            for a in attempts
        ]
        data["audit"] = [
            {"at": iso(e.at), "actor": e.actor, "action": e.action, "detail": e.detail, "filter": e.filter}
            for e in audit
        ]
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return EXIT_OK
    for name, value in data.items():
        if name != "payload":
            print(f"{name:>20}: {'' if value is None else value}")
    print(f"{'payload':>20}: {json.dumps(data['payload'], ensure_ascii=False)}")
    print("\nattempts:")
    for a in attempts:
        http = f"HTTP {a.http_status}" if a.http_status else "no HTTP answer"
        print(f"  #{a.number} {iso(a.started_at)} {a.outcome or 'running'} ({http}) {a.message or ''}")
        if a.response_excerpt:
            print(f"      response: {a.response_excerpt[:300]}")
    if audit:
        print("\naudit:")
        for e in audit:
            print(f"  {iso(e.at)} {e.actor} {audit_trail.entry_words(e)}")
    return EXIT_OK


def _show_pruned(
    args: argparse.Namespace, pruned: audit_trail.PrunedRow, audit: list[audit_trail.AuditRow]
) -> int:
    """A writeback retention deleted: what it was, and its audit entries, which are kept."""
    data = {
        "id": pruned.writeback_id,
        "ref": pruned.ref,
        "kind": pruned.kind.value,
        "status": pruned.status.value,
        "mailing_id": pruned.mailing_id,
        "finished_at": iso(pruned.finished_at),
        "pruned_at": iso(pruned.pruned_at),
        "pruned_by": pruned.pruned_by,
    }
    if args.format == "json":
        data["pruned"] = True
        data["audit"] = [
            {"at": iso(e.at), "actor": e.actor, "action": e.action, "detail": e.detail, "filter": e.filter}
            for e in audit
        ]
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(
        f"{pruned.ref} ({pruned.kind.label}, {pruned.status.label} at {iso(pruned.finished_at)}) was pruned "
        f"at {iso(pruned.pruned_at)} by {pruned.pruned_by}; its details and attempts went with it"
    )
    if audit:
        print("\naudit:")
        for e in audit:
            print(f"  {iso(e.at)} {e.actor} {audit_trail.entry_words(e)}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.is_dir():
        raise CommandError(f"{path}: is a folder; name the file to write", EXIT_BAD_INPUT)
    if not path.parent.is_dir():
        raise CommandError(f"{path.parent}: no such folder", EXIT_BAD_INPUT)
    from writeback_console import operations

    written = operations.export_csv(
        open_queue(args),
        filter_from(args),
        path,
        sort=args.sort,
        descending=not args.ascending,
        actor=current_actor(),
    )
    print(f"exported {written:,} writebacks to {path}")
    return EXIT_OK
