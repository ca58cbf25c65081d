"""Importer: a JSONL file is checked whole, every problem named by line, and written all or nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import importer
from writeback_console.domain import Kind
from writeback_console.importer import MAX_REPORTED, FileChanged, ImportRefused, check_file, import_file
from writeback_console.intake import WritebackInput
from writeback_console.store import lifecycle
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.models import AuditEvent, Mailing, Writeback

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
GOOD: dict[str, Any] = {
    "kind": "unsubscribe",
    "email": "ann@example.org",
    "occurred_at": "2026-11-20T10:00:00Z",
}
BAD_JSON = '{"kind": "unsubscribe", "email": '


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def jsonl(path: Path, lines: list[Any], *, newline: str = "\n") -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + newline for line in lines)
    path.write_bytes(text.encode("utf-8"))
    return path


def add_mailing(factory: sessionmaker[Session]) -> int:
    with write_transaction(factory) as session:
        return int(
            session.execute(
                insert(Mailing)
                .values(account="Main", name="Weekly", sent_at=NOW, created_at=NOW)
                .returning(Mailing.id)
            ).scalar_one()
        )


def queue_ref(factory: sessionmaker[Session], ref: str) -> None:
    with write_transaction(factory) as session:
        lifecycle.enqueue(
            session,
            WritebackInput(Kind.UNSUBSCRIBE, "Main", NOW, email="zoe@example.org", ref=ref),
            now=NOW,
        )


def refused(path: Path, factory: sessionmaker[Session]) -> ImportRefused:
    with factory() as session, pytest.raises(ImportRefused) as info:
        check_file(path, session, now=NOW)
    return info.value


def queued(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Writeback)) or 0)


def test_a_good_file_is_counted_by_kind_and_fingerprinted_and_nothing_is_written(
    tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    mailing = add_mailing(factory)
    path = jsonl(
        tmp_path / "in.jsonl",
        [GOOD, "", {**GOOD, "email": "bob@example.org"}, {"kind": "mailing_activity", "mailing_id": mailing}],
    )
    with factory() as session:
        report = check_file(path, session, now=NOW)
    assert report.added == 3
    assert dict(report.by_kind) == {Kind.UNSUBSCRIBE: 2, Kind.MAILING_ACTIVITY: 1}
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert queued(factory) == 0


def test_blank_lines_keep_their_place_in_the_numbering_and_windows_line_ends_are_read(
    tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    path = jsonl(
        tmp_path / "in.jsonl", [GOOD, "   ", {**GOOD, "email": "ann@@example.org"}, GOOD], newline="\r\n"
    )
    error = refused(path, factory)
    assert error.total_errors == 1
    assert str(error).startswith("line 3: email: ")


def test_problems_found_in_the_queue_are_listed_in_line_order_among_the_others(
    tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    queue_ref(factory, "WB-ABCDEF")
    path = jsonl(
        tmp_path / "in.jsonl",
        [{"kind": "mailing_activity", "mailing_id": 999}, BAD_JSON, {**GOOD, "ref": "wb-abcdef"}],
    )
    lines = str(refused(path, factory)).splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [
        ["line 1", "mailing_id"],
        ["line 2", "line"],
        ["line 3", "ref"],
    ]
    assert lines[0] == "line 1: mailing_id: no mailing with id 999"
    assert lines[2] == "line 3: ref: WB-ABCDEF is already in the queue"


def test_every_later_use_of_a_ref_in_the_file_names_its_first_use(
    tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    ref = {**GOOD, "ref": "WB-7K2M9P"}
    path = jsonl(tmp_path / "in.jsonl", [ref, GOOD, ref, {**ref, "ref": " wb-7k2m9p "}])
    assert str(refused(path, factory)).splitlines() == [
        "line 3: ref: WB-7K2M9P is also used on line 1",
        "line 4: ref: WB-7K2M9P is also used on line 1",
    ]


def test_a_ref_already_queued_and_repeated_is_named_on_every_line_for_both_reasons(
    tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    queue_ref(factory, "WB-ABCDEF")
    path = jsonl(tmp_path / "in.jsonl", [{**GOOD, "ref": "WB-ABCDEF"}, {**GOOD, "ref": "WB-ABCDEF"}])
    error = refused(path, factory)
    assert error.total_errors == 3
    assert sorted(str(e) for e in error.errors) == [
        "line 1: ref: WB-ABCDEF is already in the queue",
        "line 2: ref: WB-ABCDEF is already in the queue",
        "line 2: ref: WB-ABCDEF is also used on line 1",
    ]


def test_only_the_first_problems_are_listed_and_the_rest_are_counted(
    tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    path = jsonl(tmp_path / "in.jsonl", [BAD_JSON] * (MAX_REPORTED + 1_005))
    error = refused(path, factory)
    assert error.total_errors == MAX_REPORTED + 1_005
    assert [e.line for e in error.errors] == list(range(1, MAX_REPORTED + 1))
    assert str(error).splitlines()[-1] == "… and 1,005 more"


def test_the_problems_listed_are_those_of_the_earliest_lines_whichever_check_found_them(
    tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    unknown_mailing = {"kind": "mailing_activity", "mailing_id": 999}
    path = jsonl(tmp_path / "in.jsonl", [unknown_mailing] * 300 + [BAD_JSON] * 250)
    error = refused(path, factory)
    assert error.total_errors == 550
    assert [e.line for e in error.errors] == list(range(1, MAX_REPORTED + 1))
    assert str(error).startswith("line 1: mailing_id: no mailing with id 999")


def test_an_import_queues_every_line_and_records_the_file_it_came_from(
    tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    interests = {"kind": "interests", "email": "cy@example.org", "interest": "News", "opted_in": True}
    path = jsonl(tmp_path / "weekly.jsonl", [GOOD, interests, {**GOOD, "email": "bob@example.org"}])
    report = import_file(path, factory, actor="ann@desk", now=NOW)
    assert queued(factory) == report.added == 3
    with factory() as session:
        event = session.scalars(select(AuditEvent)).one()
    assert (event.actor, event.action, event.row_count) == ("ann@desk", "import", 3)
    assert event.detail == {
        "file": "weekly.jsonl",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "added": 3,
        "by_kind": {"interests": 1, "unsubscribe": 2},
    }


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda text: text + json.dumps(GOOD) + "\n", id="a line added"),
        pytest.param(lambda text: text.replace("ann@", "amy@", 1), id="a line edited"),
    ],
)
def test_a_file_that_changes_after_it_was_checked_is_not_imported_at_all(
    tmp_path: Path, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, change: Any
) -> None:
    path = jsonl(tmp_path / "in.jsonl", [GOOD, {**GOOD, "email": "bob@example.org"}])
    checked = importer.check_file

    def check_then_change(*args: Any, **kwargs: Any) -> importer.ImportReport:
        report = checked(*args, **kwargs)
        path.write_text(change(path.read_text()))  # another program writes to the file meanwhile
        return report

    monkeypatch.setattr(importer, "check_file", check_then_change)
    with pytest.raises(
        FileChanged, match=r"in\.jsonl changed while it was being imported; nothing was written"
    ):
        import_file(path, factory, actor="ann@desk", now=NOW)
    assert queued(factory) == 0
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0
