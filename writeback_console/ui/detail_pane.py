"""The Writeback List's detail pane: every field, the payload, the attempts and the timeline of a row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import (
    AttemptOutcome,
    AuditAction,
    Kind,
    Status,
    attempts_left,
    discard_decision,
    manual_retry_decision,
    utcnow,
)
from writeback_console.messages import describe_exception
from writeback_console.store import audit_trail, history, listing
from writeback_console.store.audit_trail import AuditRow
from writeback_console.store.engine import read_session
from writeback_console.store.history import EventRow
from writeback_console.store.listing import AttemptRow
from writeback_console.store.permissions import Action
from writeback_console.store.rows import NotFound, WritebackRow
from writeback_console.ui.dialogs.schedule import MOVABLE
from writeback_console.ui.permissions import PermissionGate
from writeback_console.ui.status_pill import StatusPill
from writeback_console.ui.tasks import Task, TaskGroup, TaskRunner
from writeback_console.ui.writeback_model import (
    constituent_label,
    local_time,
    pill_spec,
    recipients_text,
    status_tooltip,
)

Factory = sessionmaker[Session]

ATTEMPT_COLUMNS = ("#", "Started", "Finished", "Outcome", "Counted", "HTTP", "Message", "Response excerpt")
COUNTED_COLUMN, HTTP_COLUMN, MESSAGE_COLUMN, EXCERPT_COLUMN = 4, 5, 6, 7
#: The widest a Timeline column other than Detail grows to fit its text.
TIMELINE_MAX_WIDTH = 320
#: Why an attempt in the history used none of the row's attempts, by its outcome.
NOT_COUNTED_WHY: dict[str, str] = {
    AttemptOutcome.OUTAGE: "Personify360 was unavailable",
    AttemptOutcome.INTERRUPTED: "the dispatcher stopped while sending",
    AttemptOutcome.STOPPED: "the run stopped before every recipient was sent",
}
#: What a transition means to someone reading a row's timeline, when the words depend only on its ends.
TRANSITION_WORDS: dict[tuple[Status | None, Status], str] = {
    (None, Status.NEW): "Queued",
    (None, Status.SCHEDULED): "Queued, scheduled",
    (Status.PROCESSING, Status.SENT): "Sent to Personify360",
    (Status.PROCESSING, Status.ERROR): "Failed",
    (Status.PROCESSING, Status.NO_REMOTE_RECIPIENTS): "No recipient known to Personify360",
    (Status.PROCESSING, Status.NEW): "Put back unsent",
    (Status.PROCESSING, Status.SCHEDULED): "Put back unsent",
    (Status.ERROR, Status.NEW): "Retry granted",
    (Status.SCHEDULED, Status.NEW): "Set to send now",
    (Status.NEW, Status.SCHEDULED): "Scheduled",
    (Status.SCHEDULED, Status.CANCELLED): "Schedule cancelled",
    (Status.ERROR, Status.DISCARDED): "Discarded",
    (Status.DISCARDED, Status.NEW): "Retry granted (discard undone)",
}
#: The actor of the event that stands for a row's whole earlier history, made when the log began.
UPGRADE_ACTOR = "upgrade"
#: What the pane says when no row is chosen (and after any message about a row that went away).
EMPTY_HINT = "Select a writeback to see its fields, payload, attempts and timeline."


def next_retry_text(row: WritebackRow, now: datetime) -> str:
    """When an Error row's automatic retry is due (one dispatcher interval after its failure), if any."""
    if row.status is not Status.ERROR or row.attempts >= row.max_attempts:
        return ""
    if row.next_attempt_at is None or row.next_attempt_at <= now:
        return "at the next dispatcher run"
    return f"{local_time(row.next_attempt_at)} or the first run after it"


def _recipients_text(row: WritebackRow) -> str:
    """How far a mailing activity has come; empty for other kinds and mailings never fanned out."""
    if row.progress is None:
        return ""
    arrived, total = row.progress
    text = f"{recipients_text(row.progress)} arrived"
    if row.status is Status.PROCESSING:
        return text + " — being sent"
    if arrived < total and row.status is not Status.SENT:
        return text + f"; {total - arrived:,} still to send"
    return text


