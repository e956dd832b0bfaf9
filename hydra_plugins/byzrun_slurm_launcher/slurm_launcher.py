"""byzrun's SLURM launcher where Hydra looks for launchers (it loads plugins from the hydra_plugins
package only); the code is byzrun/slurm.py."""

from byzrun.slurm import SlurmLauncher as _Launcher


class SlurmLauncher(_Launcher):
    """byzrun.slurm.SlurmLauncher: a sweep's runs as SLURM jobs, `hydra/launcher=slurm`."""
