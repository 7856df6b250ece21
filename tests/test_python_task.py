"""A task from the user's own Python file (`[task] id = "python"`): the example, the contract,
every refusal before training, and that opening or replaying a session never runs the file."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import pytest
import torch
from torch import nn

from descentlab.app.cli import main
from descentlab.engine.runner import Runner
from descentlab.engine.session.reader import SessionReader
from descentlab.engine.session.writer import SessionWriter
from descentlab.engine.spec import SpecError, load_spec, parse_toml
from descentlab.plugins.tasks.common import infer_roles
from descentlab.plugins.tasks.python_file import build

EXAMPLES = Path(str(files("descentlab.assets").joinpath("examples")))

SPEC = """
name = "mine"
steps = {steps}
device = "cpu"
seed = 3
[task]
id = "python"
file = "{file}"
[task.args]
scale = 2.0
[[runs]]
name = "sgd"
optimizer = {{ id = "sgd", lr = 0.05 }}
"""

TENSORS = """
import torch
from torch import nn
from descentlab.engine.plugin import Task

def make_task(seed, device, dtype, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) * scale
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    return Task(model=model, criterion=nn.functional.mse_loss, probe=(x[:8], y[:8]),
                train=(x[:32], y[:32]), held_out=(x[32:], y[32:]), batch_size=8)
"""


def write_spec(folder: Path, source: str, steps: int = 4, name: str = "task.py") -> Path:
    """`folder/task.py` holding `source`, and `folder/spec.toml` naming it relatively."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source), encoding="utf-8")
    spec = folder / "spec.toml"
    spec.write_text(SPEC.format(steps=steps, file=name), encoding="utf-8")
    return spec


# -- the example and the contract -------------------------------------------------------------


def test_the_example_runs_and_learns(tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES / "my_task.toml")
    assert spec.task.params["file"] == str((EXAMPLES / "my_task.py").resolve())
    assert spec.task.params["args"] == {"hidden": 32, "noise": 0.1}
    spec = replace(spec, steps=60, device="cpu", diagnostics=[])
    runner = Runner(spec)
    first = runner.task.loss(runner.task.model, runner.task.probe).item()
    with SessionWriter(tmp_path / "s.h5", spec.to_toml()) as writer:
        runner.run(writer)
    for run in runner.runs.values():
        assert run.status == "finished" and run.steps_done == 60
        assert run.last_loss < first  # both optimizers learn something in 60 steps
    assert runner.task.roles == infer_roles(runner.task.model)


def test_the_seed_fixes_the_initial_weights(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, TENSORS))
    a, b = Runner(spec).task.model, Runner(spec).task.model
    c = Runner(replace(spec, seed=4)).task.model
    params = zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True)
    for (name, pa), pb, pc in params:
        assert torch.equal(pa, pb), name
        assert not torch.equal(pa, pc), name


def test_tensors_move_to_the_dtype_and_roles_are_inferred(tmp_path: Path) -> None:
    spec = replace(load_spec(write_spec(tmp_path, TENSORS)), dtype="float32")
    task = Runner(spec).task
    assert task.train is not None and task.train[0].dtype == torch.float32
    assert task.probe[0].dtype == task.held_out[0].dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in task.model.parameters())
    assert task.roles == {
        "0.weight": "hidden",
        "0.bias": "bias",
        "2.weight": "head",
        "2.bias": "bias",
    }
    # the [task.args] keyword reached the factory: targets are twice those of scale 1
    x, y = task.probe
    w = torch.tensor([[1.0], [-2.0], [0.5]])
    torch.testing.assert_close(y, x @ w * 2.0)


LOADER = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from descentlab.engine.plugin import Task

def make_task(seed, device, dtype, scale=1.0):
    x = torch.arange(12, dtype=torch.float64).reshape(6, 2)
    y = x.sum(1, keepdim=True)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    return Task(model=nn.Linear(2, 1), criterion=nn.functional.mse_loss, probe=(x, y),
                train=loader, roles={"weight": "head"})
