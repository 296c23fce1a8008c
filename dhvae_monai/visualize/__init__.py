from __future__ import annotations

from dhvae_monai.visualize.pair_grid import make_pair_grid, save_pair_grid

__all__ = ["make_pair_grid", "save_pair_grid"]
