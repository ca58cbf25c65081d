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
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

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
    # Past the count's cap on every size: what the cost of a count is once it stops at the cap.
    Scenario('text filter, many matches ("m")', ListQuery(WritebackFilter(text="m"))),
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


@dataclass
class Console:
    """One console window over one queue, as the benchmark drives it."""

    label: str
    url: str
    factory: Factory
    runner: TaskRunner
    window: Any
    rows: int

    @property
    def page(self) -> WritebackListPage:
        return self.window.writebacks  # type: ignore[no-any-return]


def open_console(label: str, url: str) -> Console:
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    runner = TaskRunner()
    state = Path(tempfile.mkdtemp()) / "window.ini"
    window = build_window(factory, AppSettings(), runner=runner, state_path=state, start=False)
    window.resize(1400, 900)
    window.show()
    return Console(label, url, factory, runner, window, queue_rows(factory))


def close_console(console: Console) -> None:
    console.window.close()
    console.runner.wait()
    console.factory.kw["bind"].dispose()


def measure(consoles: list[Console], repeat: int) -> list[Result]:
    """Every scenario on every queue, the queues taking turns within each repeat, so that the machine's
    load at any moment weighs on all of them alike (the sizes are compared with each other)."""
    results = []
    for scenario in SCENARIOS:
        times: dict[str, dict[str, list[float]]] = {}
        bounded: dict[str, bool] = {}
        for c in consoles:
            # Warm every path once (plans, caches).
            time_model(c.page.model, scenario.query)
            time_counts(c.page)
            time_bare(c.factory, scenario.query)
            time_bare_counts(c.factory, scenario.query)
            times[c.url] = {"model": [], "paint": [], "bare": [], "counts": [], "bare_counts": []}
        for _ in range(repeat):
            for c in consoles:
                t = times[c.url]
                to_model, to_paint = time_model(
                    c.page.model, replace(scenario.query), c.page.table.viewport()
                )
                t["model"].append(to_model)
                t["paint"].append(to_paint)
                t["counts"].append(time_counts(c.page))
                t["bare"].append(time_bare(c.factory, scenario.query))
                bare_count, bounded[c.url] = time_bare_counts(c.factory, scenario.query)
                t["bare_counts"].append(bare_count)
        for c in consoles:
            t = {k: statistics.median(v) * 1000 for k, v in times[c.url].items()}
            results.append(
                Result(
                    c.label,
                    c.rows,
                    scenario.name,
                    t["model"],
                    t["bare"],
                    t["paint"],
                    t["counts"],
                    t["bare_counts"],
                    bounded[c.url],
                )
            )
    return results


def measure_memory(label: str, url: str) -> tuple[str, int, float, int]:
    """RSS growth of a console process that only opens this queue and pages through 50 pages."""
    gc.collect()
    base_rss = rss_mb()
    sampler = RssSampler()
    console = open_console(label, url)
    model = console.page.model
    model.set_query(ListQuery())
    wait_for(lambda: not model.loading)
    for _ in range(50):
        console.page.table.scrollToBottom()
        wait_for(lambda: not model.loading)
    paged = model.rowCount()
    growth = sampler.stop() - base_rss
    close_console(console)
    return label, console.rows, growth, paged


def memory_in_own_process(label: str, url: str) -> tuple[str, int, float, int]:
    """``measure_memory`` in a fresh process: the console's RSS alone, no other queue's window in it."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-only", label, url],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")},
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    return found[0], int(found[1]), float(found[2]), int(found[3])


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
            f"{r.bare_counts_ms:.1f} | {'capped' if r.bounded else 'exact'} | {r.paint_ms:.1f} |"
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
                f"| {backend} | {sizes[0]:,} → {sizes[-1]:,} | {big.action} | "
                f"{base.model_ms:.1f} → {big.model_ms:.1f} | {big.model_ms / base.model_ms:.2f}x | "
                f"{base.counts_ms:.1f} → {big.counts_ms:.1f} | {big.counts_ms / base.counts_ms:.2f}x |"
            )
    if growth_lines:
        header = (
            "| backend | rows | action | page ms | page growth (<= 1.3x) | counts ms "
            "| counts growth (<= 1.3x) |"
        )
        growth_lines[:0] = ["", header, "|---|---|---|---:|---:|---:|---:|"]
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
    "filter bar having them (bounded at 2,000 under a filter; the kept totals without one). "
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
    parser.add_argument("--memory-only", nargs=2, metavar=("LABEL", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    make_application([])
    if args.memory_only:
        print(json.dumps(measure_memory(*args.memory_only)))
        return
    results: list[Result] = []
    memory: list[tuple[str, int, float, int]] = []
    drop: Callable[[], None] | None = None
    with tempfile.TemporaryDirectory() as folder:
        queues: list[tuple[str, str]] = []
        for path in args.sqlite:
            if not path.is_file():
                sys.exit(f"--sqlite {path}: no such file (seed it first: bench/seed_big.py)")
            queues.append(("SQLite", f"sqlite:///{path}"))
        queues += [("PostgreSQL", url) for url in args.pg_url]
        if not queues:
            if not args.skip_sqlite:
                queues.append(("SQLite", seeded_sqlite(Path(folder) / "bench.sqlite3", args.rows)))
            if os.environ.get(PG_ENV):
                url, drop = seeded_pg(args.rows)
                queues.append(("PostgreSQL", url))
        try:
            for backend in dict.fromkeys(label for label, _ in queues):
                consoles = [open_console(label, url) for label, url in queues if label == backend]
                results += measure(consoles, args.repeat)
                for c in consoles:
                    close_console(c)
            memory = [memory_in_own_process(label, url) for label, url in queues]
        finally:
            if drop is not None:
                drop()
    text = table(results, memory)
    print(text)
    if args.record:
        command = "QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_table.py " + " ".join(sys.argv[1:])
        record(text, command)


if __name__ == "__main__":
    main()
