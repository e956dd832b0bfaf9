"""Speed-only settings: threads per job, the worker chunk, the GPU options (CPU only, in process)."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from byzrun.errors import ConfigError
from byzrun.speed import configure_threads, parallel_jobs, threads_per_job

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def test_threads_per_job_share_the_cores(monkeypatch, caplog):
    assert threads_per_job(2, 2) == 1 and threads_per_job(16, 3) == 5 and threads_per_job(2, 8) == 1
    assert parallel_jobs(None) == 1
    assert parallel_jobs({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}) == 1
    assert parallel_jobs({"_target_": JOBLIB, "n_jobs": 4}) == 4
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert parallel_jobs({"_target_": JOBLIB, "n_jobs": -1}) == 8
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="byzrun"):
            assert configure_threads({"_target_": JOBLIB, "n_jobs": 2}, env={}) == 4
        assert torch.get_num_threads() == 4
        assert "threads: 4 per job (8 cores shared by 2 jobs" in caplog.text
        caplog.clear()
        torch.set_num_threads(1)
        with caplog.at_level(logging.INFO, logger="byzrun"):  # the user's OMP_NUM_THREADS wins
            assert configure_threads({"_target_": JOBLIB, "n_jobs": 2}, env={"OMP_NUM_THREADS": "1"}) == 1
        assert torch.get_num_threads() == 1 and "OMP_NUM_THREADS=1" in caplog.text
        assert configure_threads(None, env={}) == 1  # a single run keeps torch's default
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------- worker_chunk


def _tiny_cnn():
    from byzrun.flat_model import FlatModel
    from byzrun.models import build_model

    torch.manual_seed(0)
    return lambda chunk: FlatModel(build_model("cnn", (3, 32, 32), 10), torch.device("cpu"), chunk)


def test_auto_chunk_on_cpu_follows_the_measured_rule():
    from byzrun.flat_model import FlatModel
    from byzrun.models import build_model

    x, y = torch.randn(3, 2, 3, 32, 32), torch.randint(10, (3, 2))
    cnn = _tiny_cnn()("auto")
    G, _ = cnn.worker_grads(x, y)
    assert cnn.chunk == 1 and cnn.chunk_used == 1
    full = FlatModel(cnn.module, torch.device("cpu"), None)
    G_full, _ = full.worker_grads(x, y)
    assert full.chunk_used == 3
    # one worker per pass or all at once: the same gradients up to float32 rounding
    assert torch.allclose(G, G_full, rtol=1e-5, atol=1e-7)
    mlp = FlatModel(build_model("mlp", (1, 8, 8), 10), torch.device("cpu"), "auto")
    mlp.worker_grads(torch.randn(4, 2, 1, 8, 8), torch.randint(10, (4, 2)))
    assert mlp.chunk is None and mlp.chunk_used == 4
    assert cnn.channels_last and not mlp.channels_last  # NHWC inputs for conv models on a CPU


def test_a_model_with_dropout_loops_over_workers_in_order_on_a_cpu():
    """Dropout masks are drawn worker by worker in order, on one Python thread: the seed fixes them,
    whatever the number of torch threads, and each row is that worker's ordinary backward pass."""
    from byzrun.flat_model import FlatModel
    from byzrun.models import build_model

    torch.manual_seed(0)
    module = build_model("momentum_cnn", (3, 8, 8), 10)
    dropout = FlatModel(module, torch.device("cpu"), "auto")
    x, y = torch.randn(4, 3, 3, 8, 8), torch.randint(10, (4, 3))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        torch.manual_seed(7)
        G, losses = dropout.worker_grads(x, y)
    finally:
        torch.set_num_threads(before)
    assert dropout.chunk_used == 1 and not dropout.channels_last  # NHWC would move the masks
    with pytest.raises(ConfigError, match="gpu.channels_last=null"):
        FlatModel(module, torch.device("cpu"), "auto", channels_last=True)
    torch.manual_seed(7)
    module.train()
    for i in range(4):
        loss = torch.nn.functional.cross_entropy(module(x[i]), y[i])
        row = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(module.parameters()))])
        torch.testing.assert_close(G[i], row, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(losses[i], loss.detach())


def test_out_of_memory_halves_the_chunk_and_redoes_the_round(caplog):
    """A simulated torch.cuda.OutOfMemoryError for passes of more than one worker: the round is redone
    with half the chunk, twice, with one log line each, and gives the same gradients."""
    from byzrun.chunking import gpu_chunk

    x, y = torch.randn(4, 2, 3, 32, 32), torch.randint(10, (4, 2))
    make = _tiny_cnn()
    model = make(None)
    reference, losses = model.worker_grads(x, y)
    real = model.grads_fn

    def grads_fn(chunk):
        if chunk is None or chunk > 1:

            def out_of_memory(*args):
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

            return out_of_memory
        return real(chunk)

    model.grads_fn = grads_fn
    with caplog.at_level(logging.WARNING, logger="byzrun"):
        G, L = model.worker_grads(x, y)
    assert model.chunk == 1 and model.chunk_used == 1
    assert caplog.text.count("out of GPU memory") == 2 and "worker_chunk=2" in caplog.text
    assert torch.allclose(G, reference, rtol=1e-5, atol=1e-7) and torch.allclose(L, losses)
    assert gpu_chunk(100, 1000, 51) == 8 and gpu_chunk(10, 1e9, 51) == 51 and gpu_chunk(1e9, 10, 51) == 1


def test_bench_machine_lines():
    from byzrun.bench.rounds import machine_line

    row = {"key": "cnn", "model": "cnn", "chunk": 1, "chosen_over_loop": 1.2912, "speedup": float("nan")}
    assert machine_line(row, ["chunk", "chosen_over_loop", "speedup"], "model") == (
        "model=cnn chunk=1 chosen_over_loop=1.29"
    )


# ------------------------------------------------------------------------------- gpu options


def test_gpu_options_hash_only_when_they_change_results():
    from omegaconf import open_dict

    from byzrun.config import config_hash
    from tests.conftest import make_cfg

    base = make_cfg("dataset=digits")
    plain = config_hash(base)
    without = base.copy()
    with open_dict(without):
        del without["gpu"]
    assert config_hash(without) == plain  # runs written before the options existed keep their hash
    for speed_only in ("gpu.channels_last=true", "gpu.compile=true", "worker_chunk=3", "gpu.tf32=null"):
        assert config_hash(make_cfg("dataset=digits", speed_only)) == plain, speed_only
    for changing in ("gpu.bf16=true", "gpu.tf32=true", "gpu.tf32=false"):
        assert config_hash(make_cfg("dataset=digits", changing)) != plain, changing


def test_channels_last_and_compile_keep_the_gradients_and_bf16_changes_them():
    from byzrun.flat_model import FlatModel
    from byzrun.models import build_model

    torch.manual_seed(0)
    module = build_model("cnn", (3, 32, 32), 10)
    x, y = torch.randn(2, 3, 3, 32, 32), torch.randint(10, (2, 3))
    cpu = torch.device("cpu")
    G, _ = FlatModel(module, cpu, None).worker_grads(x, y)
    G_cl, _ = FlatModel(module, cpu, None, channels_last=True).worker_grads(x, y)
    assert torch.allclose(G_cl, G, rtol=1e-5, atol=1e-7)
    G_bf, _ = FlatModel(module, cpu, None, bf16=True).worker_grads(x, y)
    error = (G_bf - G).norm() / G.norm()
    assert 1e-4 < error < 0.1  # bfloat16's 8-bit mantissa: close, not equal
    mlp = FlatModel(build_model("mlp", (1, 8, 8), 10), cpu, None)
    xm, ym = torch.randn(3, 4, 1, 8, 8), torch.randint(10, (3, 4))
    compiled = FlatModel(mlp.module, cpu, None, compile="eager")  # the tracing path, no compiler
    assert torch.allclose(compiled.worker_grads(xm, ym)[0], mlp.worker_grads(xm, ym)[0])


def test_tables_ignore_speed_options_and_defaults():
    from byzrun.report.collect import result_settings

    off = {"lr": 0.1, "gpu": {"tf32": None, "bf16": False, "channels_last": True, "compile": True}}
    assert result_settings(off) == {"lr": 0.1}  # the same cell as runs from before the options
    assert result_settings({"lr": 0.1, "gpu": {"bf16": True}}) == {"gpu.bf16": True, "lr": 0.1}


def test_bench_before_imports_an_earlier_package_beside_the_working_tree(tmp_path):
    """The before/after bench imports the package of a git revision under another name and times every
    rule from both; here the working tree's own package (as `git archive` would pack it) on a tiny
    matrix, so both give the same outputs."""
    import io
    import tarfile

    from byzrun.bench import before as bench_before

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(
            bench_before.ROOT / "byzrun",
            arcname="byzrun",
            filter=lambda t: None if "__pycache__" in t.name else t,
        )
    before = bench_before.import_package(buffer.getvalue(), tmp_path)
    assert before.__name__ == "byzrun_before.defenses" and before.RULES.classes()
    table = bench_before.compare(before, dims=(40,), n=7, f=1, device="cpu", repeats=1)
    assert {"krum", "median", "centered_clipping(center=zero)"} <= set(table.rule)
    assert (table.before_ms > 0).all() and (table.now_ms > 0).all() and (table.max_abs_diff == 0).all()
    with pytest.raises(bench_before.RevisionMissing, match="no-such-revision"):
        bench_before.archive("no-such-revision")


#: every rule, step and attack byzrun and ByzFL 0.0.11 share (README, "Differences from ByzFL")
BYZFL_ENTRIES = {
    "rule": {"mean", "median", "trimmed_mean", "meamed", "krum", "multi_krum", "centered_clipping"}
    | {"geometric_median", "monna", "caf", "mda", "smea"},
    "pre-aggregation": {"nnm", "bucketing", "clipping", "arc"},
    "attack": {"alie", "ipm", "sign_flip(ipm_factor=1)", "mimic", "gaussian(shared)", "inf"}
    | {f"optimal_{a}({r})" for a in ("alie", "ipm") for r in ("mean", "median")},
}


def test_bench_against_byzfl_times_every_shared_entry_and_writes_the_csv(tmp_path, capsys):
    """On a tiny matrix: one row per shared entry in byzfl.csv, the four calls timed, each ratio ByzFL's
    time over byzrun's in the same float order, and one machine-readable line each; byzrun's reduction
    order is torch's again afterwards."""
    import pandas as pd

    from byzrun import cpu_reductions
    from byzrun.bench import byzfl as bench_byzfl

    bench_byzfl.main(["--dims", "64", "--n", "9", "--f", "2", "--repeats", "1", "--out", str(tmp_path)])
    assert cpu_reductions._order == "torch"
    table = pd.read_csv(tmp_path / "byzfl.csv")
    assert {k: set(table.entry[table.kind == k]) for k in BYZFL_ENTRIES} == BYZFL_ENTRIES
    assert table.entry[table.kind == "control"].tolist() == ["control(byzfl_mean)"]  # the noise floor, last
    assert len(table) == sum(map(len, BYZFL_ENTRIES.values())) + 1 and (table.d == 64).all()
    times = ["byzrun_torch_ms", "byzfl_torch_ms", "byzrun_numpy_ms", "byzfl_numpy_ms"]
    assert (table[times] > 0).all().all() and (table.repeats == 1).all()
    assert table.skipped.isna().all()  # C(9, 2) subsets: MDA and SMEA run too
    for order in ("torch", "numpy"):
        expected = table[f"byzfl_{order}_ms"] / table[f"byzrun_{order}_ms"]
        torch.testing.assert_close(
            torch.tensor(table[f"ratio_{order}"].values), torch.tensor(expected.values)
        )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("byzfl=")]
    assert len(lines) == len(table) and lines[0].startswith("byzfl=mean d=64 ratio_torch=")


