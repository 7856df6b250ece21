"""Full plot titles as the tooltips of the short tab titles of tabbed plot docks.

Qt gives each tab of tabbed docks its dock's window title as tooltip, the short title here, and
resets it whenever the user drags docks into new tab bars. `DockTabTooltips` answers the tooltip
events of the plot area's tab bars instead, with the tooltip of the dock the tab stands for (the
window sets that to the plot's full title). It watches the tab bars only, not every event of the
application, and looks for new ones whenever docks are added or a tab is activated.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabBar, QToolTip


class DockTabTooltips(QObject):
    """Shows a dock's own tooltip over its tab in `area`'s tab bars."""

    def __init__(self, area: QMainWindow) -> None:
        super().__init__(area)
        self.area = area
        area.tabifiedDockWidgetActivated.connect(self.install)

    def install(self) -> None:
        """Watch every tab bar of the area (Qt makes them as docks get tabbed together)."""
        for bar in self.area.findChildren(QTabBar):
            if bar.parent() is self.area:
                bar.installEventFilter(self)  # again on the same bar: still one filter

    def tooltip(self, bar: QTabBar, index: int) -> str:
        """The tooltip of the dock behind tab `index` of `bar` ("" when it has none)."""
        title = bar.tabText(index)
        for dock in self.area.findChildren(QDockWidget):
            if dock.windowTitle() == title and dock.toolTip():
                return dock.toolTip()
        return ""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.ToolTip
            and isinstance(watched, QTabBar)
            and watched.parent() is self.area
        ):
            assert isinstance(event, QHelpEvent)
            index = watched.tabAt(event.pos())
            text = self.tooltip(watched, index) if index >= 0 else ""
            if text:
                QToolTip.showText(event.globalPos(), text, watched)
                return True
        return False
