"""Commands for support and for whoever runs the service: ``lookup`` (one person in Personify360 and in
the queue) and ``switch`` (one Informz account's writeback switch)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from writeback_console import lookup, operations
from writeback_console.cli.common import iso, open_queue
from writeback_console.cli.exits import EXIT_BAD_INPUT, EXIT_OK, EXIT_PERSONIFY_UNUSABLE, CommandError
from writeback_console.messages import describe_exception
from writeback_console.personify import odata
from writeback_console.personify.errors import PersonifyError
from writeback_console.personify.values import Activity
from writeback_console.store import listing, people, switches
from writeback_console.store.engine import read_session
from writeback_console.store.people import PersonRow
from writeback_console.store.rows import current_actor

#: Longest Informz account name the switches table holds.
MAX_ACCOUNT = 100


def cmd_lookup(args: argparse.Namespace) -> int:
    from writeback_console.cli.run_commands import _personify_client

    try:
        email = lookup.check_email(args.email)
    except lookup.NotAnEmail as exc:
        raise CommandError(f"lookup: {exc}", EXIT_BAD_INPUT) from None
    factory = open_queue(args)
    _settings, client = _personify_client(args)
    try:
        found = lookup.look_up(lambda: client, factory, email)
    except PersonifyError as exc:
        raise CommandError(f"lookup: {describe_exception(exc)[0]}", EXIT_PERSONIFY_UNUSABLE) from None
    if args.format == "json":
        # Non-ASCII as it is where the output takes it, else as \u escapes, which JSON reads the same.
        print(json.dumps(_as_json(found), indent=2, ensure_ascii=not _output_takes_unicode()))
    else:
        _print_table(found)
    return EXIT_OK


def _activity_json(activity: Activity) -> dict[str, Any]:
    return {
        "activity_id": activity.activity_id,
        "date": iso(activity.date) or None,
        "code": activity.code,
        "subcode": activity.subcode,
        "ref": lookup.ref_in(activity.text),
        "text": activity.text,
        # Every field as Personify360 sent it (dates in its /Date(ms)/ form).
        "fields": dict(activity.raw),
    }


def _queue_json(person_row: PersonRow) -> dict[str, Any]:
    data = person_row.row.to_json()
    recipient = person_row.recipient
    data["as_recipient"] = (
        None
        if recipient is None
        else {
            "mailing": recipient.mailing_name,
            "recipient_id": recipient.recipient_id,
            "known_to_personify360": recipient.known,
            "ref": recipient.ref,
            "status": recipient.status.value if recipient.status else None,
            "sent_at": iso(recipient.sent_at) or None,
            "last_error": recipient.last_error,
            "outcome": people.recipient_outcome(person_row, iso),
        }
    )
    return data


def _as_json(found: lookup.PersonLookup) -> dict[str, Any]:
    return {
        "email": found.email,
        "constituents": [
            {
                "master_customer_id": c.constituent.master_customer_id,
                "sub_customer_id": c.constituent.sub_customer_id,
                "name": c.constituent.display_name,
                "label_name": c.constituent.label_name,
                "first_name": c.constituent.first_name,
                "last_name": c.constituent.last_name,
                "record_type": c.constituent.record_type,
                "primary": c.constituent.primary,
                "activities": [_activity_json(a) for a in c.activities],
            }
            for c in found.constituents
        ],
        "queue": [_queue_json(p) for p in found.queue_rows],
    }


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith("/Date("):
        parsed = odata.parse_optional_date(value)
        return f"{iso(parsed)}  ({value})" if parsed else value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _say(line: str) -> None:
    """Print a line whose text came from Personify360 or Informz, its control characters escaped.

    Raw, an escape sequence would retitle or clear the terminal and a carriage return overwrite the
    line; shown as ``\\x1b`` or ``\\r`` support can still see they are there. Line breaks stay.
    """
    text = "".join(ch if ch.isprintable() or ch == "\n" else repr(ch)[1:-1] for ch in line)
    if not _output_takes_unicode():
        # A code page (Windows output redirected to a file): what it lacks is written escaped, \u0141.
        encoding = sys.stdout.encoding or "ascii"
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    print(text)


def _output_takes_unicode() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    return encoding in ("utf8", "utf16", "utf32", "utf8sig")


def _print_table(found: lookup.PersonLookup) -> None:
    """The look-up for a terminal; every text from Personify360 or the queue goes through ``_say``."""
    n = len(found.constituents)
    if n == 0:
        _say(f"Personify360: no constituent has the email {found.email}.")
    else:
        _say(f"Personify360: {n} constituent{'' if n == 1 else 's'} with the email {found.email}.")
    for entry in found.constituents:
        c = entry.constituent
        primary = "primary email" if c.primary else "not the primary email"
        _say(
            f"\n{c.master_customer_id}-{c.sub_customer_id}  {c.display_name}  "
            f"(record type {c.record_type or '?'}, {primary})"
        )
        count = len(entry.activities)
        _say(f"  System Activities, newest first: {count}")
        for activity in entry.activities:
            ref = lookup.ref_in(activity.text)
            _say(
                f"\n  {iso(activity.date) or 'no date':<20}  {activity.code or '':<18}  "
                f"{activity.subcode or '':<8}  {ref or ''}"
            )
            width = max((len(name) for name in activity.raw), default=0)
            for name, value in activity.raw.items():
                # A text of several lines stays under its field, not at the left margin.
                text = _field_text(value).replace("\n", "\n" + " " * (width + 6))
                _say(f"    {name:>{width}}: {text}".rstrip())
    rows = found.queue_rows
    _say(f"\nQueue: {len(rows)} row{'' if len(rows) == 1 else 's'} for this email or its mailings")
    if rows:
        header = (
            "STATUS",
            "REF",
            "KIND",
            "CREATED",
            "SENT/SCHEDULED",
            "ATTEMPTS",
            "AS RECIPIENT",
            "LAST ERROR",
        )
        lines = [header]
        for p in rows:
            row = p.row
            mine = people.recipient_outcome(p, iso)
            error = (row.last_error or "").strip().splitlines()
            lines.append(
                (
                    row.status.label,
                    row.ref,
                    row.kind.label,
                    iso(row.created_at),
                    iso(row.sent_at or row.scheduled_for),
                    f"{row.attempts}/{row.max_attempts}",
                    mine,
                    error[0][:80] if error else "",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            _say("  " + "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _account(text: str) -> str:
    name = text.strip()
    if not name:
        raise CommandError("switch: ACCOUNT must not be empty ('*' for every account)", EXIT_BAD_INPUT)
    if len(name) > MAX_ACCOUNT:
        raise CommandError(
            f"switch: ACCOUNT is {len(name)} characters, at most {MAX_ACCOUNT}", EXIT_BAD_INPUT
        )
    if any(not ch.isprintable() for ch in name):
        raise CommandError("switch: ACCOUNT must not contain control characters", EXIT_BAD_INPUT)
    return name


def cmd_switch(args: argparse.Namespace) -> int:
    account = _account(args.informz_account)
    factory = open_queue(args)
    with read_session(factory) as session:
        known = set(listing.list_accounts(session))
    operations.set_account_switches(
        factory, {switches.WRITEBACK_ENABLED: args.state == "on"}, actor=current_actor(), account=account
    )
    every = account == switches.ALL_ACCOUNTS
    who = "every account" if every else f"Informz account {account}"
    _say(f"writeback for {who}: {args.state}")
    if not every and account not in known:
        _say(f"note: no writeback of an account named {account!r} is in the queue yet")
    with read_session(factory) as session:
        everywhere = switches.writeback_enabled(session)
        off = sorted(switches.disabled_accounts(session))
    if not everywhere:
        _say("writebacks are switched off for every account: nothing is sent")
    elif off:
        _say(f"switched off (their writebacks queue up, nothing is sent): {', '.join(off)}")
    else:
        _say("every account sends its writebacks")
    return EXIT_OK
