"""Config: which database a command works on, where the files live, and URLs shown without passwords."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from writeback_console.config import (
    DB_URL_ENV,
    config_dir,
    data_dir,
    default_db_path,
    redact_url,
    resolve_db_url,
)

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the XDG folders are the Linux convention")


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Data and config folders under tmp_path, and no database URL in the environment."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    return tmp_path


@linux_only
def test_data_and_settings_live_in_the_users_own_folders_named_after_the_app(xdg: Path) -> None:
    assert data_dir() == xdg / "data" / "writeback-console"
    assert config_dir() == xdg / "config" / "writeback-console"
    assert default_db_path() == xdg / "data" / "writeback-console" / "writeback.sqlite3"


@linux_only
def test_without_db_or_environment_the_embedded_sqlite_file_is_used(xdg: Path) -> None:
    assert resolve_db_url() == f"sqlite:///{xdg / 'data' / 'writeback-console' / 'writeback.sqlite3'}"


@linux_only
def test_an_empty_db_option_or_environment_variable_counts_as_not_given(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DB_URL_ENV, "")
    assert resolve_db_url("") == f"sqlite:///{default_db_path()}"


def test_the_db_option_wins_over_the_environment(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DB_URL_ENV, "postgresql://env-host/queue")
    assert resolve_db_url("postgresql://option-host/queue") == "postgresql://option-host/queue"
    assert resolve_db_url() == "postgresql://env-host/queue"


def test_a_bare_path_is_an_absolute_sqlite_file_wherever_the_command_was_started(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(xdg)
    assert resolve_db_url("queue.sqlite3") == f"sqlite:///{(xdg / 'queue.sqlite3').resolve()}"
    monkeypatch.setenv(DB_URL_ENV, "sub/env.sqlite3")
    assert resolve_db_url() == f"sqlite:///{(xdg / 'sub' / 'env.sqlite3').resolve()}"


def test_a_home_relative_path_is_expanded(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(xdg / "home"))
    assert resolve_db_url("~/queue.sqlite3") == f"sqlite:///{(xdg / 'home' / 'queue.sqlite3').resolve()}"


def test_a_password_in_a_database_url_is_never_shown() -> None:
    shown = redact_url("postgresql+psycopg://writeback:hunter2@db.example.org:5432/queue")
    assert shown == "postgresql+psycopg://writeback:***@db.example.org:5432/queue"


@given(
    password=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=6, max_size=30
    )
)
def test_no_password_however_odd_survives_redaction_when_it_is_written_encoded(password: str) -> None:
    template = "postgresql://svc:{}@db.example.org:5432/queue"
    assume(password not in template and quote(password, safe="") not in template)
    shown = redact_url(template.format(quote(password, safe="")))
    assert shown == template.format("***")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/writeback/queue.sqlite3",
        "postgresql://writeback@db.example.org/queue",
        "postgresql://db.example.org/queue?sslmode=require",
    ],
)
def test_a_url_without_a_password_is_shown_as_given(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize("url", ["not a database url", "postgresql://svc:hunter2@db.example.org:port/queue"])
def test_a_url_that_cannot_be_read_is_shown_as_a_placeholder_not_as_typed(url: str) -> None:
    assert redact_url(url) == "<unparsable database URL>"


def test_a_password_given_as_a_query_parameter_is_not_shown() -> None:
    shown = redact_url("postgresql+psycopg://svc@db.example.org/queue?password=hunter2&sslmode=require")
    assert "hunter2" not in shown
    assert "sslmode=require" in shown


def test_a_password_typed_with_a_raw_at_sign_is_not_partly_shown() -> None:
    shown = redact_url("postgresql://svc:hunter@2secret@db.example.org/queue")
    assert "2secret" not in shown and "hunter" not in shown
