"""The `gpu.*` options, each alone and the speed-only ones together, on the WideResNet and the CNN
(bench/gpu.sh runs it on a CUDA machine).

For every option: the round time of byzrun's chosen path (worker_chunk=auto) relative to no option,
timed interleaved in one process, and how far its gradients are from those without it (relative L2
error over the [n, d] matrix: 0 for the speed-only options up to float noise; tf32 and bf16 change
results). One line each: `option=bf16 model=wrn speedup=1.62 grad_rel_error=0.004`.

    python -m byzrun.bench.gpu_options [--device cuda] [--models wrn cnn] [--options tf32 bf16 ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from byzrun.bench.rounds import MODELS, best_times
from byzrun.flat_model import FlatModel
from byzrun.models import build_model

#: every option switched on alone (the others off: channels_last=None would turn NHWC on for CPU conv models)
OPTIONS = {
    "none": {"channels_last": False},
    "tf32": {"tf32": True, "channels_last": False},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True, "channels_last": False},
    "bf16": {"bf16": True, "channels_last": False},
    "speed_only": {"channels_last": True, "compile": True},
}


def option_rows(
    model_name: str, device: torch.device, options: list[str], n: int, batch: int | None, repeats: int
):
    in_shape, classes, cpu_opts, gpu_opts, (b_cpu, b_gpu) = MODELS[model_name]
    opts, b = (gpu_opts, b_gpu) if device.type == "cuda" else (cpu_opts, b_cpu)
    b = batch or b
    torch.manual_seed(0)
    module = build_model(model_name, in_shape, classes, **opts)
    x = torch.randn(n, b, *in_shape, device=device)
    y = torch.randint(classes, (n, b), device=device)
    models, calls = {}, {}
    for name in ["none", *[o for o in options if o != "none"]]:
        flags = dict(OPTIONS[name])
        tf32 = flags.pop("tf32", False)
        models[name] = FlatModel(module, device, "auto", **flags)

        def call(model=models[name], tf32=tf32):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            return model.worker_grads(x, y)

        calls[name] = call
    reference = calls["none"]()[0]
    errors = {name: float((call()[0] - reference).norm() / reference.norm()) for name, call in calls.items()}
    times = best_times(calls, repeats, device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return [
        {
            "option": name,
            "model": model_name,
            "n": n,
            "b": b,
            "device": str(device),
            "chunk": models[name].chunk_used,
            "ms": 1e3 * times[name],
            "speedup": times["none"] / times[name],
            "grad_rel_error": errors[name],
        }
        for name in calls
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["wrn", "cnn"], choices=list(MODELS))
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--n", type=int, default=51)
    parser.add_argument("--batch", type=int, default=None, help="per worker (default: the bench's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for model in args.models:
        rows += option_rows(model, device, args.options, args.n, args.batch, args.repeats)
    table = pd.DataFrame(rows)
    print(f"gpu.* options, round of byzrun's chosen path ({device}, torch {torch.__version__}):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(args.out) / "gpu_options.csv", index=False)
    for row in rows:
        print(
            f"option={row['option']} model={row['model']} chunk={row['chunk']} "
            f"speedup={row['speedup']:.3g} grad_rel_error={row['grad_rel_error']:.3g}"
        )


if __name__ == "__main__":
    main()
