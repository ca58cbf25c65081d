"""The ``sim`` command: runs the Personify360 simulator in the foreground until interrupted."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from writeback_console.sim.faults import CLASSIC_FAULT_KINDS, FaultKind, Faults, parse_fault_kinds
from writeback_console.sim.server import ERROR_FORMATS, JSON_SHAPES, TlsFiles
from writeback_console.sim.simulator import Simulator
from writeback_console.sim.store import Constituent

#: Exit status for bad command-line input, as argparse uses.
EXIT_USAGE = 2


def _users(text: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for item in text.split(","):
        name, sep, password = item.partition(":")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected user:password[,user:password…], got {item.strip()!r}")
        users[name.strip()] = password
    return users


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _rate(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text!r}")
    return value


def _seconds_or_none(text: str) -> float | None:
    return None if text.strip().lower() == "none" else _non_negative(text)


def _kinds(text: str) -> frozenset[str]:
    try:
        return frozenset(k.value for k in parse_fault_kinds(k for k in text.split(",") if k.strip()))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _emails(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser`` (its own or the ``sim`` subcommand's)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=_port, default=0, help="port to listen on (default: any free one)")
    parser.add_argument("--db", type=Path, help="SQLite file to keep the data in (default: a temporary file)")
    parser.add_argument(
        "--users",
        type=_users,
        default={"u": "p"},
        metavar="USER:PASS,…",
        help="accepted Basic-auth credentials (default u:p)",
    )
    parser.add_argument(
        "--constituents", type=Path, metavar="FILE.jsonl", help="constituents to load, one JSON object a line"
    )
    parser.add_argument("--latency-ms", type=_non_negative, default=0.0, help="delay added to every request")
    parser.add_argument("--fail-rate", type=_rate, default=0.0, help="fraction of requests that fail (0–1)")
    parser.add_argument(
        "--fail-kinds",
        type=_kinds,
        default=None,
        metavar="KIND,…",
        help=(
            f"which failures --fail-rate mixes: {','.join(k.value for k in FaultKind)} "
            f"(default {','.join(k.value for k in FaultKind if k in CLASSIC_FAULT_KINDS)})"
        ),
    )
    parser.add_argument(
        "--fail-emails", type=_emails, default=[], metavar="EMAIL,…", help="emails that always fail"
    )
    parser.add_argument(
        "--hold-seconds",
        type=_non_negative,
        default=30.0,
        help="how long a simulated timeout holds the request (default %(default)s)",
    )
    parser.add_argument(
        "--retry-after",
        type=_seconds_or_none,
        default=30.0,
        metavar="S|none",
        help="Retry-After of the 503 and 429 faults, in seconds, or none (default %(default)s)",
    )
    parser.add_argument(
        "--drip-interval",
        type=_non_negative,
        default=0.5,
        metavar="S",
        help="pause before each byte of a dripped answer (default %(default)s)",
    )
    parser.add_argument("--tls-cert", type=Path, metavar="FILE.pem", help="serve HTTPS with this certificate")
    parser.add_argument("--tls-key", type=Path, metavar="FILE.pem", help="the private key of --tls-cert")
    parser.add_argument("--json-shape", choices=JSON_SHAPES, default="d", help="collection result shape")
    parser.add_argument("--error-format", choices=ERROR_FORMATS, default="xml", help="error document format")
    parser.add_argument("--unauthorized", action="store_true", help="answer 401 to every request")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault dice, for repeatable runs")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")


def read_constituents(path: Path) -> list[dict[str, object]]:
    """The records of a constituents file; ValueError names the line that is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read constituents file {path}: {error}") from None
    records: list[dict[str, object]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            Constituent.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: {error}") from None
        records.append(data)
    return records


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 on a clean stop, 2 for bad input, 1 if it cannot listen."""
    if (args.tls_cert is None) != (args.tls_key is None):
        print("error: --tls-cert and --tls-key go together: give both or neither", file=sys.stderr)
        return EXIT_USAGE
    tls = TlsFiles(args.tls_cert, args.tls_key) if args.tls_cert is not None else None
    try:
        constituents = read_constituents(args.constituents) if args.constituents is not None else []
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    faults = Faults(
        latency_ms=args.latency_ms,
        fail_rate=args.fail_rate,
        fail_emails=args.fail_emails,
        unauthorized=args.unauthorized,
        hold_seconds=args.hold_seconds,
        retry_after_seconds=args.retry_after,
        drip_interval=args.drip_interval,
        seed=args.seed,
    )
    if args.fail_kinds is not None:
        faults.fail_kinds = args.fail_kinds
    try:
        sim = Simulator(
            db_path=args.db,
            users=args.users,
            constituents=constituents,
            faults=faults,
            json_shape=args.json_shape,
            error_format=args.error_format,
            host=args.host,
            port=args.port,
            tls=tls,
        )
    except ValueError as error:  # a certificate or key that cannot be loaded
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # a bad --db path or an unreadable database file
        print(f"error: cannot open the simulator database {args.db}: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sim.start()
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        sim.stop()
        return 1
    # With the default 5 ms GIL switch interval a handler thread that released the GIL for a socket or
    # SQLite call waits up to 5 ms to get it back while other handlers compute; 1 ms measured 20-50 %
    # more requests/s under wrk. This process does nothing but serve, so the global setting is ours.
    sys.setswitchinterval(0.001)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Signal handlers can only be installed from the main thread; elsewhere (tests) the caller stops us.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    print(f"Personify360 simulator serving {sim.url}", flush=True)
    try:
        while not stop.wait(0.5):
            # Started by the demo: end with the console even if it was killed without a word.
            if args.parent_pid is not None and not _alive(args.parent_pid):
                break
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0
