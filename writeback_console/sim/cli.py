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
from typing import Any

from writeback_console.sim.arguments import add_arguments
from writeback_console.sim.faults import Faults
from writeback_console.sim.server import TlsFiles
from writeback_console.sim.simulator import Simulator
from writeback_console.sim.store import Constituent

#: Exit status for bad command-line input, as argparse uses.
EXIT_USAGE = 2

__all__ = ["add_arguments", "read_constituents", "run"]


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


def _alive(pid: int, *, platform: str | None = None, kernel32: Any = None) -> bool:
    """Whether process ``pid`` still runs. Never ``os.kill`` on Windows: there signal 0 is CTRL_C_EVENT,
    which would interrupt the console that started the simulator; the process is asked for instead."""
    if (platform or sys.platform).startswith("win"):
        return _alive_on_windows(pid, kernel32)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Windows' access right to ask a process for its exit code, and the code of one still running.
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
STILL_ACTIVE = 259


def _alive_on_windows(pid: int, kernel32: Any = None) -> bool:
    import ctypes

    kernel32 = kernel32 or ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


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
            page_size=args.page_size,
            int64_as_numbers=args.int64_as_numbers,
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
