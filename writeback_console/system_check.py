"""Can this machine show the console? Asked before anything slow happens, so that a missing system
library or a missing display is one clear sentence, never Qt's "Aborted".

On Linux the Qt wheels bring Qt itself but not the system libraries its platform plugins load. Which
ones are missing is read from ``ldd`` on the plugin and the Qt libraries the console uses (not from a
list that would go stale with the next Qt), then named as the Debian/Ubuntu packages that hold them.
Windows and macOS wheels carry everything, so there is nothing to find there.

``python -m writeback_console.system_check --for window|tests [--install]`` is what ``make run`` and
``make test`` call first: it installs the packages with apt-get when it runs as root, and otherwise stops
with the exact ``apt-get install`` line to run. No Qt is imported here.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: What each use needs: its platform plugin, and the Qt libraries the console loads beyond it.
NEEDS: dict[str, tuple[str, ...]] = {
    "window": ("plugins/platforms/libqxcb.so", "lib/libQt6Widgets.so.6", "lib/libQt6Svg.so.6"),
    "tests": ("plugins/platforms/libqoffscreen.so", "lib/libQt6Widgets.so.6", "lib/libQt6Svg.so.6"),
}

#: Libraries whose Debian package is not their name by the usual rule (see ``debian_package``).
PACKAGE_OF: dict[str, str] = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgio-2.0.so.0": "libglib2.0-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libGLdispatch.so.0": "libglvnd0",
    "libxcb-util.so.1": "libxcb-util1",
    "libm.so.6": "libc6",
    "libdl.so.2": "libc6",
    "libpthread.so.0": "libc6",
    "librt.so.1": "libc6",
    "libresolv.so.2": "libc6",
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
    "libz.so.1": "zlib1g",
    "libpcre2-8.so.0": "libpcre2-8-0",
    "libbrotlidec.so.1": "libbrotli1",
    "libbrotlicommon.so.1": "libbrotli1",
    "libgssapi_krb5.so.2": "libgssapi-krb5-2",
    "libcom_err.so.2": "libcom-err2",
}

NO_DISPLAY = (
    "no display: run under a desktop session, or use `writeback-console demo --no-gui` / the command line"
)

_NOT_FOUND = re.compile(r"^\s*(?P<soname>\S+)\s+=>\s+not found\s*$", re.M)
_SONAME = re.compile(r"^(?P<base>lib[^/]+?)\.so\.(?P<version>[0-9][0-9.]*)$")


def missing_libraries(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reported as "not found", in its order, each once."""
    return list(dict.fromkeys(m["soname"] for m in _NOT_FOUND.finditer(ldd_output)))


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that holds a library: ``libfoo-bar.so.4`` is in ``libfoo-bar4``, and a
    name ending in a digit takes a dash (``libxkbcommon-x11.so.0`` is in ``libxkbcommon-x11-0``)."""
    if soname in PACKAGE_OF:
        return PACKAGE_OF[soname]
    match = _SONAME.match(soname)
    if match is None:
        return soname.lower()
    base, version = match["base"].lower(), match["version"].split(".")[0]
    return f"{base}-{version}" if base[-1].isdigit() else f"{base}{version}"


def qt_folder() -> Path | None:
    """The ``Qt`` folder of the installed PySide6 wheel, found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "Qt"


def run_ldd(path: Path) -> str:
    done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=60)
    return done.stdout


@dataclass(frozen=True)
class Libraries:
    """The outcome for one use: which libraries are missing, and the packages that hold them."""

    use: str
    missing: tuple[str, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(debian_package(s) for s in self.missing))

    def install_command(self, *, as_root: bool) -> list[str]:
        prefix = [] if as_root else ["sudo"]
        return [*prefix, "apt-get", "install", "-y", "--no-install-recommends", *self.packages]

    def message(self) -> str:
        what = "the console's window" if self.use == "window" else "the tests' offscreen Qt"
        return (
            f"{what} needs system libraries this machine lacks ({', '.join(self.missing)}); "
            f"install them with:\n    {' '.join(self.install_command(as_root=False))}"
        )


def check_libraries(
    use: str, *, qt: Path | None = None, ldd: Callable[[Path], str] = run_ldd, platform: str = sys.platform
) -> Libraries:
    """What ``use`` ("window" or "tests") would fail to load; nothing to check off Linux."""
    if not platform.startswith("linux"):
        return Libraries(use, ())
    qt = qt or qt_folder()
    if qt is None:
        return Libraries(use, ())
    missing: list[str] = []
    for relative in NEEDS[use]:
        path = qt / relative
        if path.exists():
            missing += missing_libraries(ldd(path))
    return Libraries(use, tuple(dict.fromkeys(missing)))


def display_problem(environ: Mapping[str, str] | None = None, platform: str = sys.platform) -> str | None:
    """Why no window can open here, or None: on Linux a window needs an X11 or Wayland display."""
    environ = os.environ if environ is None else environ
    if not platform.startswith("linux"):
        return None
    if environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc"):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return NO_DISPLAY


def window_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the console's window cannot open on this machine, in words, or None when it can."""
    problem = display_problem(environ)
    if problem is not None:
        return problem
    platform = (os.environ if environ is None else environ).get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal", "vnc")):
        return None
    libraries = check_libraries("window")
    return libraries.message() if libraries.missing else None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m writeback_console.system_check",
        description="find (and as root install) the system libraries Qt needs here",
    )
    parser.add_argument("--for", dest="use", choices=sorted(NEEDS), default="window")
    parser.add_argument("--install", action="store_true", help="install what is missing when run as root")
    args = parser.parse_args(argv)
    libraries = check_libraries(args.use)
    if libraries.missing and args.install and _is_root() and shutil.which("apt-get"):
        print(f"installing {' '.join(libraries.packages)} for {args.use} …", file=sys.stderr, flush=True)
        quiet = {"DEBIAN_FRONTEND": "noninteractive"}
        env = {**os.environ, **quiet}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(libraries.install_command(as_root=True), env=env, check=False)
        libraries = check_libraries(args.use)
    if libraries.missing:
        print(f"writeback-console: {libraries.message()}", file=sys.stderr)
        return 1
    if args.use == "window":
        problem = display_problem()
        if problem is not None:
            print(f"writeback-console: {problem}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
