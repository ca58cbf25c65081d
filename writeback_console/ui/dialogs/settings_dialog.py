"""The Settings dialog: Personify360 connection, activity-code mapping, dispatcher and account switches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import operations
from writeback_console.connection import Check, check_connection
from writeback_console.domain import (
    MAX_AUTO_MAILING_ACTIVITY_DAYS,
    MAX_RETENTION_DAYS,
    MIN_RETENTION_DAYS,
    Kind,
)
from writeback_console.personify.mapping import INTEREST_EVENTS, MAILING_EVENTS, ActivityMapping
from writeback_console.settings import (
    AppSettings,
    PasswordStore,
    SettingsError,
    runs_dispatcher,
    runs_dispatcher_by_default,
)
from writeback_console.store import listing, switches
from writeback_console.store.engine import read_session
from writeback_console.store.permissions import Action
from writeback_console.store.rows import current_actor
from writeback_console.ui.dialogs import TaskGroup, errors
from writeback_console.ui.permissions import PermissionGate
from writeback_console.ui.status_style import NONE_TEXT
from writeback_console.ui.tasks import Task, TaskRunner
from writeback_console.ui.theme import set_tone

#: Events each kind's subcodes are keyed by in the mapping; kinds not listed have no subcode.
SUBCODE_EVENTS: dict[Kind, tuple[str, ...]] = {
    Kind.MAILING_ACTIVITY: MAILING_EVENTS,
    Kind.INTERESTS: INTEREST_EVENTS,
}
CODE_COLUMN, SUBCODE_COLUMN, TEMPLATE_COLUMN = 1, 2, 3


# --- work done off the GUI thread ----------------------------------------------------------------


def runs_dispatcher_note(db_url: str) -> str:
    """What the "runs the dispatcher" box means, with the default for this console's database."""
    kind, default = (
        ("this SQLite file", "on")
        if runs_dispatcher_by_default(db_url)
        else ("a shared PostgreSQL queue", "off")
    )
    return (
        "Off: this console sends nothing itself; the status bar shows the last run of the dispatchers that "
        "serve this queue (writeback-console dispatch --forever), and a banner when none has run for two "
        f"intervals. The default for {kind} is {default}. Takes effect when the console starts again."
    )


def writeback_by_account(factory: sessionmaker[Session]) -> dict[str, bool]:
    """Every Informz account the queue knows (or that has a switch of its own): writebacks on or off."""
    with read_session(factory) as session:
        off = switches.disabled_accounts(session)
        accounts = set(listing.list_accounts(session)) | off
    return {account: account not in off for account in sorted(accounts, key=str.lower)}


def password_is_stored(store: PasswordStore, url: str, user: str) -> bool:
    # The environment override is left out: this asks what Save would keep, not what a run would use.
    return bool(url and user and store.get(url, user, environ={}))


# --- the dialog ----------------------------------------------------------------------------------


def _subcode_text(events: tuple[str, ...], subcodes: Mapping[str, str]) -> str:
    return ", ".join(f"{event}={subcodes.get(event, '')}" for event in events)


