"""Helpers for dispatcher tests: a client for a simulator and one cycle with test-friendly options."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from writeback_console.dispatch.cycle import run_cycle
from writeback_console.dispatch.summary import CycleSummary, DispatchOptions
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.mapping import ActivityMapping
from writeback_console.personify.values import PersonifySettings
from writeback_console.sim.server import TlsFiles
from writeback_console.sim.simulator import Simulator


def client_for(
    sim: Simulator | str,
    *,
    password: str = "p",
    read_timeout: float = 5.0,
    request_deadline: float = 60.0,
    tls: TlsFiles | None = None,
    operator: str = "INFORMZ",
) -> PersonifyClient:
    """A client of the simulator; with ``tls`` it trusts the test certificate."""
    url = sim if isinstance(sim, str) else sim.url
    return PersonifyClient(
        PersonifySettings(
            service_root_url=url,
            user="u",
            password=password,
            connect_timeout=2.0,
            read_timeout=read_timeout,
            request_deadline=request_deadline,
            ca_bundle=str(tls.cert_file) if tls is not None else None,
            operator=operator,
        )
    )


def cycle(factory: sessionmaker[Session], client: PersonifyClient, **options: Any) -> CycleSummary:
    options.setdefault("concurrency", 4)
    options.setdefault("dispatcher", "test-dispatcher:1")
    options.setdefault("flush_interval", 0.05)
    # Tests run their cycles back to back: a write that may have arrived is looked for at once.
    options.setdefault("settle_seconds", 0)
    # … and a row that failed in one is due in the next (a real dispatcher waits its interval).
    options.setdefault("retry_interval_seconds", 0.001)
    only = options.pop("only", None)
    return run_cycle(factory, client, ActivityMapping(), DispatchOptions(**options), only=only)


def refs_in(sim: Simulator) -> list[str]:
    """The writeback reference at the end of every activity the simulator holds."""
    refs = []
    for row in sim.activities():
        text = str(row["ACTIVITY_TEXT"])
        start = text.rfind("[ref ")
        refs.append(text[start + 5 : -1] if start >= 0 else "")
    return refs


def recipients_as_constituents(n: int) -> list[dict[str, Any]]:
    """Constituents matching tests.helpers.builders.add_mailing's remote recipients r0…r{n-1}."""
    return [
        {
            "master_customer_id": f"{k:012d}",
            "sub_customer_id": 0,
            "email": f"r{k}@example.org",
            "first_name": "R",
            "last_name": str(k),
        }
        for k in range(n)
    ]
