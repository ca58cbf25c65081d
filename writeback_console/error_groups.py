"""Error messages grouped by reason: what varies from one writeback to the next (emails, references,
constituent ids, numbers, quoted values, names) is replaced by ``…``, so that "Customer 000123-0 does
not exist." and "Customer 000456-0 does not exist." are one reason, and whether a row failed the same
way every time can be told from its attempts.

Pure text logic, shared by the Top errors page, the Retry dialog and the error-text filter (where ``…``
matches anything).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: What stands for a varying part of a message, in a reason and in an error-text filter.
WILDCARD = "…"
#: A reason is at most this long; longer messages are told apart by their beginning.
REASON_LIMIT = 160
NO_MESSAGE = "(no message)"

_W = WILDCARD
# Order matters: the larger shapes first, so that an email's digits do not become a wildcard of their own.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # "… and none is primary: 000000778026-0 Cynthia Arnold, 000000999489-0 Donald Arnold"
    (re.compile(r"(primary:)\s.*$", re.S), r"\1 " + _W),
    (re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+"), _W),  # email addresses
    (re.compile(r"https?://\S+"), _W),  # links
    (re.compile(r"\bWB-[0-9A-Z]+\b", re.I), _W),  # references
    (re.compile(r"'[^']*'|\"[^\"]*\"|‘[^’]*’|“[^”]*”"), _W),  # quoted values
    # dates and times: 2026-12-01, 2026-12-01T10:00:00Z, 10:00:00
    (re.compile(r"\b\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"), _W),
    # codes of Personify360 such as INFORMZ_UNSUB: site-specific names of one kind of thing
    (re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b"), _W),
    # constituent ids (000000004711-0), dates, times and other numbers; "HTTP 503" keeps its status
    (re.compile(r"(?<!HTTP )(?<![\w.])\d[\d,.:/-]*(?![\w])"), _W),
)
_RUNS = re.compile(re.escape(_W) + r"(?:[\s,;-]*" + re.escape(_W) + r")+")
_SPACE = re.compile(r"\s+")


def error_reason(message: str | None) -> str:
    """The reason a message gives, with what varies between writebacks replaced by ``…``."""
    text = _SPACE.sub(" ", message or "").strip()
    if not text:
        return NO_MESSAGE
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    text = _RUNS.sub(_W, text)
    if len(text) > REASON_LIMIT:
        text = text[: REASON_LIMIT - 1].rstrip() + _W
    return text


def matches_reason(message: str | None, reason: str) -> bool:
    return error_reason(message) == reason


#: Words of a message that say Personify360 refused the writeback itself, so that sending it again
#: unchanged will be refused again: its validation issues, and the dispatcher's own findings about
#: the constituent (none, or several, for an email).
_REFUSALS = re.compile(
    r"validation issue|does not exist|is not active|is inactive|is not a valid|is not valid|is rejected"
    r"|no personify360 constituent has the email|constituents share the email",
    re.I,
)


def is_validation_refusal(message: str | None) -> bool:
    """Whether the message is Personify360 refusing the writeback (as opposed to a timeout, an outage)."""
    return bool(message and _REFUSALS.search(message))


def same_refusal_every_time(messages: Sequence[str | None]) -> str | None:
    """The reason, when every attempt failed with the same validation refusal; else None.

    ``messages`` are the messages of a row's failed attempts (at least two, or one attempt is no pattern).
    """
    if len(messages) < 2 or not all(is_validation_refusal(m) for m in messages):
        return None
    reasons = {error_reason(m) for m in messages}
    return reasons.pop() if len(reasons) == 1 else None


def repeated_refusal_warning(rows: Sequence[tuple[int, Sequence[str | None]]]) -> str | None:
    """A warning for a group of rows about to be retried, when sending them again unchanged will most
    likely be refused again: every counted attempt of every row failed with the same validation refusal.

    ``rows`` holds, per row, its counted attempts and the messages of its failed attempts.
    """
    qualifying = [
        (attempts, messages)
        for attempts, messages in rows
        if attempts >= 2 and len(messages) == attempts and same_refusal_every_time(messages) is not None
    ]
    if not rows or not qualifying:
        return None
    advice = "with the same validation refusal: fix the cause first"
    if len(qualifying) == len(rows):
        failed = sum(attempts for attempts, _ in qualifying)
        if len(rows) == 1:
            return f"Failed {failed} of {failed} times {advice}"
        return f"Each failed every time ({failed:,} of {failed:,} attempts) {advice}"
    return f"{len(qualifying):,} of {len(rows):,} failed every time {advice}"


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """Error rows whose last errors share one reason, with how many of them failed recently."""

    reason: str
    rows: int
    #: Of those rows, how many failed last within the past 24 hours, and within the 24 hours before.
    last_day: int
    day_before: int
    #: One message as it was recorded, and how many different messages the group holds.
    example: str
    messages: int

    @property
    def trend(self) -> int:
        return self.last_day - self.day_before


def group_by_reason(counts: Iterable[tuple[str | None, int, int, int]]) -> list[ErrorGroup]:
    """Groups of (message, rows, failed in the last day, failed in the day before), largest first."""
    groups: dict[str, list[tuple[str, int, int, int]]] = {}
    for message, rows, last_day, day_before in counts:
        groups.setdefault(error_reason(message), []).append((message or "", rows, last_day, day_before))
    result = []
    for reason, members in groups.items():
        example = max(members, key=lambda m: m[1])[0]
        result.append(
            ErrorGroup(
                reason,
                sum(m[1] for m in members),
                sum(m[2] for m in members),
                sum(m[3] for m in members),
                example,
                len(members),
            )
        )
    return sorted(result, key=lambda g: (-g.rows, g.reason))


def trend_text(group: ErrorGroup) -> str:
    """``▲ 12`` (more failed in the last day than the day before), ``▼ 3``, or ``=``."""
    if group.trend > 0:
        return f"▲ {group.trend:,}"
    if group.trend < 0:
        return f"▼ {-group.trend:,}"
    return "="
