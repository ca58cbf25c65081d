"""The command line as a user runs it: real database files, real exit codes, nothing half-written."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from writeback_console.cli import main
from writeback_console.domain import Status
from writeback_console.store import audit_trail, listing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.models import AuditEvent, Writeback


def run_cli(capsys: pytest.CaptureFixture[str], db: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--db", db, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def writeback_count(db: str) -> int:
    engine = make_engine(db)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(Writeback)).scalar_one()
    engine.dispose()
    return int(n)


GOOD = {
    "kind": "unsubscribe",
    "email": "a@b.org",
    "account": "Main",
    "reason": "Too many emails",
    "master_customer_id": "000000001475",
    "sub_customer_id": 0,
    "occurred_at": "2026-11-20T10:00:00Z",
}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def test_seeded_errors_listed_as_json_are_exactly_the_error_rows(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, db_url, "seed", "--rows", "3000")
    assert code == 0 and "seeded 3,000 writebacks" in out

    code, out, _ = run_cli(capsys, db_url, "list", "--status", "error", "--all", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    factory = make_session_factory(make_engine(db_url))
    with factory() as session:
        expected = [
            r.ref
            for r in listing.iter_rows(session, listing.WritebackFilter(statuses=frozenset({Status.ERROR})))
        ]
    assert [r["ref"] for r in rows] == expected
    assert len(rows) > 100
    assert {r["status"] for r in rows} == {"error"}
    for field in (
        "id",
        "ref",
        "kind",
        "email",
        "account",
        "status",
        "attempts",
        "last_error",
        "sent_at",
        "scheduled_for",
        "created_at",
    ):
        assert field in rows[0]
    assert all(r["last_error"] for r in rows)


def test_list_formats_and_limit(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, sqlite_url, "seed", "--rows", "300")
    code, out, err = run_cli(capsys, sqlite_url, "list", "--limit", "7")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("REF") and len(lines) == 8
    assert "first 7 rows" in err
    code, out, _ = run_cli(capsys, sqlite_url, "list", "--format", "csv", "--kind", "interests", "--all")
    csv_lines = out.splitlines()
    assert csv_lines[0].startswith("ref,created_at,occurred_at,kind,")
    assert len(csv_lines) > 1 and all(",Interests (IPM)," in line for line in csv_lines[1:])
    code, _, err = run_cli(capsys, sqlite_url, "list", "--status", "lost")
    assert code == 2 and "unknown status 'lost'" in err


def test_import_of_a_good_file_adds_every_row_in_one_go(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        GOOD,
        {**GOOD, "kind": "resubscribe", "email": "c@d.org", "reason": None},
        {"kind": "invalid_email", "email": "x@y.org", "reason": "550 user unknown"},
        {"kind": "interests", "email": "e@f.org", "interest": "Annual Conference", "opted_in": False},
    ]
    path = write_jsonl(tmp_path / "good.jsonl", [*lines[:2], "", *lines[2:]])
    code, out, err = run_cli(capsys, db_url, "import", str(path))
    assert code == 0, err
    assert "imported 4 writebacks" in out
    assert writeback_count(db_url) == 4
    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        event = session.scalars(select(AuditEvent)).one()
        first = listing.get_writeback(session, 1)
    assert event.action == "import" and event.row_count == 4
    assert first.payload == {"reason": "Too many emails"} and first.master_customer_id == "000000001475"


def test_import_with_bad_lines_2_4_and_5_names_them_and_writes_nothing(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            GOOD,
            {**GOOD, "kind": "unsubcribe"},
            GOOD,
            {**GOOD, "email": "not-an-email"},
            '{"kind": "unsubscribe", "email": ',
            GOOD,
        ],
    )
    code, _, err = run_cli(capsys, db_url, "import", str(path))
    assert code == 2
    assert "nothing was imported" in err
    reported = [line for line in err.splitlines() if line.startswith("line ")]
    assert [line.split(":")[0] for line in reported] == ["line 2", "line 4", "line 5"]
    assert "line 2: kind: unknown kind 'unsubcribe'" in err
    assert "line 4: email:" in err
    assert "line 5: line: invalid JSON" in err
    assert writeback_count(db_url) == 0


BAD_LINES: list[tuple[str, Any, str]] = [
    ("invalid JSON", '{"kind": unsubscribe}', "line 2: line: invalid JSON"),
    ("unknown kind", {**GOOD, "kind": "subscribe"}, "line 2: kind: unknown kind 'subscribe'"),
    ("invalid email", {**GOOD, "email": "a@@b.org"}, "line 2: email:"),
    ("email without domain dot", {**GOOD, "email": "a@localhost"}, "line 2: email:"),
    ("missing email", {k: v for k, v in GOOD.items() if k != "email"}, "line 2: email: is required"),
    ("missing kind", {k: v for k, v in GOOD.items() if k != "kind"}, "line 2: kind: is required"),
    ("over-long reason", {**GOOD, "reason": "x" * 1001}, "line 2: reason: is 1,001 characters long"),
    ("over-long account", {**GOOD, "account": "A" * 101}, "line 2: account: is 101 characters long"),
    ("NUL escaped in JSON", {**GOOD, "reason": "a\u0000b"}, "line 2: reason: contains a NUL byte"),
    ("raw NUL byte", '{"kind": "unsubscribe", "email": "a@b.org"}\x00', "line 2: line: contains a NUL byte"),
    ("number as email", {**GOOD, "email": 42}, "line 2: email: must be text, not a number"),
    ("text as sub id", {**GOOD, "sub_customer_id": "0"}, "line 2: sub_customer_id: must be a whole number"),
    ("flag as sub id", {**GOOD, "sub_customer_id": True}, "line 2: sub_customer_id: must be a whole number"),
    ("negative sub id", {**GOOD, "sub_customer_id": -1}, "line 2: sub_customer_id: must be between"),
    (
        "naive time",
        {**GOOD, "occurred_at": "2026-11-20T10:00:00"},
        "line 2: occurred_at: '2026-11-20T10:00:00' has no time zone",
    ),
    (
        "bad time",
        {**GOOD, "occurred_at": "yesterday"},
        "line 2: occurred_at: 'yesterday' is not an ISO-8601 time",
    ),
    (
        "future time",
        {**GOOD, "occurred_at": "2099-01-01T00:00:00Z"},
        "line 2: occurred_at: 2099-01-01T00:00:00Z is in the future",
    ),
    ("unknown field", {**GOOD, "emial": "a@b.org"}, "line 2: emial: unknown field"),
    ("array line", "[1, 2]", "line 2: line: must be a JSON object, not a list"),
    (
        "interest without opt",
        {"kind": "interests", "email": "a@b.org", "interest": "News"},
        "line 2: opted_in: is required",
    ),
    ("reason on resubscribe", {**GOOD, "kind": "resubscribe"}, "line 2: reason: is only used by unsubscribe"),
    (
        "unknown mailing",
        {"kind": "mailing_activity", "mailing_id": 999},
        "line 2: mailing_id: no mailing with id 999",
    ),
    ("bad ref", {**GOOD, "ref": "WB-OOPS"}, "line 2: ref:"),
    ("not UTF-8", b'{"kind": "unsubscribe", "email": "\xff@b.org"}', "line 2: line: is not UTF-8"),
    ("control character", {**GOOD, "reason": "a\u0007b"}, "line 2: reason: contains a control character"),
    ("bad customer id", {**GOOD, "master_customer_id": "0001; DROP"}, "line 2: master_customer_id:"),
]


@pytest.mark.parametrize(("case", "line", "message"), BAD_LINES, ids=[c[0] for c in BAD_LINES])
def test_bad_import_line_is_named_and_nothing_is_written(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str], case: str, line: Any, message: str
) -> None:
    path = tmp_path / "in.jsonl"
    with path.open("wb") as f:
        f.write(json.dumps(GOOD).encode() + b"\n")
        if isinstance(line, bytes):
            f.write(line + b"\n")
        else:
            f.write((line if isinstance(line, str) else json.dumps(line)).encode("utf-8") + b"\n")
        f.write(json.dumps(GOOD).encode() + b"\n")
    code, _, err = run_cli(capsys, sqlite_url, "import", str(path))
    assert code == 2, case
    assert message in err
    assert writeback_count(sqlite_url) == 0


CONTROL_BYTES: list[tuple[str, dict[str, Any], str]] = [
    (
        "DEL in the email",
        {**GOOD, "email": "ann\u007f@example.org"},
        "line 2: email: contains a control character (U+007F)",
    ),
    (
        "C1 control in the email",
        {**GOOD, "email": "ann\u0085@example.org"},
        "line 2: email: contains a control character (U+0085)",
    ),
    (
        "CSI in the account",
        {**GOOD, "account": "Main\u009b"},
        "line 2: account: contains a control character (U+009B)",
    ),
    (
        "escape in the reason",
        {**GOOD, "reason": "a\u001b[31mb"},
        "line 2: reason: contains a control character (U+001B)",
    ),
    (
        "lone surrogate",
        {**GOOD, "email": "ann\ud800@example.org"},
        "line 2: email: contains an unpaired surrogate (U+D800)",
    ),
    ("line separator", {**GOOD, "reason": "a\u2028b"}, "line 2: reason: contains a line separator (U+2028)"),
    (
        "right-to-left override",
        {**GOOD, "email": "ann\u202e@example.org"},
        "line 2: email: contains an invisible formatting character (U+202E)",
    ),
    (
        "tab in the email",
        {**GOOD, "email": "ann\t@example.org"},
        "line 2: email: contains a control character (U+0009)",
    ),
]


@pytest.mark.parametrize(("case", "line", "message"), CONTROL_BYTES, ids=[c[0] for c in CONTROL_BYTES])
def test_import_refuses_control_characters_naming_the_line_and_field(
    tmp_path: Path,
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    case: str,
    line: dict[str, Any],
    message: str,
) -> None:
    path = tmp_path / "in.jsonl"
    # json.dumps writes \\u escapes, as a file from another system would.
    path.write_text("\n".join(json.dumps(x) for x in (GOOD, line, GOOD)) + "\n", encoding="utf-8")
    code, _, err = run_cli(capsys, sqlite_url, "import", str(path))
    assert code == 2, case
    assert message in err
    assert "Traceback" not in err
    assert writeback_count(sqlite_url) == 0


def test_a_reason_may_hold_line_breaks_and_tabs(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", [{**GOOD, "reason": "Too many\n\temails"}])
    code, _, err = run_cli(capsys, sqlite_url, "import", str(path))
    assert code == 0, err
    assert writeback_count(sqlite_url) == 1


def test_an_import_meeting_a_locked_database_says_so_and_writes_nothing(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [GOOD, GOOD])
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program's long write
    try:
        code, _, err = run_cli(capsys, f"{sqlite_url}?busy_timeout_ms=200", "import", str(path))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1
    assert "the database could not be used (database is locked); nothing was changed" in err
    assert "Traceback" not in err
    assert writeback_count(sqlite_url) == 0


def test_import_refuses_a_ref_used_twice_in_the_file(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [{**GOOD, "ref": "WB-ABCDEF"}, {**GOOD, "ref": "wb-abcdef"}])
    code, _, err = run_cli(capsys, sqlite_url, "import", str(path))
    assert code == 2 and "line 2: ref: WB-ABCDEF is also used on line 1" in err
    assert writeback_count(sqlite_url) == 0


def test_import_of_an_empty_or_missing_file_is_refused(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    code, _, err = run_cli(capsys, sqlite_url, "import", str(empty))
    assert code == 2 and "holds no writebacks" in err
    code, _, err = run_cli(capsys, sqlite_url, "import", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "no such file" in err


def test_enqueue_validates_like_import(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, sqlite_url, "enqueue", "unsubscribe", "--email", "nobody")
    assert code == 2 and "--email:" in err
    assert writeback_count(sqlite_url) == 0
    code, out, _ = run_cli(
        capsys,
        sqlite_url,
        "enqueue",
        "interests",
        "--email",
        "a@b.org",
        "--interest",
        "News",
        "--opted",
        "out",
    )
    assert code == 0 and out.startswith("queued WB-")
    ref = out.split()[1]
    code, out, _ = run_cli(capsys, sqlite_url, "show", ref.lower(), "--format", "json")
    shown = json.loads(out)
    assert shown["payload"] == {"interest": "News", "opted_in": False}
    assert [e["action"] for e in shown["audit"]] == ["enqueue"]


def test_retry_from_the_command_line(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, sqlite_url, "seed", "--rows", "400")
    factory = make_session_factory(make_engine(sqlite_url))
    with factory() as session:
        exhausted = list(listing.iter_rows(session, listing.WritebackFilter(retry_available=True), limit=2))
        young = next(
            r
            for r in listing.iter_rows(session, listing.WritebackFilter(statuses=frozenset({Status.ERROR})))
            if r.attempts < r.max_attempts
        )
    code, _, err = run_cli(capsys, sqlite_url, "retry", exhausted[0].ref, young.ref)
    assert code == 1
    assert f"{young.ref}: " in err and "automatic" in err and "nothing was changed" in err
    with factory() as session:
        assert listing.get_writeback(session, exhausted[0].id).status is Status.ERROR

    code, out, _ = run_cli(capsys, sqlite_url, "retry", exhausted[0].ref, str(exhausted[1].id))
    assert code == 0 and "2 writebacks will be retried" in out
    with factory() as session:
        for r in exhausted:
            again = listing.get_writeback(session, r.id)
            assert (again.status, again.max_attempts) == (Status.NEW, r.attempts + 1)
            assert [e.action for e in audit_trail.audit_of(session, r.id)] == ["retry"]

    code, out, _ = run_cli(capsys, sqlite_url, "retry", "--matching", "--kind", "unsubscribe", "--yes")
    assert code == 0
    with factory() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert event is not None and event.filter == {
        "kinds": ["unsubscribe"],
        "retry_available": True,
        "matching": True,
    }
    code, _, err = run_cli(capsys, sqlite_url, "retry", "WB-NOSUCH")
    assert code == 1 and "no writeback WB-NOSUCH" in err


def test_db_url_from_environment_and_bare_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env.sqlite3"
    monkeypatch.setenv("WRITEBACK_DB_URL", f"sqlite:///{path}")
    assert main(["enqueue", "resubscribe", "--email", "a@b.org"]) == 0
    capsys.readouterr()
    assert main(["--db", str(path), "summary"]) == 0
    out = capsys.readouterr().out
    assert "New" in out and "1" in out


def test_unreachable_database_is_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--db", "postgresql://nobody:secret@127.0.0.1:1/none", "summary"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot open the database" in err and "secret" not in err


def test_installed_entry_point_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("writeback-console")
    env = {**os.environ, "WRITEBACK_DB_URL": f"sqlite:///{tmp_path / 'q.sqlite3'}"}
    done = subprocess.run(
        [str(exe), "enqueue", "unsubscribe", "--email", "a@b.org"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [str(exe), "list", "--format", "json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(listed.stdout)[0]["email"] == "a@b.org"


#: Text a spreadsheet would run as a formula, or that starts one after a tab or line break.
FORMULAS = ('=HYPERLINK("http://x","y")', "@SUM(1+1)", "+1", "-2", "\t=1+1")


def test_list_as_csv_defuses_formulas_and_has_the_console_export_header(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for n in range(len(FORMULAS) + 1):
        assert run_cli(capsys, sqlite_url, "enqueue", "unsubscribe", "--email", f"a{n}@b.org")[0] == 0
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ids = conn.execute(select(Writeback.id).order_by(Writeback.id)).scalars().all()
        # The last row keeps its ordinary address and no error: it must come out as it is.
        for n, (email, error) in enumerate(zip(FORMULAS, FORMULAS[1:] + FORMULAS[:1], strict=True)):
            conn.execute(
                Writeback.__table__.update()
                .where(Writeback.id == ids[n])
                .values(email=email, last_error=error)
            )
    engine.dispose()

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "writeback_console.cli",
            "--db",
            sqlite_url,
            "list",
            "--format",
            "csv",
            "--all",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    header, *rows = list(csv.reader(io.StringIO(done.stdout, newline="")))
    by_email = {row[header.index("email")]: row for row in rows}
    assert set(by_email) == {"'" + text for text in FORMULAS} | {f"a{len(FORMULAS)}@b.org"}
    errors = {row[header.index("last_error")] for row in rows}
    assert errors == {"'" + text for text in FORMULAS} | {""}

    # The export command writes the file the console's Export writes (the same operation): same header,
    # the same defused cells, and a byte-order mark so a spreadsheet reads it as UTF-8.
    exported = tmp_path / "console.csv"
    assert run_cli(capsys, sqlite_url, "export", str(exported))[0] == 0
    assert exported.read_bytes().startswith(b"\xef\xbb\xbf")
    with exported.open(newline="", encoding="utf-8-sig") as f:
        assert sorted(csv.reader(f)) == sorted([header, *rows])


def test_summary_verify_finds_kept_totals_that_disagree_and_repair_sets_them(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    main(["--db", db_url, "seed", "--rows", "40"])
    capsys.readouterr()
    code, out, _ = run_cli(capsys, db_url, "summary", "--verify")
    assert code == 0 and "agree" in out
    engine = make_engine(db_url)
    with engine.begin() as conn:  # as if a bulk load had gone round the triggers
        conn.exec_driver_sql("UPDATE status_count SET total = total + 5 WHERE status = 'sent'")
    engine.dispose()
    code, _, err = run_cli(capsys, db_url, "summary", "--verify")
    assert code == 1 and "Sent: kept" in err and "--repair" in err
    code, out, _ = run_cli(capsys, db_url, "summary", "--verify", "--repair")
    assert code == 0 and "set to the count" in out
    code, out, _ = run_cli(capsys, db_url, "summary", "--verify")
    assert code == 0
    code, _, err = run_cli(capsys, db_url, "summary", "--repair")
    assert code == 2 and "--repair goes with --verify" in err
