"""The 2-D playground window: four catalogue optimizers race on a `function2d` surface.

A click on the contour sets the start point; the sliders (learning rate for all slots, momentum
μ, β₂, steps), each slot's optimizer and own learning rate re-run the whole race on every change,
and the paths then unroll over about a second. "Tune each" gives every slot its best learning
rate on the shown function, so the race compares optimizers at their best rather than at one
rate that suits only some. The race itself (`app.race`) has no Qt; this module only draws it.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from descentlab.app.plots.colors import CONTRAST, LIGHT, Theme, apply_theme
from descentlab.app.plots.legend import legend_below
from descentlab.app.plots.path_plot import FunctionSurface
from descentlab.app.presentation import FONT_SCALE
from descentlab.app.race import (
    DEFAULT_RACERS,
    LR_RANGE,
    MAX_STEPS,
    Lane,
    Race,
    Racer,
    RaceSettings,
    race_optimizers,
    run_race,
    tune_learning_rates,
)
from descentlab.app.standalone import show_until_closed
from descentlab.app.theme import apply_theme as apply_app_theme
from descentlab.plugins.tasks.function2d import FUNCTIONS

ANIMATION_SECONDS = 1.0
"""How long the paths take to unroll after a race; a slider drag shows them whole at once."""


# ------------------------------------------------------------------------------------------
# The window
# ------------------------------------------------------------------------------------------


class LogSlider(QSlider):
    """A horizontal slider over [low, high] in `positions` steps, on a log scale if `log`.

    `reverse` measures the log scale from the top, for β₂ (1 − β₂ on a log scale), so that
    0.9, 0.99, 0.999 are evenly spaced.
    """

    def __init__(
        self, low: float, high: float, positions: int, log: bool = False, reverse: bool = False
    ) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.low, self.high, self.log, self.reverse = low, high, log, reverse
        self.setRange(0, positions)

    def _to_unit(self, value: float) -> float:
        if self.reverse:  # log of the distance to `high + ...`: β₂ → 1 − β₂
            a, b, v = 1 - self.low, 1 - self.high, 1 - value
            return math.log(a / max(v, 1e-300)) / math.log(a / b)
        if self.log:
            return math.log(value / self.low) / math.log(self.high / self.low)
        return (value - self.low) / (self.high - self.low)

    def _from_unit(self, unit: float) -> float:
        if self.reverse:
            a, b = 1 - self.low, 1 - self.high
            return 1 - a * (b / a) ** unit
        if self.log:
            return self.low * (self.high / self.low) ** unit
        return self.low + unit * (self.high - self.low)

    def real_value(self) -> float:
        return self._from_unit(self.value() / self.maximum())

    def set_real_value(self, value: float) -> None:
        unit = min(max(self._to_unit(value), 0.0), 1.0)
        self.setValue(round(unit * self.maximum()))


class Playground(QWidget):
    """Function chooser, four optimizer slots, sliders, and the race drawn on the contour.

    A slot is an optimizer, a momentum switch and its own learning rate; the learning-rate
    slider sets every slot's rate at once, `tune()` sets each to its best. Every change calls
    `rerun()`: the race runs (timed: `race.seconds`), the paths are set and
    unroll over `ANIMATION_SECONDS` (at once while a slider is dragged, or after `skip()`).
    """

    def __init__(self, theme: Theme = LIGHT, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Descent Lab — 2-D playground")
        self.theme = theme
        self.settings = RaceSettings()
        self.racers: list[Racer] = list(DEFAULT_RACERS)
        self.race: Race | None = None
        self._shown = 0
        """How many points of each path are drawn now (the animation's progress)."""
        self._animation_began = 0.0

        self.plot_widget = pg.PlotWidget()
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.setAspectLocked(True)
        self.plot.setLabel("bottom", "x")
        self.plot.setLabel("left", "y")
        self.plot.setMenuEnabled(False)
        self.legend = legend_below(self.plot, max_columns=2)  # under the plane, hiding no path
        self.surface = FunctionSurface(self.plot, theme)
        self.lines = [pg.PlotDataItem() for _ in self.racers]
        self.heads = [pg.PlotDataItem(symbol="o", symbolSize=11) for _ in self.racers]
        for line, head in zip(self.lines, self.heads, strict=True):
            self.plot.addItem(line)
            head.setZValue(10)
            self.plot.addItem(head)
        self.start_marker = pg.ScatterPlotItem(symbol="x", size=16)
        self.start_marker.setZValue(11)
        self.plot.addItem(self.start_marker)
        self.plot.scene().sigMouseClicked.connect(self._clicked)

        self.function_box = QComboBox()
        for name, function in FUNCTIONS.items():
            self.function_box.addItem(f"{name}   {function.formula}", name)
        self.function_box.currentIndexChanged.connect(
            lambda _: self.set_function(self.function_box.currentData())
        )
        self.slot_boxes: list[QComboBox] = []
        self.momentum_boxes: list[QCheckBox] = []
        self.lr_edits: list[QLineEdit] = []
        slots = QGroupBox("Optimizers")
        slot_form = QFormLayout(slots)
        for index, racer in enumerate(self.racers):
            box = QComboBox()
            box.addItems(race_optimizers())
            box.setCurrentText(racer.optimizer)
            box.currentTextChanged.connect(lambda _, i=index: self._slot_changed(i))
            momentum = QCheckBox("momentum")
            momentum.setChecked(racer.momentum)
            momentum.setToolTip("use the momentum slider's μ (β₁ for Adam-like); unticked: 0")
            momentum.toggled.connect(lambda _, i=index: self._slot_changed(i))
            lr = QLineEdit()
            lr.setMaximumWidth(70)
            lr.setToolTip(
                f"this slot's learning rate ({LR_RANGE[0]:g} to {LR_RANGE[1]:g}); "
                "the learning-rate slider sets every slot's"
            )
            lr.editingFinished.connect(lambda i=index: self._lr_edited(i))
            row = QHBoxLayout()
            row.addWidget(box, 1)
            row.addWidget(momentum)
            row.addWidget(QLabel("lr"))
            row.addWidget(lr)
            slot_form.addRow(self.swatch(index), row)
            self.slot_boxes.append(box)
            self.momentum_boxes.append(momentum)
            self.lr_edits.append(lr)
        self.tune_button = QPushButton("Tune each")
        self.tune_button.setToolTip(
            "give every slot the learning rate that ends lowest on this function and start "
            "(20 rates, log-spaced, tried in a second or two)"
        )
        self.tune_button.clicked.connect(self.tune)
        slot_form.addRow(self.tune_button)

        self.lr_slider = LogSlider(*LR_RANGE, 500, log=True)
        self.momentum_slider = LogSlider(0.0, 0.99, 99)
        self.beta2_slider = LogSlider(0.5, 0.9999, 330, reverse=True)
        self.steps_slider = LogSlider(10, MAX_STEPS, 49)
        self.value_labels: dict[str, QLabel] = {}
        sliders = QGroupBox("Hyperparameters (all slots)")
        slider_form = QFormLayout(sliders)
        for name, slider in (
            ("learning rate (all)", self.lr_slider),
            ("momentum μ", self.momentum_slider),
            ("β₂", self.beta2_slider),
            ("steps", self.steps_slider),
        ):
            label = QLabel()
            label.setMinimumWidth(60)
            self.value_labels[name] = label
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            row.addWidget(label)
            slider_form.addRow(name, row)
            slider.valueChanged.connect(self._sliders_changed)
            slider.sliderReleased.connect(self._animate)

        self.classic_button = QPushButton("Classic start")
        self.classic_button.setToolTip("the function's usual starting point")
        self.classic_button.clicked.connect(lambda: self.set_start(None))
        self.skip_button = QPushButton("Show whole paths")
        self.skip_button.setToolTip("skip the animation")
        self.skip_button.clicked.connect(self.skip)
        self.timing_label = QLabel()
        self.timing_label.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b;")
        hint = QLabel("Click on the contour to start the race from there.")
        hint.setWordWrap(True)

        controls = QVBoxLayout()
        form = QFormLayout()
        form.addRow("function", self.function_box)
        controls.addLayout(form)
        controls.addWidget(slots)
        controls.addWidget(sliders)
        buttons = QHBoxLayout()
        buttons.addWidget(self.classic_button)
        buttons.addWidget(self.skip_button)
        controls.addLayout(buttons)
        controls.addWidget(hint)
        controls.addWidget(self.timing_label)
        controls.addWidget(self.error_label)
        controls.addStretch(1)
        panel = QWidget()
        panel.setLayout(controls)
        panel.setMaximumWidth(420)
        layout = QHBoxLayout(self)
        layout.addWidget(panel)
        layout.addWidget(self.plot_widget, 1)

        self.animation = QTimer(self)
        self.animation.setInterval(16)
        self.animation.timeout.connect(self._tick)

        self._show_settings()
        self.set_theme(theme)
        self.set_function(self.settings.function)
        self.resize(1250, 760)

    def swatch(self, index: int) -> QLabel:
        """A square in slot `index`'s colour, labelling its row."""
        label = QLabel("■")
        label.setStyleSheet(f"color: {self.theme.palette[index]}; font-size: 20px;")
        return label

    # -- changes --------------------------------------------------------------------------

    def set_function(self, name: str) -> None:
        """Race on another function from its classic start, its usual view shown."""
        if name not in FUNCTIONS:
            raise ValueError(f"function: {name!r} is not one of {', '.join(FUNCTIONS)}")
        self.settings = replace(self.settings, function=name, start=None)
        index = self.function_box.findData(name)
        if self.function_box.currentIndex() != index:
            self.function_box.setCurrentIndex(index)  # emits, and lands here again
            return
        x0, x1, y0, y1 = FUNCTIONS[name].view
        self.plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)
        self.surface.forget()
        self.rerun()

    def set_start(self, point: tuple[float, float] | None) -> None:
        """Start every racer at `point` (what a click on the contour does); None: classic."""
        start = None if point is None else (float(point[0]), float(point[1]))
        self.settings = replace(self.settings, start=start)
        self.rerun()

    def set_racer(self, index: int, racer: Racer) -> None:
        """Put `racer` into slot `index` (0–3) and re-run."""
        self.racers[index] = racer
        self._syncing = True
        self.slot_boxes[index].setCurrentText(racer.optimizer)
        self.momentum_boxes[index].setChecked(racer.momentum)
        self._syncing = False
        self.rerun()

    def tune(self) -> Race:
        """Give each slot its best learning rate on the shown function and start, and re-run.

        The search is `race.tune_learning_rates`; it takes a second or two, under a busy cursor.
        """
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            began = time.perf_counter()
            self.racers = list(tune_learning_rates(self.settings, tuple(self.racers)))
            seconds = time.perf_counter() - began
        finally:
            QApplication.restoreOverrideCursor()
        race = self.rerun()
        self.timing_label.setText(f"{self.timing_label.text()}; tuned in {seconds:.1f} s")
        return race

    def set_settings(self, **changes: Any) -> None:
        """Change `RaceSettings` fields (lr, momentum, beta2, steps) and re-run; `lr` is then
        every slot's learning rate, as the slider sets it."""
        if "lr" in changes:
            self.racers = [replace(racer, lr=None) for racer in self.racers]
        self.settings = replace(self.settings, **changes)
        self._show_settings()
        self.rerun()

    def _show_settings(self) -> None:
        """Move the sliders to `settings` without taking that as the user's edit."""
        self._syncing = True
        self.lr_slider.set_real_value(self.settings.lr)
        self._show_lrs()
        self.momentum_slider.set_real_value(self.settings.momentum)
        self.beta2_slider.set_real_value(self.settings.beta2)
        self.steps_slider.set_real_value(self.settings.steps)
        self._syncing = False

    def _show_lrs(self) -> None:
        """Each slot's learning-rate field shows the rate it races at."""
        for racer, edit in zip(self.racers, self.lr_edits, strict=True):
            edit.setText(f"{self.settings.lr if racer.lr is None else racer.lr:.3g}")

    def _slot_changed(self, index: int) -> None:
        if self._syncing:
            return
        old = self.racers[index]
        optimizer = self.slot_boxes[index].currentText()
        # a rate chosen for one optimizer means nothing for another: back to the shared one
        lr = old.lr if optimizer == old.optimizer else None
        self.racers[index] = Racer(optimizer, self.momentum_boxes[index].isChecked(), lr)
        self.rerun()

    def _lr_edited(self, index: int) -> None:
        """A slot's learning rate typed in: race at it, or say what is wrong and keep the old."""
        text = self.lr_edits[index].text().strip()
        low, high = LR_RANGE
        try:
            lr = float(text)
        except ValueError:
            lr = math.nan
        if not low <= lr <= high:
            self.error_label.setText(
                f"{self.racers[index].label} learning rate: {text!r} is not a number from "
                f"{low:g} to {high:g}"
            )
            self._show_lrs()
            return
        self.error_label.clear()
        if lr != self.racers[index].lr:
            self.racers[index] = replace(self.racers[index], lr=lr)
            self.rerun()

    def _sliders_changed(self) -> None:
        if self._syncing:
            return
        lr = float(f"{self.lr_slider.real_value():.3g}")
        if lr != self.settings.lr:  # the slider sets every slot's rate
            self.racers = [replace(racer, lr=None) for racer in self.racers]
        self.settings = replace(
            self.settings,
            lr=lr,
            momentum=round(self.momentum_slider.real_value(), 2),
            beta2=float(f"{self.beta2_slider.real_value():.4g}"),
            steps=int(round(self.steps_slider.real_value() / 10) * 10),
        )
        dragging = any(
            s.isSliderDown()
            for s in (self.lr_slider, self.momentum_slider, self.beta2_slider, self.steps_slider)
        )
        self.rerun(animate=not dragging)

    def _clicked(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        view_box = self.plot.getViewBox()
        position = event.scenePos()
        if not view_box.sceneBoundingRect().contains(position):
            return
        point: QPointF = view_box.mapSceneToView(position)
        self.set_start((point.x(), point.y()))

    # -- race and drawing -----------------------------------------------------------------

    def rerun(self, animate: bool = True) -> Race:
        """Run the race with the current settings and draw it (unrolling if `animate`)."""
        self.race = run_race(self.settings, tuple(self.racers))
        self._update_labels()
        self._show_lrs()
        # the function's view and the start: paths leaving it would grow the landscape and
        # redraw its contours (tens of ms) on many a click; the plot shows that view anyway
        objective = {k: v for k, v in self.settings.task_params().items() if k != "start"}
        start = np.array([self.settings.start_point])
        self.surface.cover(self.settings.function, objective, start)
        self.start_marker.setData(pos=[self.settings.start_point])
        self.legend.clear()
        for index, (lane, line) in enumerate(zip(self.race.lanes, self.lines, strict=True)):
            self.legend.addItem(line, self._legend_text(lane))
            self._style(index)
        if animate:
            self._animate()
        else:
            self.skip()
        return self.race

    def _legend_text(self, lane: Lane) -> str:
        if lane.error and len(lane.losses) <= 1:
            return f"{lane.racer.label}: {lane.error}"
        lr = self.settings.lr if lane.racer.lr is None else lane.racer.lr
        text = f"{lane.racer.label}: final loss {lane.final_loss:.3g} at lr {lr:.3g}"
        return f"{text} ({lane.error})" if lane.error else text

    def _update_labels(self) -> None:
        s = self.settings
        self.value_labels["learning rate (all)"].setText(f"{s.lr:.3g}")
        self.value_labels["momentum μ"].setText(f"{s.momentum:.2f}")
        self.value_labels["β₂"].setText(f"{s.beta2:.4g}")
        self.value_labels["steps"].setText(str(s.steps))
        assert self.race is not None
        self.timing_label.setText(
            f"race: {len(self.racers)} optimizers × {s.steps} steps in "
            f"{self.race.seconds * 1e3:.0f} ms"
        )

    def _animate(self) -> None:
        if self.race is None:
            return
        self._animation_began = time.perf_counter()
        self._shown = 1
        self._draw_paths()
        self.animation.start()

    def skip(self) -> None:
        """Show the whole paths now (the end of the animation)."""
        self.animation.stop()
        self._shown = self.settings.steps + 1
        self._draw_paths()

    def animating(self) -> bool:
        return self.animation.isActive()

    def _tick(self) -> None:
        fraction = (time.perf_counter() - self._animation_began) / ANIMATION_SECONDS
        if fraction >= 1.0:
            self.skip()
            return
        self._shown = max(1, math.ceil(fraction * (self.settings.steps + 1)))
        self._draw_paths()

    def _draw_paths(self) -> None:
        assert self.race is not None
        for lane, line, head in zip(self.race.lanes, self.lines, self.heads, strict=True):
            shown = lane.path[: self._shown]
            line.setData(shown[:, 0], shown[:, 1])
            head.setData(shown[-1:, 0], shown[-1:, 1])

    # -- style ----------------------------------------------------------------------------

    def set_theme(self, theme: Theme) -> None:
        """Plot colours and line widths of `theme` (the presentation theme: thick lines)."""
        self.theme = theme
        self.plot_widget.setBackground(theme.background)
        apply_theme(self.plot, theme)
        self.surface.set_theme(theme)
        self.start_marker.setPen(pg.mkPen(theme.foreground, width=2.5 * theme.line_scale))
        self.start_marker.setBrush(pg.mkBrush(theme.foreground))
        for index in range(len(self.lines)):
            self._style(index)

    def _style(self, index: int) -> None:
        color = self.theme.palette[index]
        self.lines[index].setPen(pg.mkPen(color, width=2 * self.theme.line_scale))
        self.heads[index].setSymbolBrush(color)
        self.heads[index].setSymbolPen(pg.mkPen(self.theme.background, width=1.5))
        self.heads[index].setSymbolSize(11 * self.theme.line_scale)


def run_playground(
    function: str, screenshot: str | None = None, after: float = 2.0, presentation: bool = False
) -> int:
    """Open the playground on `function` until it is closed (`descentlab playground`).

    `presentation`: large fonts and the high-contrast theme, as the lab's presentation mode.

    With `screenshot`, the window is saved to that file after `after` seconds (the animation
    has finished by then if `after` ≥ `ANIMATION_SECONDS`) and the app exits.
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Descent Lab")
    if presentation:
        apply_app_theme(app, dark=False, contrast=True)
        font = app.font()
        font.setPointSizeF(font.pointSizeF() * FONT_SCALE)
        app.setFont(font)
    window = Playground(CONTRAST if presentation else LIGHT)
    window.set_function(function)
    return show_until_closed(app, window, screenshot, after)
