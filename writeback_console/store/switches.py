"""Account-wide settings kept in the database: the writeback switches and automatic scheduling."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from writeback_console.domain import AuditAction, utcnow
from writeback_console.store.audit_trail import record_audit
from writeback_console.store.models import Setting

#: The account name under which settings for every account are kept.
ALL_ACCOUNTS = "*"


WRITEBACK_ENABLED = "writeback_enabled"


#: Days after a mailing is sent at which its mailing activity goes out by itself; absent: never.
AUTO_MAILING_ACTIVITY_DAYS = "auto_mailing_activity_days"

#: Days after which the dispatcher deletes Sent (and No Remote Recipients) writebacks, once a day, for
#: every account at once; absent or None: never (``store.retention``).
PRUNE_SENT_AFTER_DAYS = "prune_sent_after_days"


def get_setting(session: Session, key: str, *, account: str = ALL_ACCOUNTS, default: Any = None) -> Any:
    value = session.execute(
        select(Setting.value).where(Setting.account == account, Setting.key == key)
    ).scalar_one_or_none()
    return default if value is None else value


def set_setting(
    session: Session,
    key: str,
    value: Any,
    *,
    account: str = ALL_ACCOUNTS,
    actor: str,
    now: datetime | None = None,
) -> None:
    """Change an account-wide setting; every change is audited with the old and new value."""
    now = now or utcnow()
    old = get_setting(session, key, account=account)
    row = session.get(Setting, (account, key))
    if row is None:
        session.add(Setting(account=account, key=key, value=value, updated_at=now, updated_by=actor))
    else:
        row.value, row.updated_at, row.updated_by = value, now, actor
    session.flush()
    record_audit(
        session,
        actor=actor,
        action=AuditAction.SETTING,
        rows=[],
        now=now,
        detail={"account": account, "key": key, "from": old, "to": value},
    )


def writeback_enabled(session: Session, account: str = ALL_ACCOUNTS) -> bool:
    """The feature switch: off for all accounts, or off for this one."""
    if get_setting(session, WRITEBACK_ENABLED, default=True) is False:
        return False
    return (
        account == ALL_ACCOUNTS
        or get_setting(session, WRITEBACK_ENABLED, account=account, default=True) is not False
    )


def disabled_accounts(session: Session) -> set[str]:
    """Accounts switched off one by one; their writebacks queue up but are not sent."""
    switches = session.scalars(
        select(Setting).where(Setting.key == WRITEBACK_ENABLED, Setting.account != ALL_ACCOUNTS)
    )
    return {s.account for s in switches if s.value is False}