def _parse_subcodes(kind: Kind, text: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        event, sep, code = part.partition("=")
        if not sep:
            events = SUBCODE_EVENTS[kind]
            example = _subcode_text(events, {e: e.upper().replace("_", "") for e in events})
            raise SettingsError(
                f"Activity codes › {kind.label} › subcodes: write event=SUBCODE pairs separated by "
                f"commas, e.g. {example}"
            )
        parsed[event.strip()] = code.strip()
    return parsed


class SettingsDialog(QDialog):
    """Edit, test and save the console's settings; nothing is saved unless everything is valid.

    Signals:
        saved(object): the AppSettings now in the settings file.
    """

    saved = Signal(object)

    def __init__(
        self,
        settings: AppSettings,
        password_store: PasswordStore,
        factory: sessionmaker[Session],
        runner: TaskRunner,
        parent: QWidget | None = None,
        settings_path: Path | None = None,
        gate: PermissionGate | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.gate = gate or PermissionGate(parent=self)
        self.resize(860, 600)
        self._settings = settings
        self._store = password_store
        self._factory = factory
        # Every result comes back through the group, which drops it once this widget is gone.
        self._runner = TaskGroup(self, runner)
        self._path = settings_path
        bind = factory.kw.get("bind")
        #: The database this console works on, whose kind sets whether it dispatches by default.
        self._db_url = bind.url.render_as_string(hide_password=True) if bind is not None else "sqlite://"
        self._account: operations.AccountSwitches | None = None
        #: Each Informz account's switch as read from the database; None until read.
        self._per_account: dict[str, bool] | None = None
        self._busy = False
        self._saving = False
        self._tasks: list[Task] = []
        self.checks: list[Check] = []

        self.tabs = QTabWidget()
        self.tabs.addTab(self._personify_tab(), "Personify360")
        self.tabs.addTab(self._mapping_tab(), "Activity codes")
        self.tabs.addTab(self._dispatcher_tab(), "Dispatcher")
        self.tabs.addTab(self._account_tab(), "Account")
        self._guard()

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        set_tone(self.error_label, "error")
        self.error_label.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self._tasks.append(
            self._runner.submit(
                operations.account_switches,
                factory,
                on_done=self._account_loaded,
                on_error=self._account_failed,
            )
        )
        self._tasks.append(
            self._runner.submit(
                writeback_by_account,
                factory,
                on_done=self._per_account_loaded,
                on_error=self._per_account_failed,
            )
        )
        self._tasks.append(
            self._runner.submit(
                password_is_stored,
                password_store,
                settings.service_root_url,
                settings.user,
                on_done=self._password_known,
                on_error=lambda _exc: self._password_known(False),
            )
        )

    # -- tabs -----------------------------------------------------------------------------------

    def _personify_tab(self) -> QWidget:
        s = self._settings
        self.url_edit = QLineEdit(s.service_root_url)
        self.url_edit.setPlaceholderText("https://host/PersonifyDataServices/PersonifyData.svc")
        self.allow_http_box = QCheckBox("Allow plain http:// (sends the password unencrypted)")
        self.allow_http_box.setChecked(s.allow_insecure_http)
        self.allow_http_box.setToolTip(
            "Only on a network you trust. Addresses on this computer (localhost) never need it."
        )
        self.user_edit = QLineEdit(s.user)
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setPlaceholderText("checking…")
        self.password_where = QLabel(f"Kept in {self._store.where}; never in the settings file or database.")
        self.password_where.setEnabled(False)
        self.operator_edit = QLineEdit(s.operator)
        self.operator_edit.setToolTip("Recorded by Personify360 as the operator who added each activity.")
        self.verify_tls_box = QCheckBox("Verify the server's TLS certificate (keep this on)")
        self.verify_tls_box.setChecked(s.verify_tls)
        self.connect_timeout_spin = QDoubleSpinBox()
        self.connect_timeout_spin.setRange(0.1, 600)
        self.connect_timeout_spin.setDecimals(1)
        self.connect_timeout_spin.setSuffix(" s")
        self.connect_timeout_spin.setValue(s.connect_timeout)
        self.read_timeout_spin = QDoubleSpinBox()
        self.read_timeout_spin.setRange(0.1, 3600)
        self.read_timeout_spin.setDecimals(1)
        self.read_timeout_spin.setSuffix(" s")
        self.read_timeout_spin.setValue(s.read_timeout)
        self.request_deadline_spin = QDoubleSpinBox()
        self.request_deadline_spin.setRange(1, 3600)
        self.request_deadline_spin.setDecimals(1)
        self.request_deadline_spin.setSuffix(" s")
        self.request_deadline_spin.setValue(s.request_deadline)
        self.request_deadline_spin.setToolTip(
            "The longest one request to Personify360 may take in all, however slowly its answer "
            "arrives; the timeouts above are for each single wait within it."
        )

        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.test_connection)
        self.test_progress = QProgressBar()
        self.test_progress.setRange(0, 0)
        self.test_progress.setMaximumSize(120, 12)
        self.test_progress.setTextVisible(False)
        self.test_progress.hide()
        self.check_list = QTreeWidget()
        self.check_list.setHeaderLabels(["Check", "Result"])
        self.check_list.setRootIsDecorated(False)
        self.check_list.setWordWrap(True)
        self.check_list.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.check_list.itemDoubleClicked.connect(self._check_details)
        self.check_list.setToolTip("Double-click a failed check for its details.")

        tab = QWidget()
        form = QFormLayout()
        form.addRow("Service root URL:", self.url_edit)
        form.addRow("", self.allow_http_box)
        form.addRow("User:", self.user_edit)
        form.addRow("Password:", self.password_edit)
        form.addRow("", self.password_where)
        form.addRow("Operator:", self.operator_edit)
        form.addRow("Connect timeout:", self.connect_timeout_spin)
        form.addRow("Read timeout:", self.read_timeout_spin)
        form.addRow("Request deadline:", self.request_deadline_spin)
        form.addRow("", self.verify_tls_box)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_progress)
        test_row.addStretch(1)
        layout = QVBoxLayout(tab)
        layout.addLayout(form)
        layout.addLayout(test_row)
        layout.addWidget(self.check_list, 1)
        return tab

    def _mapping_tab(self) -> QWidget:
        mapping = self._settings.activity_mapping
        self.mapping_table = QTableWidget(len(Kind), 4)
        self.mapping_table.setHorizontalHeaderLabels(
            ["Kind", "Activity code", "Subcodes", "Activity text template"]
        )
        self.mapping_table.verticalHeader().hide()
        self.mapping_table.setWordWrap(True)
        header = self.mapping_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.mapping_table.setColumnWidth(2, 220)
        self.mapping_table.setEditTriggers(QAbstractItemView.EditTrigger.AllEditTriggers)
        for row, kind in enumerate(Kind):
            label = QTableWidgetItem(kind.label)
            label.setFlags(Qt.ItemFlag.ItemIsEnabled)
            label.setData(Qt.ItemDataRole.UserRole, kind.value)
            self.mapping_table.setItem(row, 0, label)
            self.mapping_table.setItem(row, CODE_COLUMN, QTableWidgetItem(mapping.codes[kind]))
            events = SUBCODE_EVENTS.get(kind)
            if events is None:
                sub = QTableWidgetItem(NONE_TEXT)
                sub.setFlags(Qt.ItemFlag.ItemIsEnabled)
                sub.setToolTip(f"{kind.label} activities have no subcode.")
            else:
                subcodes = (
                    mapping.mailing_subcodes if kind is Kind.MAILING_ACTIVITY else mapping.interest_subcodes
                )
                sub = QTableWidgetItem(_subcode_text(events, subcodes))
                sub.setToolTip("event=SUBCODE pairs, separated by commas")
            self.mapping_table.setItem(row, SUBCODE_COLUMN, sub)
            template = QTableWidgetItem(mapping.templates[kind])
            template.setToolTip(mapping.templates[kind])
            self.mapping_table.setItem(row, TEMPLATE_COLUMN, template)
        self.mapping_table.resizeRowsToContents()
        note = QLabel(
            "Codes and subcodes must exist in Personify360 (APP_CODE / APP_SUBCODE, subsystem CUS, type "
            "ACTIVITY); Test connection checks them. Templates may use placeholders such as {account}, "
            "{when}, {email} and {reason}; the writeback's reference is always added at the end."
        )
        note.setWordWrap(True)
        note.setEnabled(False)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addWidget(self.mapping_table, 1)
        layout.addWidget(note)
        return tab

    def _dispatcher_tab(self) -> QWidget:
        s = self._settings
        self.interval_spin = QDoubleSpinBox()
        self.interval_spin.setRange(0.1, 7 * 24 * 60)
        self.interval_spin.setDecimals(2)
        self.interval_spin.setSuffix(" min")
        self.interval_spin.setValue(s.interval_seconds / 60)
        self.concurrency_spin = QSpinBox()
        self.concurrency_spin.setRange(1, 64)
        self.concurrency_spin.setValue(s.concurrency)
        self.concurrency_spin.setSuffix(" at once")
        self.lease_spin = QSpinBox()
        self.lease_spin.setRange(1, 86400)
        self.lease_spin.setSuffix(" s")
        self.lease_spin.setValue(s.lease_seconds)
        self.lease_spin.setToolTip(
            "How long a row being sent stays locked without renewal before the next run takes it back."
        )
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 5000)
        self.batch_spin.setValue(s.batch_size)
        self.batch_spin.setSuffix(" rows")
        tab = QWidget()
        form = QFormLayout(tab)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        form.addRow("Run every:", self.interval_spin)
        form.addRow("Send concurrently:", self.concurrency_spin)
        form.addRow("Lease:", self.lease_spin)
        form.addRow("Claim per step:", self.batch_spin)
        self.runs_dispatcher_box = QCheckBox("This console runs the dispatcher")
        self.runs_dispatcher_box.setObjectName("runsDispatcherBox")
        self.runs_dispatcher_box.setChecked(runs_dispatcher(s, self._db_url))
        self.runs_dispatcher_note = QLabel(runs_dispatcher_note(self._db_url))
        self.runs_dispatcher_note.setWordWrap(True)
        form.addRow("", self.runs_dispatcher_box)
        form.addRow("", self.runs_dispatcher_note)
        return tab

    def _account_tab(self) -> QWidget:
        self.enabled_box = QCheckBox("Writebacks are enabled (sent to Personify360)")
        self.enabled_box.setToolTip("While off, writebacks still queue up but nothing is sent.")
        self.auto_box = QCheckBox("Send mailing activity automatically")
        self.auto_days_spin = QSpinBox()
        self.auto_days_spin.setRange(0, MAX_AUTO_MAILING_ACTIVITY_DAYS)
        self.auto_days_spin.setSuffix(" days after the mailing was sent")
        self.auto_box.toggled.connect(self.auto_days_spin.setEnabled)
        self.prune_box = QCheckBox("Delete sent writebacks older than")
        self.prune_box.setToolTip(
            "Once a day a dispatcher deletes Sent and No Remote Recipients writebacks finished longer ago "
            "than this, with their attempts and history, for every account; their audit entries are kept. "
            "Error, New, Scheduled, Processing, Cancelled and Discarded rows are never deleted, nor mailing "
            "activity that records what each recipient got."
        )
        self.prune_days_spin = QSpinBox()
        self.prune_days_spin.setRange(MIN_RETENTION_DAYS, MAX_RETENTION_DAYS)
        self.prune_days_spin.setValue(180)
        self.prune_days_spin.setSuffix(" days (every account)")
        self.prune_box.toggled.connect(self.prune_days_spin.setEnabled)
        self.account_status = QLabel("Loading from the database…")
        self.account_status.setWordWrap(True)
        for widget in (
            self.enabled_box,
            self.auto_box,
            self.auto_days_spin,
            self.prune_box,
            self.prune_days_spin,
        ):
            widget.setEnabled(False)
        note = QLabel(
            "These settings are kept in the queue database and apply to every console and dispatcher "
            "using it. Every change is recorded in the audit log."
        )
        note.setWordWrap(True)
        note.setEnabled(False)
        #: Who this console is connected as, and what that allows (SQLite: one user, everything).
        self.role_label = QLabel(self.gate.capabilities.describe())
        self.role_label.setObjectName("roleLabel")
        self.role_label.setWordWrap(True)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addWidget(self.role_label)
        layout.addWidget(self.enabled_box)
        auto_row = QHBoxLayout()
        auto_row.addWidget(self.auto_box)
        auto_row.addWidget(self.auto_days_spin)
        auto_row.addStretch(1)
        layout.addLayout(auto_row)
        prune_row = QHBoxLayout()
        prune_row.addWidget(self.prune_box)
        prune_row.addWidget(self.prune_days_spin)
        prune_row.addStretch(1)
        layout.addLayout(prune_row)
        layout.addWidget(self.account_status)
        self.account_list = QTreeWidget()
        self.account_list.setHeaderLabels(["Informz account", "Writebacks"])
        self.account_list.setRootIsDecorated(False)
        self.account_list.setUniformRowHeights(True)
        self.account_list.setToolTip(
            "Untick an account to stop sending its writebacks: they still queue up, and are sent once "
            "it is ticked again. The switch above stops every account at once."
        )
        self.account_list.itemChanged.connect(self._account_ticked)
        self.account_list.setEnabled(False)
        self.account_list_status = QLabel("Loading the accounts…")
        self.account_list_status.setWordWrap(True)
        layout.addWidget(QLabel("Per Informz account (ticked: sent to Personify360):"))
        layout.addWidget(self.account_list, 1)
        layout.addWidget(self.account_list_status)
        layout.addWidget(note)
        return tab

    def _guard(self) -> None:
        """The queue's switches and account settings only for a role that may change them."""
        for widget, what in (
            (self.runs_dispatcher_box, Action.DISPATCH),
            (self.enabled_box, Action.SWITCHES),
            (self.account_list, Action.SWITCHES),
            (self.auto_box, Action.ACCOUNT_SETTINGS),
            (self.auto_days_spin, Action.ACCOUNT_SETTINGS),
            (self.prune_box, Action.ACCOUNT_SETTINGS),
            (self.prune_days_spin, Action.ACCOUNT_SETTINGS),
        ):
            self.gate.guard(widget, what)

    # -- loading --------------------------------------------------------------------------------

    def _account_loaded(self, account: operations.AccountSwitches) -> None:
        self._account = account
        self.enabled_box.setEnabled(True)
        self.auto_box.setEnabled(True)
        self.enabled_box.setChecked(account.writeback_enabled)
        self.auto_box.setChecked(account.auto_mailing_activity_days is not None)
        self.auto_days_spin.setValue(account.auto_mailing_activity_days or 0)
        self.auto_days_spin.setEnabled(account.auto_mailing_activity_days is not None)
        self.prune_box.setEnabled(True)
        self.prune_box.setChecked(account.prune_sent_after_days is not None)
        self.prune_days_spin.setValue(account.prune_sent_after_days or 180)
        self.prune_days_spin.setEnabled(account.prune_sent_after_days is not None)
        self.account_status.hide()

    def _account_failed(self, exc: BaseException) -> None:
        message, _details = errors.describe_exception(exc)
        self.account_status.setText(
            f"The account settings could not be read, so they will not be saved. {message}"
        )
        set_tone(self.account_status, "error")

    def _per_account_loaded(self, states: dict[str, bool]) -> None:
        self._per_account = states
        self.account_list.blockSignals(True)
        self.account_list.clear()
        for account, on in states.items():
            item = QTreeWidgetItem([account, ""])
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            item.setData(0, Qt.ItemDataRole.UserRole, account)
            self._describe_account(item)
            self.account_list.addTopLevelItem(item)
        self.account_list.resizeColumnToContents(0)
        self.account_list.blockSignals(False)
        self.account_list.setEnabled(True)
        if states:
            self.account_list_status.hide()
        else:
            self.account_list_status.setText(
                "No writeback is in the queue yet, so there is no account to list."
            )

    def _per_account_failed(self, exc: BaseException) -> None:
        # Said where the other account settings say they could not be read; none of them is saved.
        self.account_list_status.setText("The accounts could not be read.")
        self._account_failed(exc)

    @staticmethod
    def _describe_account(item: QTreeWidgetItem) -> None:
        on = item.checkState(0) == Qt.CheckState.Checked
        item.setText(1, "sent" if on else "switched off: queued, not sent")

    @Slot(QTreeWidgetItem, int)
    def _account_ticked(self, item: QTreeWidgetItem, _column: int) -> None:
        self.account_list.blockSignals(True)
        self._describe_account(item)
        self.account_list.blockSignals(False)

    def account_writeback_changes(self) -> dict[str, bool]:
        """Informz accounts whose tick differs from the database (nothing when they could not be read)."""
        if self._per_account is None:
            return {}
        changes: dict[str, bool] = {}
        for n in range(self.account_list.topLevelItemCount()):
            item = self.account_list.topLevelItem(n)
            if item is None:
                continue
            account = str(item.data(0, Qt.ItemDataRole.UserRole))
            on = item.checkState(0) == Qt.CheckState.Checked
            if self._per_account.get(account) != on:
                changes[account] = on
        return changes

    def _password_known(self, stored: bool) -> None:
        self.password_edit.setPlaceholderText(
            "stored — type to change" if stored else "not stored yet — type the password"
        )

    # -- collecting and validating --------------------------------------------------------------

    def collect_mapping(self) -> dict[str, Any]:
        """The mapping table as settings data; SettingsError names the kind and column that is wrong."""
        data = dict(self._settings.activity_mapping.to_dict())
        codes: dict[str, str] = {}
        templates: dict[str, str] = {}
        subcodes: dict[str, dict[str, str]] = {}
        for row, kind in enumerate(Kind):
            codes[kind.value] = self._cell(row, CODE_COLUMN).strip()
            templates[kind.value] = self._cell(row, TEMPLATE_COLUMN).strip()
            if kind in SUBCODE_EVENTS:
                subcodes[kind.value] = _parse_subcodes(kind, self._cell(row, SUBCODE_COLUMN))
        data.update(codes=codes, templates=templates, subcodes=subcodes)
        try:
            return ActivityMapping.from_dict(data).to_dict()
        except ValueError as exc:
            raise SettingsError(self._mapping_message(str(exc))) from None

    def _cell(self, row: int, column: int) -> str:
        item = self.mapping_table.item(row, column)
        return item.text() if item is not None else ""

    def _mapping_message(self, message: str) -> str:
        """``templates.unsubscribe: …`` as ``Activity codes › Unsubscribe › template: …``, cell selected."""
        key, _sep, problem = message.partition(": ")
        parts = key.split(".")
        columns = {"codes": (CODE_COLUMN, "code"), "templates": (TEMPLATE_COLUMN, "template")}
        columns["subcodes"] = (SUBCODE_COLUMN, "subcodes")
        if len(parts) >= 2 and parts[0] in columns and parts[1] in {k.value for k in Kind}:
            kind = Kind(parts[1])
            column, name = columns[parts[0]]
            detail = f" ({'.'.join(parts[2:])})" if len(parts) > 2 else ""
            self.mapping_table.setCurrentCell(list(Kind).index(kind), column)
            return f"Activity codes › {kind.label} › {name}{detail}: {problem}"
        return f"Activity codes: {message}"

    #: Settings keys as the dialog labels them, and the widget to focus when one is wrong.
    def _field_widgets(self) -> dict[str, tuple[str, QWidget, int]]:
        return {
            "service_root_url": ("Service root URL", self.url_edit, 0),
            "user": ("User", self.user_edit, 0),
            "operator": ("Operator", self.operator_edit, 0),
            "connect_timeout": ("Connect timeout", self.connect_timeout_spin, 0),
            "read_timeout": ("Read timeout", self.read_timeout_spin, 0),
            "request_deadline": ("Request deadline", self.request_deadline_spin, 0),
            "interval_seconds": ("Run every", self.interval_spin, 2),
            "concurrency": ("Send concurrently", self.concurrency_spin, 2),
            "lease_seconds": ("Lease", self.lease_spin, 2),
            "batch_size": ("Claim per step", self.batch_spin, 2),
        }

    def collect(self) -> AppSettings:
        """The settings as edited; SettingsError names the field (as labelled here) that is wrong."""
        try:
            mapping = self.collect_mapping()
        except SettingsError:
            self.tabs.setCurrentIndex(1)
            raise
        url = self.url_edit.text().strip()
        user = self.user_edit.text().strip()
        operator = self.operator_edit.text().strip()
        try:
            settings = replace(
                self._settings,
                service_root_url=url,
                user=user,
                operator=operator,
                connect_timeout=round(self.connect_timeout_spin.value(), 1),
                read_timeout=round(self.read_timeout_spin.value(), 1),
                request_deadline=round(self.request_deadline_spin.value(), 1),
                verify_tls=self.verify_tls_box.isChecked(),
                allow_insecure_http=self.allow_http_box.isChecked(),
                interval_seconds=max(5, round(self.interval_spin.value() * 60)),
                concurrency=self.concurrency_spin.value(),
                lease_seconds=self.lease_spin.value(),
                batch_size=self.batch_spin.value(),
                mapping=mapping,
                runs_dispatcher=self._runs_dispatcher_choice(),
            )
            settings.check_before_saving()
            return settings
        except SettingsError as exc:
            raise SettingsError(self._labelled(str(exc))) from None

    def _runs_dispatcher_choice(self) -> bool | None:
        # Left as it was, the setting keeps following the database's default (None); changed, it is kept.
        ticked = self.runs_dispatcher_box.isChecked()
        if ticked == runs_dispatcher(self._settings, self._db_url):
            return self._settings.runs_dispatcher
        return ticked

    def _labelled(self, message: str) -> str:
        key, sep, problem = message.partition(": ")
        known = self._field_widgets().get(key)
        if not sep or known is None:
            return message
        label, widget, tab = known
        self.tabs.setCurrentIndex(tab)
        widget.setFocus()
        return f"{label}: {problem}"

    def account_changes(self) -> dict[str, Any]:
        """Account switches that differ from the database (nothing when they could not be read)."""
        if self._account is None:
            return {}
        changes: dict[str, Any] = {}
        if self.enabled_box.isChecked() != self._account.writeback_enabled:
            changes[switches.WRITEBACK_ENABLED] = self.enabled_box.isChecked()
        days = self.auto_days_spin.value() if self.auto_box.isChecked() else None
        if days != self._account.auto_mailing_activity_days:
            changes[switches.AUTO_MAILING_ACTIVITY_DAYS] = days
        prune_days = self.prune_days_spin.value() if self.prune_box.isChecked() else None
        if prune_days != self._account.prune_sent_after_days:
            changes[switches.PRUNE_SENT_AFTER_DAYS] = prune_days
        return changes

    def typed_password(self) -> str | None:
        """The password typed in this dialog, or None to keep the stored one."""
        return self.password_edit.text() or None

    # -- actions --------------------------------------------------------------------------------

    def show_problem(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.save_button.setEnabled(not busy)
        self.test_button.setEnabled(not busy)
        self.test_progress.setVisible(busy)

    @Slot()
    def save(self) -> None:
        """Validate everything, then write the database switches, the password and the file."""
        try:
            settings = self.collect()
        except SettingsError as exc:
            self.show_problem(f"Not saved. {exc}")
            return
        self.show_problem("")
        self._set_busy(True)
        self._saving = True
        change = operations.SettingsChange(
            settings,
            self.typed_password(),
            previous=(self._settings.service_root_url, self._settings.user),
            account_changes=self.account_changes(),
            account_writeback=self.account_writeback_changes(),
        )
        self._runner.submit(
            partial(
                operations.save_all_settings,
                change,
                store=self._store,
                path=self._path,
                actor=current_actor(),
                factory=self._factory,
            ),
            on_done=self._saved,
            on_error=self._save_failed,
        )

    def _saved(self, settings: AppSettings) -> None:
        self._saving = False
        self._set_busy(False)
        self._settings = settings
        self.saved.emit(settings)
        self.accept()

    def _save_failed(self, exc: BaseException) -> None:
        self._saving = False
        self._set_busy(False)
        message, details = errors.describe_exception(exc)
        self.show_problem(f"Not saved. {message}")
        errors.show_error(self, "Settings not saved", message, details)

    @Slot()
    def test_connection(self) -> None:
        """Check the URL, the credentials and the activity codes off the GUI thread."""
        try:
            settings = self.collect()
        except SettingsError as exc:
            self.show_problem(f"Cannot test yet. {exc}")
            return
        self.show_problem("")
        self.tabs.setCurrentIndex(0)
        self.check_list.clear()
        self.check_list.addTopLevelItem(
            QTreeWidgetItem(["Testing…", f"Talking to {settings.service_root_url}"])
        )
        self._set_busy(True)
        self._tasks.append(
            self._runner.submit(
                check_connection,
                settings,
                self.typed_password(),
                self._store,
                on_done=self._checked,
                on_error=self._check_failed,
            )
        )

    def _checked(self, checks: list[Check]) -> None:
        self._set_busy(False)
        self.checks = checks
        self.check_list.clear()
        icons = {
            True: QStyle.StandardPixmap.SP_DialogApplyButton,
            False: QStyle.StandardPixmap.SP_MessageBoxCritical,
            None: QStyle.StandardPixmap.SP_MessageBoxQuestion,
        }
        for check in checks:
            verdict = {True: "OK", False: "Failed", None: "Not checked"}[check.ok]
            item = QTreeWidgetItem([check.name, f"{verdict}: {check.text}"])
            item.setIcon(0, self.style().standardIcon(icons[check.ok]))
            item.setToolTip(1, check.text)
            self.check_list.addTopLevelItem(item)

    def _check_failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        self.check_list.clear()
        errors.report_exception(self, "Test connection", exc)

    @Slot(QTreeWidgetItem, int)
    def _check_details(self, item: QTreeWidgetItem, _column: int) -> None:
        index = self.check_list.indexOfTopLevelItem(item)
        if 0 <= index < len(self.checks) and self.checks[index].details:
            check = self.checks[index]
            errors.show_error(self, f"Test connection: {check.name}", check.text, check.details)

    def reject(self) -> None:
        # A save under way finishes first so that what was written is known; a test may be abandoned.
        if self._saving:
            return
        for task in self._tasks:
            task.cancel()
        super().reject()


def ask_settings(
    settings: AppSettings,
    password_store: PasswordStore,
    factory: sessionmaker[Session],
    runner: TaskRunner,
    parent: QWidget | None = None,
    settings_path: Path | None = None,
    gate: PermissionGate | None = None,
) -> AppSettings | None:
    """Run the Settings dialog modally; the saved settings, or None if it was cancelled."""
    dialog = SettingsDialog(settings, password_store, factory, runner, parent, settings_path, gate)
    outcome: list[AppSettings] = []
    dialog.saved.connect(outcome.append)
    dialog.exec()
    dialog.deleteLater()
    return outcome[0] if outcome else None
