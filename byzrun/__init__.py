"""byzrun: reproduce Byzantine-robust distributed SGD papers, one command per table."""

__version__ = "0.1.0"

from byzrun import default_m as _default_m  # noqa: E402,F401  registers the resolver of m's default
from byzrun import resolvers as _resolvers  # noqa: E402,F401  registers the presets' resolvers
