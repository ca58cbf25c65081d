"""Commands that run things: the database schema, demo data, the connection check, the dispatcher, the
settings, the console and the demo."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import operations
from writeback_console.cli.common import (
    first_line,
    iso,
    open_queue,
)
from writeback_console.cli.exits import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_PERSONIFY_UNUSABLE,
    EXIT_REFUSED,
    CommandError,
)
from writeback_console.cli.summary_command import print_counts
from writeback_console.config import redact_url, resolve_db_url
from writeback_console.personify.client import PersonifyClient
from writeback_console.settings import (
    AppSettings,
    PasswordStore,
    SettingsError,
    load_settings,
    settings_from_json,
    settings_path,
)
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.migrate import upgrade
from writeback_console.store.rows import WritebackRow, current_actor


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    url = resolve_db_url(args.db)
    try:
        engine = make_engine(url)
        upgrade(engine)
    except (SQLAlchemyError, ValueError) as exc:
        raise CommandError(f"cannot upgrade {redact_url(url)}: {first_line(exc)}") from None
    print(f"database {redact_url(url)} is up to date")
    return EXIT_OK


def cmd_seed(args: argparse.Namespace) -> int:
    from writeback_console.demo.seed import seed

    if args.rows < 1:
        raise CommandError("--rows must be at least 1", EXIT_BAD_INPUT)
    factory = open_queue(args)
    engine: Engine = args.engine
    del factory

    def progress(done: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{done:,} / {args.rows:,}", end="", file=sys.stderr, flush=True)

    summary = seed(engine, args.rows, random_seed=args.random_seed, progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(
        f"seeded {summary.writebacks:,} writebacks, {summary.attempts:,} attempts, "
        f"{summary.mailings:,} mailings, {summary.recipients:,} recipients in {summary.seconds:.1f} s"
    )
    return EXIT_OK


def _personify_client(args: argparse.Namespace) -> tuple[AppSettings, PersonifyClient]:
    """Settings and a client from the settings file and WRITEBACK_PERSONIFY_* variables."""
    try:
        settings = load_settings()
        password = PasswordStore().get(settings.service_root_url, settings.user)
        if password is None:
            raise SettingsError(
                "password: none stored for this user and URL "
                "(set it in Settings, or WRITEBACK_PERSONIFY_PASSWORD for a headless dispatcher)"
            )
        return settings, PersonifyClient(settings.personify(password))
    except SettingsError as exc:
        raise CommandError(f"Personify360 settings: {exc}", EXIT_PERSONIFY_UNUSABLE) from None


def cmd_check_connection(args: argparse.Namespace) -> int:
    from writeback_console.connection import check_connection

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise CommandError(f"Personify360 settings: {exc}", EXIT_PERSONIFY_UNUSABLE) from None
    checks = check_connection(settings, None, PasswordStore())
    marks = {True: "ok", False: "FAILED", None: "not checked"}
    for check in checks:
        print(f"{marks[check.ok]:<12} {check.name}: {check.text}")
    return EXIT_OK if all(c.ok for c in checks) else EXIT_PERSONIFY_UNUSABLE


def personify_client_or_nothing_changed() -> tuple[AppSettings, PersonifyClient]:
    """Settings and a client for a command that would change the queue only to send at once."""
    try:
        return _personify_client(argparse.Namespace())
    except CommandError as exc:
        raise CommandError(f"{exc}\nnothing was changed", exc.code) from None


def send_only(
    factory: sessionmaker[Session],
    settings: AppSettings,
    client: PersonifyClient,
    row: WritebackRow,
    what: str,
) -> int:
    """One dispatcher cycle for this writeback alone (``send-now --now``); its summary, and an exit code.

    A cycle that sends nothing without a problem to name (the row's account switched off, another
    dispatcher already sending it) says why and ends non-zero: the user asked for it to go now.
    """
    from writeback_console.dispatch.cycle import not_sent_reason, run_cycle
    from writeback_console.dispatch.summary import ProblemKind

    summary = run_cycle(
        factory, client, settings.activity_mapping, settings.dispatch_options(), only=[row.id]
    )
    print(f"{what}: {summary.describe()}")
    if summary.problem is ProblemKind.DATABASE or (summary.problem is None and summary.failed):
        return EXIT_REFUSED
    if summary.problem is not None:
        return EXIT_PERSONIFY_UNUSABLE
    why = not_sent_reason(factory, [row.id], summary)
    if why is not None:
        raise CommandError(why)
    return EXIT_OK


def cmd_dispatch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from writeback_console.dispatch.cycle import run_cycle
    from writeback_console.dispatch.summary import ProblemKind

    factory = open_queue(args)
    settings, client = _personify_client(args)
    try:
        options = settings.dispatch_options(
            concurrency=args.concurrency,
            lease_seconds=args.lease_seconds,
            batch_size=args.batch_size,
            chunk_size=args.chunk_size,
            settle_seconds=args.settle_seconds,
            interval_seconds=args.interval,
        )
    except SettingsError as exc:
        raise CommandError(f"dispatch: {exc}") from None
    interval = args.interval or settings.interval_seconds
    # Kept with each run, so a console that does not dispatch knows when this one is overdue.
    options = replace(options, interval_seconds=None if args.once else interval)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        # Finish what is in flight, put back what was claimed but not sent, then exit.
        print(f"\nstopping ({signal.Signals(signum).name}): finishing requests in flight …", file=sys.stderr)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    mapping = settings.activity_mapping
    code = EXIT_OK
    try:
        while True:
            summary = run_cycle(factory, client, mapping, options, stop=stop)
            print(f"{iso(summary.finished_at)} {summary.describe()}", flush=True)
            if summary.problem is ProblemKind.DATABASE:
                code = EXIT_REFUSED
            elif summary.problem is not None:
                code = EXIT_PERSONIFY_UNUSABLE
            else:
                code = EXIT_OK
            if args.once or stop.wait(interval):
                break
    finally:
        client.close()
    return code


def _setting_value(name: str, text: str) -> Any:
    """A value as typed on the command line: JSON where it parses (numbers, true, an object), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_settings(args: argparse.Namespace) -> int:
    path = settings_path()
    store = PasswordStore()
    try:
        # The file alone: the environment's overrides belong to a run, not to what is saved.
        saved = load_settings(path, environ={})
        if args.set or args.password_stdin:
            data = saved.to_json()
            for assignment in args.set or ():
                name, sep, text = assignment.partition("=")
                if not sep:
                    raise CommandError(f"--set {assignment}: write NAME=VALUE", EXIT_BAD_INPUT)
                data[name.strip()] = _setting_value(name, text)
            settings = settings_from_json(data)
            password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
            if args.password_stdin and not password:
                raise CommandError("--password-stdin: no password on standard input", EXIT_BAD_INPUT)
            change = operations.SettingsChange(
                settings, password, previous=(saved.service_root_url, saved.user)
            )
            saved = operations.save_all_settings(change, store=store, path=path, actor=current_actor())
            print(f"saved {path}")
    except SettingsError as exc:
        raise CommandError(f"settings: {exc}; nothing was saved", EXIT_BAD_INPUT) from None
    for name, value in saved.to_json().items():
        print(f"{name:>20}: {json.dumps(value) if not isinstance(value, str) else value}")
    stored = bool(
        saved.service_root_url and saved.user and store.get(saved.service_root_url, saved.user, environ={})
    )
    print(f"{'password':>20}: {'stored (' + store.where + ')' if stored else 'not stored'}")
    return EXIT_OK


