"""How far `gpu.bf16=true` moves the honest gradients, and the statistics ALIE reads from them.

    python -m byzrun.bench.bf16 [--out bench/out] [--device cpu]

One round of n=51 workers' gradients at the initial parameters, in float32 and under bfloat16 autocast
(FlatModel's bf16), on the same batches: the MLP on scikit-learn's digits (batch 128 per worker, drawn
with replacement from the training set), and the CNN and the WideResNet on random inputs (the round
bench's shapes, byzrun.bench.rounds.MODELS). Per model, writes <out>/bf16.csv:

    grad_rel_error   ||G_bf16 - G|| / ||G|| over the [n, d] matrix
    mean_rel_error   the same for the mean over workers (mu)
    std_ratio_p10, _p50, _p90   percentiles over coordinates of sigma_bf16 / sigma (unbiased std over
                     workers; coordinates with sigma = 0 left out)
    small_mu_share, small_mu_share_bf16   share of coordinates with |mu| < sigma, without and with bf16

These are differences in what the rules and ALIE see, not in accuracy; a bf16 run is its own config.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from byzrun.bench.rounds import MODELS
from byzrun.flat_model import FlatModel
from byzrun.models import build_model
from byzrun.paths import CONF_DIR


def digits_batches(n: int, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n workers' batches of b training digits each, normalised as `dataset=digits` runs them."""
    from omegaconf import OmegaConf

    from byzrun.data import load_data

    data = load_data(OmegaConf.load(CONF_DIR / "dataset" / "digits.yaml"), torch.device("cpu"))
    pick = torch.randint(len(data.train_y), (n, b), generator=torch.Generator().manual_seed(seed))
    return data.train_x[pick], data.train_y[pick]


def compare(G: torch.Tensor, H: torch.Tensor) -> dict:
    """The module docstring's columns for float32 gradients G and bf16 gradients H, in float64."""
    G, H = G.double(), H.double()
    mu, mu_h = G.mean(0), H.mean(0)
    sigma, sigma_h = G.std(0), H.std(0)
    kept = sigma > 0
    ratio = (sigma_h[kept] / sigma[kept]).float()
    p10, p50, p90 = torch.quantile(ratio, torch.tensor([0.1, 0.5, 0.9])).tolist()
    return {
        "grad_rel_error": float((H - G).norm() / G.norm()),
        "mean_rel_error": float((mu_h - mu).norm() / mu.norm()),
        "std_ratio_p10": p10,
        "std_ratio_p50": p50,
        "std_ratio_p90": p90,
        "small_mu_share": float((mu.abs() < sigma).double().mean()),
        "small_mu_share_bf16": float((mu_h.abs() < sigma_h).double().mean()),
    }


def model_row(name: str, device: torch.device, n: int = 51) -> dict:
    in_shape, classes, options, _, (b, _) = MODELS[name]
    torch.manual_seed(0)
    if name == "mlp":
        in_shape, b = (1, 8, 8), 128
        x, y = digits_batches(n, b)
    else:
        x, y = torch.randn(n, b, *in_shape), torch.randint(classes, (n, b))
    module = build_model(name, in_shape, classes, **options)
    x, y = x.to(device), y.to(device)
    G, _ = FlatModel(module, device, "auto", channels_last=False).worker_grads(x, y)
    H, _ = FlatModel(module, device, "auto", channels_last=False, bf16=True).worker_grads(x, y)
    inputs = "digits" if name == "mlp" else "random"
    return {"model": name, "inputs": inputs, "n": n, "b": b, "d": G.shape[1], **compare(G, H)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="bench/out", help="folder of bf16.csv")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)
    table = pd.DataFrame([model_row(name, torch.device(args.device)) for name in args.models])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(args.out) / "bf16.csv", index=False)
    print(f"written: {Path(args.out) / 'bf16.csv'}")


if __name__ == "__main__":
    main()
