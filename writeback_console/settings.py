"""The console's own settings: a JSON file in the config folder, the password kept apart from it.

The password lives in the operating system's keyring (the ``keyring`` package) or, where no keyring
is available, in a file only the user may read (mode 0600). It is never in the settings file, the
database or a log. Environment variables override the file for headless dispatchers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from writeback_console.config import config_dir
from writeback_console.dispatch.summary import DispatchOptions
from writeback_console.domain import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_SETTLE_SECONDS,
)
from writeback_console.personify.mapping import ActivityMapping
from writeback_console.personify.values import PersonifySettings, check_operator

log = logging.getLogger(__name__)

ENV_URL = "WRITEBACK_PERSONIFY_URL"
ENV_USER = "WRITEBACK_PERSONIFY_USER"
ENV_PASSWORD = "WRITEBACK_PERSONIFY_PASSWORD"
ENV_ALLOW_HTTP = "WRITEBACK_PERSONIFY_ALLOW_HTTP"
KEYRING_SERVICE = "writeback-console"
MAX_SETTINGS_BYTES = 1_000_000


class SettingsError(ValueError):
    """The settings file or a value in it is wrong; the message names the key."""


@dataclass(frozen=True)
class AppSettings:
    """What one console or headless dispatcher needs to know, apart from the password."""

    service_root_url: str = ""
    user: str = ""
    operator: str = "INFORMZ"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    verify_tls: bool = True
    #: Plain http:// to another computer, which sends the password unencrypted: only on a trusted network.
    allow_insecure_http: bool = False
    #: Seconds between dispatcher runs.
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    #: Writebacks sent at once.
    concurrency: int = DEFAULT_CONCURRENCY
    #: How long a claimed row stays locked without renewal before another run may recover it.
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    #: Rows claimed per statement.
    batch_size: int = DEFAULT_BATCH_SIZE
    #: Recipients of a mailing claimed at a time: dispatchers share a big mailing chunk by chunk.
    chunk_size: int = DEFAULT_CHUNK_SIZE
    #: The longest one request to Personify360 may take, however slowly the answer trickles in.
    request_deadline: float = 60.0
    #: How long a writeback whose write may have arrived waits before Personify360 is asked for it.
    settle_seconds: int = DEFAULT_SETTLE_SECONDS
    mapping: Mapping[str, Any] = field(default_factory=lambda: ActivityMapping().to_dict())
    #: Whether this console runs the dispatcher; None: the default for its database (see
    #: ``runs_dispatcher``). A support console on a shared queue leaves that to the headless dispatchers.
    runs_dispatcher: bool | None = None

    def __post_init__(self) -> None:
        if self.runs_dispatcher is not None and not isinstance(self.runs_dispatcher, bool):
            raise SettingsError(f"runs_dispatcher: must be true, false or null, not {self.runs_dispatcher!r}")
        _positive("connect_timeout", self.connect_timeout, 0.1, 600)
        _positive("read_timeout", self.read_timeout, 0.1, 3600)
        _positive("interval_seconds", self.interval_seconds, 1, 7 * 86400)
        _positive("concurrency", self.concurrency, 1, 64)
        _positive("lease_seconds", self.lease_seconds, 1, 86400)
        _positive("batch_size", self.batch_size, 1, 5000)
        _positive("chunk_size", self.chunk_size, 1, 5000)
        _positive("request_deadline", self.request_deadline, 1, 3600)
        _positive("settle_seconds", self.settle_seconds, 0, 3600)
        try:
            # Refused when the settings are read or saved, not at the first request of a run.
            check_operator(self.operator)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        try:
            ActivityMapping.from_dict(self.mapping)
        except ValueError as exc:
            raise SettingsError(f"mapping: {exc}") from None

    def check_before_saving(self) -> None:
        """What Save refuses beyond each value's own limits: an empty operator, and a service root URL
        the client would refuse (``http://`` only to this computer or when allowed). SettingsError."""
        if not self.operator.strip():
            raise SettingsError("operator: must not be empty")
        if self.service_root_url:
            try:
                # The client's own rules for the address; a user is needed only to build it.
                PersonifySettings(
                    self.service_root_url,
                    self.user or "-",
                    "",
                    operator=self.operator,
                    allow_insecure_http=self.allow_insecure_http,
                )
            except ValueError as exc:
                raise SettingsError(str(exc)) from None

    @property
    def activity_mapping(self) -> ActivityMapping:
        return ActivityMapping.from_dict(self.mapping)

    def dispatch_options(self, **overrides: Any) -> DispatchOptions:
        """The dispatcher's options from these settings; an override that is not None wins, and is held
        to the same limits as the setting (SettingsError naming it otherwise)."""
        given = {name: value for name, value in overrides.items() if value is not None}
        chosen = replace(self, **given) if given else self
        return DispatchOptions(
            concurrency=chosen.concurrency,
            lease_seconds=chosen.lease_seconds,
            batch_size=chosen.batch_size,
            chunk_size=chosen.chunk_size,
            settle_seconds=chosen.settle_seconds,
            retry_interval_seconds=chosen.interval_seconds,
        )

    def personify(self, password: str) -> PersonifySettings:
        """Client settings; raises SettingsError naming what is missing."""
        if not self.service_root_url:
            raise SettingsError(
                f"service_root_url: not set (Settings, or {ENV_URL} for a headless dispatcher)"
            )
        if not self.user:
            raise SettingsError(f"user: not set (Settings, or {ENV_USER})")
        try:
            return PersonifySettings(
                service_root_url=self.service_root_url,
                user=self.user,
                password=password,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                operator=self.operator,
                verify_tls=self.verify_tls,
                allow_insecure_http=self.allow_insecure_http,
                pool_size=max(16, self.concurrency * 2),
                request_deadline=self.request_deadline,
            )
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mapping"] = dict(self.mapping)
        return data


def runs_dispatcher_by_default(db_url: str) -> bool:
    """Whether a console runs the dispatcher when its settings do not say: yes on its own SQLite file,
    no on a shared PostgreSQL queue, which headless dispatchers serve."""
    return not db_url.startswith("postgresql")


def runs_dispatcher(settings: AppSettings, db_url: str) -> bool:
    """Whether the console on ``db_url`` runs the dispatcher: the setting, else its database's default."""
    if settings.runs_dispatcher is not None:
        return settings.runs_dispatcher
    return runs_dispatcher_by_default(db_url)


def _positive(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{name}: must be a number, not {value!r}")
    if not low <= value <= high:
        raise SettingsError(f"{name}: must be between {low:g} and {high:g}, not {value:g}")


def settings_path() -> Path:
    return config_dir() / "settings.json"


def settings_from_json(data: object) -> AppSettings:
    if not isinstance(data, dict):
        raise SettingsError("the settings file must hold a JSON object")
    known = {f.name: f for f in fields(AppSettings)}
    if "password" in data:
        raise SettingsError("password: does not belong in the settings file")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SettingsError(f"{unknown[0]}: unknown setting")
    values: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(AppSettings(), name)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise SettingsError(f"{name}: must be true or false, not {value!r}")
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingsError(f"{name}: must be a whole number, not {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(f"{name}: must be a number, not {value!r}")
            value = float(value)
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise SettingsError(f"{name}: must be text, not {value!r}")
        elif name == "runs_dispatcher":
            if value is not None and not isinstance(value, bool):
                raise SettingsError(f"runs_dispatcher: must be true, false or null, not {value!r}")
        elif name == "mapping" and not isinstance(value, dict):
            raise SettingsError("mapping: must be an object")
        values[name] = value
    return AppSettings(**values)


def load_settings(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> AppSettings:
    """The settings file (defaults where it is absent), then the environment variables over it."""
    path = path or settings_path()
    environ = os.environ if environ is None else environ
    settings = AppSettings()
    if path.exists():
        if path.stat().st_size > MAX_SETTINGS_BYTES:
            raise SettingsError(f"{path}: larger than {MAX_SETTINGS_BYTES:,} bytes")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SettingsError(f"{path}: cannot be read as JSON ({exc})") from None
        try:
            settings = settings_from_json(data)
        except SettingsError as exc:
            raise SettingsError(f"{path}: {exc}") from None
    overrides: dict[str, Any] = {}
    if environ.get(ENV_URL):
        overrides["service_root_url"] = environ[ENV_URL]
    if environ.get(ENV_USER):
        overrides["user"] = environ[ENV_USER]
    if environ.get(ENV_ALLOW_HTTP) == "1":
        overrides["allow_insecure_http"] = True
    return replace(settings, **overrides) if overrides else settings


def save_settings(settings: AppSettings, path: Path | None = None) -> Path:
    """Write the settings atomically: a crash leaves the old file or the new one, never half of one."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(settings.to_json(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


class PasswordStore:
    """The Personify360 password, by service URL and user: keyring first, a 0600 file otherwise."""

    def __init__(self, fallback: Path | None = None, *, use_keyring: bool = True) -> None:
        self.fallback = fallback or config_dir() / "credentials.json"
        self._keyring: Any = _usable_keyring() if use_keyring else None

    @property
    def where(self) -> str:
        """In words, where the password is kept (shown in Settings)."""
        if self._keyring is not None:
            return f"the system keyring ({type(self._keyring).__name__})"
        if sys.platform.startswith("win"):
            return f"{self.fallback} (in your own user profile)"
        return f"{self.fallback} (readable only by you)"

    @staticmethod
    def _key(url: str, user: str) -> str:
        return f"{user}@{url}"

    def get(self, url: str, user: str, *, environ: Mapping[str, str] | None = None) -> str | None:
        environ = os.environ if environ is None else environ
        if environ.get(ENV_PASSWORD):
            return environ[ENV_PASSWORD]
        if self._keyring is not None:
            value: str | None = self._keyring.get_password(KEYRING_SERVICE, self._key(url, user))
            return value
        return self._read_file().get(self._key(url, user))

    def set(self, url: str, user: str, password: str) -> None:
        if self._keyring is not None:
            self._keyring.set_password(KEYRING_SERVICE, self._key(url, user), password)
            return
        data = self._read_file()
        data[self._key(url, user)] = password
        self._write_file(data)

    def delete(self, url: str, user: str) -> None:
        if self._keyring is not None:
            with contextlib.suppress(Exception):
                self._keyring.delete_password(KEYRING_SERVICE, self._key(url, user))
            return
        data = self._read_file()
        if data.pop(self._key(url, user), None) is not None:
            self._write_file(data)

    def _read_file(self) -> dict[str, str]:
        try:
            mode = self.fallback.stat().st_mode
        except FileNotFoundError:
            return {}
        if _posix_modes() and mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Someone loosened it; tighten before reading rather than trust it.
            os.chmod(self.fallback, 0o600)
        try:
            data = json.loads(self.fallback.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("the password file %s cannot be read; ignoring it", self.fallback)
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write_file(self, data: dict[str, str]) -> None:
        self.fallback.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 from the start: there is no moment at which another user could read it.
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=self.fallback.parent)
        try:
            if _posix_modes() and hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, self.fallback)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _posix_modes() -> bool:
    """Whether file mode bits protect a file here. On Windows they do not (and ``os.fchmod`` is missing
    before Python 3.13): the fallback file sits in the user's own profile folder, whose access list
    already keeps other users out, and ``mkstemp`` creates it readable by its owner only."""
    return not sys.platform.startswith("win")


def _usable_keyring() -> Any:
    """The system keyring, or None where there is none worth using (headless Linux, CI)."""
    if os.environ.get("WRITEBACK_NO_KEYRING"):
        return None
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception:
        return None
    names = {type(b).__module__ for b in getattr(backend, "backends", [backend])}
    if isinstance(backend, fail.Keyring) or names <= {"keyring.backends.fail", "keyring.backends.null"}:
        return None
    if getattr(backend, "priority", 1) <= 0:
        return None
    return backend
