from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dhvae_monai.data import draw_synthetic_pairs
from dhvae_monai.metrics import prior_acceptance
from dhvae_monai.networks import DHVAE


def _generator_with_mask_bias(bias: float) -> DHVAE:
    """A tiny DHVAE whose mask logits are shifted by ``bias`` (large: tumour everywhere, negative: none)."""
    torch.manual_seed(0)
    net = DHVAE(image_size=16, channels=(8, 8), num_res_blocks=1, attention_levels=(False, False), norm_num_groups=8)
    with torch.no_grad():
        net.output_layer.bias[1] += bias
    return net


class _FixedPairs(nn.Module):
    """Stands in for a DHVAE: its prior draws cycle through fixed pairs."""

    image_channels = 1

    def __init__(self, pairs: torch.Tensor) -> None:
        super().__init__()
        self.output_layer = nn.Conv2d(1, 1, 1)
        self.pairs, self.num_drawn = pairs, 0

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        indices = torch.arange(self.num_drawn, self.num_drawn + num_samples) % len(self.pairs)
        self.num_drawn += num_samples
        return self.pairs[indices]


def test_counts_kept_draws_and_the_kept_ones_with_tumour_on_the_border():
    pairs = torch.zeros(4, 2, 16, 16)
    pairs[:, 0] = 0.7  # a bright image up to the border: only the mask channel may count
    pairs[0, 1, 6:10, 6:10] = 0.9  # central tumour of 16 px: kept
    pairs[1, 1, 6:10, 6:10] = 0.9
    pairs[1, 1, 15, 3] = 0.9  # and one pixel on the bottom row: kept, on the border
    pairs[2, 1, 0:2, 0:2] = 0.9  # 4 px in a corner: below the area threshold
    pairs[3, 1, 5:11, 5:11] = 0.9  # central tumour of 36 px: kept
    acceptance = prior_acceptance(_FixedPairs(pairs), num_draws=8, min_tumour_area=10, batch_size=3)
    assert acceptance.num_draws == 8 and acceptance.acceptance_rate == 6 / 8
    assert acceptance.border_fraction == pytest.approx(2 / 6)
    torch.testing.assert_close(acceptance.kept_pairs[:3, 1], (pairs[[0, 1, 3], 1] > 0.5).float())


def test_a_generator_of_empty_masks_has_acceptance_zero():
    acceptance = prior_acceptance(_generator_with_mask_bias(-20.0), num_draws=10, min_tumour_area=1, batch_size=4)
    assert acceptance.num_draws == 10 and acceptance.acceptance_rate == 0.0
    assert acceptance.kept_pairs.shape == (0, 2, 16, 16)
    assert math.isnan(acceptance.border_fraction)


def test_full_masks_are_all_kept_and_all_on_the_border():
    acceptance = prior_acceptance(_generator_with_mask_bias(20.0), num_draws=6, min_tumour_area=100, batch_size=4)
    assert acceptance.acceptance_rate == 1.0 and acceptance.border_fraction == 1.0
    assert set(acceptance.kept_pairs[:, 1].unique().tolist()) == {1.0}  # binarised


def test_kept_pairs_are_the_sample_stages_pairs_for_the_same_seed():
    generator = _generator_with_mask_bias(0.0)
    # a threshold in the middle of this generator's tumour masses, so the filter keeps some draws and not others
    masses = generator.sample(24, generator=torch.Generator().manual_seed(0))[:, 1].flatten(1).sum(1)
    area = float(masses.median())
    acceptance = prior_acceptance(generator, num_draws=12, min_tumour_area=area, batch_size=4, seed=3)
    assert 0 < acceptance.acceptance_rate < 1
    assert acceptance.acceptance_rate == len(acceptance.kept_pairs) / 12
    sampled, _ = draw_synthetic_pairs(generator, len(acceptance.kept_pairs), area, batch_size=4, seed=3, progress=False)
    torch.testing.assert_close(acceptance.kept_pairs, sampled)
    again = prior_acceptance(generator, num_draws=12, min_tumour_area=area, batch_size=4, seed=3)
    torch.testing.assert_close(again.kept_pairs, acceptance.kept_pairs)
    assert generator.training  # mode restored
    with pytest.raises(ValueError, match="num_draws must be >= 1"):
        prior_acceptance(generator, num_draws=0)
