"""Input-shape unification: bilinear resize and channel repetition.

Configured by two arguments that mirror CLArena's: ``resize`` (the target
``[H, W]``) and ``repeat_channels`` (the target channel count; a 1-channel image is
repeated, an image that already has that many channels is left alone). Applied
once, when data is loaded, to whole tensors.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mtlcli.errors import ConfigError


def check_resize(resize: Any) -> tuple[int, int] | None:
    """``resize`` as ``(H, W)``; an int means a square; None means no resize."""
    if resize is None:
        return None
    if isinstance(resize, int) and not isinstance(resize, bool):
        resize = [resize, resize]
    if (
        isinstance(resize, (str, bytes))
        or not hasattr(resize, "__len__")
        or len(resize) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in resize)
    ):
        raise ConfigError(f"resize must be [height, width] of positive integers, got {resize!r}")
    return int(resize[0]), int(resize[1])


def check_repeat_channels(repeat_channels: Any) -> int | None:
    if repeat_channels is None:
        return None
    if isinstance(repeat_channels, bool) or not isinstance(repeat_channels, int) or repeat_channels < 1:
        raise ConfigError(f"repeat_channels must be a positive integer, got {repeat_channels!r}")
    return repeat_channels


def unified_shape(
    shape: tuple[int, int, int], resize: tuple[int, int] | None, repeat_channels: int | None, what: str
) -> tuple[int, int, int]:
    """The (C, H, W) an input of ``shape`` has after the transforms; ConfigError if it cannot be repeated."""
    c, h, w = shape
    if repeat_channels is not None and c != repeat_channels:
        if c != 1:
            raise ConfigError(
                f"{what} has {c} channels, which cannot be repeated to {repeat_channels} "
                "(repeat_channels only repeats 1-channel images)"
            )
        c = repeat_channels
    if resize is not None:
        h, w = resize
    return (c, h, w)


def apply_transforms(x: torch.Tensor, resize: tuple[int, int] | None, repeat_channels: int | None) -> torch.Tensor:
    """Resize (bilinear, ``align_corners=False``) then repeat channels of a (N, C, H, W) batch."""
    if resize is not None and tuple(x.shape[-2:]) != tuple(resize):
        if len(x):
            x = F.interpolate(x, size=resize, mode="bilinear", align_corners=False)
        else:  # interpolate rejects empty batches
            x = x.new_empty((0, x.shape[1], *resize))
    if repeat_channels is not None and x.shape[1] != repeat_channels:
        x = x.expand(-1, repeat_channels, -1, -1).contiguous()
    return x
