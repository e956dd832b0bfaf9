"""`make bench`: speed of the hot path.

1. Honest gradients of one round (MNIST MLP, n=51 workers, batch 128 each): the batched pass, and a
   Python loop over workers, each divided by one ordinary backward pass over the same n*b samples.
   Ratios are measured in one process, back to back, so machine noise affects all three alike.
   On a GPU the same for the WideResNet-40-4 (CIFAR-100).
2. The aggregation table (time of each rule at n=51, f=12), from byzrun.bench_aggregation.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from byzrun.flat_model import FlatModel
from byzrun.models import build_model


def best_time(fn, repeats: int, device: torch.device) -> float:
    """Minimum wall time of fn over `repeats` calls (after one warm-up), in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def gradient_round(model_name: str, in_shape, classes: int, n: int, b: int, device, repeats: int, chunk=None):
    torch.manual_seed(0)
    model = build_model(model_name, in_shape, classes)
    flat = FlatModel(model, device, worker_chunk=chunk)
    x = torch.randn(n, b, *in_shape, device=device)
    y = torch.randint(classes, (n, b), device=device)
    flat_x, flat_y = x.flatten(0, 1), y.flatten()
    params = list(model.parameters())

    def single_pass():  # one ordinary backward over all n*b samples: the lower bound
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(flat_x), flat_y).backward()

    def python_loop():  # what most peer codebases do: one backward per worker
        G = torch.empty(n, flat.d, device=device)
        for i in range(n):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[i]), y[i]).backward()
            torch.cat([p.grad.reshape(-1) for p in params], out=G[i])
        return G

    model.train()
    t_single = best_time(single_pass, repeats, device)
    t_batched = best_time(lambda: flat.worker_grads(x, y), repeats, device)
    t_loop = best_time(python_loop, repeats, device)
    return {
        "model": model_name,
        "d": flat.d,
        "n": n,
        "b": b,
        "device": str(device),
        "single_ms": 1e3 * t_single,
        "batched_ms": 1e3 * t_batched,
        "loop_ms": 1e3 * t_loop,
        "batched/single": t_batched / t_single,
        "loop/single": t_loop / t_single,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-aggregation", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    import pandas as pd

    rows = [gradient_round("mlp", (1, 28, 28), 10, 51, 128, device, args.repeats)]
    if device.type == "cuda":  # WRN-40-4 at n=51 needs a GPU; chunks keep activations in memory
        rows.append(gradient_round("wrn", (3, 32, 32), 100, 51, 128, device, 5, chunk=8))
    pd.set_option("display.width", 200)
    print(
        f"Honest-gradient round vs one ordinary backward pass on the same n*b samples "
        f"({device}, {torch.get_num_threads()} threads, best of {args.repeats}):"
    )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if not args.skip_aggregation:
        from byzrun.bench_aggregation import aggregation_table

        print(
            f"\nAggregation rules at n=51, f=12 ({device}); naive: simple torch code timed in the same run:"
        )
        table = aggregation_table(device=str(device))
        print(table.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
