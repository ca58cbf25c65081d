"""operations.set_writeback_by_account: the Settings dialog's per-account switches, all or nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import operations
from writeback_console.store import switches
from writeback_console.store.rows import QueueError


def test_several_accounts_are_switched_in_one_go(factory: sessionmaker[Session]) -> None:
    operations.set_writeback_by_account(factory, {"Main": False, "Foundation": False}, actor="ann")
    operations.set_writeback_by_account(factory, {"Foundation": True}, actor="ann")
    with factory() as session:
        assert switches.disabled_accounts(session) == {"Main"}


@pytest.mark.parametrize(
    "states", [{"Main": False, "  ": False}, {"Main": False, "*": False}, {"Main": "off"}]
)
def test_a_bad_name_or_state_refuses_them_all(
    factory: sessionmaker[Session], states: dict[str, object]
) -> None:
    with pytest.raises(QueueError):
        operations.set_writeback_by_account(factory, states, actor="ann")  # type: ignore[arg-type]
    with factory() as session:
        assert switches.disabled_accounts(session) == set()
