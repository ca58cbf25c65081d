"""Import of JSONL files: the whole file is checked first, then written in one transaction or not at all,
with one audit entry linked to every row it added."""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import AuditAction, Kind, utcnow
from writeback_console.intake import LineError, WritebackInput, parse_line
from writeback_console.store import audit_trail, lifecycle
from writeback_console.store.engine import write_transaction

#: How many problems are listed before the rest are only counted.
MAX_REPORTED = 200
#: Rows written (and linked to the import's audit entry) per statement.
IMPORT_BATCH = 2000


class ImportRefused(Exception):
    """The file has problems; nothing was written."""

    def __init__(self, errors: list[LineError], total_errors: int) -> None:
        self.errors = errors
        self.total_errors = total_errors
        more = total_errors - len(errors)
        lines = [str(e) for e in errors] + ([f"… and {more:,} more"] if more > 0 else [])
        super().__init__("\n".join(lines))


class FileChanged(Exception):
    """The file changed between checking and writing; nothing was written."""


@dataclass
class ImportReport:
    added: int = 0
    by_kind: Counter[Kind] = field(default_factory=Counter)
    sha256: str = ""


def _parsed(stream: BinaryIO, now: datetime, digest: hashlib._Hash) -> Iterator[WritebackInput | LineError]:
    for number, raw in enumerate(stream, start=1):
        digest.update(raw)
        line = raw.rstrip(b"\r\n")
        if line.strip():
            yield parse_line(line, number, now=now)


def check_file(path: Path, session: Session, *, now: datetime | None = None) -> ImportReport:
    """Read the whole file and raise ImportRefused listing every bad line; nothing is written."""
    now = now or utcnow()
    # The earliest MAX_REPORTED problems by line, whichever check finds them: a heap whose top is the
    # latest line kept, so a problem found later for an earlier line (an unknown mailing) displaces it.
    earliest: list[tuple[int, int, LineError]] = []
    total_errors = 0
    report = ImportReport()
    mailing_lines: dict[int, list[int]] = {}
    ref_lines: dict[str, list[int]] = {}
    digest = hashlib.sha256()

    def problem(error: LineError) -> None:
        nonlocal total_errors
        total_errors += 1
        entry = (-error.line, -total_errors, error)
        if len(earliest) < MAX_REPORTED:
            heapq.heappush(earliest, entry)
        elif entry > earliest[0]:
            heapq.heapreplace(earliest, entry)

    with path.open("rb") as stream:
        number = 0
        for number, raw in enumerate(stream, start=1):
            digest.update(raw)
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            item = parse_line(line, number, now=now)
            if isinstance(item, LineError):
                problem(item)
                continue
            report.added += 1
            report.by_kind[item.kind] += 1
            if item.mailing_id is not None:
                mailing_lines.setdefault(item.mailing_id, []).append(number)
            if item.ref is not None:
                ref_lines.setdefault(item.ref, []).append(number)
    report.sha256 = digest.hexdigest()

    for mailing_id in sorted(lifecycle.missing_mailings(session, mailing_lines)):
        for line_number in mailing_lines[mailing_id]:
            problem(LineError(line_number, "mailing_id", f"no mailing with id {mailing_id}"))
    taken = lifecycle.existing_refs(session, ref_lines)
    for ref, numbers in ref_lines.items():
        if ref in taken:
            for line_number in numbers:
                problem(LineError(line_number, "ref", f"{ref} is already in the queue"))
        for line_number in numbers[1:]:
            problem(LineError(line_number, "ref", f"{ref} is also used on line {numbers[0]}"))
    if total_errors:
        # By line, and on one line in the order the checks found them.
        errors = [error for _, _, error in sorted(earliest, reverse=True)]
        raise ImportRefused(errors, total_errors)
    if report.added == 0:
        raise ImportRefused([LineError(0, "file", "holds no writebacks")], 1)
    return report


def import_file(
    path: Path,
    factory: sessionmaker[Session],
    *,
    actor: str,
    now: datetime | None = None,
    batch: int = IMPORT_BATCH,
) -> ImportReport:
    """Check ``path``, then queue every writeback in it in one transaction; all or nothing."""
    now = now or utcnow()
    with factory() as session:
        report = check_file(path, session, now=now)
    digest = hashlib.sha256()
    with write_transaction(factory) as session, path.open("rb") as stream:
        # The entry first, so each batch links its rows to it as it is added: `audit --ref` of any
        # imported row finds the import that created it.
        event_id = audit_trail.record_audit(
            session,
            actor=actor,
            action=AuditAction.IMPORT,
            rows=[],
            row_count=report.added,
            now=now,
            detail={
                "file": path.name,
                "sha256": report.sha256,
                "added": report.added,
                "by_kind": {k.value: n for k, n in sorted(report.by_kind.items())},
            },
        )
        items = (i for i in _parsed(stream, now, digest) if isinstance(i, WritebackInput))
        added = lifecycle.enqueue_many(
            session,
            items,
            now=now,
            actor=actor,
            batch=batch,
            on_batch=lambda rows: audit_trail.link_rows(session, event_id, rows),
        )
        if digest.hexdigest() != report.sha256 or added != report.added:
            # Raising inside the transaction rolls back everything written so far, the entry too.
            raise FileChanged(f"{path} changed while it was being imported; nothing was written")
    return report
