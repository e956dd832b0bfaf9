"""`make data` offline: torchvision's dataset classes replaced by fakes that write tiny files in the exact
on-disk layout, or fail after leaving partial files and folders behind."""

import gzip
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from byzrun import data as data_module
from byzrun import fetch_data

RNG = np.random.default_rng(0)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def write_idx_set(folder: Path, compress: bool = False) -> None:
    for stem, shape in [
        ("train-images-idx3-ubyte", (6, 28, 28)),
        ("train-labels-idx1-ubyte", (6,)),
        ("t10k-images-idx3-ubyte", (3, 28, 28)),
        ("t10k-labels-idx1-ubyte", (3,)),
    ]:
        write_idx(folder / stem, RNG.integers(0, 10, shape), compress)


def write_cifar(root: Path, name: str) -> None:
    folder_name, train_names, test_names, label_key = data_module.CIFAR[name]
    (root / folder_name).mkdir(parents=True, exist_ok=True)
    archive = "cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz"
    (root / archive).write_bytes(b"archive")
    for f in train_names + test_names:
        batch = {b"data": RNG.integers(0, 256, (4, 3072)).astype(np.uint8), label_key: [0, 1, 2, 3]}
        with open(root / folder_name / f, "wb") as fh:
            pickle.dump(batch, fh)


def succeed(name: str, root: Path) -> None:
    """What torchvision's download leaves behind, in miniature."""
    if name in data_module.CIFAR:
        write_cifar(root, name)
    else:
        raw = root / fetch_data.SPECS[name].folder
        write_idx_set(raw, compress=True)
        write_idx_set(raw)


def fail_partway(name: str, root: Path) -> None:
    """Partial files and folders, then an error of the kind torchvision raises."""
    if name in data_module.CIFAR:
        (root / "cifar-10-python.tar.gz").write_bytes(b"half an arch")
        (root / "cifar-10-batches-py" / "sub").mkdir(parents=True, exist_ok=True)
        (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"trunc")
        raise RuntimeError("File not found or corrupted.")
    raw = root / fetch_data.SPECS[name].folder
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")
    (raw.parent / "processed").mkdir(exist_ok=True)
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.fixture
def fake_tv(monkeypatch, tmp_path):
    """Replace torchvision's classes; `behaviour[name]` is `succeed`, `fail_partway` or any callable."""
    behaviour: dict = {}
    calls: list = []

    def tv_class(name):
        class Fake:
            def __init__(self, root, train, download):
                calls.append((name, root, train, download))
                assert isinstance(root, str) and download is True
                behaviour.get(name, succeed)(name, Path(root))

        return Fake

    monkeypatch.setattr(fetch_data, "torchvision_class", tv_class)
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.delenv("BYZRUN_DATA", raising=False)
    return behaviour, calls


def tree(root: Path) -> dict[str, bytes | None]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("byzrun data: error:")]


def test_download_into_fresh_root(fake_tv, tmp_path, capsys):
    _, calls = fake_tv
    root = tmp_path / "a" / "data"
    assert fetch_data.main(["--root", str(root), "--datasets", "mnist,cifar10"]) == 0
    out, err = capsys.readouterr()
    assert error_lines(err) == []
    assert [(c[0], c[2]) for c in calls] == [
        ("mnist", True),
        ("mnist", False),
        ("cifar10", True),
        ("cifar10", False),
    ]
    assert all(c[1] == str(root) for c in calls)
    assert f"mnist: downloading with torchvision into {root / 'MNIST' / 'raw'}" in out
    assert f"mnist: done, files in {root / 'MNIST' / 'raw'}" in out
    assert f"cifar10: done, files in {root / 'cifar-10-batches-py'}" in out
    assert "apt-get install -y dataset-fashion-mnist" in out and "dataset=digits" in out
    for name in ("mnist", "cifar10"):
        assert fetch_data.present_in(name, root) is not None
        fetch_data.check_readable(name, root)


def test_default_datasets_and_env_root(fake_tv, tmp_path, monkeypatch, capsys):
    _, calls = fake_tv
    monkeypatch.setenv("BYZRUN_DATA", str(tmp_path / "env"))
    assert fetch_data.main([]) == 0
    assert [c[0] for c in calls[::2]] == ["mnist", "cifar10", "cifar100"]
    assert {c[1] for c in calls} == {str(tmp_path / "env")}
    fetch_data.check_readable("cifar100", tmp_path / "env")


def test_failures_remove_only_what_they_created(fake_tv, tmp_path, capsys):
    behaviour, _ = fake_tv
    behaviour["mnist"] = fail_partway
    behaviour["cifar10"] = fail_partway
    root = tmp_path / "data"
    (root / "MNIST" / "raw").mkdir(parents=True)
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"mine")  # one file already there
    (root / "MNIST" / "notes.txt").write_bytes(b"keep me")
    (root / "cifar-10-batches-py").mkdir()  # an empty folder that was already there
    (root / "unrelated.txt").write_bytes(b"keep me too")
    before = tree(root)

    rc = fetch_data.main(["--root", str(root), "--datasets", "mnist,cifar10,cifar100"])
    out, err = capsys.readouterr()

    assert rc == 1
    lines = error_lines(err)
    assert len(lines) == 2 and len(err.strip().splitlines()) == 2
    assert lines[0].startswith("byzrun data: error: mnist: no network")
    assert "URLError" in lines[0] and "; check the internet connection" in lines[0]
    assert str(root / "MNIST" / "raw") in lines[0]
    assert lines[1].startswith("byzrun data: error: cifar10: the download is corrupt or incomplete")
    assert "RuntimeError: File not found or corrupted." in lines[1]
    assert "failed: mnist, cifar10" in out
    # cifar100 still ran and succeeded; everything else is exactly as before
    after = tree(root)
    new = {k: v for k, v in after.items() if k not in before}
    assert all(k.startswith(("cifar-100-python", "cifar-100-python.tar.gz")) for k in new)
    assert {k: after[k] for k in before} == before
    fetch_data.check_readable("cifar100", root)