"""


def test_a_data_loader_is_cycled_epoch_after_epoch(tmp_path: Path) -> None:
    spec = replace(load_spec(write_spec(tmp_path, LOADER)), dtype="float64")
    task = Runner(spec).task
    assert task.train is None and task.sample_batch is not None
    batches = task.batches(torch.Generator())
    x = torch.arange(12, dtype=torch.float64).reshape(6, 2)
    # 6 examples in batches of 4: 4 then 2, and again from the start
    for rows in ([0, 1, 2, 3], [4, 5], [0, 1, 2, 3]):
        inputs, targets = next(batches)
        assert torch.equal(inputs, x[rows]) and torch.equal(targets, x[rows].sum(1, keepdim=True))
    # the roles given are kept, the missing one inferred
    assert task.roles == {"weight": "head", "bias": "bias"}


def test_the_file_is_relative_to_the_spec_not_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path = write_spec(tmp_path / "project", TENSORS)
    monkeypatch.chdir(tmp_path)
    spec = load_spec(spec_path)
    assert spec.task.params["file"] == str(tmp_path / "project" / "task.py")
    # the saved spec (the one a session stores) names the file absolutely and re-runs as is
    again = parse_toml(spec.to_toml())
    assert again.task.params == spec.task.params
    assert isinstance(Runner(again).task.model, nn.Sequential)


# -- refusals before training --------------------------------------------------------------

BAD = {
    "syntax": ("def make_task(seed, device, dtype):\n    return (\n\nx = 1\n", "syntax error in"),
    "missing-factory": ("def other(seed):\n    pass\n", "'make_task' is not defined in"),
    "raising": (
        "def make_task(seed, device, dtype, scale):\n    raise RuntimeError('no data here')\n",
        "task.factory: make_task raised RuntimeError: no data here",
    ),
    "wrong-type": (
        "def make_task(seed, device, dtype, scale):\n    return {'model': None}\n",
        "task.factory: make_task returned dict; it must return a descentlab.engine.plugin.Task",
    ),
    "shapes": (
        TENSORS.replace("nn.Linear(3, 4)", "nn.Linear(5, 4)"),
        "task.probe: the model cannot run on the probe batch (shapes (8, 3) and (8, 1))",
    ),
    "import-error": ("import no_such_module_here\n", "raised ModuleNotFoundError"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_is_refused_before_training(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, message = BAD[case]
    spec_path = write_spec(tmp_path, source)
    # through the validation API: the Runner builds the task before any file is written
    with pytest.raises(SpecError) as raised:
        Runner(load_spec(spec_path))
    assert message in str(raised.value)
    # through the command line: exit 2, the field named, no session written
    out_file = tmp_path / "s.h5"
    assert main(["run", str(spec_path), "-o", str(out_file), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "task" in err
    assert not out_file.exists()


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, BAD["syntax"][0])
    with pytest.raises(SpecError, match=rf"task\.file: syntax error in {tmp_path / 'task.py'}:2"):
        Runner(load_spec(spec_path))


def test_an_error_while_running_names_the_line(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, "x = 1\ny = 1 / 0\n")
    with pytest.raises(SpecError, match=r"ZeroDivisionError: division by zero \(.*task.py:2\)"):
        Runner(load_spec(spec_path))


def test_a_missing_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_path = write_spec(tmp_path, TENSORS)
    (tmp_path / "task.py").unlink()
    assert main(["run", str(spec_path), "-o", str(tmp_path / "s.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"task.file: cannot read {tmp_path / 'task.py'}: No such file or directory" in err


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ('id = "python"', "task.file: missing; name the Python file"),
        ('id = "python"\nfile = "t.py"\nfactory = "not a name"', "task.factory: 'not a name' is"),
        ('id = "python"\nfile = "t.py"\nargs = 3', "task.args: 3 is not a table"),
        ('id = "quadratic"\nargs = {}', "task.args: unknown parameter"),
    ],
)
def test_the_spec_refuses_bad_task_fields(task: str, message: str) -> None:
    text = f'[task]\n{task}\n[[runs]]\noptimizer = "sgd"\n'
    with pytest.raises(SpecError) as raised:
        parse_toml(text)
    assert message in str(raised.value)


def test_a_bad_loader_batch_is_refused_before_training(tmp_path: Path) -> None:
    source = LOADER.replace("train=loader", "train=[(torch.zeros(2),)]")
    with pytest.raises(SpecError, match=r"task\.train: the loader yielded tuple"):
        Runner(load_spec(write_spec(tmp_path, source)))


def test_build_reports_a_probe_whose_loss_is_not_a_scalar(tmp_path: Path) -> None:
    source = TENSORS.replace("nn.functional.mse_loss", "lambda o, t: (o - t) ** 2")
    (tmp_path / "t.py").write_text(textwrap.dedent(source), encoding="utf-8")
    with pytest.raises(ValueError, match=r"task\.criterion: must return the mean loss"):
        build(
            {"file": str(tmp_path / "t.py"), "factory": "make_task", "args": {}},
            0,
            torch.device("cpu"),
            torch.float64,
        )


# -- security: sessions never run the file ----------------------------------------------------

MARKER_WRITER = """
from pathlib import Path
Path(__file__).with_name("ran.marker").write_text("the file ran")
def make_task(seed, device, dtype, scale=1.0):
    raise RuntimeError("must not be called")
