"""The simulator's command line: bad input exits 2 with a message, and a real run serves until SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers.simulator import SAMPLE_CONSTITUENTS
from writeback_console.sim.cli import add_arguments, run


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sim")
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--users", "nopassword"], "expected user:password"),
        (["--users", ":p"], "expected user:password"),
        (["--fail-rate", "1.5"], "between 0 and 1"),
        (["--fail-rate", "lots"], "not a number"),
        (["--latency-ms", "-5"], "must not be negative"),
        (["--fail-kinds", "500,teapot"], "unknown fault kind 'teapot'"),
        (["--json-shape", "atom"], "invalid choice"),
        (["--error-format", "html"], "invalid choice"),
        (["--port", "70000"], "not a port number"),
        (["--page-size", "0"], "must be at least 1"),
        (["--page-size", "two"], "not a whole number"),
    ],
)
def test_bad_options_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_options_are_parsed() -> None:
    args = parse("--users", "a:b:c,d:e", "--fail-kinds", "drop, timeout", "--fail-emails", "x@y.z, q@r.s")
    assert args.users == {"a": "b:c", "d": "e"}
    assert args.fail_kinds == frozenset({"drop", "timeout"})
    assert args.fail_emails == ["x@y.z", "q@r.s"]
    assert args.page_size is None
    assert parse("--page-size", "100").page_size == 100
    assert args.int64_as_numbers is False
    assert parse("--int64-as-numbers").int64_as_numbers is True


def test_missing_constituents_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--constituents", str(tmp_path / "nope.jsonl"))) == 2
    assert "cannot read constituents file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"master_customer_id": "1", "email": "a@b.c"}', "{not json"], "line 2"),
        (['{"master_customer_id": "1", "email": "a@b.c"}', "", "[1, 2]"], "line 3: expected a JSON object"),
        (['{"email": "a@b.c"}'], "line 1: master_customer_id must be a non-empty string"),
        (['{"master_customer_id": "1", "email": "a@b.c", "sub_customer_id": -1}'], "line 1: sub_customer_id"),
    ],
)
def test_malformed_constituents_file_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], message: str
) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run(parse("--constituents", str(path))) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


def test_serves_until_sigterm(tmp_path: Path) -> None:
    constituents = tmp_path / "c.jsonl"
    constituents.write_text("".join(json.dumps(c) + "\n" for c in SAMPLE_CONSTITUENTS), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "writeback_console.sim",
            "--users",
            "u:p",
            "--constituents",
            str(constituents),
            "--json-shape",
            "results",
            "--error-format",
            "json",
            "--db",
            str(tmp_path / "sim.sqlite3"),
            "--int64-as-numbers",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Personify360 simulator serving http://127.0.0.1:")
        url = line.split()[-1]
        assert url.endswith("/PersonifyDataServices/PersonifyData.svc")
        response = requests.get(
            url + "/ApplicationCodes", auth=("u", "p"), headers={"Accept": "application/json"}, timeout=5
        )
        codes = {r["Code"] for r in response.json()["d"]["results"]}
        assert "INFORMZ_MAILING" in codes
        emails = requests.get(
            url + "/CusCommunications", auth=("u", "p"), headers={"Accept": "application/json"}, timeout=5
        )
        assert {type(r["CusCommunicationId"]) for r in emails.json()["d"]["results"]} == {int}
        bad = requests.get(
            url + "/CustomerInfos?$filter=LastName eq",
            auth=("u", "p"),
            headers={"Accept": "application/json"},
            timeout=5,
        )
        assert bad.status_code == 400 and "error" in bad.json()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def test_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run(parse("--port", str(port))) == 1
    assert "cannot listen" in capsys.readouterr().err
