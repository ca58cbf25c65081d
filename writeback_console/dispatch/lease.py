"""A dispatcher's lease on one claimed row, as its holder sees it, shared with the thread sending the row.

The lease itself lives in the database (its expiry, by the database's clock, and a fencing token). The
holder keeps its own conservative estimate of how long it still holds it, measured from just before
the claim or renewal statement, on two clocks: an elapsed-time clock that keeps counting while the
machine sleeps where the system offers one, and the wall clock. A laptop that slept past its lease, a
process frozen in the debugger or a cycle thread stuck on a locked database all find the lease gone
before they send, and never send a row that another dispatcher may be sending.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from writeback_console.personify.transport import NotSent


def _elapsed_clock() -> Callable[[], float]:
    # CLOCK_BOOTTIME counts time spent suspended; CLOCK_MONOTONIC (time.monotonic) may not.
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        try:
            time.clock_gettime(boottime)
        except OSError:
            return time.monotonic
        return lambda: time.clock_gettime(boottime)
    return time.monotonic


_elapsed = _elapsed_clock()


def margin_for(lease_seconds: float) -> float:
    """How much of a lease is never used for sending: requests must be over before it ends."""
    return min(max(0.25, lease_seconds * 0.1), 30.0)


class RowLease:
    """The holder's view of its lease on one row; also the request guard of the row's requests."""

    __slots__ = ("_elapsed_end", "_wall_end", "lost", "margin", "token", "write_sent", "writeback_id")

    def __init__(
        self, writeback_id: int, token: int, lease_seconds: float, taken: tuple[float, float]
    ) -> None:
        self.writeback_id = writeback_id
        self.token = token
        self.margin = margin_for(lease_seconds)
        #: Another dispatcher has the row now (a renewal found the token changed).
        self.lost = False
        #: A byte of a write request for this row left: its fate is unknown unless an answer came.
        self.write_sent = False
        self._elapsed_end = 0.0
        self._wall_end = 0.0
        self.extend(lease_seconds, taken)

    @staticmethod
    def now() -> tuple[float, float]:
        """The moment to measure a lease from: take it just before the claim or renewal statement."""
        return _elapsed(), time.time()

    def extend(self, lease_seconds: float, taken: tuple[float, float]) -> None:
        elapsed, wall = taken
        self._elapsed_end = elapsed + lease_seconds
        self._wall_end = wall + lease_seconds

    def remaining(self) -> float:
        """Seconds the holder is sure it still has; negative once it may be gone."""
        return min(self._elapsed_end - _elapsed(), self._wall_end - time.time())

    # -- the request guard (writeback_console.personify.transport.RequestGuard) ---------------------

    def check(self) -> None:
        if self.lost:
            raise NotSent("another dispatcher holds this writeback now")
        left = self.remaining()
        if left < 2 * self.margin:
            raise NotSent(f"this dispatcher's lease on the writeback runs out in {max(left, 0):.1f} s")

    def deadline(self) -> float:
        return time.monotonic() + self.remaining() - self.margin

    def wrote(self) -> None:
        self.write_sent = True
