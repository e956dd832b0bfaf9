"""Download the datasets byzrun reads: `make data`, or `python -m byzrun.fetch_data`.

Files go under a root folder in torchvision's on-disk layout, the layout byzrun.data reads. Datasets
that byzrun can already read are skipped. A failed download removes everything that attempt created
(files and folders alike, never anything that was there before), the other datasets go on, and the
exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from byzrun import data
from byzrun.errors import DatasetError

PREFIX = "byzrun data"


@dataclass(frozen=True)
class Spec:
    tv_class: str  # torchvision.datasets class that downloads it
    folder: str  # where byzrun reads it, relative to the root
    entries: tuple[str, ...]  # top-level names under the root that torchvision writes
    by_hand: str  # how to put the files there without this tool


IDX_STEMS = [stem for pair in data.IDX_FILES.values() for stem in pair]

SPECS = {
    "mnist": Spec(
        "MNIST",
        "MNIST/raw",
        ("MNIST",),
        f"put {', '.join(IDX_STEMS)} (.gz or not) in {{folder}}",
    ),
    "fashion_mnist": Spec(
        "FashionMNIST",
        "FashionMNIST/raw",
        ("FashionMNIST",),
        f"put {', '.join(IDX_STEMS)} (.gz or not) in {{folder}}, or `apt-get install -y "
        f"dataset-fashion-mnist`",
    ),
    "cifar10": Spec(
        "CIFAR10",
        data.CIFAR["cifar10"][0],
        (data.CIFAR["cifar10"][0], "cifar-10-python.tar.gz"),
        "extract the python version of CIFAR-10 (cifar-10-python.tar.gz) so that {folder} exists",
    ),
    "cifar100": Spec(
        "CIFAR100",
        data.CIFAR["cifar100"][0],
        (data.CIFAR["cifar100"][0], "cifar-100-python.tar.gz"),
        "extract the python version of CIFAR-100 (cifar-100-python.tar.gz) so that {folder} exists",
    ),
}
DEFAULT_DATASETS = ["mnist", "cifar10", "cifar100"]

OFFLINE_NOTES = [
    "Fashion-MNIST without a download: `apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu);",
    f"  byzrun reads it from {data.DEBIAN_FASHION_MNIST} automatically.",
    "MNIST alone (--datasets mnist) is enough for the quick start with the default dataset=mnist;",
    "  the offline first run, `byzrun dataset=digits`, needs no files at all.",
]

HELP_EPILOG = f"""\
what it does:
  Downloads each dataset with torchvision's dataset classes (download=True, train and test split),
  showing torchvision's progress bar, into ROOT in torchvision's layout, which byzrun reads:
    mnist          ROOT/MNIST/raw/
    fashion_mnist  ROOT/FashionMNIST/raw/
    cifar10        ROOT/cifar-10-batches-py/      (archive kept as ROOT/cifar-10-python.tar.gz)
    cifar100       ROOT/cifar-100-python/         (archive kept as ROOT/cifar-100-python.tar.gz)
  A dataset whose files byzrun can already read is skipped (fashion_mnist also counts as present when
  it is in {data.DEBIAN_FASHION_MNIST}). Present but unreadable files are reported, not replaced:
  delete them and run again.

on failure (no network, an HTTP error, a corrupt archive):
  prints one line `{PREFIX}: error: <dataset>: <reason>; <what to do>` to stderr, removes every file
  and folder that this attempt created (nothing that existed before), goes on with the other datasets
  and exits with status 1 at the end. Exit status 0 when every dataset is present.

offline:
  {(chr(10) + "  ").join(OFFLINE_NOTES)}

examples:
  make data
  python -m byzrun.fetch_data --root data --datasets mnist,cifar10
  BYZRUN_DATA=/scratch/data python -m byzrun.fetch_data
"""


def say(msg: str) -> None:
    print(f"{PREFIX}: {msg}", flush=True)


def error(name: str, reason: str, todo: str) -> None:
    sys.stdout.flush()
    print(f"{PREFIX}: error: {name}: {reason}; {todo}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- what byzrun can read


def idx_dirs(name: str, root: Path) -> list[Path]:
    """The folders byzrun.data.load_idx_dataset looks in, in its order."""
    dirs = [root / SPECS[name].folder]
    return dirs + ([data.DEBIAN_FASHION_MNIST] if name == "fashion_mnist" else [])


def present_in(name: str, root: Path) -> Path | None:
    """Where byzrun finds all of the dataset's files (the folder), or None when any is missing."""
    if name in data.CIFAR:
        folder_name, train_names, test_names, _ = data.CIFAR[name]
        folder = root / folder_name
        return folder if all((folder / f).is_file() for f in train_names + test_names) else None
    paths = [data.find_idx(idx_dirs(name, root), stem) for stem in IDX_STEMS]
    if any(p is None for p in paths):
        return None
    return paths[0].parent


def check_readable(name: str, root: Path) -> None:
    """Read the files as byzrun does; a DatasetError names the broken file and the fix."""
    if name in data.CIFAR:
        folder_name, train_names, test_names, label_key = data.CIFAR[name]
        for names in (train_names, test_names):
            data.read_cifar_batches(root / folder_name, names, label_key)
        return
    dirs = idx_dirs(name, root)
    for img_stem, lbl_stem in data.IDX_FILES.values():
        img_path, lbl_path = data.find_idx(dirs, img_stem), data.find_idx(dirs, lbl_stem)
        x, y = data.read_idx(img_path), data.read_idx(lbl_path)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(
                f"{img_path} and {lbl_path} do not match (images {x.shape}, labels {y.shape}); "
                f"delete them and run again"
            )


# ---------------------------------------------------------------------------- downloading


