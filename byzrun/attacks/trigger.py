"""The backdoor trigger: a rectangle of pixels set to one value (ALIE paper, Sec. 4.2)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from byzrun.attacks import options
from byzrun.errors import ConfigError


class Trigger:
    """size [h, w] (or one int for a square), pos [row, col] of its upper-left corner, value `max`
    (the normalised value of maximal raw intensity per channel, Data.pixel_max) or a number (a
    normalised value for every channel). The paper: the upper-left 5x5 pixels at maximal intensity."""

    def __init__(self, size: Any = 5, pos: Any = (0, 0), value: Any = "max"):
        self.raw = (size, pos, value)

    def check(self, in_shape: tuple[int, ...]) -> None:
        size, pos, value = self.raw
        h, w = (options.integer("trigger_size", s, low=1) for s in options.pair("trigger_size", size))
        r, c = (options.integer("trigger_pos", p, low=0) for p in options.pair("trigger_pos", pos))
        if value != "max":
            options.number("trigger_value", value)
        if len(in_shape) != 3:
            raise ConfigError(
                f"the backdoor trigger needs images [C, H, W]; this dataset's inputs are {in_shape}"
            )
        H, W = in_shape[1:]
        if r + h > H or c + w > W:
            raise ConfigError(
                f"attack.trigger_size={h}x{w} at attack.trigger_pos=[{r}, {c}] does not fit in "
                f"{H}x{W} images; "
                f"use a smaller trigger_size or move trigger_pos"
            )
        self.box = (r, c, h, w)

    def apply(self, x: Tensor, data) -> Tensor:
        """A triggered copy of the images x [B, C, H, W]."""
        r, c, h, w = self.box
        value = self.raw[2]
        out = x.clone()
        patch = out[:, :, r : r + h, c : c + w]
        if value == "max":
            patch.copy_(data.pixel_max.to(dtype=x.dtype, device=x.device).expand_as(patch))
        else:
            patch.fill_(float(value))
        return out
