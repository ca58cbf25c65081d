"""Exports and the console's own settings are audited: what left the queue, and what changed (never a
password's value)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import enqueue, item
from writeback_console import operations
from writeback_console.cli import main
from writeback_console.domain import AuditAction, Kind
from writeback_console.settings import AppSettings, PasswordStore, save_settings
from writeback_console.store import audit_log, listing
from writeback_console.store.audit_log import AuditFilter
from writeback_console.store.engine import read_session
from writeback_console.store.models import AuditEvent

Factory = sessionmaker[Session]
URL = "https://p360.example.org/odata"


def entries(factory: Factory, action: AuditAction) -> list[audit_log.AuditEntry]:
    with read_session(factory) as session:
        return list(audit_log.iter_entries(session, AuditFilter(actions=frozenset({action}))))


def test_an_export_is_audited_with_its_filter_rows_and_file_name(factory: Factory, tmp_path: Path) -> None:
    enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(3)), item(Kind.RESUBSCRIBE))
    flt = listing.WritebackFilter(kinds=frozenset({Kind.UNSUBSCRIBE}))
    target = tmp_path / "private" / "november.csv"
    target.parent.mkdir()

    assert operations.export_csv(factory, flt, target, actor="ann@desk") == 3

    (entry,) = entries(factory, AuditAction.EXPORT)
    assert (entry.actor, entry.row_count, entry.filter) == ("ann@desk", 3, {"kinds": ["unsubscribe"]})
    assert entry.detail is not None and entry.detail["file"] == "november.csv"
    assert "private" not in json.dumps(entry.detail)
    assert audit_log.entry_words(entry).startswith("filter: kind=unsubscribe; to november.csv")


def test_a_cancelled_export_leaves_no_entry(factory: Factory, tmp_path: Path) -> None:
    enqueue(factory, item())
    progress = operations.ExportProgress()
    progress.cancel_requested.set()
    with pytest.raises(operations.ExportCancelled):
        operations.export_csv(factory, listing.WritebackFilter(), tmp_path / "x.csv", progress=progress)
    assert entries(factory, AuditAction.EXPORT) == []
    assert not (tmp_path / "x.csv").exists()


def test_the_export_command_is_audited_too(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from writeback_console.store.engine import make_engine, make_session_factory

    factory = make_session_factory(make_engine(sqlite_url))
    enqueue(factory, item())
    assert main(["--db", sqlite_url, "export", str(tmp_path / "all.csv"), "--kind", "unsubscribe"]) == 0
    capsys.readouterr()
    (entry,) = entries(factory, AuditAction.EXPORT)
    assert entry.row_count == 1 and entry.filter == {"kinds": ["unsubscribe"]}


def test_each_changed_console_setting_is_audited_and_a_password_only_as_changed(
    factory: Factory, tmp_path: Path
) -> None:
    store = PasswordStore(tmp_path / "secrets.json", use_keyring=False)
    path = tmp_path / "settings.json"
    before = AppSettings(service_root_url=URL, user="svc", concurrency=4)
    save_settings(before, path)
    store.set(URL, "svc", "old-secret")
    after = AppSettings(service_root_url=URL, user="svc", concurrency=8, operator="ADVISOR")

    operations.save_all_settings(
        operations.SettingsChange(after, "n3w-s3cret!", previous=(URL, "svc")),
        store=store,
        path=path,
        actor="ann@desk",
        factory=factory,
    )

    got = entries(factory, AuditAction.CONSOLE_SETTING)
    assert sorted(audit_log.entry_words(e) for e in got) == [
        "concurrency: 4 → 8",
        "operator: INFORMZ → ADVISOR",
        "password changed",
    ]
    assert all(e.actor == "ann@desk" and e.row_count == 0 for e in got)
    with read_session(factory) as session:
        everything = json.dumps([(e.detail, e.filter) for e in session.scalars(select(AuditEvent))])
    assert "s3cret" not in everything and "old-secret" not in everything
    assert store.get(URL, "svc", environ={}) == "n3w-s3cret!"


def test_saving_what_is_already_saved_records_nothing(factory: Factory, tmp_path: Path) -> None:
    store = PasswordStore(tmp_path / "secrets.json", use_keyring=False)
    path = tmp_path / "settings.json"
    settings = AppSettings(service_root_url=URL, user="svc")
    save_settings(settings, path)
    store.set(URL, "svc", "same")
    change = operations.SettingsChange(settings, "same", previous=(URL, "svc"))
    operations.save_all_settings(change, store=store, path=path, actor="ann", factory=factory)
    assert entries(factory, AuditAction.CONSOLE_SETTING) == []


def test_a_password_in_an_older_service_url_is_never_recorded(factory: Factory, tmp_path: Path) -> None:
    # Save refuses such a URL now; a file written by hand (or by an older version) may still hold one.
    store = PasswordStore(tmp_path / "secrets.json", use_keyring=False)
    path = tmp_path / "settings.json"
    save_settings(AppSettings(service_root_url="https://svc:hunter2@p360.example.org/odata"), path)
    change = operations.SettingsChange(AppSettings(service_root_url=URL, user="svc"))
    operations.save_all_settings(change, store=store, path=path, actor="ann", factory=factory)
    words = sorted(audit_log.entry_words(e) for e in entries(factory, AuditAction.CONSOLE_SETTING))
    assert words == [
        f"service_root_url: https://svc:***@p360.example.org/odata → {URL}",
        "user: not set → svc",
    ]
    with read_session(factory) as session:
        assert "hunter2" not in json.dumps([e.detail for e in session.scalars(select(AuditEvent))])


def test_a_save_that_fails_leaves_no_entry(factory: Factory, tmp_path: Path) -> None:
    store = PasswordStore(tmp_path / "secrets.json", use_keyring=False)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    change = operations.SettingsChange(AppSettings(concurrency=9))
    with pytest.raises(OSError):
        operations.save_all_settings(
            change, store=store, path=blocked / "settings.json", actor="ann", factory=factory
        )
    assert entries(factory, AuditAction.CONSOLE_SETTING) == []
