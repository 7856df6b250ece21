"""The image tasks and the byte-level GPT: readers against files written in the published formats,
device-side augmentation, the models, and `descentlab run` on generated MNIST and CIFAR-10."""

from __future__ import annotations

import gzip
import pickle
import struct
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from descentlab.app.cli import main
from descentlab.engine.params import defaults
from descentlab.engine.plugin import Task
from descentlab.engine.registry import plugins
from descentlab.engine.session.reader import SessionReader
from descentlab.plugins.tasks import image_files, vision
from descentlab.plugins.tasks.vision import ImageTask, Normalize, augment

CPU = torch.device("cpu")


# --------------------------------------------------------------------------------------------
# Files in the published formats
# --------------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file: 0, 0, type 0x08 (ubyte), ndim, big-endian uint32 sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def write_mnist(root: Path, folder: str, n_train: int, n_test: int, gz: bool = False) -> dict:
    """Random MNIST-style files under root/folder/raw; returns what was written."""
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    written = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        written[prefix] = (images, labels)
    return written


def cifar_arrays(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, classes, n)


def write_cifar10_binary(root: Path, n_per_batch: int) -> dict:
    """cifar-10-batches-bin: 3073-byte records, label byte then R, G, B planes of 32×32."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    written: dict[str, list] = {"train": [], "test": []}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for i, name in enumerate(names):
        data, labels = cifar_arrays(n_per_batch, 10, i)
        records = np.concatenate([labels[:, None].astype(np.uint8), data], axis=1)
        (folder / name).write_bytes(records.tobytes())
        written["test" if name.startswith("test") else "train"].append((data, labels))
    return written


def write_cifar100_binary(root: Path, n: int) -> dict:
    """cifar-100-binary: 3074-byte records, coarse label, fine label, then the pixels."""
    folder = root / "cifar-100-binary"
    folder.mkdir(parents=True)
    written = {}
    for i, split in enumerate(("train", "test")):
        data, fine = cifar_arrays(n, 100, i)
        coarse = fine // 5
        records = np.concatenate([coarse[:, None], fine[:, None], data], axis=1).astype(np.uint8)
        (folder / f"{split}.bin").write_bytes(records.tobytes())
        written[split] = (data, fine)
    return written


def write_cifar_python(root: Path, hundred: bool, n: int) -> dict:
    """The pickled "python version": dicts of 'data' (n, 3072) uint8 and label lists."""
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    names = (
        ["train", "test"] if hundred else [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    )
    written: dict[str, list] = {"train": [], "test": []}
    for i, name in enumerate(names):
        data, labels = cifar_arrays(n, 100 if hundred else 10, 10 + i)
        batch: dict[str, Any] = {"data": data, "filenames": [f"img{j}.png" for j in range(n)]}
        if hundred:
            batch |= {"fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist()}
        else:
            batch |= {"labels": labels.tolist(), "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written["test" if name.startswith("test") else "train"].append((data, labels))
    return written


def joined(parts: list) -> tuple[np.ndarray, np.ndarray]:
    data = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    return data, np.concatenate([p[1] for p in parts])


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(("key", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_reader_returns_the_written_pixels_and_labels(
    tmp_path: Path, key: str, folder: str, gz: bool
) -> None:
    written = write_mnist(tmp_path, folder, 7, 3, gz=gz)
    for split, train in (("train", True), ("t10k", False)):
        images, labels = image_files.read_split(key, tmp_path, train)
        assert images.dtype == np.uint8 and images.shape == (len(labels), 1, 28, 28)
        np.testing.assert_array_equal(images[:, 0], written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])
        assert labels.dtype == np.int64


def test_idx_reader_refuses_a_bad_header_and_short_data(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0\0\0\0")  # 0x0D: float
    with pytest.raises(image_files.DataFilesError, match="bad magic number"):
        image_files.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 2]) + struct.pack(">2I", 3, 4) + bytes(11))
    with pytest.raises(image_files.DataFilesError, match=r"\(3, 4\) \(12 bytes\) but 11"):
        image_files.read_idx(short)


def test_cifar10_binary_reader_returns_the_records(tmp_path: Path) -> None:
    written = write_cifar10_binary(tmp_path, 4)
    for split, train in (("train", True), ("test", False)):
        images, labels = image_files.read_split("cifar10", tmp_path, train)
        expected_images, expected_labels = joined(written[split])
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)
    assert images[0, 1, 0, 0] == written["test"][0][0][0, 1024]  # green plane after red


def test_cifar100_binary_reader_takes_the_fine_label(tmp_path: Path) -> None:
    written = write_cifar100_binary(tmp_path, 6)
    images, labels = image_files.read_split("cifar100", tmp_path, True)
    np.testing.assert_array_equal(images, written["train"][0].reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(labels, written["train"][1])


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_python_reader_returns_the_pickled_arrays(tmp_path: Path, hundred: bool) -> None:
    written = write_cifar_python(tmp_path, hundred, 5)
    key = "cifar100" if hundred else "cifar10"
    for split, train in (("train", True), ("test", False)):
        images, labels = image_files.read_split(key, tmp_path, train)
        expected_images, expected_labels = joined(written[split])
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)


class _Boom:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_cifar_pickle_that_would_run_code_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({"data": _Boom()}, protocol=2))
    with pytest.raises(
        image_files.DataFilesError, match=r"refusing to load (__builtin__|builtins)\.print"
    ):
        image_files.read_cifar_pickle(path)
    assert "pwned" not in capsys.readouterr().out


def test_missing_root_and_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(image_files.DataFilesError, match=r"root: the folder .*nope does not exist"):
        image_files.read_split("mnist", tmp_path / "nope", True)
    with pytest.raises(
        image_files.DataFilesError, match=r"root: no CIFAR-10 files in .*datasets\]"
    ):
        image_files.read_split("cifar10", tmp_path, True)
    (tmp_path / "cifar-10-batches-bin").mkdir()
    with pytest.raises(image_files.DataFilesError, match=r"lacks data_batch_1\.bin"):
        image_files.read_split("cifar10", tmp_path, True)


def test_download_without_torchvision_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "torchvision", None)  # import fails
    with pytest.raises(image_files.DataFilesError, match=r"descentlab\[datasets\]"):
        image_files.download("mnist", tmp_path)


@pytest.mark.skip(reason="needs a network and torchvision; the test machines have neither")
def test_download_fetches_mnist_with_torchvision(tmp_path: Path) -> None:  # pragma: no cover
    image_files.download("mnist", tmp_path)
    images, labels = image_files.read_split("mnist", tmp_path, True)
    assert images.shape == (60000, 1, 28, 28) and labels.shape == (60000,)


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------


def _images(n: int = 6) -> torch.Tensor:
    return torch.randint(1, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(1)).byte()


def test_augment_is_a_zero_padded_shifted_window_flipped_or_not() -> None:
    images = _images()
    out = augment(images, torch.Generator().manual_seed(3), padding=2)
    # the draws, repeated in augment's order: dy, dx, flip
    generator = torch.Generator().manual_seed(3)
    dy, dx, flip = (torch.randint(0, h, (6,), generator=generator) for h in (5, 5, 2))
    padded = np.zeros((6, 3, 12, 12), dtype=np.uint8)
    padded[:, :, 2:10, 2:10] = images.numpy()
    for b in range(6):
        window = padded[b, :, dy[b] : dy[b] + 8, dx[b] : dx[b] + 8]
        expected = window[:, :, ::-1] if flip[b] else window
        np.testing.assert_array_equal(out[b].numpy(), expected)
    assert out.dtype == torch.uint8
    assert set(flip.tolist()) == {0, 1} and len(set(dx.tolist())) > 1  # both cases exercised


def test_augment_without_shift_is_identity_or_mirror() -> None:
    images = _images()
    out = augment(images, torch.Generator().manual_seed(0), padding=0)
    flipped = [bool(torch.equal(o, i.flip(-1))) for o, i in zip(out, images, strict=True)]
    same = [bool(torch.equal(o, i)) for o, i in zip(out, images, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert any(flipped) and any(same)


def test_augment_is_deterministic_under_the_seed() -> None:
    images = _images()
    a = augment(images, torch.Generator().manual_seed(5))
    b = augment(images, torch.Generator().manual_seed(5))
    c = augment(images, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


def build(task_id: str, root: Path, dtype: torch.dtype = torch.float32, **params: Any) -> Task:
    plugin = plugins("tasks")[task_id]
    return plugin.build(defaults(plugin.params) | {"root": str(root)} | params, 0, CPU, dtype)


def test_every_image_task_is_registered_with_data_params() -> None:
    found = plugins("tasks")
    for task_id in (plugin.id for plugin in vision.PLUGINS):  # the exact ids: test_tasks.py
        names = {p.name for p in found[task_id].params}
        assert {"root", "download", "batch_size", "subset"} <= names
        assert ("augment" in names) == task_id.startswith("cifar")
    assert "file" in {p.name for p in found["text-gpt"].params}


def test_mnist_task_keeps_uint8_data_and_normalises_in_the_model(tmp_path: Path) -> None:
    written = write_mnist(tmp_path, "MNIST", 20, 8)
    task = build("mnist-mlp", tmp_path, dtype=torch.float64, subset=12, hidden=[16])
    assert task.train is not None and task.held_out is not None
    assert task.train[0].dtype == torch.uint8 and task.train[0].shape == (12, 1, 28, 28)
    assert torch.equal(task.train[0][:, 0], torch.as_tensor(written["train"][0][:12]))
    assert task.held_out[0].shape[0] == 8
    normalize = task.model[0]
    assert isinstance(normalize, Normalize)
    x = task.probe[0][:2]
    expected = (x.double() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(normalize(x), expected, rtol=0, atol=1e-12)
    loss = task.loss(task.model, task.probe)
    assert loss.dtype == torch.float64 and torch.isfinite(loss)


def test_cnn_refuses_more_pools_than_the_image_allows(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST", 4, 2)
    with pytest.raises(ValueError, match="channels: 5 pooled convolutions shrink 28×28"):
        build("mnist-cnn", tmp_path, channels=[2, 2, 2, 2, 2])


def test_resnet18_has_resnet18s_shape_and_cifar_stem(tmp_path: Path) -> None:
    write_cifar10_binary(tmp_path, 2)
    plugin = plugins("tasks")["cifar10-resnet18"]
    with torch.device("meta"):  # the full-width model's parameter count, without allocating it
        from descentlab.plugins.tasks.vision import ResNet18

        full = ResNet18(image_files.DATASETS["cifar10"], 64, "batch")
    # torchvision's resnet18 has 11,689,512 parameters with its 7×7 stem and 1000 classes;
    # the CIFAR stem (3×3×3×64 instead of 7×7×3×64) and 10 classes give 11,173,962.
    assert sum(p.numel() for p in full.parameters()) == 11_173_962
    assert full.conv1.kernel_size == (3, 3) and full.conv1.stride == (1, 1)
    task = build("cifar10-resnet18", tmp_path, width=4)
    assert task.roles["fc.weight"] == "head" and task.roles["bn1.weight"] == "norm"
    assert task.roles["conv1.weight"] == "hidden"
    assert task.model(task.probe[0]).shape == (10, 10)
    assert {p.name for p in plugin.params} >= {"width", "norm", "augment"}


def test_image_task_batches_are_augmented_and_shared_by_the_seed(tmp_path: Path) -> None:
    write_cifar10_binary(tmp_path, 4)
    task = build("cifar10-cnn", tmp_path, batch_size=5, channels=[4])
    plain = build("cifar10-cnn", tmp_path, batch_size=5, channels=[4], augment=False)
    assert isinstance(task, ImageTask) and task.augment and not plain.augment
    a = next(task.batches(torch.Generator().manual_seed(0)))
    b = next(task.batches(torch.Generator().manual_seed(0)))
    raw = next(plain.batches(torch.Generator().manual_seed(0)))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(a[1], raw[1])  # the same examples, in the same order …
    assert not torch.equal(a[0], raw[0])  # … cropped and flipped


def test_spec_without_root_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(task='id = "mnist-mlp"\nroot = "nowhere"', steps=2))
    assert main(["run", str(spec), "-o", str(tmp_path / "s.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "task (mnist-mlp): root: the folder nowhere does not exist" in err
    assert "MNIST/raw" in err and "download = true" in err


SPEC = textwrap.dedent(
    """
    name = "files"
    seed = 0
    steps = {steps}
    device = "cpu"

    [task]
    {task}

    [[runs]]
    name = "sgd"
    optimizer = {{ id = "sgd", lr = 0.05, momentum = 0.9 }}

    [[runs]]
    name = "adam"
    optimizer = {{ id = "adam", lr = 1e-3 }}

    [[diagnostics]]
    id = "eval"
    every = 2
    """
)


def _run(tmp_path: Path, task: str, steps: int) -> SessionReader:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(task=task, steps=steps))
    session = tmp_path / "s.h5"
    assert main(["run", str(spec), "-o", str(session), "--quiet"]) == 0
    return SessionReader(session)


def test_descentlab_run_trains_mnist_from_generated_files(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST", 64, 16, gz=True)
    task = f'id = "mnist-cnn"\nroot = "{tmp_path}"\nbatch_size = 16\nchannels = [4]'
    reader = _run(tmp_path, task, steps=4)
    for run in ("sgd", "adam"):
        steps, loss = reader.read(run, "train/loss")
        assert list(steps) == [0, 1, 2, 3] and np.isfinite(loss).all()
        assert 0 <= reader.read(run, "eval/accuracy")[1][-1] <= 1
        assert reader.run(run).status == "finished"


def test_descentlab_run_trains_cifar10_resnet18_from_generated_files(tmp_path: Path) -> None:
    write_cifar10_binary(tmp_path, 8)
    task = (
        f'id = "cifar10-resnet18"\nroot = "{tmp_path}"\nbatch_size = 8\nsubset = 16\n'
        "test_subset = 8\nwidth = 4"
    )
    reader = _run(tmp_path, task, steps=3)
    losses = [reader.read(run, "train/loss")[1] for run in ("sgd", "adam")]
    assert all(len(v) == 3 and np.isfinite(v).all() for v in losses)
    assert losses[0][0] == losses[1][0]  # same initial weights and the same first batch


# --------------------------------------------------------------------------------------------
# Byte-level GPT
# --------------------------------------------------------------------------------------------


def test_text_gpt_trains_on_the_bytes_of_a_file(tmp_path: Path) -> None:
    text = "Größe und Maß. " * 40
    (tmp_path / "book.txt").write_text(text, encoding="utf-8")
    plugin = plugins("tasks")["text-gpt"]
    params = defaults(plugin.params) | {
        "file": str(tmp_path / "book.txt"), "context": 8, "width": 16, "heads": 2, "layers": 1,
    }  # fmt: skip
    task = plugin.build(params, 0, CPU, torch.float32)
    data = text.encode("utf-8")
    inputs, targets = task.probe
    assert inputs.dtype == torch.long and inputs.shape[1] == 8
    assert bytes(inputs[0].tolist()) == data[:8] and bytes(targets[0].tolist()) == data[1:9]
    assert task.model.token_embedding.num_embeddings == 256
    logits = task.model(inputs)
    assert logits.shape == (inputs.shape[0], 8, 256)
    torch.testing.assert_close(  # GPT-2's small init: the loss starts near log 256
        task.loss(task.model, task.probe), torch.tensor(np.log(256), dtype=torch.float32),
        atol=0.1, rtol=0,
    )  # fmt: skip


def test_text_gpt_names_the_file_field_when_it_cannot_train(tmp_path: Path) -> None:
    plugin = plugins("tasks")["text-gpt"]
    base = defaults(plugin.params)
    with pytest.raises(ValueError, match="file: give the path"):
        plugin.build(base, 0, CPU, torch.float32)
    with pytest.raises(ValueError, match=r"file: cannot read .*missing\.txt"):
        plugin.build(base | {"file": str(tmp_path / "missing.txt")}, 0, CPU, torch.float32)
    (tmp_path / "short.txt").write_text("tiny")
    with pytest.raises(ValueError, match="file: 4 bytes leave 1 held-out bytes"):
        plugin.build(base | {"file": str(tmp_path / "short.txt")}, 0, CPU, torch.float32)


def test_group_norm_resnet_has_no_running_statistics(tmp_path: Path) -> None:
    write_cifar10_binary(tmp_path, 2)
    task = build("cifar10-resnet18", tmp_path, width=4, norm="group")
    buffers = dict(task.model.named_buffers())
    assert set(buffers) == {"normalize.mean", "normalize.std"}  # nothing vmap cannot batch
    assert task.roles["layers.0.0.bn1.weight"] == "norm"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in task.model.modules())
    torch.testing.assert_close(
        buffers["normalize.std"].flatten(), torch.tensor([0.2470, 0.2435, 0.2616])
    )
