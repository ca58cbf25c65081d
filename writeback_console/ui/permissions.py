"""Actions the connected role may not do, disabled where they are offered, with a tooltip saying why.

The database refuses them anyway (``sql/postgresql/roles.sql``); this only spares a person the
refusal. ``PermissionGate.guard`` keeps an action or a button disabled whatever the code that shows it
enables later (a selection change enables Retry for Error rows), and its tooltip names the role needed:
"Retry selected — needs the advisor role".
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QWidget

from writeback_console.store.permissions import EVERYTHING, Action, Capabilities
from writeback_console.ui import keyboard

#: The property that tells a test (and the gate itself) which action a guarded object stands for.
GUARD_PROPERTY = "guardedAction"
_SEPARATOR = " — "


def forbidden_tip(tip: str, why: str) -> str:
    """``tip`` with the reason the action is not allowed, once."""
    base = tip.split(_SEPARATOR + "needs the ")[0]
    return f"{base}{_SEPARATOR}{why}" if base else why[:1].upper() + why[1:]


class PermissionGate(QObject):
    """Disables, for good, what ``capabilities`` do not allow; a no-op where everything is allowed."""

    def __init__(self, capabilities: Capabilities = EVERYTHING, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.capabilities = capabilities
        self._actions: dict[int, tuple[QAction, str]] = {}

    def may(self, what: Action) -> bool:
        return self.capabilities.may(what)

    def why_not(self, what: Action) -> str | None:
        return self.capabilities.why_not(what)

    def guard(self, target: QAction | QWidget, what: Action) -> bool:
        """Keep ``target`` disabled if the role may not do ``what``; True when it may."""
        why = self.capabilities.why_not(what)
        target.setProperty(GUARD_PROPERTY, what.value)
        if why is None:
            return True
        if isinstance(target, QAction):
            self._actions[id(target)] = (target, why)
            target.changed.connect(self._action_changed)
            self._hold_action(target, why)
            for menu in target.associatedObjects():
                if isinstance(menu, QMenu):
                    menu.setToolTipsVisible(True)
        else:
            target.setEnabled(False)
            target.setToolTip(forbidden_tip(target.toolTip() or _widget_text(target), why))
            target.setProperty("forbiddenReason", why)
            target.installEventFilter(self)
        return False

    def guard_menu(self, menu: QMenu) -> None:
        """Show the tooltips of the menu's actions, so a disabled entry says why."""
        menu.setToolTipsVisible(True)

    def _hold_action(self, action: QAction, why: str) -> None:
        if action.isEnabled():
            action.setEnabled(False)  # emits changed again, which finds it disabled
        # The shortcut goes after the reason: the window's tooltips end with it (ui/keyboard.py).
        base = keyboard.tip_without_key(action.toolTip() or action.text().replace("&", "").rstrip("…"))
        tip = keyboard.tip_with_key(forbidden_tip(base, why), action)
        if action.toolTip() != tip and _SEPARATOR + why not in action.toolTip():
            action.setToolTip(tip)
        action.setStatusTip(tip)

    @Slot()
    def _action_changed(self) -> None:
        action = self.sender()
        held = self._actions.get(id(action)) if isinstance(action, QAction) else None
        if held is not None:
            self._hold_action(*held)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        why = watched.property("forbiddenReason") if isinstance(watched, QWidget) else None
        if why and isinstance(watched, QWidget):
            if event.type() == QEvent.Type.EnabledChange and watched.isEnabled():
                watched.setEnabled(False)
            elif event.type() == QEvent.Type.ToolTipChange and _SEPARATOR + why not in watched.toolTip():
                watched.setToolTip(forbidden_tip(watched.toolTip() or _widget_text(watched), why))
        return False


def _widget_text(widget: QWidget) -> str:
    text = getattr(widget, "text", None)
    return str(text()).replace("&", "").rstrip("…") if callable(text) else ""
