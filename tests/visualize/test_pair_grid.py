from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dhvae_monai.visualize import make_pair_grid, save_pair_grid


def test_grid_layout_and_outline_colours():
    pairs = torch.zeros(3, 3, 10, 10)
    pairs[:, 0] = 0.5
    pairs[0, 1, 2:8, 2:8] = 1  # a red square outline on tile 0
    pairs[1, 2, 3:6, 3:6] = 0.9  # a green one on tile 1 (probabilities above the threshold)
    grid = make_pair_grid(pairs, image_channels=1, num_columns=2, padding=2)
    assert grid.shape == (24, 24, 3) and grid.dtype == np.uint8
    assert tuple(grid[2, 2]) == (255, 40, 40)  # outline pixel of tile 0
    assert tuple(grid[5, 5]) == (128, 128, 128)  # inside the square: the grey image, not filled
    assert tuple(grid[3, 12 + 3]) == (40, 220, 40)  # tile 1 starts at column 12
    assert tuple(grid[12 + 5, 5]) == (128, 128, 128)  # tile 2: no mask, plain image
    assert tuple(grid[10, 0]) == (0, 0, 0)  # padding


def test_save_writes_a_png_atomically(tmp_path):
    path = tmp_path / "sub" / "preview.png"
    save_pair_grid(path, torch.rand(4, 2, 8, 8), image_channels=1, num_columns=4)
    assert Image.open(path).size == (40, 10)
    assert [p.name for p in path.parent.iterdir()] == ["preview.png"]


def test_rejects_pairs_without_mask():
    with pytest.raises(ValueError, match="mask channels"):
        make_pair_grid(torch.rand(2, 1, 8, 8), image_channels=1)
