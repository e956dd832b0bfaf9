"""The batched worker pass: every worker's gradient in one vmapped call, equal to the plain ones."""

import pytest
import torch
import torch.nn.functional as F

from byzrun.flat_model import FlatModel
from byzrun.models import WorkerBatchNorm2d, build_model, calibrate_batchnorm
from byzrun.train import prepare, train

CPU = torch.device("cpu")


def per_worker_reference(model, x, y):
    """Plain autograd, one worker at a time (the slow, obviously correct way)."""
    rows = []
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[i]), y[i]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return torch.stack(rows)


@pytest.mark.parametrize(
    "name,shape,options",
    [
        ("mlp", (1, 28, 28), {}),
        ("cnn", (3, 32, 32), {}),
        ("wrn", (3, 32, 32), {"depth": 10, "widen": 1}),
        ("momentum_cnn", (3, 32, 32), {"dropout": 0.0}),
    ],
)
def test_batched_gradients_equal_per_worker_autograd(name, shape, options):
    torch.manual_seed(0)
    model = build_model(name, shape, 10, **options)
    flat = FlatModel(model, CPU)
    x, y = torch.randn(5, 6, *shape), torch.randint(10, (5, 6))
    G, losses = flat.worker_grads(x, y)
    model.train()
    ref = per_worker_reference(model, x, y)
    assert G.shape == (5, flat.d) and G.is_contiguous()
    torch.testing.assert_close(G, ref, rtol=1e-4, atol=1e-6)
    ref_losses = torch.stack([F.cross_entropy(model(x[i]), y[i]) for i in range(5)])
    torch.testing.assert_close(losses, ref_losses.detach())


def test_mean_of_worker_gradients_is_the_concatenated_batch_gradient():
    torch.manual_seed(1)
    model = build_model("mlp", (1, 28, 28), 10)
    flat = FlatModel(model, CPU)
    x, y = torch.randn(51, 8, 1, 28, 28), torch.randint(10, (51, 8))
    G, _ = flat.worker_grads(x, y)
    flat = torch.func.grad(flat.loss)(flat.theta, x.flatten(0, 1), y.flatten())
    torch.testing.assert_close(G.mean(0), flat, rtol=1e-5, atol=1e-7)


def test_parameters_are_views_of_theta():
    model = build_model("mlp", (1, 8, 8), 10)
    flat = FlatModel(model, CPU)
    assert flat.d == sum(p.numel() for p in model.parameters()) == 64 * 100 + 100 + 100 * 10 + 10
    flat.theta.zero_()
    assert all(bool((p == 0).all()) for p in model.parameters())


def test_batchnorm_uses_each_workers_own_statistics_and_leaves_buffers_alone():
    torch.manual_seed(2)
    model = build_model("wrn", (3, 32, 32), 10, depth=10, widen=1)
    flat = FlatModel(model, CPU)
    bn = next(mod for mod in model.modules() if isinstance(mod, WorkerBatchNorm2d))
    before = bn.running_mean.clone()
    # two workers whose inputs differ in scale: shared statistics would mix them
    x = torch.stack([torch.randn(4, 3, 32, 32), 3.0 * torch.randn(4, 3, 32, 32) + 1.0])
    y = torch.randint(10, (2, 4))
    _, losses = flat.worker_grads(x, y)
    model.train()
    with torch.no_grad():
        own = torch.stack([F.cross_entropy(model(x[i]), y[i]) for i in range(2)])
        shared = F.cross_entropy(model(x.flatten(0, 1)), y.flatten(), reduction="none").view(2, 4).mean(1)
    torch.testing.assert_close(losses, own)
    assert not torch.allclose(losses, shared, rtol=1e-3)
    assert torch.equal(bn.running_mean, before)


def test_calibrate_batchnorm_averages_batch_statistics():
    torch.manual_seed(3)
    model = build_model("wrn", (3, 32, 32), 10, depth=10, widen=1)
    first_bn = model.blocks[0].bn1  # sees the stem convolution's output
    batches = [torch.randn(4, 3, 32, 32) + i for i in range(3)]
    calibrate_batchnorm(model, batches)
    stem = [model.conv1(b).detach() for b in batches]
    expected_mean = torch.stack([s.mean(dim=(0, 2, 3)) for s in stem]).mean(0)
    expected_var = torch.stack([s.var(dim=(0, 2, 3)) for s in stem]).mean(0)
    torch.testing.assert_close(first_bn.running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first_bn.running_var, expected_var, rtol=1e-4, atol=1e-5)
    assert model.training  # restored


def test_three_rounds_with_m0_and_mean_equal_plain_sgd_on_the_concatenated_batch(digits_cfg):
    """The whole loop (sampling, batched pass, mean, server momentum) against torch.optim.SGD."""
    cfg = digits_cfg("rounds=3", "eval_every=3", "lr=0.05", "momentum.beta=0.9", "weight_decay=0.01")
    setup = prepare(cfg)
    init = setup.model.theta.clone()
    fixed = [torch.randint(len(setup.data.train_y), (cfg.n, cfg.batch_size)) for _ in range(3)]
    draws = iter(fixed)
    setup.sampler.next = lambda: next(draws)
    train(setup)

    torch.manual_seed(0)
    ref = build_model("mlp", (1, 8, 8), 10)
    torch.nn.utils.vector_to_parameters(init, ref.parameters())
    opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    for idx in fixed:
        opt.zero_grad()
        x, y = setup.data.train_x[idx.flatten()], setup.data.train_y[idx.flatten()]
        F.cross_entropy(ref(x), y).backward()
        opt.step()
    torch.testing.assert_close(setup.model.theta, torch.nn.utils.parameters_to_vector(ref.parameters()))


def test_cifar_cnn_first_convolution_is_xavier_uniform_as_the_alie_code():
    torch.manual_seed(0)
    model = build_model("cnn", (3, 32, 32), 10)
    torch.manual_seed(0)
    reference = torch.nn.Conv2d(3, 16, 3)
    torch.nn.init.xavier_uniform_(reference.weight)
    assert torch.equal(model.conv1.weight, reference.weight)