@dataclass(frozen=True, slots=True)
class WritebackDetail:
    """Everything the pane shows about one writeback, read in one session off the GUI thread."""

    row: WritebackRow
    attempts: list[AttemptRow]
    audit: list[AuditRow]
    events: list[EventRow]

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat().replace("+00:00", "Z") if value else None

        return {
            "writeback": self.row.to_json(),
            "attempts": [
                {
                    "number": a.number,
                    "started_at": iso(a.started_at),
                    "finished_at": iso(a.finished_at),
                    "outcome": a.outcome,
                    "http_status": a.http_status,
                    "message": a.message,
                    "response_excerpt": a.response_excerpt,
                    "dispatcher": a.dispatcher,
                    "manual": a.manual,
                    "counted": a.counted,
                }
                for a in self.attempts
            ],
            "audit": [
                {"at": iso(e.at), "actor": e.actor, "action": e.action, "rows": e.row_count}
                for e in self.audit
            ],
            "events": [
                {
                    "at": iso(e.at),
                    "from": e.from_status.value if e.from_status else None,
                    "to": e.to_status.value,
                    "by": e.actor,
                    "attempt": e.attempt,
                }
                for e in self.events
            ],
        }


def load_detail(factory: Factory, writeback_id: int) -> WritebackDetail:
    """Runs on a worker thread with its own session."""
    with read_session(factory) as session:
        return WritebackDetail(
            listing.get_writeback(session, writeback_id),
            listing.attempts_of(session, writeback_id),
            audit_trail.audit_of(session, writeback_id),
            history.events_of(session, writeback_id),
        )


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    at: datetime
    what: str
    who: str
    detail: str


def timeline(detail: WritebackDetail) -> list[TimelineEvent]:
    """Every status transition of the row, oldest first, as the database recorded it.

    Each claim opened one attempt, so the k-th move into Processing is the k-th attempt: its number,
    whether it counted and how it ended come from the attempt history.
    """
    attempts = iter(detail.attempts)
    events = []
    current: AttemptRow | None = None
    for e in detail.events:
        who = e.actor or ""
        if e.db_user and e.db_user not in who:
            # What the writer called itself, and the login the database saw make the change.
            who = f"{who} (database user {e.db_user})" if who else f"database user {e.db_user}"
        if e.from_status is None and who == UPGRADE_ACTOR:
            what = f"{e.to_status.label} when the history began (earlier attempts: Attempts tab)"
            events.append(TimelineEvent(e.at, what, "", ""))
            continue
        if e.to_status is Status.PROCESSING:
            current = next(attempts, None)
            what = f"Attempt {current.number if current else e.attempt}"
            if current is not None and current.manual:
                what += " (manual)"
            if current is not None and not current.counted:
                what += " (did not count)"
            events.append(TimelineEvent(e.at, what, who, _attempt_words(current)))
            continue
        before = e.from_status.label if e.from_status else "nothing"
        what = TRANSITION_WORDS.get((e.from_status, e.to_status), f"{before} → {e.to_status.label}")
        detail_text = ""
        if e.from_status is Status.PROCESSING and current is not None and e.to_status is Status.ERROR:
            detail_text = first_text(current.message)
        if e.to_status is Status.DISCARDED:
            detail_text = discard_reason(detail.audit, e.at)
        if e.to_status is Status.NEW and e.from_status in (Status.ERROR, Status.DISCARDED):
            detail_text = retry_filter(detail.audit, e.at)
        events.append(TimelineEvent(e.at, what, who, detail_text))
    return events


def discard_reason(audit: list[AuditRow], at: datetime) -> str:
    """The reason given with the discard recorded at ``at`` (the audit entry of that moment)."""
    given = [a for a in audit if a.action == AuditAction.DISCARD.value and a.at <= at]
    reason = (given[-1].detail or {}).get("reason") if given else None
    return f"Reason: {reason}" if isinstance(reason, str) and reason else ""


