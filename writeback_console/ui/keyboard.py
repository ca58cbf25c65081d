"""Driving the console from the keyboard: shortcuts named in every tooltip, a short Tab order through the
filters, arrow keys within a row of toggles, and a list that is ready for the arrow keys when it gets the
focus."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence

from PySide6.QtCore import QEvent, QItemSelectionModel, QKeyCombination, QObject, Qt, Slot
from PySide6.QtGui import QAction, QFocusEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QAbstractButton, QAbstractItemView, QLayout, QWidget

NATIVE = QKeySequence.SequenceFormat.NativeText
#: A tooltip's last words in parentheses, where a shortcut goes: "Retry the selected writebacks (Ctrl+R)".
_TRAILING = re.compile(r"\s*\(([^()]+)\)\s*$")


def shortcut_text(action: QAction) -> str:
    """The action's shortcut as this platform writes it ("Ctrl+Shift+R", "⇧⌘R" on a Mac); "" if none."""
    return action.shortcut().toString(NATIVE)


def names_a_key(text: str) -> bool:
    """Whether ``text`` reads as a shortcut ("F9", "Ctrl+Shift+R"), rather than words ("CRM360") or a
    count ("7"): a key with a modifier, or a key that types nothing."""
    for format_ in (NATIVE, QKeySequence.SequenceFormat.PortableText):
        keys = QKeySequence.fromString(text, format_)
        if keys.isEmpty() or keys.toString(format_) != text:
            continue
        combos = [keys[n] for n in range(keys.count())]  # type: ignore[index]
        if all(c.key() != Qt.Key.Key_unknown for c in combos) and not _types_a_character(combos[0]):
            return True
    return False


def _types_a_character(combo: QKeyCombination) -> bool:
    plain = combo.keyboardModifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier)
    return plain and Qt.Key.Key_Space.value <= combo.key().value <= Qt.Key.Key_AsciiTilde.value


def tip_key(tip: str) -> str | None:
    """The key sequence a tooltip ends with in parentheses, if it ends with one."""
    match = _TRAILING.search(tip)
    return match.group(1) if match and names_a_key(match.group(1)) else None


def tip_without_key(tip: str) -> str:
    return _TRAILING.sub("", tip) if tip_key(tip) is not None else tip


def tip_with_key(tip: str, action: QAction) -> str:
    """``tip`` with the action's real shortcut at the end, in place of whatever key it named before."""
    base = tip_without_key(tip)
    key = shortcut_text(action)
    return f"{base} ({key})" if key else base


class ShortcutTips(QObject):
    """Keeps every action's tooltip ending with its real shortcut, also when the shortcut changes later;
    buttons that stand for an action (the status bar's Run now) show the action's tooltip."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.setObjectName("shortcut_tips")
        self._watched: set[int] = set()
        self._buttons: dict[int, QAbstractButton] = {}

    def watch(self, action: QAction) -> None:
        if id(action) not in self._watched:
            self._watched.add(id(action))
            action.changed.connect(self._action_changed)
        self._update(action)

    def follow(self, button: QAbstractButton, action: QAction) -> None:
        self._buttons[id(action)] = button
        self.watch(action)

    @Slot()
    def _action_changed(self) -> None:
        action = self.sender()
        if isinstance(action, QAction):
            self._update(action)

    def _update(self, action: QAction) -> None:
        # Qt makes a tooltip from the text when none was set: that one gets the key too.
        tip = tip_with_key(action.toolTip() or action.text().replace("&", ""), action)
        if action.toolTip() != tip:
            action.setToolTip(tip)  # emits changed again, which finds nothing left to do
        button = self._buttons.get(id(action))
        if button is not None and button.toolTip() != tip:
            button.setToolTip(tip)


def _tips_of(root: QWidget) -> ShortcutTips:
    tips = root.findChild(ShortcutTips, "shortcut_tips", Qt.FindChildOption.FindDirectChildrenOnly)
    return tips if tips is not None else ShortcutTips(root)


def show_shortcuts_in_tips(root: QWidget) -> None:
    """Make the tooltip of every action under ``root`` end with its real shortcut, in this platform's
    words, and keep it so. Safe to call again after more pages or actions were added."""
    tips = _tips_of(root)
    for action in root.findChildren(QAction):
        if not action.shortcut().isEmpty():
            tips.watch(action)


def follow_action_tip(button: QAbstractButton, action: QAction, root: QWidget) -> None:
    """``button`` does what ``action`` does: give it the action's tooltip, shortcut included."""
    _tips_of(root).follow(button, action)


