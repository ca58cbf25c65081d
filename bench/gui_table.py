"""Benchmark: the Writeback List model against the bare keyset query it runs, on a 1,000,000-row queue.

For each user action (open the list, status filter, text filter, sort change, jump to the end) it times
the model from the call until the first page is on the model (worker thread, queued delivery, model
reset included) and, in the same run, the bare ``list_page`` call for the same page. Target: model
<= 1.5x bare SQL. It also measures peak RSS growth while the window is open and paged (target <= 150 MB).

"Jump to the end" is what a user sees after Ctrl+End on a keyset-paged list: the list sorted the other
way round, first page — no OFFSET, no reading of the rows in between.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_table.py [--rows N] [--sqlite FILE] [--record]
PostgreSQL is measured too when WRITEBACK_TEST_PG_URL is set.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication, QWidget
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.demo.seed import seed
from writeback_console.domain import Status
from writeback_console.settings import AppSettings
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory, read_session
from writeback_console.store.listing import WritebackFilter
from writeback_console.store.migrate import upgrade
from writeback_console.ui.composition_root import build_window, make_application
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import PAGE_SIZE, ListQuery, WritebackTableModel

Factory = sessionmaker[Session]
RESULTS = Path(__file__).with_name("RESULTS.md")
PG_ENV = "WRITEBACK_TEST_PG_URL"


@dataclass(frozen=True)
class Scenario:
    name: str
    query: ListQuery


SCENARIOS = (
    Scenario("first page", ListQuery()),
    Scenario("status filter (Error)", ListQuery(WritebackFilter(statuses=frozenset({Status.ERROR})))),
    Scenario('text filter ("ann.")', ListQuery(WritebackFilter(text="ann."))),
    Scenario("sort change (email A-Z)", ListQuery(sort="email", descending=False)),
    Scenario("jump to the end (oldest first)", ListQuery(descending=False)),
)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    loop = QEventLoop()
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the model did not answer in time")
        loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)


def settle() -> None:
    """Let the previous result's repaint happen before the clock starts, so runs do not overlap."""
    for _ in range(3):
        QApplication.processEvents()


def time_model(
    model: WritebackTableModel, query: ListQuery, view: QWidget | None = None
) -> tuple[float, float]:
    """Seconds from set_query to the first page in the model, and to it painted in ``view``."""
    settle()
    loop = QEventLoop()
    model.first_page_loaded.connect(loop.quit)
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    guard.start(60_000)
    started = time.perf_counter()
    model.set_query(query)
    loop.exec()
    elapsed = time.perf_counter() - started
    if view is not None:
        view.repaint()
    painted = time.perf_counter() - started
    model.first_page_loaded.disconnect(loop.quit)
    if model.loading:
        raise TimeoutError("no first page within 60 s")
    return elapsed, painted


def time_bare(factory: Factory, query: ListQuery) -> float:
    started = time.perf_counter()
    with read_session(factory) as session:
        listing.list_page(
            session, query.filter, sort=query.sort, descending=query.descending, limit=PAGE_SIZE
        )
    return time.perf_counter() - started


Result = tuple[str, str, float, float, float]


def measure(label: str, url: str, repeat: int) -> list[Result]:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    runner = TaskRunner()
    base_rss = rss_mb()
    state = Path(tempfile.mkdtemp()) / "window.ini"
    window = build_window(factory, AppSettings(), runner=runner, state_path=state, start=False)
    window.resize(1400, 900)
    window.show()
    model = window.writebacks.model
    viewport = window.writebacks.table.viewport()
    results = []
    for scenario in SCENARIOS:
        model_times, paint_times, bare_times = [], [], []
        # Warm both paths once (plans, caches), then alternate so that neither gets a warmer cache.
        time_model(model, scenario.query)
        time_bare(factory, scenario.query)
        for _ in range(repeat):
            to_model, to_paint = time_model(model, replace(scenario.query), viewport)
            model_times.append(to_model)
            paint_times.append(to_paint)
            bare_times.append(time_bare(factory, scenario.query))
        results.append(
            (
                label,
                scenario.name,
                statistics.median(model_times) * 1000,
                statistics.median(bare_times) * 1000,
                statistics.median(paint_times) * 1000,
            )
        )
    # Page through 50 pages the way scrolling does, with the window painting, then read the peak.
    model.set_query(ListQuery())
    wait_for(lambda: not model.loading)
    for _ in range(50):
        window.writebacks.table.scrollToBottom()
        wait_for(lambda: not model.loading)
    growth = peak_rss_mb() - base_rss
    results.append(
        (label, f"peak RSS growth ({model.rowCount():,} rows paged)", growth, float("nan"), float("nan"))
    )
    window.close()
    runner.wait()
    engine.dispose()
    return results