def test_bench_against_byzfl_matrices_agree_for_the_deterministic_attacks(monkeypatch):
    """Like with like: after one call each, the Byzantine rows byzrun and ByzFL wrote agree (float32), and
    byzrun's call in numpy's order reduces in numpy's order (the mean attacks then write ByzFL's bits)."""
    import byzfl

    from byzrun import cpu_reductions
    from byzrun.bench import byzfl as bench_byzfl
    from byzrun.bench.aggregation import _matrix

    n, f = 9, 2
    G = _matrix(n, f, 64, "cpu")
    entries = dict(bench_byzfl._calls(byzfl, G, f, "cpu"))
    orders = []
    real = cpu_reductions.row_mean
    monkeypatch.setattr(
        "byzrun.attacks.ipm.row_mean", lambda X: orders.append(cpu_reductions._order) or real(X)
    )
    for name in ("alie", "ipm", "sign_flip(ipm_factor=1)", "mimic", "inf", "optimal_ipm(mean)"):
        entry = entries[name]
        written = {}
        for way in bench_byzfl.WAYS:
            entry["fresh"]()  # every call starts from G in the shared matrix
            bench_byzfl._call(entry, way)
            written[way] = entry["matrix"].clone()
        ours = written["byzrun_torch"]
        assert torch.equal(ours[: n - f], G[: n - f]) and not torch.equal(ours[n - f :], G[n - f :]), name
        for way in ("byzfl_torch", "byzfl_numpy", "byzrun_numpy"):
            torch.testing.assert_close(ours, written[way], rtol=1e-5, atol=1e-6, msg=name)
        if name in ("ipm", "sign_flip(ipm_factor=1)", "alie"):
            assert torch.equal(written["byzrun_numpy"], written["byzfl_numpy"]), name
    assert orders[:4] == ["torch", "numpy", "torch", "numpy"]  # ipm, then sign flip: each way in its order


