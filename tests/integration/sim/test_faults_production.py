"""The faults production brings, over real sockets, real TLS and real HTTP: TLS, resets, front-end pages,
dripped answers, the Save hook and a service that stops listening."""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers.simulator import PASSWORD, SAMPLE_CONSTITUENTS, USER, MakeSimulator
from tests.helpers.tls import make_test_certificate
from writeback_console.sim.cli import add_arguments, run
from writeback_console.sim.faults import ALL_FAULT_KINDS, CLASSIC_FAULT_KINDS, FaultKind, Faults
from writeback_console.sim.server import ROOT_PATH, SaveEvent, TlsFiles
from writeback_console.sim.simulator import Simulator

SAVE = "/Save?EntityName='CusActivity'"
#: A lookup whose answer is short, so dripping it stays quick.
EMPTY_LOOKUP = "/CustomerInfos?$filter=LastName%20eq%20'Nobody'&$select=LastName"
FRONT_END_KINDS = [
    (FaultKind.UNAVAILABLE, 503),
    (FaultKind.THROTTLED, 429),
    (FaultKind.BAD_GATEWAY, 502),
    (FaultKind.GATEWAY_TIMEOUT, 504),
    (FaultKind.HTML_PAGE, 200),
]


def activity(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "MasterCustomerId": "000000000101",
        "SubCustomerId": 0,
        "ActivityCode": "INFORMZ_UNSUB",
        "ActivitySubcode": None,
        "ActivityDate": "/Date(1795000000000)/",
        "ActivityText": "Unsubscribed in Informz [ref WB-PROD000001]",
        "Subsystem": "CUS",
    }
    body.update(changes)
    return body


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = (USER, PASSWORD)
        session.headers["Accept"] = "application/json"
        yield session


@pytest.fixture
def https(tls_files: TlsFiles) -> Iterator[requests.Session]:
    """A session that trusts the test certificate and nothing else."""
    with requests.Session() as session:
        session.auth = (USER, PASSWORD)
        session.headers["Accept"] = "application/json"
        session.verify = str(tls_files.cert_file)
        # requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE override a session's verify.
        session.trust_env = False
        yield session


def save(session: requests.Session, sim: Simulator, body: dict[str, Any]) -> requests.Response:
    return session.post(sim.url + SAVE, json=body, timeout=5)


