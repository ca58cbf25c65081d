"""The system check reads what Qt lacks from ldd and names the exact apt-get line; no display is said in
words. Recorded ldd outputs stand in for machines with and without the libraries (tests/data/ldd/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from writeback_console import system_check
from writeback_console.system_check import (
    NO_DISPLAY,
    check_libraries,
    debian_package,
    display_problem,
    missing_libraries,
)

LDD = Path(__file__).resolve().parents[1] / "data" / "ldd"


def recorded(name: str) -> str:
    return (LDD / name).read_text(encoding="utf-8")


def fake_qt(tmp_path: Path) -> Path:
    """A Qt folder with the files the check looks at (their contents do not matter: ldd is recorded)."""
    for relative in {r for needs in system_check.NEEDS.values() for r in needs}:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    return tmp_path


def test_a_machine_with_every_library_misses_nothing() -> None:
    assert missing_libraries(recorded("libqxcb-present.txt")) == []


def test_the_libraries_ldd_cannot_find_are_named_in_its_order() -> None:
    assert missing_libraries(recorded("libqxcb-missing.txt")) == [
        "libxkbcommon-x11.so.0",
        "libxcb-icccm.so.4",
        "libxcb-keysyms.so.1",
    ]


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libX11-xcb.so.1", "libx11-xcb1"),
        ("libdbus-1.so.3", "libdbus-1-3"),
        ("libEGL.so.1", "libegl1"),
        ("libfontconfig.so.1", "libfontconfig1"),
        ("libglib-2.0.so.0", "libglib2.0-0"),
    ],
)
def test_each_library_is_named_as_the_debian_package_that_holds_it(soname: str, package: str) -> None:
    assert debian_package(soname) == package


def test_the_window_check_names_the_exact_apt_get_line(tmp_path: Path) -> None:
    qt = fake_qt(tmp_path)
    outputs = {"libqxcb.so": recorded("libqxcb-missing.txt")}
    found = check_libraries("window", qt=qt, ldd=lambda p: outputs.get(p.name, ""), platform="linux")
    assert found.packages == ("libxkbcommon-x11-0", "libxcb-icccm4", "libxcb-keysyms1")
    assert (
        "sudo apt-get install -y --no-install-recommends libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1"
        in found.message()
    )
    assert found.install_command(as_root=True)[0] == "apt-get"


def test_the_tests_check_reads_the_offscreen_plugin_and_one_package_serves_two_libraries(
    tmp_path: Path,
) -> None:
    qt = fake_qt(tmp_path)
    missing_glib = "\tlibgthread-2.0.so.0 => not found\n\tlibglib-2.0.so.0 => not found\n"
    outputs = {"libqoffscreen.so": recorded("libqoffscreen-missing.txt"), "libQt6Widgets.so.6": missing_glib}
    found = check_libraries("tests", qt=qt, ldd=lambda p: outputs.get(p.name, ""), platform="linux")
    assert found.missing == ("libEGL.so.1", "libfontconfig.so.1", "libglib-2.0.so.0", "libgthread-2.0.so.0")
    assert found.packages == ("libegl1", "libfontconfig1", "libglib2.0-0")
    assert "the tests' offscreen Qt" in found.message()


def test_nothing_is_looked_for_where_the_qt_wheel_carries_everything(tmp_path: Path) -> None:
    def ldd(_: Path) -> str:
        raise AssertionError("ldd must not run off Linux")

    for platform in ("win32", "darwin"):
        assert check_libraries("window", qt=fake_qt(tmp_path), ldd=ldd, platform=platform).missing == ()


def test_a_linux_machine_without_a_display_is_told_so_in_words() -> None:
    assert display_problem({}, "linux") == NO_DISPLAY
    assert "writeback-console demo --no-gui" in NO_DISPLAY and "Aborted" not in NO_DISPLAY
    assert display_problem({"DISPLAY": ":0"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "win32") is None and display_problem({}, "darwin") is None


def test_this_machine_has_what_the_tests_need() -> None:
    """The real check on this machine, through ldd: the suite runs on offscreen Qt, so nothing it needs
    may be missing (make test installs what is, before the suite starts)."""
    found = check_libraries("tests")
    assert found.missing == (), found.message()


def test_the_command_says_no_display_and_fails_before_anything_slow(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "writeback_console.system_check", "--for", "window"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    if check_libraries("window").missing:
        assert done.returncode == 1 and "apt-get install" in done.stderr
    else:
        assert done.returncode == 1 and NO_DISPLAY in done.stderr


@pytest.mark.skipif(not Path("/usr/bin/dpkg").exists(), reason="the package names are Debian's")
def test_every_system_library_qt_loads_here_is_named_as_a_package_this_machine_has() -> None:
    """The naming rule checked against the real thing: each library ldd resolves for the window, named
    by ``debian_package``, is a package dpkg knows as installed."""
    qt = system_check.qt_folder()
    assert qt is not None
    libraries: set[str] = set()
    for relative in system_check.NEEDS["window"]:
        out = subprocess.run(["ldd", str(qt / relative)], capture_output=True, text=True, timeout=60).stdout
        for line in out.splitlines():
            name, arrow, where = line.strip().partition(" => ")
            if arrow and where.startswith("/") and "site-packages" not in where:
                libraries.add(name)
    assert len(libraries) > 20
    packages = sorted({debian_package(name) for name in libraries})
    known = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *packages],
        capture_output=True,
        text=True,
        timeout=60,
    )
    installed = {
        line.split()[0].split(":")[0] for line in known.stdout.splitlines() if line.endswith("installed")
    }
    assert set(packages) - installed == set()
