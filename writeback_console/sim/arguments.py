"""The simulator's command-line options: defined apart from the server so that ``writeback-console
--help`` builds its ``sim`` command without loading the simulator."""

from __future__ import annotations

import argparse
from pathlib import Path

from writeback_console.sim.faults import CLASSIC_FAULT_KINDS, FaultKind, parse_fault_kinds
from writeback_console.sim.wcf import ERROR_FORMATS, JSON_SHAPES


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


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
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
    parser.add_argument(
        "--page-size",
        type=_page_size,
        default=None,
        metavar="N",
        help="answer collections N rows at a time with a __next link, as WCF sites with server paging "
        "do (default: off)",
    )
    parser.add_argument(
        "--int64-as-numbers",
        action="store_true",
        help="write Edm.Int64 values (ActivityId, CusCommunicationId) as JSON numbers, as some sites do, "
        "rather than as the strings of OData v2's JSON format",
    )
    parser.add_argument("--unauthorized", action="store_true", help="answer 401 to every request")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault dice, for repeatable runs")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
