"""Errors that the CLI turns into one clear line (no traceback)."""


class ByzrunError(Exception):
    """A problem the user can fix; the message names the fix."""


class ConfigError(ByzrunError):
    """Invalid configuration, caught before training starts."""


class BoundError(ConfigError):
    """m is outside the robustness bound of the chosen rule.

    In a sweep this run is skipped with a log line instead of aborting the sweep.
    """


class DatasetError(ByzrunError):
    """A dataset is missing or corrupt."""