# --- Tab order ------------------------------------------------------------------------------------


def layout_widgets(layout: QLayout) -> Iterator[QWidget]:
    """The widgets of ``layout`` and its nested layouts, in the order they are laid out."""
    for n in range(layout.count()):
        item = layout.itemAt(n)
        if item is None:
            continue
        widget, inner = item.widget(), item.layout()
        if widget is not None:
            yield widget
        elif inner is not None:
            yield from layout_widgets(inner)


def tab_in_layout_order(container: QWidget) -> list[QWidget]:
    """Tab goes through ``container``'s focusable widgets in reading order (its layout's), whatever order
    they were made in; returns that order."""
    layout = container.layout()
    if layout is None:
        return []
    chain = [w for w in layout_widgets(layout) if w.focusPolicy() & Qt.FocusPolicy.TabFocus]
    for first, second in itertools.pairwise(chain):
        QWidget.setTabOrder(first, second)
    return chain


class RovingFocus(QObject):
    """A row of toggles that Tab passes through in one step: the arrow keys move between them and Space
    toggles, as in a toolbar. Only the one that last had the focus is in the Tab chain; a click focuses
    a toggle as it did before."""

    def __init__(self, members: Sequence[QWidget], parent: QObject | None = None) -> None:
        super().__init__(parent or (members[0] if members else None))
        self.members = list(members)
        self._policies = {id(m): m.focusPolicy() for m in self.members}
        self._off_chain = {
            id(m): Qt.FocusPolicy(m.focusPolicy().value & ~Qt.FocusPolicy.TabFocus.value)
            for m in self.members
        }
        for member in self.members:
            member.installEventFilter(self)
        if self.members:
            self._make_stop(self.members[0])

    def _make_stop(self, stop: QWidget) -> None:
        for member in self.members:
            policy = self._policies[id(member)] if member is stop else self._off_chain[id(member)]
            member.setFocusPolicy(policy)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not isinstance(watched, QWidget) or watched not in self.members:
            return False
        if event.type() == QEvent.Type.FocusIn:
            self._make_stop(watched)
        elif event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            step = {Qt.Key.Key_Left: -1, Qt.Key.Key_Up: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_Down: 1}.get(
                Qt.Key(event.key())
            )
            if step is not None and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
                self._move(watched, step)
                return True
        return False

    def _move(self, member: QWidget, step: int) -> None:
        n = self.members.index(member) + step
        while 0 <= n < len(self.members):
            target = self.members[n]
            if target.isEnabled() and target.isVisibleTo(target.window()):
                target.setFocus(Qt.FocusReason.TabFocusReason)
                return
            n += step


def roving_focus(members: Iterable[QWidget]) -> RovingFocus:
    return RovingFocus(list(members))


# --- the list -------------------------------------------------------------------------------------

#: The ways of arriving in the list from the keyboard (a click picks its own row).
_KEYBOARD_REASONS = (
    Qt.FocusReason.TabFocusReason,
    Qt.FocusReason.BacktabFocusReason,
    Qt.FocusReason.ShortcutFocusReason,
    Qt.FocusReason.OtherFocusReason,
)


class ListKeys(QObject):
    """The list is ready for the keyboard: Tab goes to it from the last filter, arriving in it with
    nothing selected selects the first row (so the arrow keys and Enter work at once), and Down in the
    search box goes to the list."""

    def __init__(self, search: QWidget, last_filter: QWidget, table: QAbstractItemView) -> None:
        super().__init__(table)
        self._search = search
        self._table = table
        QWidget.setTabOrder(last_filter, table)
        # Tab leaves the list (its rows are chosen whole) instead of walking its cells.
        table.setTabKeyNavigation(False)
        search.installEventFilter(self)
        table.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._table and event.type() == QEvent.Type.FocusIn and isinstance(event, QFocusEvent):
            if event.reason() in _KEYBOARD_REASONS:
                self.select_first_row()
        elif (
            watched is self._search
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Down
            and self._table.model() is not None
            and self._table.model().rowCount() > 0
        ):
            self._table.setFocus(Qt.FocusReason.OtherFocusReason)
            return True
        return False

    def select_first_row(self) -> None:
        model, selection = self._table.model(), self._table.selectionModel()
        if model is None or selection is None or selection.hasSelection() or model.rowCount() == 0:
            return
        first = model.index(0, 0)
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        selection.setCurrentIndex(first, flags)
        self._table.scrollTo(first)


def list_keys(search: QWidget, last_filter: QWidget, table: QAbstractItemView) -> ListKeys:
    return ListKeys(search, last_filter, table)
