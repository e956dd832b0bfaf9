"""Rounds per model, then every rule (`python -m byzrun.bench`, the first step of `make bench`). Prints
tables, writes them as CSV, and one machine-readable line per model and per rule.

1. Honest gradients of one round, per model (n=51 workers, batch 128 each; the WideResNet at a size
   the device can run), four ways, timed in one process and interleaved (every repeat times each way
   once, so machine noise hits all alike; the best of the repeats counts):
     chosen  byzrun's path: FlatModel with worker_chunk=auto (on a CPU, conv models: a loop of backward
             passes split over the threads, NHWC inputs; byzrun.chunking)
     full    all n workers in one vmap pass (worker_chunk=null)
     loop    a plain Python loop of n ordinary backward passes (the peers' way)
     single  one ordinary backward pass over the same n*b samples (the limit)
   Line: `model=cnn chunk=1 chosen_over_loop=1.29 chosen_over_full=2.45 chosen_time_over_single=0.52`,
   where chosen_over_X = time(X) / time(chosen) (a speed-up: > 1 is faster) and
   chosen_time_over_single = time(chosen) / time(single) (the cost over the limit: 1.0 is ideal).
2. Every aggregation rule at n=51, f=12 for d=79,510 and 1e6 (byzrun.bench.aggregation), with
   simple reference code for some rules (every rule against the code before the speed work:
   byzrun.bench.before).
   Line: `rule=krum d=79510 ms=3.10 speedup=...`.
3. On a CPU, the cost of deterministic=true (byzrun.reproducible) on byzrun's round for the MLP and the
   CNN: rounds/s pinned over the default, each setting in its own process (the pins are read when torch
   loads). Line: `model=cnn deterministic_speed=0.45 deterministic_speed_1thread=0.8` (< 1: slower).

    python -m byzrun.bench [--device cpu] [--out bench/out] [--models mlp cnn wrn] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from byzrun.flat_model import FlatModel
from byzrun.models import build_model

#: per model: input shape, classes, model options on the CPU and on CUDA, batch per worker (CPU, CUDA)
MODELS = {
    "mlp": ((1, 28, 28), 10, {}, {}, (128, 128)),
    "cnn": ((3, 32, 32), 10, {}, {}, (128, 128)),
    # WideResNet-40-4 is the paper's; on a CPU a WRN-10-1 with batch 32 keeps a round to seconds
    "wrn": ((3, 32, 32), 100, {"depth": 10, "widen": 1}, {"depth": 40, "widen": 4}, (32, 128)),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_times(fns: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Best wall time (s) of each fn over `repeats` interleaved rounds, after one warm-up call each; NaN
    for a way that runs out of GPU memory (all workers in one pass of the WideResNet, say)."""
    best = dict.fromkeys(fns, float("inf"))
    for name, fn in fns.items():
        try:
            fn()
        except torch.cuda.OutOfMemoryError:
            best[name] = float("nan")
            torch.cuda.empty_cache()
    for _ in range(repeats):
        for name, fn in fns.items():
            if best[name] != best[name]:
                continue
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def gradient_round(model_name: str, device: torch.device, n: int = 51, repeats: int = 5, **flags) -> dict:
    """One model's round four ways (module docstring); flags: GPU options for FlatModel."""
    in_shape, classes, cpu_opts, gpu_opts, (b_cpu, b_gpu) = MODELS[model_name]
    options, b = (gpu_opts, b_gpu) if device.type == "cuda" else (cpu_opts, b_cpu)
    torch.manual_seed(0)
    model = build_model(model_name, in_shape, classes, **options)
    chosen = FlatModel(model, device, "auto", **flags)
    full = FlatModel(model, device, None, **flags)
    x = torch.randn(n, b, *in_shape, device=device)
    y = torch.randint(classes, (n, b), device=device)
    flat_x, flat_y = x.flatten(0, 1), y.flatten()
    params = list(model.parameters())

    def single():  # one ordinary backward over all n*b samples: the limit
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(flat_x), flat_y).backward()

    def loop():  # what most peer codebases do: one backward per worker
        G = torch.empty(n, chosen.d, device=device)
        for i in range(n):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[i]), y[i]).backward()
            torch.cat([p.grad.reshape(-1) for p in params], out=G[i])
        return G

    model.train()
    ways = {"chosen": lambda: chosen.worker_grads(x, y), "full": lambda: full.worker_grads(x, y)}
    ways |= {"loop": loop, "single": single}
    t = best_times(ways, repeats, device)
    options_text = ",".join(f"{k}={v}" for k, v in options.items())
    return {
        "model": model_name + (f"({options_text})" if options_text else ""),
        "key": model_name,
        "d": chosen.d,
        "n": n,
        "b": b,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "chunk": chosen.chunk_used,
        **{f"{k}_ms": 1e3 * v for k, v in t.items()},
        "chosen_over_loop": t["loop"] / t["chosen"],
        "chosen_over_full": t["full"] / t["chosen"],
        "chosen_time_over_single": t["chosen"] / t["single"],
    }


