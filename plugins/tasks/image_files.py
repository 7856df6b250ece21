"""Readers of MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 in the on-disk layouts torchvision uses.

Nothing here needs torchvision: the formats are simple enough to read directly, and torchvision
cannot be installed beside every torch. Under a data `root`:

- MNIST and Fashion-MNIST: `root/MNIST/raw/` and `root/FashionMNIST/raw/` hold the IDX files
  `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
  `t10k-labels-idx1-ubyte`, plain or gzipped (`….gz`), as LeCun publishes them.
- CIFAR-10: `root/cifar-10-batches-py/` (`data_batch_1` … `data_batch_5`, `test_batch`, the
  "python version" torchvision downloads) or `root/cifar-10-batches-bin/` (`data_batch_1.bin` …
  `data_batch_5.bin`, `test_batch.bin`, the "binary version": records of one label byte and
  3072 pixel bytes).
- CIFAR-100: `root/cifar-100-python/` (`train`, `test`) or `root/cifar-100-binary/`
  (`train.bin`, `test.bin`: records of a coarse label byte, a fine label byte, 3072 pixels).

The python version is pickled, and unpickling can run code; it is read with an unpickler that
builds only numpy arrays (and the plain containers, strings and numbers pickle makes itself), so a
doctored file is refused instead of executed. Every reader returns uint8 images (n, C, H, W) and
int64 labels, exactly the bytes of the files.
"""

from __future__ import annotations

import codecs
import gzip
import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

IDX_UBYTE = 0x08
"""The IDX type code of unsigned bytes, the only one MNIST-style files use."""
CIFAR_SIDE = 32
CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE


class DataFilesError(ValueError):
    """Data files that are missing or not in the expected format; the message says how to fix it."""


@dataclass(frozen=True)
class ImageDataset:
    """One data set: where its files live, its image shape, classes and channel statistics.

    `mean`/`std` are the per-channel statistics of the training pixels scaled to [0, 1], the
    values the usual training recipes normalise with.
    """

    name: str
    shape: tuple[int, int, int]
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    folders: tuple[str, ...]
    source: str


