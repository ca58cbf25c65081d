"""`writeback-console check-connection`: the Settings dialog's Test connection, from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.simulator import MakeSimulator

EXE = [sys.executable, "-m", "writeback_console.cli"]


def run(tmp_path: Path, url: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WRITEBACK_PERSONIFY_URL": url,
        "WRITEBACK_PERSONIFY_USER": "u",
        "WRITEBACK_PERSONIFY_PASSWORD": password,
        "WRITEBACK_NO_KEYRING": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    return subprocess.run([*EXE, "check-connection"], env=env, capture_output=True, text=True, timeout=60)


def test_every_step_passes_against_a_working_service(tmp_path: Path, make_simulator: MakeSimulator) -> None:
    done = run(tmp_path, make_simulator().url, "p")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["ok", "ok", "ok"]
    assert "User name and password: Accepted for u." in done.stdout


def test_rejected_credentials_fail_that_step_and_skip_the_next(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    done = run(tmp_path, make_simulator().url, "wrong")
    assert done.returncode == 3
    assert (
        "FAILED       User name and password: Personify360 rejected the user name or password" in done.stdout
    )
    assert "not checked  Activity codes: an earlier check failed" in done.stdout
    assert "wrong" not in done.stdout + done.stderr


@pytest.mark.parametrize("url", ["ftp://pds.example.org/x", "https://pds.example.org/x?a=1"])
def test_a_bad_service_root_is_named_without_a_traceback(tmp_path: Path, url: str) -> None:
    done = run(tmp_path, url, "p")
    assert done.returncode == 3
    assert "service_root_url:" in done.stdout
    assert "Traceback" not in done.stderr