def retry_filter(audit: list[AuditRow], at: datetime) -> str:
    """The filter the retry recorded at ``at`` was granted under, in words (empty for picked rows)."""
    given = [a for a in audit if a.action == AuditAction.RETRY.value and a.at <= at]
    return audit_trail.filter_words(given[-1].filter) if given else ""


def _attempt_words(attempt: AttemptRow | None) -> str:
    if attempt is None:
        return ""
    outcome = attempt.outcome or ("running" if attempt.finished_at is None else "")
    http = f"HTTP {attempt.http_status}" if attempt.http_status else ""
    # The message of a failure shows on the "Failed" line that follows; a try that ended otherwise (an
    # outage, an interruption) has no such line, so its message is given here.
    message = "" if attempt.outcome == AttemptOutcome.ERROR else first_text(attempt.message)
    return " · ".join(p for p in (outcome.replace("_", " "), http, message) if p)


def counted_text(attempt: AttemptRow) -> str:
    """Whether the attempt used one of the row's attempts, and if not why, in words."""
    if attempt.outcome is None:
        return ""  # still running: whether it counts is known when it ends
    if not attempt.counted:
        why = NOT_COUNTED_WHY.get(attempt.outcome or "")
        return f"did not count: {why}" if why else "did not count"
    if attempt.outcome == AttemptOutcome.INTERRUPTED:
        # Only the first interruption in a row is free; its message says so at length.
        return "counted: the dispatcher stopped again"
    return "counted"


def uncounted(attempts: list[AttemptRow]) -> int:
    return sum(1 for a in attempts if not a.counted)


