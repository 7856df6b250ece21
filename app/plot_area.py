"""The lab window's plot area: one dock per plot group, filled as the diagnostics report.

A `QMainWindow` of its own inside the lab window, so that plots dock, split and tab among
themselves apart from the window's side panels. It knows the views it made; the window's timer
asks it to redraw them and the timeline to show them at one step.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QWidget

from descentlab.app.plots.colors import RunColors
from descentlab.app.plots.factory import make_view
from descentlab.app.plots.layout import plot_groups
from descentlab.app.plots.tab_tooltips import DockTabTooltips
from descentlab.app.session_model import SessionModel


class PlotArea(QMainWindow):
    """Plot docks by group key (`views`, `docks`), a placeholder while there are none.

    Args:
        model: the session whose series are drawn.
        colors: the runs' colours, shared with the run table.
    """

    def __init__(self, model: SessionModel, colors: RunColors) -> None:
        super().__init__()
        self.model = model
        self.colors = colors
        self.views: dict[str, QWidget] = {}
        self.docks: dict[str, QDockWidget] = {}
        self.step_limit: int | None = None
        self.tab_tooltips = DockTabTooltips(self)  # full plot titles over short tabs
        self.setDockOptions(
            QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
            | QMainWindow.DockOption.AnimatedDocks
        )
        self.placeholder = QLabel(
            "Press Space (or Start) to run the experiment;\n"
            "plots appear here as the diagnostics report."
        )
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setCentralWidget(self.placeholder)

    def sync(self, layout: QByteArray | None = None) -> None:
        """A dock for every plot group of the session's outputs that has none yet; `layout`
        (a saved arrangement) is restored once there are plots."""
        outputs = {o.name: o for run in self.model.runs.values() for o in run.outputs.values()}
        for group in plot_groups(list(outputs.values())):
            if group.key in self.docks:
                continue
            view = make_view(group, self.model, self.colors)
            if self.step_limit is not None:
                view.set_step_limit(self.step_limit)
            dock = QDockWidget(group.tab_title, self)
            dock.setToolTip(group.title)  # the plot's own title says it in full too
            dock.setObjectName(f"plot:{group.key}")
            dock.setWidget(view)
            self._place(dock)
            self.views[group.key] = view
            self.docks[group.key] = dock
        self.tab_tooltips.install()
        if self.docks:
            self.placeholder.hide()
            if layout is not None:
                self.restoreState(layout)

    def _place(self, dock: QDockWidget) -> None:
        """A 2×2 grid of plots (the first four, in order of importance); later ones become tabs
        of the four slots in turn, so the window stays readable however many diagnostics run."""
        slots = list(self.docks.values())
        n = len(slots)
        self.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, dock)
        if n == 1:
            self.splitDockWidget(slots[0], dock, Qt.Orientation.Horizontal)
        elif n in (2, 3):
            self.splitDockWidget(slots[n - 2], dock, Qt.Orientation.Vertical)
        elif n >= 4:
            self.tabifyDockWidget(slots[(n - 4) % 4], dock)
            slots[(n - 4) % 4].raise_()

    def clear(self) -> None:
        """Remove every plot (a new experiment, or another session opened)."""
        for dock in self.docks.values():
            self.removeDockWidget(dock)
            dock.deleteLater()
        self.docks.clear()
        self.views.clear()
        self.placeholder.show()

    def redraw(self) -> None:
        """Refresh the visible views (the window's frame timer)."""
        for view in self.views.values():
            if view.isVisible():
                view.refresh()

    def set_step_limit(self, step: int | None) -> None:
        """Every view shows the state at `step`; None: all the data. Views made later too."""
        self.step_limit = step
        for view in self.views.values():
            view.set_step_limit(step)
