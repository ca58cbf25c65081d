"""The wheel is the product: built from the repository, installed into a fresh virtual environment in a
folder outside the checkout, it upgrades a database, serves the simulator, builds the demo and hands out
the DBA's scripts — with the icons and SQL it carries, not files beside a source tree.

The fresh environment gets the project only from the wheel; its third-party dependencies (Qt,
SQLAlchemy, …) are the ones this interpreter already has, made visible by a ``.pth`` line, so the test
needs no network and proves what the wheel itself contains.
"""

from __future__ import annotations

import base64
import os
import shutil
import site
import subprocess
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.demo_process import start_demo

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("pyproject.toml", "README.md", "writeback_console", "resources", "sql")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    home: Path

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("WRITEBACK_", "PYTHON"))}
        return {
            **keep,
            "WRITEBACK_NO_KEYRING": "1",
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_DATA_HOME": str(self.home / "data"),
        }

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "writeback-console"), *args],
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SHIPPED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, src / name)
    dist = root / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = dist.glob("writeback_console-*.whl")
    env_dir = root / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    installed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    [env_site] = (p for p in env_dir.rglob("site-packages") if p.is_dir())
    (env_site / "outer_dependencies.pth").write_text(
        "\n".join(p for p in site.getsitepackages() if Path(p).is_dir()) + "\n", encoding="utf-8"
    )
    home = root / "home"
    home.mkdir()
    return Installed(wheel, bin_dir, home)


def test_the_wheel_carries_the_icons_the_style_sheet_and_the_dba_scripts(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    for folder, package in (("resources", "resources"), ("sql/personify360", "sql/personify360")):
        for file in (REPO / folder).iterdir():
            if file.is_file() and file.suffix != ".pyc":
                assert f"writeback_console/{package}/{file.name}" in names, file
    assert "writeback_console/store/migrations/script.py.mako" in names
    assert "writeback_console/store/migrations/versions/0001_initial_schema.py" in names


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    where = subprocess.run(
        [str(installed.bin / "python"), "-c", "import writeback_console; print(writeback_console.__file__)"],
        cwd=installed.home,
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.bin.parent), where.stdout
    assert not Path(where.stdout.strip()).is_relative_to(REPO)


def test_an_installed_console_upgrades_a_database_and_queues_and_lists(installed: Installed) -> None:
    db = str(installed.home / "queue.sqlite3")
    done = installed.run("--db", db, "db", "upgrade")
    assert done.returncode == 0 and "is up to date" in done.stdout, done.stderr
    queued = installed.run(
        "--db", db, "enqueue", "unsubscribe", "--email", "ann@example.org", "--account", "Main"
    )
    assert queued.returncode == 0, queued.stderr
    listed = installed.run("--db", db, "list")
    assert listed.returncode == 0 and "ann@example.org" in listed.stdout


def test_an_installed_simulator_answers_metadata(installed: Installed) -> None:
    proc = subprocess.Popen(
        [str(installed.bin / "writeback-console"), "sim", "--users", "u:p"],
        cwd=installed.home,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving" in line, line + (proc.stderr.read() if proc.stderr else "")
        url = line.split("serving ", 1)[1].strip()
        request = urllib.request.Request(
            url + "/$metadata", headers={"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read().decode("utf-8")
        assert answer.status == 200 and "CusActivity" in body and "CustomerInfo" in body
    finally:
        proc.terminate()
        proc.wait(30)


def test_an_installed_demo_builds_its_queue_and_serves_its_simulator_until_ctrl_c(
    installed: Installed,
) -> None:
    folder = installed.home / "demo"
    command = [
        str(installed.bin / "writeback-console"),
        "demo",
        "--no-gui",
        "--rows",
        "2000",
        "--folder",
        str(folder),
    ]
    demo = start_demo(command, installed.env(), installed.home)
    try:
        assert demo.url.startswith("http://127.0.0.1:")
        assert "CusActivity" in demo.metadata()
        assert any("dispatch --once" in line for line in demo.printed)
    finally:
        code, err = demo.interrupt()
    assert code == 0 and "Traceback" not in err, err
    [database] = folder.glob("*demo*.sqlite3")
    summary = installed.run("--db", str(database), "summary")
    assert summary.returncode == 0 and "Total" in summary.stdout, summary.stdout + summary.stderr


def test_an_installed_console_hands_out_the_dba_scripts_as_shipped(installed: Installed) -> None:
    scripts = REPO / "sql" / "personify360"
    for extra, file in (
        ((), "informz_activity_codes.sql"),
        (("--rollback",), "informz_activity_codes_rollback.sql"),
    ):
        printed = installed.run("sql", "personify360", *extra)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout == (scripts / file).read_text(encoding="utf-8")
    written = installed.run("sql", "personify360", "--output", str(installed.home))
    assert written.returncode == 0, written.stderr
    written_file = installed.home / "informz_activity_codes.sql"
    assert written_file.read_bytes() == (scripts / "informz_activity_codes.sql").read_bytes()