"""


def python_session(tmp_path: Path) -> Path:
    """A finished session of the python task, whose file is then replaced by one that would
    leave a marker file if anything ran it."""
    spec = load_spec(write_spec(tmp_path / "project", TENSORS, steps=6))
    path = tmp_path / "s.h5"
    with SessionWriter(path, spec.to_toml()) as writer:
        Runner(spec).run(writer)
    (tmp_path / "project" / "task.py").write_text(MARKER_WRITER, encoding="utf-8")
    return path


def test_reading_a_session_never_runs_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = python_session(tmp_path)
    marker = tmp_path / "project" / "ran.marker"
    with SessionReader(path) as reader:
        spec = parse_toml(reader.spec_text)
    assert spec.task.params["file"] == str(tmp_path / "project" / "task.py")
    assert main(["info", str(path)]) == 0
    assert main(["export", str(path), "--csv", str(tmp_path / "csv")]) == 0
    capsys.readouterr()
    assert not marker.exists()


def test_replaying_a_session_in_the_window_never_runs_its_file(
    window, tmp_path: Path, qtbot
) -> None:  # type: ignore[no-untyped-def]
    path = python_session(tmp_path)
    marker = tmp_path / "project" / "ran.marker"
    assert window.load_session(path)
    window._tick()
    timeline = window.timeline
    assert timeline.last_step == 5
    timeline.set_step(2)
    timeline.release()
    assert window.experiment.validate() is not None  # the spec is in the panel, not run
    assert not marker.exists()


# -- the window asks once per file and content -------------------------------------------------


class Answers:
    """The dialog, answered without a screen: the texts it showed, and the reply it gives."""

    def __init__(self) -> None:
        from PySide6.QtWidgets import QDialog

        self.asked: list[str] = []
        self.reply = QDialog.DialogCode.Accepted


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    from PySide6.QtWidgets import QLabel

    from descentlab.app.python_task_dialog import RunPythonFileDialog

    answers = Answers()

    def fake_exec(dialog: RunPythonFileDialog) -> int:
        answers.asked.append(dialog.findChild(QLabel).text())
        return answers.reply

    monkeypatch.setattr(RunPythonFileDialog, "exec", fake_exec)
    return answers


def test_the_window_asks_once_per_file_and_content(window, answers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QDialog

    from descentlab.app.python_task_dialog import confirm_python_file

    spec_path = write_spec(tmp_path / "project", TENSORS)
    spec = load_spec(spec_path)
    answers.reply = QDialog.DialogCode.Rejected
    assert not confirm_python_file(spec, window.settings)
    assert (
        len(answers.asked) == 1
        and "task.py" in answers.asked[0]
        and str(tmp_path / "project") in answers.asked[0]
    )
    assert not confirm_python_file(spec, window.settings)  # a refusal is not remembered
    assert len(answers.asked) == 2
    answers.reply = QDialog.DialogCode.Accepted
    assert confirm_python_file(spec, window.settings)
    assert confirm_python_file(spec, window.settings)  # remembered: not asked again
    assert len(answers.asked) == 3
    (tmp_path / "project" / "task.py").write_text(TENSORS + "\n# edited\n", encoding="utf-8")
    assert confirm_python_file(spec, window.settings)  # a changed file asks again
    assert len(answers.asked) == 4
    other = load_spec(write_spec(tmp_path / "other", TENSORS))  # same content, another path
    assert confirm_python_file(other, window.settings)
    assert len(answers.asked) == 5
    assert confirm_python_file(parse_toml('[task]\nid = "quadratic"'), window.settings)
    assert len(answers.asked) == 5  # a built-in task runs no file of the user's


def test_a_refused_file_is_not_started_and_an_allowed_one_runs(
    window, answers, tmp_path: Path, qtbot
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QDialog

    spec_path = write_spec(tmp_path / "project", TENSORS, steps=5)
    assert window.open_path(spec_path)  # the file is found next to the spec
    spec = window.experiment.validate()
    assert spec is not None and spec.task.params["args"] == {"scale": 2.0}
    answers.reply = QDialog.DialogCode.Rejected
    assert not window.start()
    assert not window.client.running and len(answers.asked) == 1
    answers.reply = QDialog.DialogCode.Accepted
    assert window.start()
    qtbot.waitUntil(lambda: not window.client.running, timeout=60000)
    window._tick()
    assert window.model.runs["sgd"].step == 5
    with SessionReader(window.session.session_path) as reader:
        assert parse_toml(reader.spec_text).task.params["args"] == {"scale": 2.0}


def test_the_dialog_names_the_file_and_does_not_run_on_enter(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from descentlab.app.python_task_dialog import RunPythonFileDialog

    dialog = RunPythonFileDialog(tmp_path / "my_task.py")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.windowTitle() == "Run a Python file?"
    assert dialog.cancel_button.isDefault() and not dialog.run_button.isDefault()
    image = dialog.grab()
    assert image.width() >= 420 and image.save(str(tmp_path / "dialog.png"))


def test_the_docs_show_the_example_as_it_is() -> None:
    """docs/tasks.md copies the example's code (after its docstring): the two must not drift."""
    source = (EXAMPLES / "my_task.py").read_text(encoding="utf-8")
    code = source[source.index("import torch") :]
    docs = (Path(__file__).parents[1] / "docs" / "tasks.md").read_text(encoding="utf-8")
    assert f"```python\n{code}```" in docs


