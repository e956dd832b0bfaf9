"""Hydra's errors about the command line, each turned into one line `byzrun: error: ...` (exit 2).

Hydra prints its own multi-line messages (and exits 1) for an unknown group option (`defense=foo`), a
key a group does not have (`defense.foo=1`) or an override it cannot parse. byzrun.cli runs Hydra
inside `translated()`, with HYDRA_FULL_ERROR=1 so that those errors reach it as exceptions, and this
module words them: the choices, and the closest one when it looks like a typo.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException

from byzrun.errors import ConfigError
from byzrun.paths import CONF_DIR


def fail(message: str) -> None:
    """Print one line on stderr and exit with status 2 (bad input)."""
    print(f"byzrun: error: {message}", file=sys.stderr)
    sys.exit(2)


def suggestion(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def group_options(group: str) -> list[str]:
    """The options of a config group found under conf/ (nested groups as `table1/krum`)."""
    folder = CONF_DIR / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def unknown_option(err: MissingConfigException) -> str:
    missing = err.missing_cfg_file or ""
    if "/" not in missing:
        return first_line(err)
    group, option = missing.rsplit("/", 1)
    choices = list(err.options or [])
    if not choices:  # a nested group (cell=table1/foo): list every option of the top group
        group, option = missing.split("/", 1)
        choices = group_options(group)
    noun = group.split("/")[-1]
    listing = f"; choose one of: {', '.join(choices)}" if choices else ""
    return f"unknown {noun} {option!r}{suggestion(option, choices)}{listing}"


def node_keys(key: str, argv: list[str]) -> tuple[str, list[str]] | None:
    """The keys beside `key` (`defense.foo` -> the defense group's keys), from the config composed with
    the other overrides; None when that cannot be done (e.g. sweeps in them)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig, OmegaConf

    parent = key.rpartition(".")[0]
    overrides = [a for a in argv if not a.startswith("-") and a.split("=", 1)[0].lstrip("+~") != key]
    try:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except Exception:
        return None
    if not isinstance(node, DictConfig):
        return None
    keys = [str(k) for k in node.keys() if k != "hydra"]
    target = str(node.get("_target_", "")).rpartition(".")[2]
    return (f"{parent} {target}" if target else parent), [k for k in keys if k != "_target_"]


def unknown_key(err: ConfigCompositionException, argv: list[str]) -> str | None:
    match = re.match(r"Could not override '([^']+)'", str(err))
    if not match:
        return None
    key = match.group(1)
    found = node_keys(key, argv)
    if found is None:
        return f"unknown key {key!r}"
    parent, keys = found
    leaf = key.rpartition(".")[2]
    where = f"; {parent} has: {', '.join(keys)}" if parent else f"; the keys are: {', '.join(keys)}"
    return f"unknown key {key!r}{suggestion(leaf, keys)}{where}"


#: the keys that `+key=value` may add: byzrun reads these although conf/ does not hold them
ADDABLE_KEYS = ("plan",)


def check_added_keys(argv: list[str]) -> None:
    """`+rouds=5` adds a key nobody reads and would run 300 rounds: unless the key is one of
    ADDABLE_KEYS or Hydra's own (`+hydra.launcher.x=...`), `+key` or `++key` for a key the config does
    not have is the same one-line error as `rouds=5`."""
    for arg in argv:
        if not arg.startswith("+") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+")
        if key in ADDABLE_KEYS or key.split(".", 1)[0] == "hydra":
            continue
        found = node_keys(key, argv)
        if found is None:
            continue  # the config cannot be composed without it: Hydra's own error follows
        parent, keys = found
        leaf = key.rpartition(".")[2]
        if leaf in keys:
            continue  # an existing key: `++key` overrides it, `+key` gets Hydra's error
        where = f"; {parent} has: {', '.join(keys)}" if parent else f"; the keys are: {', '.join(keys)}"
        extra = f" (`+` adds only {', '.join('+' + k for k in ADDABLE_KEYS)})"
        fail(f"unknown key {key!r}{suggestion(leaf, keys)}{extra}{where}")


def first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def describe(err: HydraException, argv: list[str]) -> str:
    """One line for an error Hydra raised while reading the command line."""
    if isinstance(err, MissingConfigException):
        return unknown_option(err)
    text = str(err)
    if text.startswith("Ambiguous value for argument"):
        arg = text.split("'", 2)[1]
        return f"{arg!r} holds a comma: add -m to sweep over its values, or write key=[a,b] for a list"
    if isinstance(err, ConfigCompositionException):
        message = unknown_key(err, argv)
        if message:
            return message
    if type(err).__name__ == "OverrideParseException":
        return f"cannot parse the command line ({first_line(err)}); write overrides as key=value"
    cause = f" ({first_line(err.__cause__)})" if err.__cause__ else ""
    return first_line(err) + cause


def raised_by_hydra(err: BaseException) -> bool:
    """Whether err was raised inside Hydra's own code (not in a run)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}hydra{os.sep}" in tb.tb_frame.f_code.co_filename


@contextmanager
def translated(argv: list[str]) -> Iterator[None]:
    """Run Hydra with its command-line errors raised (HYDRA_FULL_ERROR=1) and turned into one line."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except ValueError as err:  # Hydra's word for `defense=5` or for `-m --cfg job`
        if not raised_by_hydra(err):
            raise
        hint = "; write group=<option name>" if "Config group override" in str(err) else ""
        fail(f"{first_line(err)}{hint}")
    except HydraException as err:
        if isinstance(err.__cause__, ConfigError) or isinstance(err, ConfigError):
            fail(str(err.__cause__ or err))
        fail(describe(err, argv))
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before
