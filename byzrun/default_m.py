"""m's default: how many workers are Byzantine when the command line does not say.

conf/config.yaml sets `m: ${byzrun_default_m:${n},${attack._target_}}`, a resolver registered here
(byzrun/__init__.py imports this module, so every reader of the config has it). Without an attack, 0;
with one, floor((n-3)/4), the largest m that Bulyan (n >= 4m+3), the strictest rule of the ALIE paper,
tolerates: the paper's 12 of n=51, so that `byzrun defense=bulyan attack=alie` runs the paper's setting.
Being a resolver, the resolved config (the hash, the folder's name, config.yaml) holds the number:
`attack=alie` and `attack=alie m=12` are the same run.
"""

from omegaconf import DictConfig, OmegaConf

RESOLVER = "byzrun_default_m"
#: the default's text in conf/config.yaml, to tell it from an m set on the command line
DEFAULT = "${" + RESOLVER + ":${n},${attack._target_}}"


def default_m(n: int, attack_target: str) -> int:
    from hydra.utils import get_class

    try:
        needs_byzantine = get_class(attack_target).needs_byzantine
    except Exception:  # an attack that cannot be found fails with its own error when it is built
        needs_byzantine = True
    return max(0, (n - 3) // 4) if needs_byzantine else 0


def is_default(cfg: DictConfig) -> bool:
    """Whether cfg's m is the default (not set on the command line or by a preset)."""
    return OmegaConf.to_container(cfg, resolve=False).get("m") == DEFAULT


if not OmegaConf.has_resolver(RESOLVER):
    OmegaConf.register_new_resolver(RESOLVER, default_m)
