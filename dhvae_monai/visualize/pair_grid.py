"""Preview grids of (image, mask) pairs: the image in grey with each mask channel's outline in colour."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dhvae_monai.utils.atomic import atomic_path

__all__ = ["make_pair_grid", "save_pair_grid"]

OUTLINE_COLOURS = ((255, 40, 40), (40, 220, 40), (60, 120, 255), (255, 210, 0))


def make_pair_grid(
    pairs: torch.Tensor, image_channels: int, num_columns: int = 8, mask_threshold: float = 0.5, padding: int = 2
) -> np.ndarray:
    """
    Tile pairs into one RGB image: the first image channel in grey, each mask channel's outline in its colour
    (red, green, blue, yellow, then repeating).

    Args:
        pairs: ``[N, C_img + C_mask, H, W]``, image in [0, 1], masks binary or probabilities.
        image_channels: ``C_img``.
        num_columns: tiles per row.
        mask_threshold: probability above which a mask pixel is tumour.
        padding: black pixels between tiles.

    Returns:
        ``uint8`` array ``[rows * (H + padding), num_columns * (W + padding), 3]``.

    Raises:
        ValueError: ``pairs`` is not 4D or has no mask channel.

    Example::

        grid = make_pair_grid(generator.sample(16), image_channels=1, num_columns=4)
    """
    if pairs.ndim != 4 or pairs.shape[1] <= image_channels:
        raise ValueError(
            f"expected pairs [N, {image_channels} image + >=1 mask channels, H, W], got shape {tuple(pairs.shape)}."
        )
    pairs = pairs.detach().float().cpu()
    masks = (pairs[:, image_channels:] > mask_threshold).float()
    eroded = -F.max_pool2d(-masks, kernel_size=3, stride=1, padding=1)
    outlines = (masks - eroded) > 0
    tiles = pairs[:, :1].clamp(0, 1).repeat(1, 3, 1, 1) * 255
    for channel in range(outlines.shape[1]):
        colour = torch.tensor(OUTLINE_COLOURS[channel % len(OUTLINE_COLOURS)], dtype=tiles.dtype).view(1, 3, 1, 1)
        tiles = torch.where(outlines[:, channel : channel + 1], colour, tiles)

    count, _, height, width = tiles.shape
    num_columns = max(1, min(num_columns, count))
    num_rows = -(-count // num_columns)
    grid = torch.zeros(3, num_rows * (height + padding), num_columns * (width + padding))
    for index in range(count):
        row, column = divmod(index, num_columns)
        top, left = row * (height + padding), column * (width + padding)
        grid[:, top : top + height, left : left + width] = tiles[index]
    return grid.permute(1, 2, 0).round().to(torch.uint8).numpy()


def save_pair_grid(path: str | os.PathLike, pairs: torch.Tensor, image_channels: int, **grid_kwargs) -> None:
    """
    Write :func:`make_pair_grid` as a PNG, atomically (an interrupted write never leaves a broken file).

    Args:
        path: destination ``.png``.
        pairs: see :func:`make_pair_grid`.
        image_channels: ``C_img``.
        grid_kwargs: ``num_columns``, ``mask_threshold``, ``padding``.

    Example::

        save_pair_grid("runs/preview.png", generator.sample(16), image_channels=1)
    """
    grid = make_pair_grid(pairs, image_channels, **grid_kwargs)
    with atomic_path(path) as temporary:
        Image.fromarray(grid).save(temporary, format="PNG")