def test_bench_against_byzfl_lists_what_byzrun_refuses_and_stops_a_byzfl_call_that_does_not_end(capsys):
    """MDA and SMEA at n=51, f=12 (C(51, 12) subsets) are listed with byzrun's reason, untimed; a ByzFL
    call that does not return within the timeout is not timed either."""
    import byzfl

    from byzrun.bench import byzfl as bench_byzfl

    table = bench_byzfl.compare(byzfl, dims=(8,), n=51, f=12, repeats=1, only=["mda", "smea", "mean"])
    refused = table.set_index("entry").skipped
    assert (
        "max_subsets" in refused["mda"]
        and "max_subsets" in refused["smea"]
        and not isinstance(refused["mean"], str)
    )
    assert table.set_index("entry").byzrun_torch_ms[["mda", "smea"]].isna().all()

    class Endless:
        def __call__(self, vectors):
            while True:
                pass

    class Pairs:
        def __getattr__(self, name):
            return Endless if name == "Average" else getattr(byzfl, name)

    table = bench_byzfl.compare(Pairs(), dims=(8,), n=9, f=2, repeats=1, only=["mean"], timeout_s=0.2)
    row = table.iloc[0]
    assert row.skipped == "byzfl_torch, byzfl_numpy: no result in 0.2 s"
    assert math.isnan(row.ratio_torch) and math.isnan(row.ratio_numpy) and row.byzrun_numpy_ms > 0


