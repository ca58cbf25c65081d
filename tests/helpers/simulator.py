"""Pytest fixtures that run the Personify360 simulator on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from writeback_console.sim.simulator import Simulator

USER = "u"
PASSWORD = "p"

#: A few constituents: one plain, two sharing an email, one with a quote in the address.
SAMPLE_CONSTITUENTS: list[dict[str, Any]] = [
    {
        "master_customer_id": "000000000101",
        "sub_customer_id": 0,
        "email": "ann@example.org",
        "first_name": "Ann",
        "last_name": "Lee",
    },
    {
        "master_customer_id": "000000000102",
        "sub_customer_id": 0,
        "email": "shared@example.org",
        "first_name": "Bob",
        "last_name": "Ray",
    },
    {
        "master_customer_id": "000000000103",
        "sub_customer_id": 1,
        "email": "shared@example.org",
        "first_name": "Cy",
        "last_name": "Ng",
        "primary": False,
    },
    {
        "master_customer_id": "000000000104",
        "sub_customer_id": 0,
        "email": "o'brien@example.org",
        "first_name": "Pat",
        "last_name": "O'Brien",
    },
]

MakeSimulator = Callable[..., Simulator]


@pytest.fixture
def make_simulator() -> Iterator[MakeSimulator]:
    """A factory for started simulators, all stopped at the end of the test.

    Keyword arguments go to ``Simulator``; by default user ``u``/``p`` and ``SAMPLE_CONSTITUENTS``.
    """
    started: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        kwargs.setdefault("users", {USER: PASSWORD})
        kwargs.setdefault("constituents", SAMPLE_CONSTITUENTS)
        sim = Simulator(**kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(make_simulator: MakeSimulator) -> Simulator:
    """A started simulator with ``SAMPLE_CONSTITUENTS``, user ``u``/``p`` and no faults."""
    return make_simulator()
