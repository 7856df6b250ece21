"""The window's experiment panel offers the image tasks and the byte-level GPT like any other."""

from __future__ import annotations

from typing import Any

from descentlab.app.panels.experiment import ExperimentPanel, default_spec
from descentlab.engine import registry
from descentlab.engine.spec import parse_spec


def test_panel_lists_cifar_resnet_and_builds_a_valid_spec_from_its_form(qtbot: Any) -> None:
    panel = ExperimentPanel(default_spec())
    qtbot.addWidget(panel)
    for task_id in ("mnist-mlp", "fashion-mnist-cnn", "cifar100-resnet18", "text-gpt"):
        assert panel.task_combo.findData(task_id) >= 0
    resnet = registry.plugins("tasks")["cifar10-resnet18"]
    with qtbot.waitSignal(panel.changed, timeout=1000):
        panel.task_combo.setCurrentIndex(panel.task_combo.findData("cifar10-resnet18"))
    assert [p.name for p in panel.task_form.params] == [p.name for p in resnet.params]
    panel.task_form.editor("root").setText("/data/cifar")
    task = panel.spec_dict()["task"]
    assert task["id"] == "cifar10-resnet18"
    assert task["root"] == "/data/cifar" and task["augment"] is True and task["width"] == 64
    assert parse_spec(panel.spec_dict()).task.params["root"] == "/data/cifar"
