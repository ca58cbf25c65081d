"""Lease: the holder's own view of its lease, on clocks that may jump, and when it refuses to send."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writeback_console.dispatch import lease
from writeback_console.dispatch.lease import RowLease, margin_for
from writeback_console.personify.transport import NotSent

LEASE = 60.0  # its margin is 6 s, so sending stops with less than 12 s left


class Clocks:
    """The three clocks the lease reads, each moved by hand: elapsed (boot time), wall and monotonic."""

    def __init__(self) -> None:
        self.elapsed = 10_000.0
        self.wall = 1_790_000_000.0
        self.mono = 500.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def run(self, seconds: float) -> None:
        """Time passes normally: every clock moves on by the same amount."""
        self.elapsed += seconds
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> Clocks:
    fake = Clocks()
    monkeypatch.setattr(lease, "time", fake)
    monkeypatch.setattr(lease, "_elapsed", lambda: fake.elapsed)
    return fake


def held(lease_seconds: float = LEASE) -> RowLease:
    return RowLease(7, 3, lease_seconds, RowLease.now())


@pytest.mark.parametrize(
    ("lease_seconds", "margin"), [(1, 0.25), (2.5, 0.25), (10, 1.0), (60, 6.0), (300, 30.0), (3600, 30.0)]
)
def test_a_tenth_of_a_lease_is_kept_back_but_at_least_a_quarter_second_and_at_most_thirty(
    lease_seconds: float, margin: float
) -> None:
    assert margin_for(lease_seconds) == pytest.approx(margin)


@given(st.floats(0, 10_000), st.floats(0, 10_000))
def test_a_longer_lease_never_keeps_back_less(a: float, b: float) -> None:
    short, long = sorted((a, b))
    assert 0.25 <= margin_for(short) <= margin_for(long) <= 30.0


def test_the_lease_counts_from_before_the_claim_not_from_when_its_answer_came(clocks: Clocks) -> None:
    taken = RowLease.now()
    clocks.run(5)  # the claim statement waited 5 s for a locked database
    row = RowLease(7, 3, LEASE, taken)
    assert row.remaining() == pytest.approx(55)


def test_a_wall_clock_that_jumps_ahead_shortens_the_lease(clocks: Clocks) -> None:
    row = held()
    clocks.run(10)
    clocks.wall += 30  # the time was corrected, or the machine slept on a clock that did not count it
    assert row.remaining() == pytest.approx(20)


def test_sleep_counted_by_the_elapsed_clock_ends_the_lease_even_if_the_wall_clock_went_back(
    clocks: Clocks,
) -> None:
    row = held()
    clocks.elapsed += 90  # a laptop suspended for 90 s, then its clock set back an hour
    clocks.wall -= 3600
    assert row.remaining() == pytest.approx(-30)
    with pytest.raises(NotSent, match=r"^this dispatcher's lease on the writeback runs out in 0\.0 s$"):
        row.check()


def test_a_wall_clock_set_back_never_lengthens_the_lease(clocks: Clocks) -> None:
    row = held()
    clocks.run(20)
    clocks.wall -= 3600
    assert row.remaining() == pytest.approx(40)


def test_sending_stops_once_less_than_two_margins_are_left(clocks: Clocks) -> None:
    row = held()
    clocks.run(LEASE - 12)  # exactly two margins left: still allowed
    row.check()
    clocks.run(0.5)
    with pytest.raises(NotSent, match=r"runs out in 11\.5 s"):
        row.check()


def test_a_lease_another_dispatcher_took_refuses_however_much_time_is_left(clocks: Clocks) -> None:
    row = held()
    row.lost = True
    with pytest.raises(NotSent, match=r"^another dispatcher holds this writeback now$"):
        row.check()


def test_a_renewal_counts_from_before_its_statement(clocks: Clocks) -> None:
    row = held()
    clocks.run(50)
    taken = RowLease.now()
    clocks.run(4)  # the renewal took 4 s to come back
    row.extend(LEASE, taken)
    assert row.remaining() == pytest.approx(56)
    row.check()


def test_a_request_must_be_over_one_margin_before_the_lease_may_be_gone(clocks: Clocks) -> None:
    row = held()
    clocks.run(10)
    clocks.wall += 20  # the wall clock now says 30 s are left, not 50
    assert row.deadline() == pytest.approx(clocks.mono + 30 - row.margin)


def test_a_write_that_started_is_remembered_as_possibly_arrived(clocks: Clocks) -> None:
    row = held()
    assert not row.write_sent
    row.wrote()
    assert row.write_sent


class _NoBoottime:
    @staticmethod
    def monotonic() -> float:
        return 1.0


class _BrokenBoottime(_NoBoottime):
    CLOCK_BOOTTIME = 7

    @staticmethod
    def clock_gettime(clock: int) -> float:
        raise OSError(22, "Invalid argument")


class _Boottime(_NoBoottime):
    CLOCK_BOOTTIME = 7

    @staticmethod
    def clock_gettime(clock: int) -> float:
        return 2.0 if clock == 7 else -1.0


@pytest.mark.parametrize(("system", "reads"), [(_Boottime, 2.0), (_NoBoottime, 1.0), (_BrokenBoottime, 1.0)])
def test_the_elapsed_clock_counts_suspended_time_where_the_system_can_and_is_monotonic_otherwise(
    monkeypatch: pytest.MonkeyPatch, system: type, reads: float
) -> None:
    monkeypatch.setattr(lease, "time", system)
    clock: Callable[[], float] = lease._elapsed_clock()
    assert clock() == reads


def test_on_the_real_clocks_a_fresh_lease_has_its_whole_length_left() -> None:
    row = held()
    assert LEASE - 5 < row.remaining() <= LEASE
    row.check()