def torchvision_class(name: str):
    """The torchvision dataset class that downloads `name` (imported late: torchvision is slow to load)."""
    import torchvision.datasets

    return getattr(torchvision.datasets, SPECS[name].tv_class)


def download(name: str, root: Path) -> None:
    cls = torchvision_class(name)
    for train in (True, False):
        cls(str(root), train=train, download=True)


class Undo:
    """Records what exists before a download so that a failure can remove exactly what it created.

    If `root` is missing, the highest missing folder on its path is new and is removed whole. Otherwise
    new top-level entries of `root` are removed whole, and inside the pre-existing entries the
    dataset writes to (`entries`), new files and folders are removed one by one.
    """

    def __init__(self, root: Path, entries: tuple[str, ...]):
        self.root = root
        self.new_top: Path | None = None
        for p in [root, *root.parents]:
            if os.path.lexists(p):
                break
            self.new_top = p
        self.top: set[str] = set()
        self.inside: dict[str, set[str]] = {}
        if self.new_top is None and root.is_dir():
            self.top = set(os.listdir(root))
            for entry in entries:
                if entry in self.top and (root / entry).is_dir():
                    self.inside[entry] = walk(root / entry)

    def run(self) -> list[Path]:
        """Remove what was created since __init__; returns what could not be removed."""
        if self.new_top is not None:
            return remove(self.new_top)
        if not self.root.is_dir():
            return []
        left: list[Path] = []
        for name in sorted(set(os.listdir(self.root)) - self.top):
            left += remove(self.root / name)
        for entry, before in self.inside.items():
            folder = self.root / entry
            if not folder.is_dir():
                continue
            new = sorted(walk(folder) - before, key=lambda rel: rel.count(os.sep))
            for rel in new:  # parents before children: a removed folder takes its new content along
                if os.path.lexists(folder / rel):
                    left += remove(folder / rel)
        return left


def walk(folder: Path) -> set[str]:
    """Relative paths of all files, links and folders under `folder` (links not followed)."""
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        for n in dirnames + filenames:
            out.add(os.path.normpath(os.path.join(rel, n)))
    return out


def remove(path: Path) -> list[Path]:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
    except OSError:
        return [path]
    return []


def explain(exc: BaseException) -> str:
    """A one-line reason for a failed download."""
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > 240:
        text = text[:237] + "..."
    kind = type(exc).__name__
    if isinstance(exc, urllib.error.HTTPError):
        what = f"HTTP error {exc.code}"
    elif isinstance(exc, urllib.error.URLError | ConnectionError | TimeoutError) or "urlopen error" in text:
        what = "no network or the server cannot be reached"
    elif isinstance(exc, EOFError | DatasetError) or any(
        s in text.lower() for s in ("corrupt", "not a gzip", "truncated", "md5", "integrity")
    ):
        what = "the download is corrupt or incomplete"
    else:
        what = "download failed"
    return f"{what} ({kind}: {text})"


def fetch(name: str, root: Path) -> bool:
    """Make `name` readable under `root`; False (after one error line) when it failed."""
    spec = SPECS[name]
    folder = root / spec.folder
    by_hand = spec.by_hand.format(folder=folder)
    found = present_in(name, root)
    if found is not None:
        try:
            check_readable(name, root)
        except DatasetError as exc:
            todo = "reinstall dataset-fashion-mnist" if found == data.DEBIAN_FASHION_MNIST else "delete them"
            error(name, f"files in {found} are unreadable ({exc})", f"{todo} and run again")
            return False
        say(f"{name}: already present in {found}, skipping")
        return True

    say(f"{name}: downloading with torchvision into {folder}")
    undo = Undo(root, spec.entries)
    try:
        download(name, root)
        if present_in(name, root) is None:
            raise DatasetError(f"torchvision finished but files are missing in {folder}")
        check_readable(name, root)
    except KeyboardInterrupt:
        left = undo.run()
        todo = f"delete {', '.join(map(str, left))} by hand" if left else "partial files removed"
        error(name, "interrupted", f"{todo}; run again to download it")
        raise
    except Exception as exc:  # torchvision raises URLError, HTTPError, RuntimeError, OSError, ...
        left = undo.run()
        todo = f"check the internet connection and run again, or {by_hand}"
        if left:
            todo += f"; could not remove {', '.join(map(str, left))}: delete by hand"
        error(name, explain(exc), todo)
        return False
    say(f"{name}: done, files in {present_in(name, root)}")
    return True


# ---------------------------------------------------------------------------- command line


def dataset_list(text: str) -> list[str]:
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower().replace("-", "_")
        if not name:
            continue
        if name not in SPECS:
            raise argparse.ArgumentTypeError(
                f"unknown dataset {raw.strip()!r}; choose from {', '.join(SPECS)}"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise argparse.ArgumentTypeError("no dataset named")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m byzrun.fetch_data",
        description="Download MNIST, CIFAR-10 and CIFAR-100 (and, on request, Fashion-MNIST) into the\n"
        "folder byzrun reads datasets from, skipping those already there.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help="folder in torchvision's layout (default: $BYZRUN_DATA, else 'data'); the same as byzrun's "
        "dataset.root",
    )
    p.add_argument(
        "--datasets",
        type=dataset_list,
        default=list(DEFAULT_DATASETS),
        metavar="A,B,...",
        help=f"comma-separated, from {', '.join(SPECS)} (default: {','.join(DEFAULT_DATASETS)})",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    root = args.root if args.root is not None else Path(os.environ.get("BYZRUN_DATA") or "data")
    root = root.expanduser()
    try:
        failed = [name for name in args.datasets if not fetch(name, root)]
    except KeyboardInterrupt:
        return 130
    for line in OFFLINE_NOTES:
        say(f"note: {line}")
    if failed:
        say(f"{len(failed)} of {len(args.datasets)} failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
