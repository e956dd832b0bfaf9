"""`deterministic=true`: the same float results on every x86 CPU, whatever its vector instructions.

torch's CPU math picks its code path by the CPU it finds: ATen's kernels (and its random number
generators) by vector width, MKL's matrix products by ISA and cache sizes, oneDNN's convolutions by ISA
and cache sizes, numpy's transcendental functions by ISA; reductions split by thread count. Each path
rounds differently, and chaotic training turns last-bit differences into points of accuracy (issue
19: ALIE runs on an AVX-512 machine and on an AVX2 one end 36 points apart). A deterministic run pins
every choice to one path:

- ATEN_CPU_CAPABILITY=avx2: ATen's AVX2 kernels, vector math from its own SLEEF copy (the default
  kernels would call the system's libm instead), on AVX-512 CPUs too. Read when torch loads.
- MKL_CBWR=COMPATIBLE: MKL's conditional numerical reproducibility on its SSE2 branch, fixed cache
  sizes and reduction order; the one branch MKL promises to give the same results on Intel and AMD
  CPUs (its AVX2 branch falls back to automatic dispatch on AMD). Read at MKL's first call.
- oneDNN and NNPACK off (torch.backends): convolutions go through ATen's im2col and MKL's products,
  pinned above; oneDNN would choose kernels and blockings by ISA and cache size, which no variable pins.
- NPY_DISABLE_CPU_FEATURES: numpy's AVX2 and AVX-512 variants off (the names of numpy 2.0-2.3 and of
  2.4 on; a name this numpy does not know is ignored), for the attacks' search grids (np.geomspace).
  Read when numpy loads.
- One thread, MKL_DYNAMIC=OMP_DYNAMIC=FALSE: a reduction's split, hence its rounding, depends on the
  thread count (MKL's thread-independent strict mode exists for its AVX2 branch only).
- torch.use_deterministic_algorithms (warn only): CUDA's scatter-style kernels; on a CPU nearly no-op.
  CUBLAS_WORKSPACE_CONFIG makes cuBLAS repeatable. A GPU run repeats on the same GPU model and
  software, not across GPUs: CUDA's kernels are chosen per GPU.

The variables are read once, when the libraries load: `byzrun` sets them in main() before anything
imports torch or numpy (pin_environment), and the launchers' processes (joblib, SLURM) inherit them.
A run with deterministic=true in a process that loaded torch unpinned stops with a ConfigError.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from omegaconf import DictConfig

from byzrun.errors import ConfigError

log = logging.getLogger("byzrun")

#: the environment of a deterministic run (module docstring)
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "NPY_DISABLE_CPU_FEATURES": "AVX2 FMA3 AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL X86_V3 X86_V4 "
    "AVX512_ICL AVX512_SPR",
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
}
#: set with PINNED_ENV, before torch loaded: the pins are in effect in this process and its children
MARKER = "BYZRUN_DETERMINISTIC"
THREADS = 1
CAPABILITY = "AVX2"  # what torch.backends.cpu.get_cpu_capability() reports under the pin


def requested(args: list[str]) -> bool:
    """Whether the command line sets deterministic to true (alone or among a sweep's values)."""
    for arg in args:
        key, _, value = arg.lstrip("+~").partition("=")
        if key == "deterministic" and re.search(r"\btrue\b", value, re.IGNORECASE):
            return True
    return False


def pin_environment(env: dict | None = None) -> bool:
    """Set PINNED_ENV and the marker in `env` (os.environ), unless torch is already loaded here (then the
    libraries have read their variables: nothing is set). Returns whether it set them."""
    env = os.environ if env is None else env
    if "torch" in sys.modules or "numpy" in sys.modules:
        return False
    env.update(PINNED_ENV)
    env[MARKER] = "1"
    return True


def is_pinned(env: dict | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get(MARKER) == "1" and all(env.get(k) == v for k, v in PINNED_ENV.items())


_defaults: dict | None = None  # torch's settings before the first deterministic run changed them


def apply(cfg: DictConfig) -> None:
    """Check `deterministic` and set torch's run-time switches for this run: pinned for a deterministic
    run, torch's own (as before any deterministic run in this process) otherwise."""
    import torch

    global _defaults
    deterministic = cfg.get("deterministic", False)
    if not isinstance(deterministic, bool):
        raise ConfigError(f"deterministic must be true or false, got {deterministic!r}")
    if not deterministic:
        if _defaults is not None:  # a sweep mixing deterministic=true and false in one process
            torch.set_num_threads(_defaults["threads"])
            torch.backends.mkldnn.enabled = _defaults["mkldnn"]
            torch.backends.nnpack.set_flags(_defaults["nnpack"])
            torch.use_deterministic_algorithms(False)
        return
    if not is_pinned():
        raise ConfigError(
            "deterministic=true pins the math libraries before torch loads: give it on the byzrun command "
            "line (`byzrun deterministic=true ...`), not from Python after importing torch"
        )
    if _defaults is None:
        _defaults = {"threads": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.enabled}
        _defaults["nnpack"] = torch.backends.nnpack.set_flags(False)[0]  # returns the former flags
    pin_torch()
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != CAPABILITY:
        log.warning(
            "deterministic: this CPU runs torch's %s kernels, not %s: its results match other CPUs "
            "without %s only",
            capability,
            CAPABILITY,
            CAPABILITY,
        )
    log.info("deterministic: %s kernels, MKL_CBWR=%s, %d thread", capability, PINNED_ENV["MKL_CBWR"], THREADS)


def pin_torch() -> None:
    """torch's run-time switches of a deterministic run (module docstring)."""
    import torch

    torch.set_num_threads(THREADS)
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def summary_fields(cfg: DictConfig) -> dict:
    """summary.csv columns saying which code path the run took."""
    import torch

    return {
        "deterministic": bool(cfg.get("deterministic", False)),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }
