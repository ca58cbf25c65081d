"""The commands that run things, as a user runs them: the DBA's SQL scripts printed and written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.helpers.demo_process import start_demo
from tests.integration.cli.test_cli import run_cli

SCRIPTS = Path(__file__).resolve().parents[3] / "sql" / "personify360"


def test_the_dba_script_is_printed_exactly_as_shipped(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, sqlite_url, "sql", "personify360", "--rollback")
    assert code == 0
    assert out == (SCRIPTS / "informz_activity_codes_rollback.sql").read_text(encoding="utf-8")


def test_the_dba_script_is_written_to_a_named_file_and_a_missing_folder_is_refused(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "codes.sql"
    code, _, err = run_cli(capsys, sqlite_url, "sql", "personify360", "--output", str(target))
    assert code == 0 and str(target) in err
    assert target.read_bytes() == (SCRIPTS / "informz_activity_codes.sql").read_bytes()
    code, _, err = run_cli(
        capsys, sqlite_url, "sql", "personify360", "--output", str(tmp_path / "no" / "x.sql")
    )
    assert code == 2 and "no such folder" in err
    assert sorted(
        p.name for p in tmp_path.iterdir() if p.suffix != ".sqlite3" and "sqlite" not in p.name
    ) == ["codes.sql"]


def test_the_demo_without_a_window_serves_its_simulator_until_ctrl_c(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "WRITEBACK_NO_KEYRING": "1",
    }
    command = [
        sys.executable,
        "-m",
        "writeback_console.cli",
        "demo",
        "--no-gui",
        "--folder",
        str(tmp_path / "d"),
    ]
    demo = start_demo(command, env, tmp_path)
    try:
        assert "CusActivity" in demo.metadata()
        assert "CusActivity" in demo.metadata()  # still there: it waits for Ctrl+C, not for us
    finally:
        code, err = demo.interrupt()
    assert code == 0 and "Traceback" not in err, err
    with pytest.raises(OSError):
        demo.metadata()  # the simulator went with it
