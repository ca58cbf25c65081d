"""Benchmark: the Writeback List over a big queue, against the bare queries it runs, in the same run.

For each user action (open the list, status filter, text filter, sort change, jump to the end) it times
the model from the call until the first page is on the model (worker thread, queued delivery, model
reset included) and the status counts shown with it (from asking until the filter bar has them), and,
in the same run, the bare ``list_page`` and ``bounded_counts`` calls. Targets: page <= 1.5x bare SQL;
the counts <= 2x that page's time; each action on the biggest queue within 1.3x of the same action on
the smallest of the same backend (cost that does not grow with the data); RSS growth of the console
process <= 150 MB while the window is open and paged.

"Jump to the end" is what a user sees after Ctrl+End on a keyset-paged list: the list sorted the other
way round, first page — no OFFSET, no reading of the rows in between.

Seed the queues first, each in its own process (bench/seed_big.py), so the console's RSS is its own:
  QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_table.py --sqlite q-500k.sqlite3 \\
      --sqlite q-5m.sqlite3 --pg-url postgresql://…/wbbench_500k --pg-url postgresql://…/wbbench_5m --record
With no queue named it seeds --rows (default 1,000,000) into a temporary SQLite file (and PostgreSQL when
WRITEBACK_TEST_PG_URL is set) as before.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import threading
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
from writeback_console.store import counters, listing
from writeback_console.store.engine import make_engine, make_session_factory, read_session
from writeback_console.store.listing import WritebackFilter
from writeback_console.store.migrate import upgrade
from writeback_console.ui.composition_root import build_window, make_application
from writeback_console.ui.tasks import TaskRunner
from writeback_console.ui.writeback_model import PAGE_SIZE, ListQuery, WritebackTableModel
from writeback_console.ui.writeback_view import WritebackListPage

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


@dataclass(frozen=True)
class Result:
    backend: str
    rows: int
    action: str
    model_ms: float
    bare_ms: float
    paint_ms: float
    #: The status counts shown with the action: through the page (worker, delivery, filter bar), bare.
    counts_ms: float
    bare_counts_ms: float
    bounded: bool


class RssSampler:
    """The console process's resident memory, sampled every few milliseconds: its peak over a span.

    ``ru_maxrss`` is the whole life's peak, which a second database measured in the same run cannot use.
    """

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_mb())


def time_counts(page: WritebackListPage) -> float:
    """Seconds from asking the page for its counts to the filter bar showing them."""
    settle()
    loop = QEventLoop()
    page.counts_changed.connect(loop.quit)
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    guard.start(60_000)
    started = time.perf_counter()
    page.refresh_counts()
    loop.exec()
    elapsed = time.perf_counter() - started
    page.counts_changed.disconnect(loop.quit)
    return elapsed


def time_bare_counts(factory: Factory, query: ListQuery) -> tuple[float, bool]:
    started = time.perf_counter()
    with read_session(factory) as session:
        counts = listing.bounded_counts(session, query.filter)
    return time.perf_counter() - started, counts.bounded


def queue_rows(factory: Factory) -> int:
    with read_session(factory) as session:
        return sum(counters.totals(session).values())


def measure(label: str, url: str, repeat: int) -> tuple[list[Result], float, int]:
    """Every scenario on one queue; returns the results, the RSS growth (MB) and the rows paged."""
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    rows = queue_rows(factory)
    runner = TaskRunner()
    gc.collect()
    base_rss = rss_mb()
    sampler = RssSampler()
    state = Path(tempfile.mkdtemp()) / "window.ini"
    window = build_window(factory, AppSettings(), runner=runner, state_path=state, start=False)
    window.resize(1400, 900)
    window.show()
    page = window.writebacks
    model = page.model
    viewport = page.table.viewport()
    results = []
    for scenario in SCENARIOS:
        model_times, paint_times, bare_times, count_times, bare_count_times = [], [], [], [], []
        bounded = False
        # Warm every path once (plans, caches), then alternate so that none gets a warmer cache.
        time_model(model, scenario.query)
        time_counts(page)
        time_bare(factory, scenario.query)
        time_bare_counts(factory, scenario.query)
        for _ in range(repeat):
            to_model, to_paint = time_model(model, replace(scenario.query), viewport)
            model_times.append(to_model)
            paint_times.append(to_paint)
            count_times.append(time_counts(page))
            bare_times.append(time_bare(factory, scenario.query))
            bare_count, bounded = time_bare_counts(factory, scenario.query)
            bare_count_times.append(bare_count)
        results.append(
            Result(
                label,
                rows,
                scenario.name,
                statistics.median(model_times) * 1000,
                statistics.median(bare_times) * 1000,
                statistics.median(paint_times) * 1000,
                statistics.median(count_times) * 1000,
                statistics.median(bare_count_times) * 1000,
                bounded,
            )
        )
    # Page through 50 pages the way scrolling does, with the window painting, then read the peak.
    model.set_query(ListQuery())
    wait_for(lambda: not model.loading)
    for _ in range(50):
        page.table.scrollToBottom()
        wait_for(lambda: not model.loading)
    paged = model.rowCount()
    growth = sampler.stop() - base_rss
    window.close()
    runner.wait()
    engine.dispose()
    return results, growth, paged


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


def table(results: list[Result], memory: list[tuple[str, int, float, int]]) -> str:
    lines = [
        "| backend | rows | action | model ms | bare SQL ms | ratio (<= 1.5x) | counts ms | counts / page "
        "(<= 2x) | bare counts ms | counts | model + first paint ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.backend} | {r.rows:,} | {r.action} | {r.model_ms:.1f} | {r.bare_ms:.1f} | "
            f"{r.model_ms / r.bare_ms:.2f}x | {r.counts_ms:.1f} | {r.counts_ms / r.model_ms:.2f}x | "
            f"{r.bare_counts_ms:.1f} | {'10,000+' if r.bounded else 'exact'} | {r.paint_ms:.1f} |"
        )
    lines += ["", "| backend | rows | peak RSS growth (<= 150 MB) | rows paged |", "|---|---:|---:|---:|"]
    for backend, rows, growth, paged in memory:
        lines.append(f"| {backend} | {rows:,} | {growth:.0f} MB | {paged:,} |")
    # The same action on the biggest queue against the smallest of the same backend.
    by_backend: dict[str, list[Result]] = {}
    for r in results:
        by_backend.setdefault(r.backend, []).append(r)
    growth_lines = []
    for backend, rs in by_backend.items():
        sizes = sorted({r.rows for r in rs})
        if len(sizes) < 2:
            continue
        small = {r.action: r for r in rs if r.rows == sizes[0]}
        for big in (r for r in rs if r.rows == sizes[-1]):
            base = small[big.action]
            growth_lines.append(
                f"| {backend} | {big.action} | {base.model_ms:.1f} → {big.model_ms:.1f} | "
                f"{big.model_ms / base.model_ms:.2f}x | {base.counts_ms:.1f} → {big.counts_ms:.1f} | "
                f"{big.counts_ms / base.counts_ms:.2f}x |"
            )
        if growth_lines and not growth_lines[0].startswith("| backend"):
            header = (
                f"| backend | action ({sizes[0]:,} → {sizes[-1]:,} rows) | page ms | page growth (<= 1.3x) | "
                "counts ms | counts growth (<= 1.3x) |"
            )
            growth_lines[:0] = ["", header, "|---|---|---:|---:|---:|---:|"]
    return "\n".join(lines + growth_lines)


def record(text: str, command: str) -> None:
    section = "## GUI table"
    body = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    entry = (
        f"\n- Date: {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
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
    "the last column adds the synchronous repaint of the visible rows. Counts: from asking the page to the "
    "filter bar having them (bounded at 10,000 under a filter; the kept totals without one). "
    '"Jump to the end" is the first page of the opposite order (what Ctrl+End shows on a keyset-paged '
    "list). Targets: model <= 1.5x bare SQL; counts <= 2x the page; biggest queue within 1.3x of the "
    "smallest; peak RSS growth <= 150 MB.\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to seed when no queue is named")
    parser.add_argument(
        "--sqlite",
        type=Path,
        action="append",
        default=[],
        help="a seeded SQLite file (repeat to compare sizes)",
    )
    parser.add_argument(
        "--pg-url", action="append", default=[], help="a seeded PostgreSQL queue (repeat to compare sizes)"
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--record", action="store_true", help=f"append the table to {RESULTS.name}")
    parser.add_argument(
        "--skip-sqlite", action="store_true", help="with no --sqlite: measure PostgreSQL only"
    )
    args = parser.parse_args()
    make_application([])
    results: list[Result] = []
    memory: list[tuple[str, int, float, int]] = []

    def run(label: str, url: str) -> None:
        found, growth, paged = measure(label, url, args.repeat)
        results.extend(found)
        memory.append((label, found[0].rows, growth, paged))

    with tempfile.TemporaryDirectory() as folder:
        if args.sqlite or args.pg_url:
            for path in args.sqlite:
                if not path.is_file():
                    sys.exit(f"--sqlite {path}: no such file (seed it first: bench/seed_big.py)")
                run("SQLite", f"sqlite:///{path}")
            for url in args.pg_url:
                run("PostgreSQL", url)
        else:
            if not args.skip_sqlite:
                run("SQLite", seeded_sqlite(Path(folder) / "bench.sqlite3", args.rows))
            if os.environ.get(PG_ENV):
                url, drop = seeded_pg(args.rows)
                try:
                    run("PostgreSQL", url)
                finally:
                    drop()
    text = table(results, memory)
    print(text)
    if args.record:
        command = "QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_table.py " + " ".join(sys.argv[1:])
        record(text, command)


if __name__ == "__main__":
    main()
