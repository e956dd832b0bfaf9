"""byzrun: reproduce Byzantine-robust distributed SGD papers, one command per table."""

__version__ = "0.1.0"