def first_text(text: str | None, limit: int = 160) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def attempts_tab_text(attempts: list[AttemptRow]) -> str:
    """``Attempts (5)``, or ``Attempts (5, 2 did not count)`` when the history holds free tries."""
    free = uncounted(attempts)
    return f"Attempts ({len(attempts)}" + (f", {free} did not count)" if free else ")")


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _selectable(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setWordWrap(True)
    return label


class DetailPane(QWidget):
    """Shows one writeback, loaded off the GUI thread; ``show_writeback(None)`` shows a hint instead.

    Signals:
        retry_requested(list): the user pressed Retry for this row (ids).
        discard_requested(list): the user pressed Discard for this row (ids).
        loaded(int): the detail of this writeback id is on screen.
        vanished(int, str): the writeback shown (id, reference) is no longer in the queue database.
        reschedule_requested(WritebackRow): Reschedule… on this mailing activity.
        cancel_requested(WritebackRow): Cancel scheduled… on this Scheduled mailing activity.
    """

    retry_requested = Signal(list)
    discard_requested = Signal(list)
    loaded = Signal(int)
    vanished = Signal(int, str)
    reschedule_requested = Signal(object)
    cancel_requested = Signal(object)

    FIELDS = (
        ("ref", "Reference"),
        ("kind", "Kind"),
        ("status", "Status"),
        ("attempts", "Attempts"),
        ("last_http_status", "Last HTTP status"),
        ("last_error", "Last error"),
        ("account", "Account"),
        ("email", "Email"),
        ("constituent", "Constituent"),
        ("mailing", "Mailing"),
        ("recipients", "Recipients"),
        ("occurred_at", "Occurred in Informz"),
        ("created_at", "Queued"),
        ("updated_at", "Last changed"),
        ("scheduled_for", "Scheduled for"),
        ("next_attempt_at", "Next automatic retry"),
        ("sent_at", "Sent"),
        ("locked_by", "Claimed by"),
        ("locked_at", "Lease renewed"),
        ("lease_expires_at", "Lease runs until"),
        ("delivery_uncertain", "Delivery uncertain"),
        ("id", "Database id"),
    )

    def __init__(self, factory: Factory, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._factory = factory
        self._runner = TaskGroup(self, runner)
        self._task: Task | None = None
        self._wanted: int | None = None
        #: The reference of the wanted row, when known: messages about a row name it, never its id.
        self._wanted_ref: str | None = None
        self.detail: WritebackDetail | None = None

        self.hint = QLabel(EMPTY_HINT)
        self.hint.setObjectName("emptyHint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)

        self.title = _selectable()
        self.title.setObjectName("detailTitle")
        self.title.setWordWrap(False)
        self.pill = StatusPill()
        self.subtitle = _selectable()
        self.retry_button = QPushButton("Retry…")
        self.retry_button.setToolTip(
            "Send this writeback once more (only when automatic retries are used up)"
        )
        self.retry_button.clicked.connect(self._retry_clicked)
        self.reschedule_button = QPushButton("Reschedule…")
        self.reschedule_button.setToolTip("Send this mailing activity at another time, or at the next run")
        self.reschedule_button.clicked.connect(self._reschedule_clicked)
        self.cancel_button = QPushButton("Cancel scheduled…")
        self.cancel_button.setToolTip(
            "Withdraw this Scheduled mailing activity; it stays listed as Cancelled"
        )
        self.cancel_button.clicked.connect(self._cancel_clicked)
        self.discard_button = QPushButton("Discard…")
        self.discard_button.setToolTip("Stop retrying this Error writeback, with a reason (Retry undoes it)")
        self.discard_button.clicked.connect(self._discard_clicked)
        self.copy_button = QPushButton("Copy details")
        self.copy_button.setToolTip("Copy every field, attempt and event as JSON, e.g. for a support ticket")
        self.gate: PermissionGate | None = None
        self.copy_button.clicked.connect(self.copy_details)

        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.pill)
        header.addStretch(1)
        header.addWidget(self.reschedule_button)
        header.addWidget(self.cancel_button)
        header.addWidget(self.retry_button)
        header.addWidget(self.discard_button)
        header.addWidget(self.copy_button)

        # Two columns of fields: the pane is wide and short under the table.
        self.values: dict[str, QLabel] = {}
        form_host = QWidget()
        columns = QHBoxLayout(form_host)
        half = (len(self.FIELDS) + 1) // 2
        for part in (self.FIELDS[:half], self.FIELDS[half:]):
            form = QFormLayout()
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
            for key, label in part:
                value = _selectable()
                self.values[key] = value
                form.addRow(label + ":", value)
            columns.addLayout(form, 1)
        fields_scroll = QScrollArea()
        fields_scroll.setWidgetResizable(True)
        fields_scroll.setWidget(form_host)
        fields_scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.payload = QPlainTextEdit()
        self.payload.setReadOnly(True)
        self.payload.setFont(mono)

        self.attempts = QTableWidget(0, len(ATTEMPT_COLUMNS))
        self.attempts.setHorizontalHeaderLabels(list(ATTEMPT_COLUMNS))
        self.attempts.verticalHeader().setVisible(False)
        self.attempts.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.attempts.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.attempts.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.attempts.setWordWrap(False)
        header_view = self.attempts.horizontalHeader()
        header_view.setStretchLastSection(True)
        header_view.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # A title scrolled partly out of view still reads from its start ("Response ex", not "esponse e").
        header_view.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for column, width in enumerate((30, 120, 120, 80, 150, 45, 220)):
            self.attempts.setColumnWidth(column, width)
        self.attempts.itemSelectionChanged.connect(self._attempt_selected)
        # A click on the attempt already highlighted changes no selection, yet must show it too.
        self.attempts.cellClicked.connect(self._attempt_clicked)
        self.attempt_text = QPlainTextEdit()
        self.attempt_text.setReadOnly(True)
        self.attempt_text.setFont(mono)
        self.attempt_text.setPlaceholderText("Select an attempt to read its whole message and response.")
        attempts_split = QSplitter(Qt.Orientation.Horizontal)
        attempts_split.addWidget(self.attempts)
        attempts_split.addWidget(self.attempt_text)
        attempts_split.setSizes([700, 400])

        self.timeline = QTreeWidget()
        self.timeline.setColumnCount(4)
        self.timeline.setHeaderLabels(["When", "What", "Who", "Detail"])
        self.timeline.setRootIsDecorated(False)
        self.timeline.setAlternatingRowColors(True)
        for column, width in enumerate((125, 150, 130)):
            self.timeline.setColumnWidth(column, width)

        self.tabs = QTabWidget()
        self.tabs.addTab(fields_scroll, "Fields")
        self.tabs.addTab(self.payload, "Payload")
        self.tabs.addTab(attempts_split, "Attempts")
        self.tabs.addTab(self.timeline, "Timeline")

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(8, 8, 8, 8)
        content_layout.addLayout(header)
        content_layout.addWidget(self.subtitle)
        content_layout.addWidget(self.tabs, 1)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

    @property
    def writeback_id(self) -> int | None:
        return self._wanted

    def show_writeback(self, writeback_id: int | None, ref: str | None = None) -> None:
        """Show this writeback (read in the background), or the hint for None.

        ``ref`` is the row's reference when the caller knows it, for a message should it fail to load.
        """
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if ref is None and self.detail is not None and self.detail.row.id == writeback_id:
            ref = self.detail.row.ref
        if ref is None and writeback_id == self._wanted:
            ref = self._wanted_ref  # read again after a failed read: still the same row's name
        self._wanted = writeback_id
        self._wanted_ref = ref
        if writeback_id is None:
            self.detail = None
            self.hint.setText(EMPTY_HINT)
            self.stack.setCurrentIndex(0)
            return
        self._task = self._runner.submit(
            load_detail,
            self._factory,
            writeback_id,
            on_done=lambda detail: self._show(writeback_id, detail),
            on_error=lambda error: self._show_error(writeback_id, error),
        )

    @Slot()
    def set_gate(self, gate: PermissionGate) -> None:
        """Keep the buttons of what the connected role may not do disabled, saying which role they need."""
        self.gate = gate
        for button, what in (
            (self.retry_button, Action.RETRY),
            (self.discard_button, Action.DISCARD),
            (self.reschedule_button, Action.RESCHEDULE),
            (self.cancel_button, Action.CANCEL),
        ):
            gate.guard(button, what)

    def refresh(self) -> None:
        """Read the shown writeback again (after a dispatcher cycle or a retry)."""
        if self._wanted is not None:
            current = self.tabs.currentIndex()
            self.show_writeback(self._wanted)
            self.tabs.setCurrentIndex(current)

    def _show_error(self, writeback_id: int, error: BaseException) -> None:
        if writeback_id != self._wanted:
            return
        self._task = None
        self.detail = None
        name = self._wanted_ref or "This writeback"
        if isinstance(error, NotFound):
            self.hint.setText(f"{name} is no longer in the queue.")
        else:
            self.hint.setText(f"{name} could not be read. {describe_exception(error)[0]}")
        self.stack.setCurrentIndex(0)
        if isinstance(error, NotFound):
            self.vanished.emit(writeback_id, self._wanted_ref or "")

    def _show(self, writeback_id: int, detail: WritebackDetail) -> None:
        if writeback_id != self._wanted:
            return  # the user moved on to another row meanwhile
        self._task = None
        # The same row read again keeps the attempt being read; another row starts at its newest.
        same_row = self.detail is not None and self.detail.row.id == writeback_id
        reading = self._selected_attempt() if same_row else None
        self.detail = detail
        self._wanted_ref = detail.row.ref
        row = detail.row
        self.title.setText(row.ref)
        self.pill.set_spec(pill_spec(row))
        self.pill.setToolTip(status_tooltip(row))
        who = row.email or constituent_label(row) or (f"mailing #{row.mailing_id}" if row.mailing_id else "")
        self.subtitle.setText(f"{row.kind.label} · {row.account}" + (f" · {who}" if who else ""))
        self.retry_button.setEnabled(manual_retry_decision(row.state).allowed)
        self.retry_button.setToolTip(manual_retry_decision(row.state).reason.capitalize())
        # Staff act where the row is: a waiting mailing activity can be moved, a Scheduled one cancelled.
        mailing_activity = row.kind is Kind.MAILING_ACTIVITY
        self.reschedule_button.setVisible(mailing_activity and row.status in MOVABLE)
        self.cancel_button.setVisible(mailing_activity and row.status is Status.SCHEDULED)
        self.discard_button.setEnabled(discard_decision(row.state).allowed)
        self._fill_fields(row, detail.attempts)
        self.payload.setPlainText(json.dumps(dict(row.payload), indent=2, ensure_ascii=False, sort_keys=True))
        self._fill_attempts(detail.attempts, reading)
        self._fill_timeline(timeline(detail))
        self.tabs.setTabText(2, attempts_tab_text(detail.attempts))
        self.tabs.setTabText(3, f"Timeline ({len(self.timeline_items())})")
        self.stack.setCurrentIndex(1)
        self.loaded.emit(writeback_id)

    def _fill_fields(self, row: WritebackRow, attempts: list[AttemptRow]) -> None:
        left = attempts_left(row.state)
        if row.status is Status.ERROR:
            attempts_note = (
                f" — {left} automatic {'retry' if left == 1 else 'retries'} to come"
                if left
                else " — automatic retries used up, manual retry available"
            )
        else:
            attempts_note = ""
        free = uncounted(attempts)
        if free:
            # The history is longer than the count: say so, or the numbers look wrong.
            attempts_note += f"; {free} more {'try' if free == 1 else 'tries'} in the history did not count"
        mailing = ""
        if row.mailing_id is not None:
            name = row.payload.get("mailing_name")
            mailing = f"#{row.mailing_id}" + (f" — {name}" if isinstance(name, str) else "")
        values: dict[str, str] = {
            "id": str(row.id),
            "ref": row.ref,
            "kind": row.kind.label,
            "status": status_tooltip(row),
            "account": row.account,
            "email": row.email or "",
            "constituent": constituent_label(row),
            "mailing": mailing,
            "recipients": _recipients_text(row),
            "attempts": f"{row.attempts} of {row.max_attempts}{attempts_note}",
            "occurred_at": local_time(row.occurred_at),
            "created_at": local_time(row.created_at),
            "updated_at": local_time(row.updated_at),
            "scheduled_for": local_time(row.scheduled_for)
            + (" (cancelled)" if row.scheduled_for and row.status is Status.CANCELLED else ""),
            "next_attempt_at": next_retry_text(row, utcnow()),
            "sent_at": local_time(row.sent_at),
            "last_http_status": str(row.last_http_status) if row.last_http_status else "",
            "last_error": row.last_error or "",
            "locked_by": row.locked_by or "",
            "locked_at": local_time(row.locked_at),
            "lease_expires_at": local_time(row.lease_expires_at),
            "delivery_uncertain": "yes — ask Personify360 before sending again"
            if row.delivery_uncertain
            else "no",
        }
        for key, label in self.values.items():
            label.setText(values.get(key) or "—")

    def _fill_attempts(self, attempts: list[AttemptRow], reading: int | None = None) -> None:
        """The attempt history, with the attempt numbered ``reading`` chosen, or else the newest.

        The selection is cleared first: a row with as many attempts as the one before would otherwise
        keep its highlight without a change of selection, and so without its text.
        """
        self.attempts.blockSignals(True)
        self.attempts.clearSelection()
        self.attempts.blockSignals(False)
        self.attempts.setRowCount(len(attempts))
        for n, attempt in enumerate(attempts):
            cells = (
                str(attempt.number) + (" (manual)" if attempt.manual else ""),
                local_time(attempt.started_at),
                local_time(attempt.finished_at) or "running",
                (attempt.outcome or "").replace("_", " "),
                counted_text(attempt),
                str(attempt.http_status) if attempt.http_status else "",
                first_text(attempt.message),
                first_text(attempt.response_excerpt),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == COUNTED_COLUMN:
                    item.setToolTip(text)
                elif column in (MESSAGE_COLUMN, EXCERPT_COLUMN):
                    full = attempt.message if column == MESSAGE_COLUMN else attempt.response_excerpt
                    item.setToolTip((full or "")[:1000])
                self.attempts.setItem(n, column, item)
        # The short columns (and the reasons an attempt did not count) are read whole, not elided.
        for column in range(MESSAGE_COLUMN):
            self.attempts.resizeColumnToContents(column)
        self.attempt_text.clear()
        if attempts:
            numbers = [a.number for a in attempts]
            chosen = numbers.index(reading) if reading in numbers else len(attempts) - 1
            self.attempts.selectRow(chosen)
            self._show_attempt(chosen)

    def _fill_timeline(self, events: list[TimelineEvent]) -> None:
        self.timeline.clear()
        for event in events:
            item = QTreeWidgetItem([local_time(event.at), event.what, event.who, event.detail])
            for column, text in ((1, event.what), (2, event.who), (3, event.detail)):
                item.setToolTip(column, text)
            self.timeline.addTopLevelItem(item)
        # When, What and Who whole (up to a bound: the tooltip has the rest); Detail takes what is left.
        for column in range(3):
            self.timeline.resizeColumnToContents(column)
            self.timeline.setColumnWidth(column, min(self.timeline.columnWidth(column), TIMELINE_MAX_WIDTH))

    def timeline_items(self) -> list[list[str]]:
        """The timeline as text, row by row (tests and copy read it)."""
        rows = []
        for n in range(self.timeline.topLevelItemCount()):
            item = self.timeline.topLevelItem(n)
            if item is not None:
                rows.append([item.text(c) for c in range(self.timeline.columnCount())])
        return rows

    def _selected_attempt(self) -> int | None:
        """The number of the attempt being read, if one is chosen."""
        rows = self.attempts.selectionModel().selectedRows()
        if self.detail is None or not rows or rows[0].row() >= len(self.detail.attempts):
            return None
        return self.detail.attempts[rows[0].row()].number

    @Slot()
    def _attempt_selected(self) -> None:
        rows = self.attempts.selectionModel().selectedRows()
        if not rows:
            self.attempt_text.clear()
            return
        self._show_attempt(rows[0].row())

    @Slot(int, int)
    def _attempt_clicked(self, row: int, _column: int) -> None:
        self._show_attempt(row)

    def _show_attempt(self, n: int) -> None:
        if self.detail is None or not 0 <= n < len(self.detail.attempts):
            self.attempt_text.clear()
            return
        attempt = self.detail.attempts[n]
        parts = [
            f"Attempt {attempt.number} by {attempt.dispatcher or 'unknown'}"
            + (" (manual retry)" if attempt.manual else ""),
            f"Started {local_time(attempt.started_at)}, finished {local_time(attempt.finished_at) or '—'}",
            f"Outcome: {attempt.outcome or '—'}; HTTP status: {attempt.http_status or '—'}",
            _capitalised(counted_text(attempt) or "running"),
            "",
            "Message:",
            attempt.message or "—",
            "",
            "Response excerpt:",
            attempt.response_excerpt or "—",
        ]
        self.attempt_text.setPlainText("\n".join(parts))

    @Slot()
    def copy_details(self) -> None:
        if self.detail is not None:
            text = json.dumps(self.detail.to_json(), indent=2, ensure_ascii=False, default=str)
            QGuiApplication.clipboard().setText(text)

    @Slot()
    def _reschedule_clicked(self) -> None:
        if self.detail is not None:
            self.reschedule_requested.emit(self.detail.row)

    @Slot()
    def _cancel_clicked(self) -> None:
        if self.detail is not None:
            self.cancel_requested.emit(self.detail.row)

    @Slot()
    def _retry_clicked(self) -> None:
        if self.detail is not None:
            self.retry_requested.emit([self.detail.row.id])

    @Slot()
    def _discard_clicked(self) -> None:
        if self.detail is not None:
            self.discard_requested.emit([self.detail.row.id])
