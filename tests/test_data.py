"""Loading paths on small files generated in the exact on-disk formats, and batch sampling."""

import gzip
import pickle
import struct
import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from byzrun import data as data_module
from byzrun.data import load_data
from byzrun.errors import ConfigError, DatasetError
from byzrun.sampling import WorkerSampler, random_crop_flip
from tests.conftest import make_cfg

CPU = torch.device("cpu")


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_mnist(folder, n_train=30, n_test=10, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, compress)
    return arrays


def dataset_cfg(name, root, download=False):
    return make_cfg(f"dataset={name}", f"dataset.root={root}", f"dataset.download={download}").dataset


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_files_load_normalised(tmp_path, compress):
    arrays = make_mnist(tmp_path / "MNIST" / "raw", compress=compress)
    data = load_data(dataset_cfg("mnist", tmp_path), CPU)
    assert data.train_x.shape == (30, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    expected = (arrays["train-images-idx3-ubyte"][:, None] / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(data.train_x.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(data.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert data.num_classes == 10 and data.in_shape == (1, 28, 28)
    assert data.pixel_max.flatten().item() == pytest.approx((1 - 0.1307) / 0.3081)


def test_truncated_idx_file_is_reported_as_corrupt(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    make_mnist(raw)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated or corrupt.*download it again"):
        load_data(dataset_cfg("mnist", tmp_path), CPU)


def test_garbage_gz_file_is_reported(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    make_mnist(raw, compress=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="cannot read .*t10k-labels"):
        load_data(dataset_cfg("mnist", tmp_path), CPU)


def test_missing_dataset_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_data(dataset_cfg("mnist", tmp_path), CPU)
    message = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "download=true" in message
    assert "\n" not in message


def test_failed_download_is_one_clear_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DatasetError, match="downloading it failed \\(URLError\\); put .* in "):
        load_data(dataset_cfg("mnist", tmp_path, download=True), CPU)


def test_fashion_mnist_is_read_from_the_debian_package_folder(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    make_mnist(debian, compress=True, seed=5)
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", debian)
    data = load_data(dataset_cfg("fashion_mnist", tmp_path / "empty"), CPU)
    assert data.train_x.shape == (30, 1, 28, 28)


def write_cifar(folder, files, label_key, n=6, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name in files:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: list(rng.integers(0, classes, n)),
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickles_load(tmp_path, name):
    if name == "cifar10":
        write_cifar(
            tmp_path / "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
            b"labels",
        )
        n_train = 30
    else:
        write_cifar(tmp_path / "cifar-100-python", ["train", "test"], b"fine_labels", classes=100)
        n_train = 6
    data = load_data(dataset_cfg(name, tmp_path), CPU)
    assert data.train_x.shape == (n_train, 3, 32, 32) and data.test_x.shape == (6, 3, 32, 32)
    assert data.augment == (name == "cifar100")


def test_corrupt_cifar_pickle_is_reported(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels")
    (folder / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DatasetError, match="cannot read .*data_batch_3"):
        load_data(dataset_cfg("cifar10", tmp_path), CPU)


def test_labels_out_of_range_are_rejected(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    arrays = make_mnist(raw)
    write_idx(raw / "train-labels-idx1-ubyte", np.full_like(arrays["train-labels-idx1-ubyte"], 12), False)
    with pytest.raises(DatasetError, match="labels outside 0..9"):
        load_data(dataset_cfg("mnist", tmp_path), CPU)


def test_digits_offline_split():
    data = load_data(make_cfg("dataset=digits").dataset, CPU)
    assert data.train_x.shape == (1437, 1, 8, 8) and data.test_x.shape == (360, 1, 8, 8)
    assert abs(data.train_x.mean().item()) < 0.01 and abs(data.train_x.std().item() - 1) < 0.01


def test_iid_sampler_shape_and_range():
    gen = torch.Generator().manual_seed(0)
    idx = WorkerSampler(100, 7, 5, "iid", gen).next()
    assert idx.shape == (7, 5) and idx.min() >= 0 and idx.max() < 100


def test_alie_code_sampler_is_torchs_distributed_sampler_with_byzantine_rows_on_ranks_0_to_m():
    """The ALIE code's users get their batches from DistributedSampler(rank=user id) without
    set_epoch: the same shards and order every pass, padded, the last batch of a pass short."""
    from torch.utils.data.distributed import DistributedSampler

    N, n, m, b = 103, 5, 2, 8  # padded to 105 = 5 x 21: shards of 21, batches 8, 8, 5
    shards = {r: list(DistributedSampler(range(N), num_replicas=n, rank=r)) for r in range(n)}
    sampler = WorkerSampler(N, n, b, "alie_code", torch.Generator().manual_seed(123), m)
    for t in range(7):
        idx = sampler.next()
        start = [0, 8, 16][t % 3]
        assert idx.shape == (n, [8, 8, 5][t % 3])
        for row in range(n):
            assert idx[row].tolist() == shards[(row + m) % n][start : start + b]


def test_shard_sampler_gives_disjoint_shards_and_cycles_through_them():
    gen = torch.Generator().manual_seed(0)
    sampler = WorkerSampler(103, 5, 4, "shards", gen)  # shards of 20, 3 samples dropped
    first_pass = torch.cat([sampler.next() for _ in range(5)], dim=1)  # 5 batches of 4 = one pass
    for i in range(5):
        assert sorted(first_pass[i].tolist()) == sorted(sampler.shards[i].tolist())
    assert len(set(first_pass.flatten().tolist())) == 100
    again = sampler.next()  # a new pass reshuffles within the same shards
    for i in range(5):
        assert set(again[i].tolist()) <= set(sampler.shards[i].tolist())


def test_shard_sampler_rejects_batches_larger_than_a_shard():
    with pytest.raises(ConfigError, match="larger than a worker's shard.*sampling=iid"):
        WorkerSampler(100, 10, 11, "shards", torch.Generator())


def test_random_crop_flip_returns_a_crop_of_the_padded_image():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 8, 8)
    out = random_crop_flip(x, gen, pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    flips = 0
    for b in range(16):
        candidates = [
            (padded[b, :, i : i + 8, j : j + 8], flip)
            for i in range(5)
            for j in range(5)
            for flip in (False, True)
        ]
        matches = [flip for c, flip in candidates if torch.equal(c.flip(-1) if flip else c, out[b])]
        assert matches, f"image {b} is not a crop of its padded input"
        flips += matches[0]
    assert 0 < flips < 16  # both flipped and unflipped images occur
