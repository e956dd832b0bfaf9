"""Datasets as tensors on the training device.

The whole train and test sets live on the device, normalised; each worker's batch is drawn by
indexing (see sampling.py). Files are read from torchvision's on-disk layout under `root`;
torchvision's dataset classes are used only to download them when they are missing and
`download` is true. Every failure to find or parse a file is one DatasetError line that says where
the files go.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from byzrun.errors import ConfigError, DatasetError
from byzrun.exact import fingerprint

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: the end of every "not found" error: the three ways to give byzrun the files
WAYS_TO_FIX = (
    "run `make data` (downloads into $BYZRUN_DATA or data/), set dataset.root=<folder> to where the "
    "files are, or set BYZRUN_DATA=<folder>"
)


@dataclass
class Data:
    name: str
    train_x: Tensor  # [N, C, H, W] float, normalised
    train_y: Tensor  # [N] int64
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    mean: Tensor  # [C] normalisation used
    std: Tensor  # [C]
    augment: bool  # random crop (reflect pad 4) + horizontal flip on training batches
    fingerprint: str = ""  # a hash of the raw arrays (byzrun.exact.fingerprint): which copy of the data

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def pixel_max(self) -> Tensor:
        """The normalised value of maximal raw intensity, per channel [C, 1, 1] (backdoor triggers)."""
        return ((1.0 - self.mean) / self.std).view(-1, 1, 1).to(self.train_x.device)


# ---------------------------------------------------------------------------- MNIST-style idx files

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally .gz) as in LeCun's MNIST format, validating its header."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(
            f"cannot read {path} ({type(exc).__name__}: {exc}); delete it and download it again"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an idx file of unsigned bytes; delete it and download it again")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DatasetError(
            f"{path} is truncated or corrupt (header says {shape}, file has {len(raw) - header} "
            f"bytes of data); delete it and download it again"
        )
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(shape)  # writable


def find_idx(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for name in (stem, stem + ".gz"):
            if (d / name).is_file():
                return d / name
    return None


def missing_folders(folder: Path) -> list[Path]:
    """folder and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) a failed download created and left empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty, or gone
            pass


def load_idx_dataset(name: str, root: Path, download: bool) -> tuple[np.ndarray, ...]:
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    raw_dir = root / cls.__name__ / "raw"
    dirs = [raw_dir] + ([DEBIAN_FASHION_MNIST] if name == "fashion_mnist" else [])
    stems = [s for pair in IDX_FILES.values() for s in pair]
    if any(find_idx(dirs, s) is None for s in stems) and download:
        created = missing_folders(raw_dir)
        try:
            cls(str(root), train=True, download=True)
            cls(str(root), train=False, download=True)
        except Exception as exc:  # torchvision raises several kinds on network failure
            remove_empty(created)
            raise DatasetError(
                f"{name} is not under {raw_dir} and downloading it failed ({type(exc).__name__}); "
                f"put {', '.join(stems)} (.gz or not) in {raw_dir}, {WAYS_TO_FIX}"
            ) from None
    paths = {s: find_idx(dirs, s) for s in stems}
    missing = [s for s, p in paths.items() if p is None]
    if missing:
        hint = " or install the Debian package dataset-fashion-mnist" if name == "fashion_mnist" else ""
        raise DatasetError(
            f"{name} not found: missing {', '.join(missing)} in {raw_dir}; {WAYS_TO_FIX}{hint} "
            f"(or dataset.download=true on a machine with internet)"
        )
    out = []
    for img_stem, lbl_stem in IDX_FILES.values():
        x, y = read_idx(paths[img_stem]), read_idx(paths[lbl_stem])
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(
                f"{paths[img_stem]} and {paths[lbl_stem]} do not match (images {x.shape}, labels "
                f"{y.shape}); delete them and download them again"
            )
        out += [x[:, None], y]
    return tuple(out)


# ---------------------------------------------------------------------------- CIFAR pickles

CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


def read_cifar_batches(folder: Path, names: list[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(batch[label_key], dtype=np.int64)
        except Exception as exc:  # a wrong or damaged pickle raises almost anything
            raise DatasetError(
                f"cannot read {path} ({type(exc).__name__}: {exc}); delete {folder} and download it again"
            ) from None
        if len(x) != len(y):
            raise DatasetError(f"{path} has {len(x)} images but {len(y)} labels; download it again")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def load_cifar(name: str, root: Path, download: bool) -> tuple[np.ndarray, ...]:
    import torchvision

    folder_name, train_names, test_names, label_key = CIFAR[name]
    folder = root / folder_name
    present = all((folder / f).is_file() for f in train_names + test_names)
    if not present and download:
        cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
        created = missing_folders(folder)
        try:
            cls(str(root), train=True, download=True)
        except Exception as exc:
            remove_empty(created)
            raise DatasetError(
                f"{name} is not under {folder} and downloading it failed ({type(exc).__name__}); "
                f"extract the python version of {name} so that {folder} exists, {WAYS_TO_FIX}"
            ) from None
    elif not present:
        raise DatasetError(
            f"{name} not found in {folder} (the python version, torchvision layout); {WAYS_TO_FIX} "
            f"(or dataset.download=true on a machine with internet)"
        )
    return (
        *read_cifar_batches(folder, train_names, label_key),
        *read_cifar_batches(folder, test_names, label_key),
    )


# ---------------------------------------------------------------------------- digits (offline)


def load_digits() -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled 8x8 digits (1797 images), a fixed 80/20 split; scaled to 0..255."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    cut = int(0.8 * len(y))
    tr, te = order[:cut], order[cut:]
    return x[tr], y[tr], x[te], y[te]


# ---------------------------------------------------------------------------- entry point

LOADERS = {"mnist", "fashion_mnist", "cifar10", "cifar100", "digits"}


def load_data(cfg, device: torch.device) -> Data:
    """Load the dataset named by cfg.name and put it, normalised, on `device`."""
    name = cfg.name
    if name not in LOADERS:
        raise ConfigError(f"unknown dataset.name {name!r}; choose one of {sorted(LOADERS)}")
    root = Path(str(cfg.get("root", "data"))).expanduser()
    if name == "digits":
        arrays = load_digits()
    elif name in CIFAR:
        arrays = load_cifar(name, root, bool(cfg.get("download", False)))
    else:
        arrays = load_idx_dataset(name, root, bool(cfg.get("download", False)))
    train_x, train_y, test_x, test_y = arrays
    channels = train_x.shape[1]
    mean = torch.tensor(list(cfg.mean), dtype=torch.float32)
    std = torch.tensor(list(cfg.std), dtype=torch.float32)
    if mean.numel() != channels or std.numel() != channels:
        raise ConfigError(
            f"dataset.mean/std need {channels} values for {name}, got {mean.numel()}/{std.numel()}"
        )
    num_classes = int(cfg.num_classes)
    labels = np.concatenate([train_y, test_y])
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DatasetError(
            f"{name} has labels outside 0..{num_classes - 1}; the files are corrupt, download them again"
        )

    def prepare(x: np.ndarray) -> Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=torch.float32) / 255.0
        return (t - mean.view(-1, 1, 1).to(device)) / std.view(-1, 1, 1).to(device)

    return Data(
        name=name,
        train_x=prepare(train_x),
        train_y=torch.from_numpy(np.asarray(train_y, dtype=np.int64)).to(device),
        test_x=prepare(test_x),
        test_y=torch.from_numpy(np.asarray(test_y, dtype=np.int64)).to(device),
        num_classes=num_classes,
        mean=mean,
        std=std,
        augment=bool(cfg.get("augment", False)),
        fingerprint=fingerprint(name, *arrays),
    )