CLASSES = """
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from descentlab.engine.plugin import Task


@dataclass
class Sizes:
    inputs: int = 3
    hidden: int = 5


class Net(nn.Module):
    def __init__(self, sizes: Sizes) -> None:
        super().__init__()
        self.body = nn.Linear(sizes.inputs, sizes.hidden)
        self.out = nn.Linear(sizes.hidden, 1)

    def forward(self, x):
        return self.out(torch.relu(self.body(x)))


def make_task(seed, device, dtype, scale=1.0):
    torch.manual_seed(seed)
    x = torch.randn(16, 3)
    return Task(model=Net(Sizes()), criterion=nn.functional.mse_loss, probe=(x, x[:, :1] * scale))
"""


def test_classes_and_dataclasses_of_the_file_work(tmp_path: Path) -> None:
    """The file runs as a module registered in sys.modules (dataclasses look their module up
    there) and its own Module classes survive the copy each run makes."""
    spec = load_spec(write_spec(tmp_path, CLASSES, steps=3))
    runner = Runner(spec)
    assert runner.task.roles == {
        "body.weight": "hidden",
        "body.bias": "bias",
        "out.weight": "head",
        "out.bias": "bias",
    }
    with SessionWriter(tmp_path / "s.h5", spec.to_toml()) as writer:
        runner.run(writer)
    assert runner.runs["sgd"].status == "finished" and runner.runs["sgd"].steps_done == 3


def test_a_fork_from_a_checkpoint_asks_before_it_runs_the_file(
    window, answers: Answers, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QDialog

    from descentlab.app.panels.fork_dialog import ForkRequest

    path = python_session(tmp_path)  # its file now writes a marker when run
    assert window.load_session(path)
    window._tick()
    answers.reply = QDialog.DialogCode.Rejected
    request = ForkRequest("sgd", 6, "sgd-fork", {"id": "sgd", "lr": 0.01}, {"id": "constant"})
    assert not window.fork(request)
    assert len(answers.asked) == 1 and "task.py" in answers.asked[0]
    assert not window.client.running
    assert not (tmp_path / "project" / "ran.marker").exists()
