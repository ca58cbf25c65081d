"""``writeback-console audit``: the audit log as a table, CSV or JSON, filtered; bad input refused."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, fail, item, minutes, run
from writeback_console import operations
from writeback_console.cli import main
from writeback_console.domain import AuditAction, Status, utcnow
from writeback_console.store import audit_trail, listing, switches
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction

Factory = sessionmaker[Session]
INACTIVE = "Activity Code NEWS is inactive."
IMPORT_LINE = {
    "kind": "unsubscribe",
    "account": "Main",
    "reason": "Too many emails",
    "master_customer_id": "000000001475",
    "sub_customer_id": 0,
    "occurred_at": "2026-11-20T10:00:00Z",
}


def run_cli(capsys: pytest.CaptureFixture[str], db: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--db", db, "audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_cli_any(capsys: pytest.CaptureFixture[str], db: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--db", db, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def bulk_retry(factory: Factory, n: int = 4) -> list[str]:
    """``n`` Error rows retried as "all matching" by an advisor; their references, in id order."""
    ids = enqueue(factory, *(item(email=f"p{k}@example.org") for k in range(n)))
    for attempt in range(3):
        at = T0 + minutes(10 * attempt + 1)
        run(factory, at)
        for wid in ids:
            fail(factory, wid, at + timedelta(seconds=5), message=INACTIVE)
    flt = listing.WritebackFilter(statuses=frozenset({Status.ERROR}), error_text="inactive")
    operations.act_on_matching(factory, flt, "retry", actor="advisor@desk")
    with factory() as session:
        return [listing.get_writeback(session, wid).ref for wid in sorted(ids)]


def record(
    factory: Factory, actor: str, action: AuditAction, *, ago: timedelta, detail: dict[str, str] | None = None
) -> int:
    with write_transaction(factory) as session:
        return audit_trail.record_audit(
            session, actor=actor, action=action, rows=[], now=utcnow() - ago, detail=detail
        )


def test_the_table_shows_a_bulk_retry_with_its_filter_in_words_and_its_rows(
    db_url: str, factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = bulk_retry(factory)
    operations.set_account_switches(factory, {switches.WRITEBACK_ENABLED: False}, actor="ann@desk")

    code, out, _err = run_cli(capsys, db_url)

    assert code == 0
    header, setting, retry = out.splitlines()
    assert header.split()[:4] == ["WHEN", "WHO", "ACTION", "ROWS"]
    assert "ann@desk" in setting and "Account setting" in setting
    assert "writeback_enabled for every account: not set → off" in setting
    assert "advisor@desk" in retry and "Retry" in retry
    assert 'all matching: status=error, error contains "inactive"' in retry
    assert retry.split()[retry.split().index("Retry") + 1] == "4"
    assert retry.endswith(", ".join(refs[:3]) + ", …")


def test_json_carries_every_field_with_the_whole_filter_and_detail(
    db_url: str, factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = bulk_retry(factory, 2)

    code, out, _err = run_cli(capsys, db_url, "--format", "json")

    assert code == 0
    (entry,) = json.loads(out)
    assert entry["action"] == "retry" and entry["actor"] == "advisor@desk" and entry["row_count"] == 2
    assert entry["filter"] == {"statuses": ["error"], "error_text": "inactive", "matching": True}
    assert entry["detail"]["granted_attempts"] == 1
    assert entry["first_refs"] == refs
    assert entry["db_user"] == (None if db_url.startswith("sqlite") else "writeback")
    assert set(entry) >= {"id", "at", "words"}


def test_csv_has_every_field_and_never_a_formula(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    record(
        factory,
        '=HYPERLINK("http://x")',
        AuditAction.CONSOLE_SETTING,
        ago=timedelta(minutes=5),
        detail={"key": "operator", "from": "INFORMZ", "to": "+SUM(A1)"},
    )

    code, out, _err = run_cli(capsys, sqlite_url, "--format", "csv")

    assert code == 0
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["actor"] == '\'=HYPERLINK("http://x")'
    assert row["action"] == "console_setting"
    assert json.loads(row["detail"]) == {"key": "operator", "from": "INFORMZ", "to": "+SUM(A1)"}
    assert row["filter_words"] == "operator: INFORMZ → +SUM(A1)"
    assert row["at"].endswith("Z") and row["row_count"] == "0"


def test_since_and_until_take_a_date_a_time_or_an_age(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    record(factory, "recent", AuditAction.EXPORT, ago=timedelta(hours=2))
    record(factory, "older", AuditAction.EXPORT, ago=timedelta(days=3))
    record(factory, "oldest", AuditAction.EXPORT, ago=timedelta(days=20))

    def who(*argv: str) -> list[str]:
        code, out, _err = run_cli(capsys, sqlite_url, "--format", "json", *argv)
        assert code == 0
        return [e["actor"] for e in json.loads(out)]

    assert who("--since", "24h") == ["recent"]
    assert who("--since", "7d") == ["recent", "older"]
    assert who("--since", "2w", "--until", "1d") == ["older"]
    four_days_ago = (utcnow() - timedelta(days=4)).date().isoformat()
    assert who("--since", four_days_ago) == ["recent", "older"]
    moment = (utcnow() - timedelta(days=1)).isoformat(timespec="seconds")
    assert who("--until", moment) == ["older", "oldest"]


def test_person_action_and_reference_narrow_the_log(
    db_url: str, factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = bulk_retry(factory, 2)
    operations.set_account_switches(factory, {switches.WRITEBACK_ENABLED: False}, actor="ann@desk")

    def actions(*argv: str) -> list[str]:
        code, out, _err = run_cli(capsys, db_url, "--format", "json", *argv)
        assert code == 0
        return [e["action"] for e in json.loads(out)]

    assert actions("--actor", "ADVISOR") == ["retry"]
    assert actions("--action", "setting,retry") == ["setting", "retry"]
    assert actions("--action", "Account setting") == ["setting"]
    assert actions("--ref", refs[1].lower()) == ["retry"]
    assert actions("--actor", "nobody") == []


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--since", "yesterday"], "'yesterday' is not a date (2026-11-30)"),
        (["--until", "2026-13-40"], "is not a date"),
        (["--since", "5x"], "an age before now (24h, 7d, 2w)"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--limit", "many"], "invalid int value"),
    ],
)
def test_a_bad_value_is_named_and_exits_2(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--db", sqlite_url, "audit", *argv])
    assert exit.value.code == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["--action", "retri"], 2, "--action: unknown action 'retri'; one of enqueue"),
        (["--since", "2026-11-30", "--until", "2026-11-01"], 2, "--since 2026-11-30T00:00:00Z is not before"),
        (["--limit", "0"], 2, "--limit: at least 1, not 0"),
        (["--ref", "WB-NEVERGIVEN"], 1, "--ref: no writeback WB-NEVERGIVEN, in the queue or pruned"),
    ],
)
def test_a_refused_filter_says_why_and_prints_nothing(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, words: str
) -> None:
    got, out, err = run_cli(capsys, sqlite_url, *argv)
    assert got == code
    assert out == ""
    assert words in err


def test_audit_ref_of_an_imported_writeback_prints_its_import(
    db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [json.dumps(IMPORT_LINE | {"email": f"p{k}@example.org"}) for k in range(3)]
    path = tmp_path / "members.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, _ = run_cli_any(capsys, db_url, "import", str(path))
    assert code == 0 and "imported 3 writebacks" in out
    code, out, _ = run_cli_any(capsys, db_url, "list", "--format", "json")
    refs = sorted(r["ref"] for r in json.loads(out))

    code, out, _err = run_cli(capsys, db_url, "--ref", refs[1], "--format", "json")

    assert code == 0
    (entry,) = json.loads(out)
    assert entry["action"] == "import" and entry["row_count"] == 3
    assert entry["detail"]["file"] == "members.jsonl"
    assert sorted(entry["first_refs"]) == refs
    code, out, _err = run_cli(capsys, db_url, "--ref", refs[1])
    assert code == 0 and "Import" in out and refs[1] in out
