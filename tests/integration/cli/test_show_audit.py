"""``show REF`` prints each audit entry with the filter it was taken under, in words."""

from __future__ import annotations

import pytest

from tests.helpers.builders import T0, enqueue, fail, item, minutes, run
from writeback_console import operations
from writeback_console.cli import main
from writeback_console.domain import Status
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory

INACTIVE = "Activity Code NEWS is inactive."


def test_show_prints_the_filter_a_retry_of_all_matching_rows_was_recorded_with(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = make_session_factory(make_engine(sqlite_url))
    (wid,) = enqueue(factory, item())
    for n in range(3):
        run(factory, T0 + minutes(10 * n + 1))
        fail(factory, wid, T0 + minutes(10 * n + 2), message=INACTIVE)
    flt = listing.WritebackFilter(statuses=frozenset({Status.ERROR}), error_text=INACTIVE)
    operations.act_on_matching(factory, flt, "retry", actor="advisor@desk")
    with factory() as session:
        ref = listing.get_writeback(session, wid).ref

    assert main(["--db", sqlite_url, "show", ref]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "advisor@desk" in line]
    assert f'all matching: status=error, error contains "{INACTIVE}"' in line
    assert "retry" in line and "granted_attempts=1" in line