def raw_get(port: int, path: str, read_timeout: float) -> bytes:
    """The whole answer to one GET, bytes as they came, read with a per-read timeout."""
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request = (
        f"GET {ROOT_PATH}{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {token}\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as conn:
        conn.sendall(request.encode())
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


# -- TLS ---------------------------------------------------------------------------------------------


class TestTls:
    def test_https_url_serves_clients_that_trust_the_certificate(
        self, make_simulator: MakeSimulator, tls_files: TlsFiles, https: requests.Session
    ) -> None:
        sim = make_simulator(tls=tls_files)
        assert sim.url.startswith("https://127.0.0.1:")
        response = https.get(sim.url + "/ApplicationCodes", timeout=5)
        assert response.status_code == 200 and response.json()["d"]
        assert save(https, sim, activity()).status_code == 200
        assert len(sim.activities()) == 1

    def test_a_client_that_does_not_trust_the_certificate_is_just_a_closed_connection(
        self, make_simulator: MakeSimulator, tls_files: TlsFiles, capfd: pytest.CaptureFixture[str]
    ) -> None:
        sim = make_simulator(tls=tls_files)
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            requests.get(sim.url + "/ApplicationCodes", auth=(USER, PASSWORD), timeout=5)
        # A plain-HTTP client on the HTTPS port is refused the same way.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(sim.url.replace("https://", "http://"), auth=(USER, PASSWORD), timeout=5)
        sim.stop()  # joins the handler threads, so whatever they printed is printed now
        assert capfd.readouterr().err == ""

    def test_a_stalled_handshake_holds_up_neither_other_clients_nor_stop(
        self, tls_files: TlsFiles, https: requests.Session
    ) -> None:
        sim = Simulator(constituents=SAMPLE_CONSTITUENTS, tls=tls_files).start()
        try:
            with socket.create_connection(("127.0.0.1", sim.port)):
                # Connected, but no ClientHello: the handshake waits in that connection's thread.
                assert https.get(sim.url + "/ApplicationCodes", timeout=5).status_code == 200
                started = time.monotonic()
                sim.stop()
                assert time.monotonic() - started < 2
        finally:
            sim.stop()

    def test_a_certificate_that_cannot_be_loaded_is_refused_by_name(self, tmp_path: Path) -> None:
        cert = tmp_path / "cert.pem"
        cert.write_text("not a certificate")
        with pytest.raises(ValueError, match="cannot load the TLS certificate"):
            Simulator(tls=TlsFiles(cert, tmp_path / "key.pem"))

    def test_the_test_certificate_names_the_loopback_address_and_localhost(self, tmp_path: Path) -> None:
        files = make_test_certificate(tmp_path)
        context = ssl.create_default_context(cafile=str(files.cert_file))
        for host in ("127.0.0.1", "localhost"):
            with (
                Simulator(tls=files) as sim,
                socket.create_connection(("127.0.0.1", sim.port)) as raw,
                context.wrap_socket(raw, server_hostname=host) as conn,
            ):
                assert conn.version() in ("TLSv1.2", "TLSv1.3")


# -- TLS reset ---------------------------------------------------------------------------------------


class TestTlsReset:
    @pytest.mark.parametrize(("share", "stored"), [(0.0, 0), (1.0, 1)])
    def test_tls_reset_fails_the_read_with_an_ssl_error_after_a_write_in_the_share_of_saves(
        self,
        make_simulator: MakeSimulator,
        tls_files: TlsFiles,
        https: requests.Session,
        share: float,
        stored: int,
    ) -> None:
        sim = make_simulator(tls=tls_files)
        # One good request first: the reset strikes an established TLS session, not a handshake.
        assert https.get(sim.url + "/ApplicationCodes", timeout=5).status_code == 200
        sim.faults.update(fail_rate=1.0, fail_kinds=["tls_reset"], after_write_share=share)
        with pytest.raises(requests.exceptions.SSLError) as info:
            https.get(sim.url + "/ApplicationCodes", timeout=5)
        assert "CERTIFICATE_VERIFY_FAILED" not in str(info.value)
        with pytest.raises(requests.exceptions.SSLError):
            save(https, sim, activity())
        assert len(sim.activities()) == stored
        sim.faults.fail_rate = 0.0
        assert https.get(sim.url + "/ApplicationCodes", timeout=5).status_code == 200

    def test_tls_reset_on_plain_http_is_an_answer_that_is_no_http(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=["tls_reset"], after_write_share=1.0)
        with pytest.raises(requests.exceptions.ConnectionError):
            http.get(simulator.url + "/ApplicationCodes", timeout=5)
        with pytest.raises(requests.exceptions.ConnectionError):
            save(http, simulator, activity())
        assert len(simulator.activities()) == 1


# -- front-end pages ---------------------------------------------------------------------------------


class TestFrontEndPages:
    @pytest.mark.parametrize(("kind", "status"), FRONT_END_KINDS)
    def test_front_end_faults_answer_an_html_page_and_never_store(
        self, simulator: Simulator, http: requests.Session, kind: FaultKind, status: int
    ) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=[kind], after_write_share=1.0)
        for response in (
            http.get(simulator.url + "/ApplicationCodes", timeout=5),
            save(http, simulator, activity()),
        ):
            assert response.status_code == status
            assert response.headers["Content-Type"].startswith("text/html")
            assert response.text.lstrip().startswith("<!DOCTYPE html>")
            # It comes from the front end, not from WCF.
            assert "DataServiceVersion" not in response.headers
        assert simulator.activities() == []

    @pytest.mark.parametrize("kind", [FaultKind.UNAVAILABLE, FaultKind.THROTTLED])
    def test_503_and_429_say_when_to_retry_in_whole_seconds_rounded_up(
        self, simulator: Simulator, http: requests.Session, kind: FaultKind
    ) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=[kind])
        assert http.get(simulator.url + "/ApplicationCodes", timeout=5).headers["Retry-After"] == "30"
        simulator.faults.retry_after_seconds = 2.1
        assert save(http, simulator, activity()).headers["Retry-After"] == "3"
        simulator.faults.retry_after_seconds = None
        assert "Retry-After" not in http.get(simulator.url + "/ApplicationCodes", timeout=5).headers

    @pytest.mark.parametrize("kind", [FaultKind.BAD_GATEWAY, FaultKind.GATEWAY_TIMEOUT, FaultKind.HTML_PAGE])
    def test_gateway_and_portal_pages_have_no_retry_after(
        self, simulator: Simulator, http: requests.Session, kind: FaultKind
    ) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=[kind])
        assert "Retry-After" not in http.get(simulator.url + "/ApplicationCodes", timeout=5).headers

    def test_an_html_page_answering_200_is_not_json(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=["html"])
        response = http.get(simulator.url + "/ApplicationCodes", timeout=5)
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()


