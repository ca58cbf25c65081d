"""What a dispatcher cycle is told (its options) and what it tells (progress, summary, problem kind).

Shared by the cycle, the command line and the console, which show and act on these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from writeback_console.domain import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_SETTLE_SECONDS,
    RunResult,
)
from writeback_console.store.rows import dispatcher_identity


class ProblemKind(enum.StrEnum):
    """Why a cycle could not do its work, for the summary, the exit code and the console's banner."""

    #: Personify360 rejected the credentials.
    AUTH = "auth"
    #: Personify360 cannot be reached at all (refused, DNS, TLS handshake).
    UNREACHABLE = "unreachable"
    #: Personify360 answers that it is unavailable (maintenance, overload, gateway errors, timeouts).
    OUTAGE = "outage"
    #: The queue database refused to record what was done.
    DATABASE = "database"


@dataclass(frozen=True)
class DispatchOptions:
    """How one dispatcher works; built from the settings by ``AppSettings.dispatch_options``."""

    concurrency: int = DEFAULT_CONCURRENCY
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    batch_size: int = DEFAULT_BATCH_SIZE
    #: Recipients of a mailing claimed at a time; several dispatchers share a big mailing chunk by chunk.
    chunk_size: int = DEFAULT_CHUNK_SIZE
    #: Consecutive "cannot be reached" answers that stop the cycle.
    breaker_threshold: int = 3
    #: Results are written in batches at most this far apart (seconds).
    flush_interval: float = 0.2
    #: How long a cycle keeps trying to write to a database that refuses (seconds).
    database_patience: float = 120.0
    #: How long a row whose write may have arrived waits before it is looked for and sent again.
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    #: A row that fails is retried automatically no sooner than this after the failure: the dispatcher's
    #: interval, so automatic retries keep its rhythm whatever starts a run.
    retry_interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    dispatcher: str = field(default_factory=dispatcher_identity)
    #: How often this dispatcher runs (``dispatch --forever``, a console's timer), kept with each run so
    #: a console that does not dispatch knows when one is overdue; None for a single run or a Send now.
    interval_seconds: int | None = None


@dataclass(frozen=True)
class CycleProgress:
    """Where a running cycle is, for the status bar and the log."""

    claimed: int
    sent: int
    failed: int
    no_remote_recipients: int
    in_flight: int
    remaining: int


def clock_text(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M")


@dataclass(frozen=True)
class CycleSummary:
    started_at: datetime
    finished_at: datetime
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    no_remote_recipients: int = 0
    #: Claimed rows put back without using an attempt (stopped, Personify360 unusable, lease short).
    released: int = 0
    recovered: int = 0
    auto_scheduled: int = 0
    #: Old finished writebacks the daily retention deleted in this run.
    pruned: int = 0
    disabled: bool = False
    #: Why the cycle stopped early, in words; None when it ran to the end.
    stopped_reason: str | None = None
    problem: ProblemKind | None = None
    #: Since when the problem has lasted (across cycles), its HTTP status, and when to try again.
    problem_since: datetime | None = None
    problem_status: int | None = None
    retry_at: datetime | None = None
    #: Every writeback whose row this cycle changed, for screens to refresh just those.
    changed_ids: tuple[int, ...] = ()

    @property
    def result(self) -> RunResult:
        """How the run ended, as ``dispatcher_run`` records it."""
        if self.disabled:
            return RunResult.DISABLED
        if self.problem in (ProblemKind.AUTH, ProblemKind.UNREACHABLE, ProblemKind.OUTAGE):
            return RunResult.PROBLEM
        if self.problem is ProblemKind.DATABASE or self.stopped_reason:
            return RunResult.STOPPED
        return RunResult.OK

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def describe(self) -> str:
        if self.disabled:
            return "writebacks are switched off: nothing was sent"
        parts = [
            f"claimed {self.claimed:,}",
            f"sent {self.sent:,}",
            f"failed {self.failed:,}",
        ]
        if self.no_remote_recipients:
            parts.append(f"no remote recipients {self.no_remote_recipients:,}")
        if self.released:
            parts.append(f"put back {self.released:,}")
        if self.recovered:
            parts.append(f"recovered from a stopped dispatcher {self.recovered:,}")
        if self.auto_scheduled:
            parts.append(f"mailing activity scheduled {self.auto_scheduled:,}")
        if self.pruned:
            parts.append(f"old writebacks pruned {self.pruned:,}")
        text = ", ".join(parts) + f" in {self.seconds:.1f} s"
        if self.stopped_reason:
            text = f"stopped early: {self.stopped_reason}; " + text
        return text
