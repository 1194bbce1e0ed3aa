"""Batched image augmentations for contrastive (SimCLR) training.

Whole batches at once on whatever device the batch lives on: no PIL, no per-image Python loop. All
randomness is drawn from the `torch.Generator` passed in, in a fixed order that depends only on the
batch shape and `noise_std > 0`, so the same generator state gives the same views.
"""

from __future__ import annotations

import math
from typing import TypedDict, Unpack

import torch
import torch.nn.functional as F

# One convention for both affine_grid and grid_sample: with align_corners=False an identity
# transform samples every pixel exactly at its centre, so a full-size, unflipped crop is the input.
_ALIGN_CORNERS = False


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    crop_scale: tuple[float, float] = (0.4, 1.0),
    flip: bool = True,
    jitter: float = 0.4,
    noise_std: float = 0.0,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """One random view of each image in x [B, C, H, W] (float, normalised), same shape out.

    - random resized crop: area fraction ~ U(crop_scale), aspect ratio log-uniform in `ratio`,
      position uniform over where the crop fits inside the image, resized back to H x W (bilinear);
    - random horizontal flip with probability 1/2 (if `flip`);
    - brightness (additive shift ~ U(-jitter, jitter), in units of the normalised pixel scale) and
      contrast (scale around the image mean by ~ U(1 - jitter, 1 + jitter)), drawn per sample and,
      for 3-channel input, per channel;
    - Gaussian pixel noise of std `noise_std` (if positive).
    """
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor [B, C, H, W], got {x.dtype} {tuple(x.shape)}")
    lo, hi = crop_scale
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be non-negative, got {noise_std}")

    b, c = x.shape[:2]
    jitter_channels = c if c == 3 else 1

    def uniform(*shape: int) -> torch.Tensor:
        # Draw on the generator's device (a CPU generator cannot fill CUDA memory), then move.
        u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float32)
        return u.to(device=x.device, dtype=x.dtype)

    # Fixed draw order, each drawn even when its option is off, so flags do not shift the stream.
    area = lo + (hi - lo) * uniform(b)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * uniform(b)
    pos = uniform(b, 2)
    flip_u = uniform(b)
    bright_u = uniform(b, jitter_channels)
    contrast_u = uniform(b, jitter_channels)

    # Crop width/height as fractions of the image, area preserved; if one side would exceed the
    # image, pin it to the full side and give the other the whole area (so scale 1 means no crop).
    r = log_r.exp()
    w = (area * r).sqrt()
    h = (area / r).sqrt()
    w, h = (
        torch.where(w > 1, torch.ones_like(w), torch.where(h > 1, area, w)),
        torch.where(h > 1, torch.ones_like(h), torch.where(w > 1, area, h)),
    )
    # Crop centre in normalised [-1, 1] coordinates, anywhere the crop stays inside the image.
    cx = (2 * pos[:, 0] - 1) * (1 - w)
    cy = (2 * pos[:, 1] - 1) * (1 - h)
    sign = torch.where(flip_u < 0.5, -1.0, 1.0).to(x.dtype) if flip else torch.ones_like(w)

    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=_ALIGN_CORNERS)
    out = F.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=_ALIGN_CORNERS
    )

    if jitter > 0:
        shift = ((2 * bright_u - 1) * jitter).view(b, jitter_channels, 1, 1)
        scale = (1 + (2 * contrast_u - 1) * jitter).view(b, jitter_channels, 1, 1)
        mean = out.mean(dim=(2, 3), keepdim=True)
        out = (out - mean) * scale + mean + shift
    if noise_std > 0:
        noise = torch.randn(
            out.shape, generator=generator, device=generator.device, dtype=torch.float32
        )
        out = out + noise_std * noise.to(device=out.device, dtype=out.dtype)
    return out


class AugmentOptions(TypedDict, total=False):
    """`augment`'s keyword options, for callers that pass them on."""

    crop_scale: tuple[float, float]
    flip: bool
    jitter: float
    noise_std: float
    ratio: tuple[float, float]


def two_views(
    x: torch.Tensor, generator: torch.Generator, **kw: Unpack[AugmentOptions]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent augmentations of the same batch (the SimCLR positive pair)."""
    return augment(x, generator, **kw), augment(x, generator, **kw)