def test_bench_against_byzfl_says_so_when_byzfl_is_missing(monkeypatch, tmp_path, capsys):
    from byzrun.bench import byzfl as bench_byzfl

    monkeypatch.setattr(bench_byzfl, "load_byzfl", lambda: None)
    bench_byzfl.main(["--out", str(tmp_path)])
    assert capsys.readouterr().out.strip().splitlines() == [
        "bench.byzfl skipped: ByzFL is not installed (pip install -e '.[dev]')"
    ]
    assert not (tmp_path / "byzfl.csv").exists()


def test_the_worker_loop_splits_the_workers_over_threads_and_keeps_every_row():
    """With 2 torch threads the loop runs on 2 Python threads: the same rows as one thread, each the
    worker's own backward pass; a parameter the loss does not use gets a zero gradient."""
    from byzrun.worker_loop import loop_grads

    torch.manual_seed(0)
    cnn = _tiny_cnn()("auto")
    x, y = torch.randn(5, 3, 3, 32, 32), torch.randint(10, (5, 3))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        G2, L2 = cnn.worker_grads(x, y)
        assert torch.get_num_threads() == 2  # restored after the split
    finally:
        torch.set_num_threads(before)
    G1, L1 = cnn.worker_grads(x, y)
    torch.testing.assert_close(G2, G1, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(L2, L1)
    w, unused = torch.randn(4, requires_grad=True), torch.randn(2, requires_grad=True)
    xs = torch.randn(3, 4)
    G, losses = loop_grads(lambda xi, yi: (w * xi).sum() * yi, [w, unused], xs, torch.full((3,), 2.0), 2)
    assert G.shape == (3, 6) and torch.equal(G[:, 4:], torch.zeros(3, 2))
    torch.testing.assert_close(G[:, :4], 2 * xs)  # d/dw of 2 <w, x_i>
    torch.testing.assert_close(losses, 2 * xs @ w.detach())