DATASETS: dict[str, ImageDataset] = {
    "mnist": ImageDataset(
        "MNIST", (1, 28, 28), 10, (0.1307,), (0.3081,), ("MNIST/raw",),
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ImageDataset(
        "Fashion-MNIST", (1, 28, 28), 10, (0.2860,), (0.3530,), ("FashionMNIST/raw",),
        "https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": ImageDataset(
        "CIFAR-10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        ("cifar-10-batches-py", "cifar-10-batches-bin"),
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "cifar100": ImageDataset(
        "CIFAR-100", (3, 32, 32), 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
        ("cifar-100-python", "cifar-100-binary"),
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array of an IDX file (gzipped when its name ends in `.gz`).

    Layout: two zero bytes, the type code 0x08, the number of dimensions d, then d big-endian
    uint32 sizes and the data in C order.

    Raises:
        DataFilesError: the header is not that of an unsigned-byte IDX file or the data is short.
    """
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE or raw[3] == 0:
        raise DataFilesError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DataFilesError(
            f"{path}: the header says {shape} ({size} bytes) but {len(raw) - header} bytes follow"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_mnist(folder: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if train else "t10k"
    paths = [
        _idx_file(folder, f"{prefix}-{kind}") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
    ]
    if paths[0] is None or paths[1] is None:
        raise FileNotFoundError(f"{prefix}-images-idx3-ubyte / {prefix}-labels-idx1-ubyte")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataFilesError(
            f"{folder}: images {images.shape} and labels {labels.shape} do not belong together"
        )
    return images[:, None], labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------------------------


def _numpy_reconstruct() -> Callable[..., Any]:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray._reconstruct


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes under pickle protocol 2 as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): codecs.encode,
}
"""Everything the CIFAR pickles need: numpy's array reconstruction and nothing that runs code."""


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, strings, numbers and numpy arrays, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataFilesError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists"
            ) from None


def read_cifar_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR "python version" batch, unpickled safely; keys as str (Python 2's latin-1)."""
    try:
        loaded = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except DataFilesError as exc:
        raise DataFilesError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataFilesError(f"{path}: not a CIFAR python batch ({exc})") from None
    if not isinstance(loaded, dict):
        raise DataFilesError(f"{path}: not a CIFAR python batch (no dict inside)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in loaded.items()}


def _cifar_from_pickles(paths: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path in paths:
        batch = read_cifar_pickle(path)
        if "data" not in batch or label_key not in batch:
            raise DataFilesError(f"{path}: a CIFAR batch needs 'data' and '{label_key}'")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != CIFAR_PIXELS:
            raise DataFilesError(f"{path}: data of shape {data.shape}, not (n, {CIFAR_PIXELS})")
        images.append(data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_cifar_binary(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Records of `label_bytes` label bytes (the last is the class), then 3072 pixels (R, G, B)."""
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + CIFAR_PIXELS
    if raw.size % record:
        raise DataFilesError(
            f"{path}: {raw.size} bytes is not a whole number of {record}-byte records"
        )
    rows = raw.reshape(-1, record)
    images = rows[:, label_bytes:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)
    return images, rows[:, label_bytes - 1].astype(np.int64)


def _cifar_files(folder: Path, train: bool) -> list[Path]:
    """The files of one split in `folder`, whichever of the four CIFAR layouts it is."""
    name = folder.name
    if name == "cifar-10-batches-py":
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    elif name == "cifar-10-batches-bin":
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    elif name == "cifar-100-python":
        names = ["train" if train else "test"]
    else:
        names = ["train.bin" if train else "test.bin"]
    paths = [folder / n for n in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(", ".join(missing))
    return paths


def _read_cifar(folder: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    paths = _cifar_files(folder, train)
    name = folder.name
    if name.endswith("-python") or name.endswith("-py"):
        return _cifar_from_pickles(paths, "fine_labels" if "100" in name else "labels")
    parts = [read_cifar_binary(p, 2 if "100" in name else 1) for p in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# --------------------------------------------------------------------------------------------
# One entry point for every data set
# --------------------------------------------------------------------------------------------


def how_to_get(dataset: ImageDataset, root: Path) -> str:
    """The sentence that tells a user how to put the files of `dataset` under `root`."""
    where = " or ".join(str(root / f) for f in dataset.folders)
    return (
        f"put the {dataset.name} files into {where} (from {dataset.source}), "
        "or set download = true with the 'datasets' extra installed "
        "(pip install 'descentlab[datasets]', which brings torchvision and may bring its own torch)"
    )


def read_split(key: str, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, C, H, W) uint8 and int64 labels of the train or test split of data set `key`.

    Raises:
        DataFilesError: `root` or the files are missing (the message says how to get them), or
            the files are not in the expected format, or the labels exceed the classes.
    """
    dataset = DATASETS[key]
    if not root.is_dir():
        raise DataFilesError(f"root: the folder {root} does not exist; {how_to_get(dataset, root)}")
    folders = [root / f for f in dataset.folders if (root / f).is_dir()]
    if not folders:
        raise DataFilesError(
            f"root: no {dataset.name} files in {root}; {how_to_get(dataset, root)}"
        )
    reader = _read_mnist if dataset.shape[0] == 1 else _read_cifar
    try:
        images, labels = reader(folders[0], train)
    except FileNotFoundError as exc:
        raise DataFilesError(
            f"root: {folders[0]} lacks {exc.args[0]}; {how_to_get(dataset, root)}"
        ) from None
    if images.shape[1:] != dataset.shape:
        raise DataFilesError(
            f"{folders[0]}: images of shape {images.shape[1:]}, not {dataset.shape}"
        )
    if labels.size and int(labels.max()) >= dataset.classes:
        raise DataFilesError(f"{folders[0]}: label {int(labels.max())} ≥ {dataset.classes} classes")
    return images, labels


def download(key: str, root: Path) -> None:
    """Fetch data set `key` into `root` with torchvision (the optional 'datasets' extra).

    Raises:
        DataFilesError: torchvision cannot be imported (how to install it is in the message) or
            the download failed (no network, say).
    """
    dataset = DATASETS[key]
    try:
        from torchvision import datasets  # optional: imported only on request
    except Exception as exc:  # torchvision beside a foreign torch fails with RuntimeError too
        raise DataFilesError(
            f"download: torchvision is not usable here ({type(exc).__name__}: {exc}); install "
            "the extra with pip install 'descentlab[datasets]' (it may bring its own torch), or "
            f"{how_to_get(dataset, root).split(', or set')[0]} and set download = false"
        ) from None
    loader = {
        "mnist": datasets.MNIST,
        "fashion-mnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
    }[key]
    try:
        for train in (True, False):
            loader(str(root), train=train, download=True)
    except Exception as exc:  # network and disk errors of any kind
        raise DataFilesError(f"download: fetching {dataset.name} failed: {exc}") from None
