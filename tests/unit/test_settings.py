"""Settings: a JSON file with clear errors, the password kept apart and never in plain sight."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import keyring
import keyring.backend
import pytest

from writeback_console.settings import (
    AppSettings,
    PasswordStore,
    SettingsError,
    load_settings,
    runs_dispatcher,
    save_settings,
)

URL = "https://crm.example.org/PersonifyDataServices/PersonifyData.svc"


def test_settings_round_trip_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert load_settings(path, environ={}) == AppSettings()
    saved = AppSettings(service_root_url=URL, user="svc", interval_seconds=300, concurrency=4)
    save_settings(saved, path)
    assert load_settings(path, environ={}) == saved
    assert "password" not in path.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot be read as JSON"),
        ('{"concurrency": "eight"}', "concurrency: must be a whole number"),
        ('{"concurrency": 0}', "concurrency: must be between 1 and 64"),
        ('{"interval": 600}', "interval: unknown setting"),
        ('{"password": "x"}', "password: does not belong in the settings file"),
        ('{"verify_tls": "yes"}', "verify_tls: must be true or false"),
        ('{"allow_insecure_http": 1}', "allow_insecure_http: must be true or false"),
        ('{"runs_dispatcher": "no"}', "runs_dispatcher: must be true, false or null, not 'no'"),
        ('{"runs_dispatcher": 0}', "runs_dispatcher: must be true, false or null, not 0"),
        (
            '{"operator": "Informz \u2013 sync"}',
            "operator: '–' (U+2013) cannot be sent in the AddModOper header",
        ),
        ('{"request_deadline": 0.5}', "request_deadline: must be between 1 and 3600"),
        ('{"mapping": {"codes": {"unsubscribe": ""}}}', "mapping:"),
        ("[]", "must hold a JSON object"),
    ],
)
def test_bad_settings_file_names_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(path, environ={})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(AppSettings(service_root_url=URL, user="svc"), path)
    env = {"WRITEBACK_PERSONIFY_URL": "http://127.0.0.1:1/x.svc", "WRITEBACK_PERSONIFY_USER": "other"}
    loaded = load_settings(path, environ=env)
    assert (loaded.service_root_url, loaded.user) == ("http://127.0.0.1:1/x.svc", "other")


def test_plain_http_is_refused_unless_allowed_in_the_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(AppSettings(service_root_url="http://crm.example.org/x.svc", user="svc"), path)
    with pytest.raises(SettingsError, match=r"^service_root_url: http:// would send .* unencrypted"):
        load_settings(path, environ={}).personify("pw")
    save_settings(
        AppSettings(service_root_url="http://crm.example.org/x.svc", user="svc", allow_insecure_http=True),
        path,
    )
    assert json.loads(path.read_text())["allow_insecure_http"] is True
    client = load_settings(path, environ={}).personify("pw")
    assert (client.service_root_url, client.allow_insecure_http) == ("http://crm.example.org/x.svc", True)


def test_plain_http_allowed_by_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(AppSettings(service_root_url="http://crm.example.org/x.svc", user="svc"), path)
    for value in ("0", ""):
        loaded = load_settings(path, environ={"WRITEBACK_PERSONIFY_ALLOW_HTTP": value})
        assert loaded.allow_insecure_http is False
    loaded = load_settings(path, environ={"WRITEBACK_PERSONIFY_ALLOW_HTTP": "1"})
    assert loaded.allow_insecure_http is True
    assert loaded.personify("pw").allow_insecure_http is True


def test_incomplete_settings_say_what_is_missing() -> None:
    with pytest.raises(SettingsError, match="service_root_url: not set"):
        AppSettings(user="svc").personify("pw")
    with pytest.raises(SettingsError, match="service_root_url: must be an http"):
        AppSettings(service_root_url="ftp://x", user="svc").personify("pw")


def test_password_file_is_readable_only_by_its_owner_and_never_beside_settings(tmp_path: Path) -> None:
    store = PasswordStore(fallback=tmp_path / "credentials.json", use_keyring=False)
    store.set(URL, "svc", "s3cret-value")
    mode = stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode)
    assert mode == 0o600
    assert store.get(URL, "svc", environ={}) == "s3cret-value"
    assert store.get(URL, "someone-else", environ={}) is None
    assert store.get(URL, "svc", environ={"WRITEBACK_PERSONIFY_PASSWORD": "from-env"}) == "from-env"
    save_settings(AppSettings(service_root_url=URL, user="svc"), tmp_path / "settings.json")
    assert "s3cret-value" not in (tmp_path / "settings.json").read_text()
    (tmp_path / "credentials.json").chmod(0o644)
    assert store.get(URL, "svc", environ={}) == "s3cret-value"
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600
    store.delete(URL, "svc")
    assert json.loads((tmp_path / "credentials.json").read_text()) == {}


def test_password_never_shows_in_a_repr() -> None:
    client_settings = AppSettings(service_root_url=URL, user="svc").personify("s3cret-value")
    assert "s3cret-value" not in repr(client_settings)


class _MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring that lives in memory, standing in for the operating system's."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)


def test_with_a_keyring_the_password_never_touches_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WRITEBACK_NO_KEYRING", raising=False)
    previous = keyring.get_keyring()
    memory = _MemoryKeyring()
    keyring.set_keyring(memory)
    try:
        store = PasswordStore(fallback=tmp_path / "credentials.json")
        assert "keyring" in store.where
        store.set(URL, "svc", "s3cret-value")
        save_settings(AppSettings(service_root_url=URL, user="svc"), tmp_path / "settings.json")
        assert store.get(URL, "svc", environ={}) == "s3cret-value"
    finally:
        keyring.set_keyring(previous)
    assert list(memory.secrets.values()) == ["s3cret-value"]
    assert not (tmp_path / "credentials.json").exists()
    for file in tmp_path.rglob("*"):
        assert b"s3cret-value" not in file.read_bytes()


def test_dispatch_options_come_from_the_settings_and_an_override_wins() -> None:
    settings = AppSettings(concurrency=3, lease_seconds=60, batch_size=10, settle_seconds=5)
    options = settings.dispatch_options()
    assert (options.concurrency, options.lease_seconds, options.batch_size, options.settle_seconds) == (
        3,
        60,
        10,
        5,
    )
    chosen = settings.dispatch_options(concurrency=None, lease_seconds=1, settle_seconds=0)
    assert (chosen.concurrency, chosen.lease_seconds, chosen.settle_seconds) == (3, 1, 0)


def test_defaults_are_the_declared_ones() -> None:
    from writeback_console import domain

    options = AppSettings().dispatch_options()
    assert AppSettings().interval_seconds == domain.DEFAULT_INTERVAL_SECONDS
    assert (options.concurrency, options.lease_seconds, options.batch_size, options.settle_seconds) == (
        domain.DEFAULT_CONCURRENCY,
        domain.DEFAULT_LEASE_SECONDS,
        domain.DEFAULT_BATCH_SIZE,
        domain.DEFAULT_SETTLE_SECONDS,
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"concurrency": 0}, "concurrency: must be between 1 and 64, not 0"),
        ({"lease_seconds": -5}, "lease_seconds: must be between 1 and 86400, not -5"),
        ({"interval_seconds": 0}, "interval_seconds: must be between 1 and 604800, not 0"),
    ],
)
def test_an_override_is_held_to_the_setting_s_limits(override: dict[str, int], message: str) -> None:
    with pytest.raises(SettingsError, match=f"^{re.escape(message)}$"):
        AppSettings().dispatch_options(**override)


@pytest.mark.parametrize(
    ("url", "runs"),
    [
        ("sqlite:////home/ann/queue.sqlite3", True),
        ("postgresql+psycopg://support@db.example.org/writeback", False),
        ("postgresql://db.example.org/writeback", False),
    ],
)
def test_a_console_runs_the_dispatcher_by_default_on_sqlite_and_not_on_postgresql(
    url: str, runs: bool
) -> None:
    assert runs_dispatcher(AppSettings(), url) is runs


@pytest.mark.parametrize("chosen", [True, False])
def test_the_runs_dispatcher_setting_wins_over_the_database_s_default(chosen: bool) -> None:
    settings = AppSettings(runs_dispatcher=chosen)
    assert runs_dispatcher(settings, "sqlite:///q.sqlite3") is chosen
    assert runs_dispatcher(settings, "postgresql+psycopg://db/writeback") is chosen


@pytest.mark.parametrize("value", [True, False, None])
def test_the_runs_dispatcher_setting_is_saved_and_read_back(tmp_path: Path, value: bool | None) -> None:
    path = tmp_path / "settings.json"
    save_settings(AppSettings(runs_dispatcher=value), path)
    assert json.loads(path.read_text())["runs_dispatcher"] is value
    assert load_settings(path, environ={}).runs_dispatcher is value


def test_a_runs_dispatcher_that_is_not_true_or_false_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="runs_dispatcher: must be true, false or null"):
        AppSettings(runs_dispatcher="yes")  # type: ignore[arg-type]
