"""Where byzrun's config groups live: conf/ beside the package (one definition for every reader)."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
