"""The error dialog: the words for an error (``writeback_console.messages``), details one click away."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

# Re-exported: the dialogs take them from here.
from writeback_console.messages import describe_exception as describe_exception
from writeback_console.messages import exception_details as exception_details
from writeback_console.messages import scrub as scrub


class ErrorDialog(QDialog):
    """A message in words, with a details box that opens on demand and a Copy details button."""

    def __init__(self, parent: QWidget | None, title: str, message: str, details: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(460)
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(40, 40))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.message_label = QLabel(message)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(icon)
        top.addWidget(self.message_label, 1)

        self.details_box = QPlainTextEdit(details)
        self.details_box.setReadOnly(True)
        self.details_box.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details_box.setMinimumHeight(180)
        self.details_box.setVisible(False)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.details_button = QPushButton("Show details")
        self.details_button.setCheckable(True)
        self.copy_button = QPushButton("Copy details")
        for button in (self.details_button, self.copy_button):
            button.setEnabled(bool(details))
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        self.details_button.toggled.connect(self._toggle_details)
        self.copy_button.clicked.connect(self.copy_details)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.details_box, 1)
        layout.addWidget(buttons)
        self._details = details

    @Slot(bool)
    def _toggle_details(self, shown: bool) -> None:
        self.details_box.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Show details")
        self.adjustSize()

    @Slot()
    def copy_details(self) -> None:
        """The message and the details together, so a pasted report stands on its own."""
        QGuiApplication.clipboard().setText(f"{self.message_label.text()}\n\n{self._details}")


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> None:
    """Show an error modally (tests replace this function)."""
    ErrorDialog(parent, title, message, details).exec()


def report_exception(parent: QWidget | None, title: str, exc: BaseException) -> None:
    """``show_error`` with the words and details :func:`describe_exception` finds for ``exc``."""
    message, details = describe_exception(exc)
    show_error(parent, title, message, details)
