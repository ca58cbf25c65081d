"""Benchmark: the longest GUI-thread stall while the dispatcher sends 5,000 writebacks (target <= 50 ms).

The console window is open on the Writeback List (offscreen), the dispatcher runs in its worker thread
against the simulator in its own process, and a 10 ms heartbeat timer on the GUI thread records how late
each tick comes, through the cycle and the second after it (when the list refreshes the changed rows).
Each run is a process of its own, so one run's heap and threads never weigh on the next.

--busy-core keeps one core busy with another process (a pure-Python busy loop) for the whole of each
run, as a user's machine has it while a build or a browser works; --compare alternates quiet and busy
runs and shows them side by side. --profile samples every thread's stack whenever the GUI thread has
not ticked for 20 ms and prints where the GUI thread and the other threads were in the longest stalls.

Run: .venv/bin/python bench/gui_stall.py [--rows 5000] [--latency-ms 5] [--runs 3]
         [--busy-core | --compare] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).resolve().parent
TARGET_MS = 50.0
TICK_MS = 10
#: The GUI thread counts as stalled, for the stack sampler, once its heartbeat is this late (s).
WATCH_AFTER_S = 0.020
WATCH_EVERY_S = 0.002
#: What a busy core runs: pure Python, so it also competes for the CPU the way a busy interpreter does.
BUSY_LOOP = "while True:\n    pass\n"


@dataclass
class RunResult:
    mode: str
    cycle: str
    wall_s: float
    beats: int
    #: How late each heartbeat came beyond its 10 ms tick, in ms, sorted.
    stalls: list[float]
    #: When the longest stall began, in seconds from the start of the cycle (after its end: > wall_s).
    longest_at_s: float
    profile: list[str] = field(default_factory=list)
    #: The ten longest stalls: when the late beat was due (time.perf_counter, CLOCK_MONOTONIC) and ms.
    windows: list[tuple[float, float]] = field(default_factory=list)
    #: Native thread id -> thread name, to read an outside profiler's samples by.
    threads: dict[str, str] = field(default_factory=dict)
    #: Cores kept busy, on average through the measurement, by the busy-core process and by every
    #: process outside the benchmark (other users' work); None where /proc cannot tell.
    busy_cores: float | None = None
    other_cores: float | None = None
    #: Of how late the beats later than 25 ms came, in all (ms): the GUI thread on a CPU (its own
    #: work), ready but waiting for a CPU (the machine busy), and asleep though due (the GIL).
    split: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def percentile(self, q: float) -> float:
        if not self.stalls:
            return 0.0
        return self.stalls[min(len(self.stalls) - 1, int(len(self.stalls) * q))]

    @property
    def longest(self) -> float:
        return self.stalls[-1] if self.stalls else 0.0


class StackSampler:
    """Samples every thread's Python stack while the GUI thread's heartbeat is late.

    The sampler is a Python thread, so it only runs when it gets the GIL: a sample shows where each
    thread stood when the holder let go. Samples of the GUI thread inside a slot point at the slot; a
    GUI thread that shows only the event loop (``exec``) is in Qt's own code or waiting for the GIL,
    and then the other threads' stacks show who had it.
    """

    def __init__(self, last_beat: list[float], gui_thread_id: int) -> None:
        self._last = last_beat
        self._gui = gui_thread_id
        self._stop = threading.Event()
        #: One entry per stall (keyed by the beat it followed): its samples, each {thread name: stack}.
        self.stalls: dict[float, list[dict[str, list[str]]]] = collections.defaultdict(list)
        self._thread = threading.Thread(target=self._watch, name="stall-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        names = {}
        while not self._stop.wait(WATCH_EVERY_S):
            last = self._last[0]
            if time.perf_counter() - last < WATCH_AFTER_S:
                continue
            frames = sys._current_frames()
            for t in threading.enumerate():
                names[t.ident] = t.name
            sample: dict[str, list[str]] = {}
            for ident, frame in frames.items():
                if ident == threading.get_ident():
                    continue
                name = "GUI" if ident == self._gui else names.get(ident, str(ident))
                stack = traceback.extract_stack(frame)
                sample[name] = [f"{Path(s.filename).name}:{s.lineno} {s.name}" for s in stack[-8:]]
            self.stalls[last].append(sample)

    def report(self, worst: list[tuple[float, float]], callbacks: CallbackTimer, started: float) -> list[str]:
        """Each of the worst stalls: the GUI thread's callbacks during it, the GUI thread's stacks,
        and the stacks of the other threads that were not waiting."""
        lines: list[str] = []
        for at, late in worst:
            samples = self.stalls.get(at, [])
            lines.append(f"### stall of {late:.1f} ms at {at - started:.2f} s: {len(samples)} samples")
            lines += callbacks.during(at, at + (TICK_MS + late) / 1000)
            by_thread: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
            for sample in samples:
                for name, stack in sample.items():
                    if name == "GUI" or not _waiting(stack[-1]):
                        by_thread[name][" <- ".join(reversed(stack[-6:]))] += 1
            for name in ["GUI", *sorted(n for n in by_thread if n != "GUI")]:
                for stack, count in by_thread.get(name, collections.Counter()).most_common(3):
                    lines.append(f"  {name} x{count}: {stack}")
        return lines


class CallbackTimer:
    """Times every call from Qt into Python on the GUI thread (slots, timers, paint delegates).

    A profile function on the GUI thread alone sees each top-level Python call Qt makes, so a stall
    can be laid beside the callbacks that ran during it: a long one is work on the GUI thread, and a
    stall with none is the GUI thread waiting (for the GIL, or painting in Qt's own code).
    """

    def __init__(self, loop_code: object) -> None:
        self._loop_code = loop_code
        self._open: dict[int, tuple[float, str]] = {}
        #: (start, end, name) of each top-level callback that took longer than 1 ms.
        self.calls: list[tuple[float, float, str]] = []

    def __call__(self, frame: Any, event: str, _arg: object) -> None:
        if event not in ("call", "return"):
            return
        back = frame.f_back
        if back is not None and back.f_code is not self._loop_code:
            return
        if event == "call":
            code = frame.f_code
            name = f"{Path(code.co_filename).name}:{code.co_firstlineno} {code.co_name}"
            self._open[id(frame)] = (time.perf_counter(), name)
        else:
            opened = self._open.pop(id(frame), None)
            if opened is not None:
                end = time.perf_counter()
                self.calls.append((opened[0], end, opened[1]))

    def collected(self, phase: str, info: dict[str, int]) -> None:
        """A gc callback: garbage collections show among the callbacks, with their generation."""
        if phase == "start":
            self._open[-1] = (time.perf_counter(), f"garbage collection of generation {info['generation']}")
        else:
            opened = self._open.pop(-1, None)
            if opened is not None:
                self.calls.append((opened[0], time.perf_counter(), opened[1]))

    def during(self, start: float, end: float) -> list[str]:
        inside = [(s, e, name) for s, e, name in self.calls if e >= start and s <= end]
        lines = [
            f"  GUI callback {1000 * (e - s):.1f} ms from +{1000 * (s - start):.1f}: {name}"
            for s, e, name in inside
            if e - s > 0.002
        ]
        short: collections.Counter[str] = collections.Counter()
        total = 0.0
        for s, e, name in inside:
            if e - s <= 0.002:
                short[name] += 1
                total += e - s
        if short:
            most = ", ".join(f"{name} x{n}" for name, n in short.most_common(3))
            lines.append(f"  {sum(short.values())} short GUI callbacks, {1000 * total:.1f} ms in all: {most}")
        return lines


#: Frames where a thread waits (for work, a lock, the network) rather than runs Python.
_WAITS = ("threading.py", "thread.py:81 ", "thread.py:83 ", "socket.py", "wait.py", "selectors.py")


def _waiting(frame: str) -> bool:
    return frame.startswith(_WAITS)


def _cpu_seconds(pid: int | None) -> float:
    """The CPU time a process has used so far (0 where it cannot be read)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float | None:
    """CPU time every core of the machine has spent busy so far, or None without /proc."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return None
    idle = values[3] + values[4]  # idle and iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class ThreadClock:
    """The calling thread's time as the kernel counts it: on a CPU, and ready but waiting for one."""

    def __init__(self) -> None:
        path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> tuple[float, float]:
        """Milliseconds on a CPU and waiting for one, so far (zeros where the kernel does not say)."""
        if self._fd is None:
            return 0.0, 0.0
        on_cpu, waiting = os.pread(self._fd, 128, 0).split()[:2]
        return int(on_cpu) / 1e6, int(waiting) / 1e6


#: Beats later than this are split into the GUI thread's work, waiting for a CPU and waiting for the GIL.
SPLIT_AFTER_MS = 25.0


def split_lateness(gaps: list[tuple[float, float, float, float]]) -> tuple[float, float, float]:
    """How late the late beats came, in all: on a CPU, waiting for a CPU, and the rest (the GIL).

    A gap between beats is the 10 ms tick, asleep, plus the lateness; a GUI thread that is neither on
    a CPU nor waiting for one while its timer is overdue is waiting for the GIL.
    """
    work = no_cpu = gil = 0.0
    for _at, gap, cpu, runq in gaps:
        late = gap - TICK_MS
        if late <= SPLIT_AFTER_MS:
            continue
        cpu, runq = min(cpu, late), min(runq, late)
        work += cpu
        no_cpu += min(runq, late - cpu)
        gil += max(0.0, late - cpu - runq)
    return work, no_cpu, gil


class LoadMeter:
    """What else kept the machine busy during a measurement: the busy core, and everyone else."""

    def __init__(self, own: list[int | None], busy_pid: int | None) -> None:
        self._own = own
        self._busy = busy_pid

    def _read(self) -> tuple[float, float | None, float, float]:
        mine = sum(os.times()[:2]) + sum(_cpu_seconds(pid) for pid in self._own)
        return time.perf_counter(), _machine_busy_seconds(), mine, _cpu_seconds(self._busy)

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> tuple[float | None, float | None]:
        (w0, m0, o0, b0), (w1, m1, o1, b1) = self._start, self._read()
        wall = w1 - w0
        if m0 is None or m1 is None or wall <= 0:
            return None, None
        busy = (b1 - b0) / wall if self._busy is not None else 0.0
        return busy, max(0.0, ((m1 - m0) - (o1 - o0) - (b1 - b0)) / wall)


def one_run(args: argparse.Namespace, mode: str) -> RunResult:
    """The measurement itself, in this process: console, dispatcher cycle, heartbeat."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    sys.path.insert(0, str(HERE))
    from dispatch import fill_queue, start_simulator

    from writeback_console.dispatch.summary import CycleSummary
    from writeback_console.settings import AppSettings, PasswordStore, save_settings
    from writeback_console.ui import gc_guard
    from writeback_console.ui.composition_root import make_application, open_console, start_services

    app = make_application([sys.argv[0]])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sim, url = start_simulator(folder, args.latency_ms)
        try:
            db_url = f"sqlite:///{folder / 'queue.sqlite3'}"
            fill_queue(db_url, args.rows)
            settings_path = folder / "settings.json"
            save_settings(AppSettings(service_root_url=url, user="u", interval_seconds=3600), settings_path)
            store = PasswordStore(fallback=folder / "credentials.json", use_keyring=False)
            store.set(url, "u", "p")
            services = start_services(db_url, settings_path=settings_path, password_store=store)
            console = open_console(services, state_path=folder / "window.ini")
            console.window.resize(1440, 900)
            console.window.show()
            gc_guard.freeze_startup_heap()  # as composition_root.main does once the window is up
            deadline = time.monotonic() + 30
            while console.window.writebacks.model.rowCount() == 0 and time.monotonic() < deadline:
                app.processEvents()
            # The window as a user has it before pressing Run now: its first page, counts and pages
            # loaded and painted (else the first paint of a just-opened window falls into the cycle).
            settled = time.monotonic() + 0.5
            while (services.runner.busy or time.monotonic() < settled) and time.monotonic() < deadline:
                app.processEvents()

            # (beat before, gap in ms, of which on a CPU, of which waiting for a CPU)
            gaps: list[tuple[float, float, float, float]] = []
            thread_clock = ThreadClock()
            last_split = [thread_clock.read()]
            clock = QElapsedTimer()
            clock.start()
            last_ns = [clock.nsecsElapsed()]
            # The sampler's view of the last beat, on time.perf_counter's clock.
            last_beat = [time.perf_counter()]

            def beat() -> None:
                now = clock.nsecsElapsed()
                cpu, runq = thread_clock.read()
                was_cpu, was_runq = last_split[0]
                gaps.append((last_beat[0], (now - last_ns[0]) / 1e6, cpu - was_cpu, runq - was_runq))
                last_ns[0] = now
                last_split[0] = (cpu, runq)
                last_beat[0] = time.perf_counter()

            heartbeat = QTimer()
            heartbeat.setObjectName("stall-heartbeat")
            heartbeat.setInterval(TICK_MS)
            heartbeat.timeout.connect(beat)
            done: list[CycleSummary] = []
            finished_at: list[float] = []
            loop = QEventLoop()

            def cycle_done(summary: CycleSummary) -> None:
                done.append(summary)
                finished_at.append(time.perf_counter())
                # Keep beating for a second while the list refreshes the rows the cycle changed.
                QTimer.singleShot(1000, loop.quit)

            console.controller.worker.finished.connect(cycle_done)
            sampler = StackSampler(last_beat, threading.get_ident()) if args.profile else None
            callbacks = CallbackTimer(one_run.__code__)
            heartbeat.start()
            started = time.perf_counter()
            last_beat[0] = started
            meter = LoadMeter([sim.pid], args.busy_pid)
            meter.start()
            if sampler is not None:
                sampler.start()
                sys.setprofile(callbacks)
                gc.callbacks.append(callbacks.collected)
            console.window.run_now_requested.emit()
            loop.exec()  # the real event loop, as the application runs it
            sys.setprofile(None)
            busy_cores, other_cores = meter.stop()
            if callbacks.collected in gc.callbacks:
                gc.callbacks.remove(callbacks.collected)
            heartbeat.stop()
            threads = {str(t.native_id): t.name for t in threading.enumerate()}
            threads[str(threading.get_native_id())] = "GUI"
            if sampler is not None:
                sampler.stop()
            took = finished_at[0] - started
            console.shut_down()
            console.window.close()
            services.close()
        finally:
            sim.terminate()
            sim.wait()
    gaps = gaps[1:]  # the first beat measures from before the run was asked for
    late = [(at, gap - TICK_MS) for at, gap, _, _ in gaps]
    longest_at, _ = max(late, key=lambda item: item[1], default=(started, 0.0))
    windows = sorted(late, key=lambda item: -item[1])[:10]
    profile = sampler.report(windows[:5], callbacks, started) if sampler is not None else []
    return RunResult(
        mode,
        done[0].describe(),
        took,
        len(gaps),
        sorted(gap for _, gap in late),
        longest_at - started,
        profile,
        windows,
        threads,
        busy_cores,
        other_cores,
        split_lateness(gaps),
    )


def start_busy_core() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BUSY_LOOP])


def run_child(args: argparse.Namespace, mode: str) -> RunResult:
    """One run in a new process; with --busy-core another process keeps a core busy all the while."""
    command = [sys.executable, __file__, "--child", mode, "--rows", str(args.rows)]
    command += ["--latency-ms", str(args.latency_ms)] + (["--profile"] if args.profile else [])
    busy = start_busy_core() if mode == "busy" else None
    try:
        if busy is not None:
            command += ["--busy-pid", str(busy.pid)]
        out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return RunResult(**json.loads(out.strip().splitlines()[-1]))


def summary_lines(results: list[RunResult]) -> list[str]:
    lines = [
        "| load | run | busy core | others | cycle wall | heartbeats | p50 | p99 | p99.9 | longest | at "
        "| > 50 ms | late > 25 ms: GUI work / no CPU / GIL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    numbers: collections.Counter[str] = collections.Counter()
    for r in results:
        numbers[r.mode] += 1
        over = sum(1 for s in r.stalls if s > TARGET_MS)
        lines.append(
            f"| {'one core busy' if r.mode == 'busy' else 'quiet'} | {numbers[r.mode]} "
            f"| {_cores(r.busy_cores)} | {_cores(r.other_cores)} | {r.wall_s:.1f} s "
            f"| {r.beats:,} | {r.percentile(0.5):.1f} | {r.percentile(0.99):.1f} | "
            f"{r.percentile(0.999):.1f} | **{r.longest:.1f}** | {r.longest_at_s:.1f} s | {over} "
            f"| {' / '.join(f'{v:.0f}' for v in r.split)} ms |"
        )
    for mode in ("quiet", "busy"):
        of_mode = [r.longest for r in results if r.mode == mode]
        if of_mode:
            label = "one core busy" if mode == "busy" else "quiet"
            verdict = "met" if max(of_mode) <= TARGET_MS else "MISSED"
            lines.append(
                f"{label}: longest stall over {len(of_mode)} runs {max(of_mode):.1f} ms "
                f"(runs: {', '.join(f'{x:.1f}' for x in of_mode)}); target <= {TARGET_MS:.0f} ms {verdict}"
            )
    return lines


def _cores(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--latency-ms", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1, help="runs per load (default 1)")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--busy-core", action="store_true", help="keep one core busy with another process")
    load.add_argument("--compare", action="store_true", help="quiet and busy runs, alternately")
    parser.add_argument("--profile", action="store_true", help="sample the stacks during stalls")
    parser.add_argument("--child", choices=("quiet", "busy"), help=argparse.SUPPRESS)
    parser.add_argument("--busy-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows < 1 or args.latency_ms < 0 or args.runs < 1:
        parser.error("--rows and --runs must be at least 1, --latency-ms at least 0")
    if args.child:
        result = one_run(args, args.child)
        print(json.dumps(asdict(result)))
        return
    modes = ["quiet", "busy"] if args.compare else ["busy"] if args.busy_core else ["quiet"]
    from dispatch import PEOPLE

    print(
        f"## GUI-thread stall during a {args.rows:,}-writeback dispatcher cycle (simulator latency "
        f"{args.latency_ms} ms, {PEOPLE} constituents, {os.cpu_count()} cores)"
    )
    results: list[RunResult] = []
    for n in range(args.runs):
        for mode in modes:
            result = run_child(args, mode)
            results.append(result)
            print(f"run {n + 1} {mode}: {result.cycle}; longest stall {result.longest:.1f} ms", flush=True)
            for line in result.profile:
                print(line)
    print()
    print("Stalls are how late each 10 ms heartbeat came, in ms; 'at' is when the longest began, from the")
    print("start of the cycle. 'busy core' and 'others' are the cores kept busy on average through the")
    print("measurement by the busy-core process and by every process outside the benchmark. The last")
    print("column splits how late the beats over 25 ms came, in all, by what the kernel saw of the GUI")
    print("thread: on a CPU, ready but waiting for a CPU, or asleep though due (waiting for the GIL).")
    for line in summary_lines(results):
        print(line)


if __name__ == "__main__":
    # The checkout this file belongs to is measured, whatever copy of the package the venv points at.
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    main()
