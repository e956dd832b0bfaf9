"""OmegaConf resolvers for the presets, registered when byzrun is imported (as m's default is).

- byzrun_add: `${byzrun_add:10,${m}}` is 10 + m. ByzFL's benchmark fixes the honest clients and sweeps
  the Byzantine ones, so its preset (conf/experiment/byzfl_heatmap_mnist.yaml) sweeps m and sets
  `n: ${byzrun_add:10,${m}}`. The resolved config (hash, folder name, config.yaml) holds the number.
"""

from omegaconf import OmegaConf


def add(*terms: int) -> int:
    return sum(int(term) for term in terms)


if not OmegaConf.has_resolver("byzrun_add"):
    OmegaConf.register_new_resolver("byzrun_add", add)
