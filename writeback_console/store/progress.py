"""How far a mailing activity has come: its mailing's recipients whose activity arrived, of all of them.

Read for the rows the screens show (a page of the list, the detail pane), from the index on a mailing's
recipients and the one delivery each recipient has, whichever queue row sent it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from writeback_console.domain import DeliveryStatus, Kind, Status
from writeback_console.store.models import MailingRecipient
from writeback_console.store.rows import DELIVERY_TABLE, W, WritebackRow, chunks

D = DELIVERY_TABLE.c


def progress_of_mailings(session: Session, mailing_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """(recipients whose activity arrived, recipients known in Personify360) per mailing; a mailing never
    fanned out (no mailing activity claimed yet) is left out."""
    wanted = sorted(set(mailing_ids))
    out: dict[int, tuple[int, int]] = {}
    for batch in chunks(wanted):
        for mid, arrived, total in session.execute(
            select(
                MailingRecipient.mailing_id,
                func.coalesce(func.sum(case((D.status == DeliveryStatus.SENT.value, 1), else_=0)), 0),
                func.count(),
            )
            .select_from(DELIVERY_TABLE.join(MailingRecipient, MailingRecipient.id == D.recipient_id))
            .where(MailingRecipient.mailing_id.in_(batch))
            .group_by(MailingRecipient.mailing_id)
        ):
            out[int(mid)] = (int(arrived), int(total))
    return out


def progress_of(session: Session, writeback_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """(arrived, total) recipients for each mailing-activity writeback among ``writeback_ids``: its
    mailing's. Other kinds, and mailings not fanned out yet, are left out."""
    wanted = sorted(set(writeback_ids))
    mailing_of: dict[int, int] = {}
    for batch in chunks(wanted):
        mailing_of.update(
            (int(wid), int(mid))
            for wid, mid in session.execute(
                select(W.id, W.mailing_id).where(
                    W.id.in_(batch), W.kind == Kind.MAILING_ACTIVITY.value, W.mailing_id.is_not(None)
                )
            )
        )
    per_mailing = progress_of_mailings(session, mailing_of.values())
    return {wid: per_mailing[mid] for wid, mid in mailing_of.items() if mid in per_mailing}


def with_progress(
    session: Session,
    rows: Sequence[WritebackRow],
    *,
    statuses: Iterable[Status] | None = (Status.PROCESSING,),
) -> list[WritebackRow]:
    """The rows, those of mailing activity (in ``statuses``; None: any) with their ``progress``."""
    wanted = None if statuses is None else frozenset(statuses)

    def counted(r: WritebackRow) -> bool:
        chosen = wanted is None or r.status in wanted
        return chosen and r.kind is Kind.MAILING_ACTIVITY and r.mailing_id is not None

    mailings = {r.mailing_id for r in rows if counted(r) and r.mailing_id is not None}
    if not mailings:
        return list(rows)
    found = progress_of_mailings(session, mailings)
    return [
        replace(r, progress=found[r.mailing_id]) if counted(r) and r.mailing_id in found else r for r in rows
    ]