def seeded_sqlite(path: Path, rows: int) -> str:
    url = f"sqlite:///{path}"
    if not path.exists():
        engine = make_engine(url)
        upgrade(engine)
        print(f"seeding {rows:,} rows into {path} …", flush=True)
        seed(engine, rows)
        engine.dispose()
    return url


def seeded_pg(rows: int) -> tuple[str, Callable[[], None]]:
    from tests.helpers.fixtures import create_pg_database, drop_pg_database

    url = create_pg_database("wbbench")
    engine = make_engine(url)
    upgrade(engine)
    print(f"seeding {rows:,} rows into PostgreSQL …", flush=True)
    seed(engine, rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return url, lambda: drop_pg_database(url)


def table(results: list[Result]) -> str:
    lines = [
        "| backend | action | model ms | bare SQL ms | ratio | model + first paint ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for backend, name, model_ms, bare_ms, paint_ms in results:
        if name.startswith("peak RSS"):
            lines.append(f"| {backend} | {name} | {model_ms:.0f} MB | | | |")
        else:
            ratio = model_ms / bare_ms
            lines.append(
                f"| {backend} | {name} | {model_ms:.1f} | {bare_ms:.1f} | {ratio:.2f}x | {paint_ms:.1f} |"
            )
    return "\n".join(lines)


def record(text: str, command: str) -> None:
    section = "## GUI table"
    body = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    entry = (
        f"\n- Date: {date(2026, 11, 27).isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.\n- Command: `{command}`\n\n{text}\n"
    )
    if section not in body:
        body = body.rstrip("\n") + f"\n\n{section}\n\n" + GUIDE + entry
    else:
        head, _, tail = body.partition(section)
        nxt = tail.find("\n## ")
        if nxt == -1:
            body = head + section + tail.rstrip("\n") + "\n" + entry
        else:
            body = head + section + tail[:nxt].rstrip("\n") + "\n" + entry + tail[nxt:]
    RESULTS.write_text(body, encoding="utf-8")


GUIDE = (
    "Writeback List model (`bench/gui_table.py`) against the bare `list_page` call for the same page, in "
    "the same run; median of the repeats after one warm-up. Model time runs from `set_query` to the first "
    "page being in the model: worker thread, queued delivery to the GUI thread and model reset included; "
    "the last column adds the synchronous repaint of the visible rows. "
    '"Jump to the end" is the first page of the opposite order (what Ctrl+End shows on a keyset-paged '
    "list). Targets: model <= 1.5x bare SQL; peak RSS growth <= 150 MB.\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sqlite", type=Path, default=None, help="reuse (or create) this seeded SQLite file")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--record", action="store_true", help=f"append the table to {RESULTS.name}")
    parser.add_argument(
        "--pg-url", help="an already seeded PostgreSQL queue (so this process's RSS does not include seeding)"
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    make_application([])
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as folder:
        path = args.sqlite or Path(folder) / "bench.sqlite3"
        if not args.skip_sqlite:
            results += measure("SQLite", seeded_sqlite(path, args.rows), args.repeat)
        if args.pg_url:
            results += measure("PostgreSQL", args.pg_url, args.repeat)
        elif os.environ.get(PG_ENV):
            url, drop = seeded_pg(args.rows)
            try:
                results += measure("PostgreSQL", url, args.repeat)
            finally:
                drop()
    text = table(results)
    print(text)
    if args.record:
        command = "QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_table.py --record"
        if os.environ.get(PG_ENV):
            command = f"{PG_ENV}=… " + command
        record(text, command)


if __name__ == "__main__":
    main()
