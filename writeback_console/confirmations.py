"""The words that confirm what a person's scheduling did, with the time both local and in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

# Fixed English names: the console speaks English whatever locale the process runs in.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def moment_text(moment: datetime) -> str:
    """``Wed 2 Dec 09:00``: the day a person plans by, without the year."""
    return f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment:%H:%M}"


def schedule_confirmation(verb: str, at: datetime | None, zone: tzinfo | None = None) -> str:
    """``Scheduled for Wed 2 Dec 09:00 (14:00 UTC)`` for a mailing activity set to go out at ``at``.

    ``verb`` is what happened ("Scheduled", "Rescheduled"); ``at`` None means now ("Send now", a cycle for
    that writeback alone).
    ``zone`` is the local time zone (None: the computer's own, with its rules for that date, so a date
    past a daylight-saving change is told right). The UTC part names its day too when it falls on
    another day than the local time.
    """
    if at is None:
        return f"{verb} to go out now"
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone; give an aware datetime")
    local = at.astimezone(zone) if zone is not None else at.astimezone()
    utc = at.astimezone(UTC)
    if local.utcoffset() == timedelta(0):
        return f"{verb} for {moment_text(utc)} UTC"
    same_day = local.date() == utc.date()
    in_utc = f"{utc:%H:%M} UTC" if same_day else f"{moment_text(utc)} UTC"
    return f"{verb} for {moment_text(local)} ({in_utc})"