def test_failure_in_missing_root_leaves_no_folder(fake_tv, tmp_path, capsys):
    behaviour, _ = fake_tv
    behaviour["fashion_mnist"] = fail_partway
    root = tmp_path / "x" / "y" / "data"
    assert fetch_data.main(["--root", str(root), "--datasets", "fashion-mnist"]) == 1
    assert not (tmp_path / "x").exists()
    line = error_lines(capsys.readouterr().err)[0]
    assert line.startswith("byzrun data: error: fashion_mnist: ")
    assert "apt-get install -y dataset-fashion-mnist" in line


@pytest.mark.parametrize("exc", [OSError("No space left on device"), ValueError("weird"), EOFError()])
def test_any_exception_is_one_line_and_cleaned(fake_tv, tmp_path, capsys, exc):
    behaviour, _ = fake_tv

    def boom(name, root):
        (root / "MNIST" / "raw").mkdir(parents=True)
        (root / "MNIST" / "raw" / "x.gz").write_bytes(b"x")
        raise exc

    behaviour["mnist"] = boom
    root = tmp_path / "data"
    root.mkdir()
    assert fetch_data.main(["--root", str(root), "--datasets", "mnist"]) == 1
    assert list(root.iterdir()) == []
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and type(exc).__name__ in lines[0]


def test_http_error_is_named(fake_tv, tmp_path, capsys):
    behaviour, _ = fake_tv

    def http404(name, root):
        raise urllib.error.HTTPError("https://example.invalid/x", 404, "Not Found", None, None)

    behaviour["cifar100"] = http404
    assert fetch_data.main(["--root", str(tmp_path), "--datasets", "cifar100"]) == 1
    assert "cifar100: HTTP error 404" in capsys.readouterr().err


def test_present_dataset_is_skipped(fake_tv, tmp_path, capsys):
    _, calls = fake_tv
    write_idx_set(tmp_path / "MNIST" / "raw", compress=True)  # .gz only, as byzrun also reads
    write_cifar(tmp_path, "cifar10")
    assert fetch_data.main(["--root", str(tmp_path), "--datasets", "mnist,cifar10"]) == 0
    assert calls == []
    out = capsys.readouterr().out
    assert f"mnist: already present in {tmp_path / 'MNIST' / 'raw'}, skipping" in out
    assert f"cifar10: already present in {tmp_path / 'cifar-10-batches-py'}, skipping" in out


def test_fashion_mnist_from_debian_package_is_skipped(fake_tv, tmp_path, monkeypatch, capsys):
    _, calls = fake_tv
    debian = tmp_path / "debian"
    write_idx_set(debian, compress=True)
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", debian)
    assert fetch_data.main(["--root", str(tmp_path / "data"), "--datasets", "fashion_mnist"]) == 0
    assert calls == []
    assert f"already present in {debian}" in capsys.readouterr().out
    assert not (tmp_path / "data").exists()


def test_present_but_corrupt_is_reported_not_deleted(fake_tv, tmp_path, capsys):
    _, calls = fake_tv
    raw = tmp_path / "MNIST" / "raw"
    write_idx_set(raw)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    assert fetch_data.main(["--root", str(tmp_path), "--datasets", "mnist"]) == 1
    assert calls == []
    line = error_lines(capsys.readouterr().err)[0]
    assert line.startswith("byzrun data: error: mnist: files in") and line.endswith(
        "delete them and run again"
    )
    assert (raw / "train-images-idx3-ubyte").exists()


def test_interrupt_cleans_up(fake_tv, tmp_path, capsys):
    behaviour, _ = fake_tv

    def interrupted(name, root):
        (root / "MNIST" / "raw").mkdir(parents=True)
        raise KeyboardInterrupt

    behaviour["mnist"] = interrupted
    assert fetch_data.main(["--root", str(tmp_path / "d"), "--datasets", "mnist,cifar10"]) == 130
    assert not (tmp_path / "d").exists()
    assert "mnist: interrupted" in capsys.readouterr().err


def test_bad_dataset_name_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        fetch_data.main(["--datasets", "mnist,imagenet"])
    assert info.value.code == 2
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        fetch_data.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for phrase in (
        "--datasets",
        "fashion_mnist",
        "download=True",
        "BYZRUN_DATA",
        "byzrun data: error: <dataset>: <reason>; <what to do>",
        "removes every file",
        "status 1",
        "apt-get install -y dataset-fashion-mnist",
        "dataset=digits",
        "MNIST alone",
    ):
        assert phrase in text, phrase
