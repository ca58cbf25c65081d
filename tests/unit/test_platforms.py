"""The code paths that differ on Windows and macOS, run here with the platform checks patched: the
password file without POSIX modes (no os.fchmod before Python 3.13), the simulator's watch on the
console that started it (never os.kill on Windows, where signal 0 is Ctrl+C), its port handling."""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from writeback_console.settings import PasswordStore
from writeback_console.sim import cli as sim_cli
from writeback_console.sim.server import reuse_address_is_safe


@pytest.mark.parametrize("platform", ["win32", "darwin", "linux"])
def test_the_password_file_works_on_every_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    if platform == "win32":
        # What Windows' Python before 3.13 lacks.
        monkeypatch.delattr(os, "fchmod")
    store = PasswordStore(tmp_path / "credentials.json", use_keyring=False)
    store.set("https://p360.example.org/odata", "svc", "s3cret")
    assert (
        PasswordStore(tmp_path / "credentials.json", use_keyring=False).get(
            "https://p360.example.org/odata", "svc", environ={}
        )
        == "s3cret"
    )
    if platform == "win32":
        assert "your own user profile" in store.where
    else:
        assert "readable only by you" in store.where
        assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600


def test_a_loosened_password_file_is_tightened_where_modes_mean_something(tmp_path: Path) -> None:
    store = PasswordStore(tmp_path / "credentials.json", use_keyring=False)
    store.set("https://h/odata", "svc", "pw")
    (tmp_path / "credentials.json").chmod(0o644)
    assert store.get("https://h/odata", "svc", environ={}) == "pw"
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600


class FakeKernel32:
    """Windows' process calls as the simulator uses them, for a process with a given exit code."""

    def __init__(self, exit_code: int | None) -> None:
        self.exit_code = exit_code
        self.open_handles = 0

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        assert access == sim_cli.PROCESS_QUERY_LIMITED_INFORMATION and not inherit
        if self.exit_code is None:
            return 0
        self.open_handles += 1
        return 42

    def GetExitCodeProcess(self, handle: int, code: Any) -> int:
        ctypes.cast(code, ctypes.POINTER(ctypes.c_ulong)).contents.value = self.exit_code or 0
        return 1

    def CloseHandle(self, handle: int) -> int:
        self.open_handles -= 1
        return 1


@pytest.mark.parametrize(
    ("exit_code", "alive"),
    [(sim_cli.STILL_ACTIVE, True), (0, False), (None, False)],
    ids=["runs", "ended", "gone"],
)
def test_on_windows_the_simulator_asks_for_its_console_instead_of_signalling_it(
    monkeypatch: pytest.MonkeyPatch, exit_code: int | None, alive: bool
) -> None:
    def no_kill(pid: int, sig: int) -> None:
        raise AssertionError("os.kill(pid, 0) sends Ctrl+C on Windows")

    monkeypatch.setattr(os, "kill", no_kill)
    kernel32 = FakeKernel32(exit_code)
    assert sim_cli._alive(4242, platform="win32", kernel32=kernel32) is alive
    assert kernel32.open_handles == 0


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_elsewhere_the_simulator_sees_whether_its_console_still_runs(platform: str) -> None:
    assert sim_cli._alive(os.getpid(), platform=platform)
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    assert not sim_cli._alive(int(ended.stdout), platform=platform)


def test_a_port_in_use_cannot_be_shared_on_windows() -> None:
    assert reuse_address_is_safe("linux") and reuse_address_is_safe("darwin")
    assert not reuse_address_is_safe("win32")


@pytest.mark.parametrize(
    ("platform", "options"),
    [
        ("linux", {"start_new_session": True}),
        ("darwin", {"start_new_session": True}),
        ("win32", {"creationflags": 0x200}),
    ],
)
def test_ctrl_c_in_the_terminal_reaches_the_console_not_its_simulator(
    platform: str, options: dict[str, object]
) -> None:
    from writeback_console.demo import apart_from_the_terminal

    assert apart_from_the_terminal(platform) == options