# -- dripped answers ---------------------------------------------------------------------------------


class TestDrip:
    def test_a_dripped_answer_is_the_real_one_one_byte_per_interval(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        simulator.faults.update(fail_rate=1.0, fail_kinds=["drip"], drip_interval=0.01)
        started = time.monotonic()
        # Each read waits at most 0.5 s, far longer than a byte takes and far shorter than the answer.
        answer = raw_get(simulator.port, EMPTY_LOOKUP, read_timeout=0.5)
        elapsed = time.monotonic() - started
        assert elapsed >= len(answer) * 0.01
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert json.loads(body) == {"d": []}
        simulator.faults.fail_rate = 0.0
        assert raw_get(simulator.port, EMPTY_LOOKUP, read_timeout=5).partition(b"\r\n\r\n")[2] == body

    def test_a_dripped_save_answer_follows_the_write(
        self, make_simulator: MakeSimulator, tls_files: TlsFiles, https: requests.Session
    ) -> None:
        sim = make_simulator(
            tls=tls_files, faults=Faults(fail_rate=1.0, fail_kinds=["drip"], drip_interval=0.001)
        )
        response = https.post(sim.url + SAVE, json=activity(), timeout=(5, 0.5))
        assert response.status_code == 200
        assert response.json()["d"]["ActivityText"] == activity()["ActivityText"]
        assert len(sim.activities()) == 1

    def test_stop_during_a_drip_is_quick(self, http: requests.Session) -> None:
        sim = Simulator(constituents=SAMPLE_CONSTITUENTS).start()
        sim.faults.update(fail_rate=1.0, fail_kinds=["drip"], drip_interval=0.5)
        outcome: list[str] = []

        def wait_for_answer() -> None:
            try:
                http.get(sim.url + "/ApplicationCodes", timeout=30)
                outcome.append("answered")
            except requests.RequestException as error:
                outcome.append(type(error).__name__)

        client = threading.Thread(target=wait_for_answer)
        client.start()
        time.sleep(0.7)
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 2
        client.join(5)
        assert outcome == ["ConnectionError"]


# -- the Save hook -----------------------------------------------------------------------------------


class TestOnSave:
    def test_on_save_reports_every_save_and_whether_it_stored(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        events: list[SaveEvent] = []
        simulator.on_save = events.append
        before = time.time()
        assert save(http, simulator, activity(ActivityText="one")).status_code == 200
        simulator.faults.update(fail_rate=1.0, fail_kinds=["validation"])
        assert save(http, simulator, activity(ActivityText="two")).status_code == 400
        simulator.faults.update(fail_kinds=["503"])
        assert save(http, simulator, activity(ActivityText="three", SubCustomerId=1)).status_code == 503
        simulator.faults.update(fail_kinds=["drop"], after_write_share=1.0)
        with pytest.raises(requests.ConnectionError):
            save(http, simulator, activity(ActivityText="four"))
        simulator.faults.fail_rate = 0.0
        assert http.get(simulator.url + "/ApplicationCodes", timeout=5).status_code == 200
        assert [(e.text, e.stored, e.fault) for e in events] == [
            ("one", True, None),
            ("two", False, FaultKind.VALIDATION),
            ("three", False, FaultKind.UNAVAILABLE),
            ("four", True, FaultKind.DROP),
        ]
        assert [(e.master_customer_id, e.sub_customer_id) for e in events][2] == ("000000000101", 1)
        assert all(before <= e.at <= time.time() for e in events)
        assert len(simulator.activities()) == 2

    def test_on_save_runs_after_the_write_and_before_the_answer(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        seen: list[int] = []

        def hook(event: SaveEvent) -> None:
            seen.append(len(simulator.activities()))
            time.sleep(0.3)

        simulator.on_save = hook
        started = time.monotonic()
        assert save(http, simulator, activity()).status_code == 200
        assert time.monotonic() - started >= 0.3
        assert seen == [1]

    def test_a_save_the_service_refuses_is_reported_unstored(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        events: list[SaveEvent] = []
        simulator.on_save = events.append
        response = http.post(
            simulator.url + SAVE, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=5
        )
        assert response.status_code == 400
        assert save(http, simulator, activity(MasterCustomerId="")).status_code == 400
        assert [(e.text, e.master_customer_id, e.stored) for e in events] == [
            (None, None, False),
            (activity()["ActivityText"], "", False),
        ]

    def test_a_raising_hook_is_printed_and_does_not_break_the_request(
        self, simulator: Simulator, http: requests.Session, capfd: pytest.CaptureFixture[str]
    ) -> None:
        def hook(event: SaveEvent) -> None:
            raise RuntimeError("the harness tripped")

        simulator.on_save = hook
        response = save(http, simulator, activity())
        assert response.status_code == 200 and response.json()["d"]["ActivityId"]
        assert len(simulator.activities()) == 1
        assert "the harness tripped" in capfd.readouterr().err


# -- listening ---------------------------------------------------------------------------------------


class TestListening:
    def test_stop_listening_refuses_connections_until_start_listening_on_the_same_port(
        self, simulator: Simulator, http: requests.Session
    ) -> None:
        url, port = simulator.url, simulator.port
        assert http.get(url + "/ApplicationCodes", timeout=5).status_code == 200  # a kept-alive connection
        simulator.stop_listening()
        simulator.stop_listening()  # twice is harmless
        with pytest.raises(requests.exceptions.ConnectionError):
            http.get(url + "/ApplicationCodes", timeout=5)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        simulator.start_listening()
        assert simulator.url == url
        assert http.get(url + "/ApplicationCodes", timeout=5).status_code == 200

    def test_stop_listening_shuts_down_open_connections(self, simulator: Simulator) -> None:
        with socket.create_connection(("127.0.0.1", simulator.port), timeout=5) as idle:
            # A request makes sure the connection is accepted and served before listening stops.
            idle.sendall(f"GET {ROOT_PATH}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert idle.recv(4096).startswith(b"HTTP/1.1 401")
            simulator.stop_listening()
            assert idle.recv(4096) == b""

    def test_a_simulator_that_is_not_listening_stops_quickly(self) -> None:
        sim = Simulator().start()
        sim.stop_listening()
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(RuntimeError):
            sim.start_listening()


# -- the fault dice ----------------------------------------------------------------------------------


def test_the_default_mix_is_the_classic_kinds_and_every_kind_can_be_named() -> None:
    assert Faults().fail_kinds == CLASSIC_FAULT_KINDS
    assert (
        Faults(fail_kinds=[k.value for k in FaultKind]).fail_kinds == ALL_FAULT_KINDS == frozenset(FaultKind)
    )


@pytest.mark.parametrize(
    ("kind", "after_write"),
    [
        (FaultKind.DRIP, True),
        (FaultKind.UNAVAILABLE, False),
        (FaultKind.THROTTLED, False),
        (FaultKind.BAD_GATEWAY, False),
        (FaultKind.GATEWAY_TIMEOUT, False),
        (FaultKind.HTML_PAGE, False),
    ],
)
def test_drips_always_follow_the_write_and_front_end_pages_never_do(
    kind: FaultKind, after_write: bool
) -> None:
    faults = Faults(fail_rate=1.0, fail_kinds=[kind], after_write_share=0.5, seed=1)
    assert {faults.draw(True) for _ in range(50)} == {(kind, after_write)}
    assert {faults.draw(False) for _ in range(50)} == {(kind, False)}


def test_tls_resets_follow_the_write_in_the_after_write_share_of_saves() -> None:
    faults = Faults(fail_rate=1.0, fail_kinds=["tls_reset"], after_write_share=1.0, seed=2)
    assert all(faults.draw(True) == (FaultKind.TLS_RESET, True) for _ in range(50))
    faults.after_write_share = 0.0
    assert all(faults.draw(True) == (FaultKind.TLS_RESET, False) for _ in range(50))
    faults.after_write_share = 1.0
    assert all(faults.draw(False) == (FaultKind.TLS_RESET, False) for _ in range(50))


@pytest.mark.parametrize(("setting", "value"), [("retry_after_seconds", -1), ("drip_interval", -0.1)])
def test_negative_retry_after_and_drip_interval_are_refused(setting: str, value: float) -> None:
    with pytest.raises(ValueError):
        Faults().update(**{setting: value})


# -- command line ------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sim")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_parses_the_production_fault_options(tmp_path: Path) -> None:
    args = parse(
        "--fail-kinds",
        "tls_reset,503,429,502,504,html,drip",
        "--retry-after",
        "none",
        "--drip-interval",
        "0.25",
        "--tls-cert",
        str(tmp_path / "c.pem"),
        "--tls-key",
        str(tmp_path / "k.pem"),
    )
    assert args.fail_kinds == frozenset({"tls_reset", "503", "429", "502", "504", "html", "drip"})
    assert args.retry_after is None and args.drip_interval == 0.25
    assert (args.tls_cert, args.tls_key) == (tmp_path / "c.pem", tmp_path / "k.pem")
    defaults = parse()
    assert (defaults.retry_after, defaults.drip_interval, defaults.tls_cert) == (30.0, 0.5, None)
    assert parse("--retry-after", "2.5").retry_after == 2.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--retry-after", "soon"], "not a number"), (["--drip-interval", "-1"], "must not be negative")],
)
def test_cli_refuses_bad_production_fault_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--tls-cert", "--tls-key"])
def test_cli_wants_tls_cert_and_key_together(
    option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(parse(option, str(tmp_path / "x.pem"))) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err


def test_cli_names_a_certificate_it_cannot_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"))) == 2
    assert "cannot load the TLS certificate" in capsys.readouterr().err


def test_cli_serves_https_with_a_certificate(tls_files: TlsFiles) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "writeback_console.sim",
            "--users",
            "u:p",
            "--tls-cert",
            str(tls_files.cert_file),
            "--tls-key",
            str(tls_files.key_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Personify360 simulator serving https://127.0.0.1:")
        response = requests.get(
            line.split()[-1] + "/ApplicationCodes",
            auth=("u", "p"),
            headers={"Accept": "application/json"},
            verify=str(tls_files.cert_file),
            timeout=5,
        )
        assert response.status_code == 200
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# -- a write that lands after the client gave up -----------------------------------------------------


def test_a_late_write_lands_after_the_client_gave_up_and_reads_never_get_one(
    make_simulator: MakeSimulator, http: requests.Session
) -> None:
    sim = make_simulator()
    sim.faults.update(fail_rate=1.0, fail_kinds=["late_write"], hold_seconds=1.0)
    assert http.get(sim.url + "/ApplicationCodes", timeout=5).status_code == 200  # only Saves are slow
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(sim.url + SAVE, json=activity(), timeout=(2, 0.3))
    assert sim.activities() == []  # the client has given up; the service is still at work
    deadline = time.monotonic() + 5
    while not sim.activities() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sim.activities()) == 1 and time.monotonic() - started >= 1.0