def cmd_sql(args: argparse.Namespace) -> int:
    from writeback_console import dba_scripts

    text = dba_scripts.script_text(args.set, rollback=args.rollback)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    path = Path(args.output)
    if path.is_dir():
        path = path / dba_scripts.file_name(args.set, rollback=args.rollback)
    if not path.parent.is_dir():
        raise CommandError(f"{path.parent}: no such folder", EXIT_BAD_INPUT)
    partial = path.with_name(path.name + ".part")
    try:
        # Bytes as shipped (UTF-8, the script's own line ends): what the DBA reviews is what runs.
        partial.write_bytes(text.encode("utf-8"))
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CommandError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def _check_window() -> None:
    """Stop before anything slow when no window can open here (no display, Qt's libraries missing)."""
    from writeback_console.system_check import window_problem

    problem = window_problem()
    if problem is not None:
        raise CommandError(problem)


def cmd_gui(args: argparse.Namespace) -> int:
    from writeback_console.ui.composition_root import main as gui_main

    _check_window()
    return gui_main(args.db)


def _serve_until_interrupted(simulator: subprocess.Popen[str], database: Path, url: str) -> None:
    """Keep the demo's simulator up for the command line until Ctrl+C (or SIGTERM), then stop it."""
    from writeback_console.demo import DEMO_PASSWORD, DEMO_USER

    credentials = {
        "WRITEBACK_PERSONIFY_URL": url,
        "WRITEBACK_PERSONIFY_USER": DEMO_USER,
        "WRITEBACK_PERSONIFY_PASSWORD": DEMO_PASSWORD,
    }
    if os.name == "nt":
        setup = "".join(f"      set {name}={value}\n" for name, value in credentials.items())
        dispatch = f"{setup}      writeback-console --db {database} dispatch --once"
    else:
        names = " ".join(f"{name}={shlex.quote(value)}" for name, value in credentials.items())
        dispatch = f"      {names} writeback-console --db {shlex.quote(str(database))} dispatch --once"
    print(f"try:  writeback-console --db {database} list --status error")
    print(dispatch)
    print("the simulator runs until Ctrl+C", flush=True)

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Both set here, not inherited: a shell that starts a job in the background ignores SIGINT for it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        simulator.wait()
    except KeyboardInterrupt:
        print("stopping the simulator …", file=sys.stderr, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from writeback_console import demo
    from writeback_console.config import data_dir

    if not args.no_gui:
        _check_window()
    if args.rows is not None and args.rows < 1:
        raise CommandError("--rows must be at least 1", EXIT_BAD_INPUT)
    root = Path(args.folder) if args.folder else data_dir() / "demo"
    folder = demo.prepare(root, args.rows, profile=args.profile)
    with folder.database_engine() as engine, make_session_factory(engine)() as session:
        counts = listing.count_by_status(session)
    print("writebacks by status:")
    print_counts(counts)
    # With a window, the simulator starts while the console opens; without one it must answer first.
    simulator, url = demo.start_simulator(folder, wait=args.no_gui)
    try:
        demo.configure(folder, url)
        print(f"Personify360 simulator at {url} (user {demo.DEMO_USER}, password {demo.DEMO_PASSWORD})")
        if args.no_gui:
            _serve_until_interrupted(simulator, folder.database, url)
            return EXIT_OK
        from writeback_console.ui.composition_root import main as gui_main

        print("opening the console …", flush=True)
        return gui_main(folder.db_url, settings_path=folder.settings, password_store=folder.password_store())
    finally:
        simulator.terminate()
        simulator.wait(10)
