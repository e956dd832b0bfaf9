"""byzrun's sweeper where Hydra looks for sweepers (it loads plugins from the hydra_plugins package
only); the code is byzrun/covering_sweeper.py."""

from byzrun.covering_sweeper import CoveringSweeper as _Sweeper


class CoveringSweeper(_Sweeper):
    """byzrun.covering_sweeper.CoveringSweeper: Hydra's basic sweeper, checking a covering sample."""