def chosen_round_ms(models: list[str], repeats: int, deterministic: bool, threads: int | None) -> dict:
    """Best time (ms) of byzrun's honest-gradient round per model (CPU shapes of MODELS, n=51), in this
    process as its environment pinned it; deterministic: torch's switches of a deterministic run."""
    from byzrun import reproducible

    if deterministic:
        reproducible.pin_torch()
    elif threads:
        torch.set_num_threads(threads)
    device, times = torch.device("cpu"), {}
    for name in models:
        in_shape, classes, options, _, (b, _) = MODELS[name]
        torch.manual_seed(0)
        model = FlatModel(build_model(name, in_shape, classes, **options), device, "auto")
        x, y = torch.randn(51, b, *in_shape), torch.randint(classes, (51, b))
        round_ = partial(model.worker_grads, x, y)
        times[name] = 1e3 * best_times({"chosen": round_}, repeats, device)["chosen"]
    return times


def deterministic_cost(models: list[str], repeats: int = 3, alternations: int = 2) -> pd.DataFrame:
    """The cost of deterministic=true on the CPU: rounds per second pinned over the default (all threads)
    and over the default on one thread (what is left once the thread count is equal). The pins are read
    when torch loads, so each setting times in its own process; the processes alternate and the best
    counts, so that machine noise hits all alike."""
    from byzrun import reproducible

    settings = {  # name: (environment added, deterministic, threads)
        "default": ({}, False, None),
        "default_1thread": ({}, False, 1),
        "deterministic": ({**reproducible.PINNED_ENV, reproducible.MARKER: "1"}, True, None),
    }
    clean = {k: v for k, v in os.environ.items() if k not in {*reproducible.PINNED_ENV, reproducible.MARKER}}
    best: dict[str, dict[str, float]] = {name: {} for name in settings}
    for _ in range(alternations):
        for name, (env, deterministic, threads) in settings.items():
            code = (
                "import json, sys; from byzrun.bench.rounds import chosen_round_ms; "
                f"print(json.dumps(chosen_round_ms({models!r}, {repeats}, {deterministic}, {threads})))"
            )
            done = subprocess.run(
                [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True
            )
            for model, ms in json.loads(done.stdout.splitlines()[-1]).items():
                best[name][model] = min(best[name].get(model, float("inf")), ms)
    rows = []
    for model in models:
        ms = {name: best[name][model] for name in settings}
        rows.append(
            {
                "model": model,
                "key": model,
                "threads": torch.get_num_threads(),
                **{f"{name}_ms": v for name, v in ms.items()},
                "deterministic_speed": ms["default"] / ms["deterministic"],
                "deterministic_speed_1thread": ms["default_1thread"] / ms["deterministic"],
            }
        )
    return pd.DataFrame(rows)


def machine_line(row: dict, keys: list[str], lead: str) -> str:
    parts = [f"{lead}={row[lead] if lead != 'model' else row['key']}"]
    for key in keys:
        value = row.get(key)
        if value is None or (isinstance(value, float) and value != value):
            continue
        parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per round timing")
    parser.add_argument("--agg-repeats", type=int, default=15)
    parser.add_argument("--dims", type=int, nargs="+", default=[79_510, 1_000_000])
    parser.add_argument("--out", default="bench/out", help="folder of rounds.csv and aggregation.csv")
    parser.add_argument("--skip-aggregation", action="store_true")
    parser.add_argument(
        "--skip-deterministic", action="store_true", help="skip the cost of deterministic=true"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 250)

    rows = [gradient_round(name, device, repeats=args.repeats) for name in args.models]
    table = pd.DataFrame(rows).drop(columns="key")
    print(
        f"Honest-gradient round, n=51 ({device}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, best of {args.repeats} interleaved):"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    table.to_csv(out / "rounds.csv", index=False)
    for row in rows:
        print(
            machine_line(
                row,
                ["chunk", "chosen_over_loop", "chosen_over_full", "chosen_time_over_single", "chosen_ms"],
                "model",
            )
        )
    if device.type == "cpu" and not args.skip_deterministic:
        cost = deterministic_cost([m for m in args.models if m != "wrn"], repeats=args.repeats)
        print(
            "\ndeterministic=true on the CPU (byzrun.reproducible), byzrun's round: rounds/s pinned over the "
            f"default on {torch.get_num_threads()} threads and on one (best of separate processes):"
        )
        print(cost.drop(columns="key").to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        cost.drop(columns="key").to_csv(out / "deterministic.csv", index=False)
        for row in cost.to_dict("records"):
            print(machine_line(row, ["deterministic_speed", "deterministic_speed_1thread"], "model"))
    if not args.skip_aggregation:
        from byzrun.bench.aggregation import aggregation_table

        print(f"\nAggregation rules at n=51, f=12 ({device}); naive: simple torch code timed in the same run")
        agg = aggregation_table(dims=tuple(args.dims), device=str(device), repeats=args.agg_repeats)
        print(agg.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.2f}"))
        agg.to_csv(out / "aggregation.csv", index=False)
        for row in agg.to_dict("records"):
            row["ms"] = row["ms_median"]
            print(machine_line(row, ["d", "ms", "speedup"], "rule"))
    print(
        f"\nwritten: {out / 'rounds.csv'}" + ("" if args.skip_aggregation else f", {out / 'aggregation.csv'}")
    )


if __name__ == "__main__":
    main()
