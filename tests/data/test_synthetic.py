from __future__ import annotations

import pytest
import torch

from dhvae_monai.data.synthetic import draw_synthetic_pairs
from dhvae_monai.networks import DHVAE


def _generator_with_mask_bias(bias: float) -> DHVAE:
    """A tiny DHVAE whose mask logits are shifted by ``bias`` (large: tumour everywhere, negative: none)."""
    net = DHVAE(image_size=16, channels=(8, 8), num_res_blocks=1, attention_levels=(False, False), norm_num_groups=8)
    with torch.no_grad():
        net.output_layer.bias[1] += bias
    return net


def test_draws_until_enough_pairs_pass_the_filter_reproducibly():
    net = _generator_with_mask_bias(0.0)
    pairs, draws = draw_synthetic_pairs(net, num_pairs=5, min_tumour_area=60, batch_size=4, progress=False, seed=3)
    again, _ = draw_synthetic_pairs(net, num_pairs=5, min_tumour_area=60, batch_size=4, progress=False, seed=3)
    assert pairs.shape == (5, 2, 16, 16) and draws >= 5
    torch.testing.assert_close(pairs, again)
    assert set(pairs[:, 1].unique().tolist()) <= {0.0, 1.0}
    assert torch.all(pairs[:, 1].flatten(1).sum(1) > 0)
    assert net.training  # mode restored


def test_gives_up_with_the_acceptance_rate():
    net = _generator_with_mask_bias(-20.0)  # masks are empty: nothing passes
    with pytest.raises(RuntimeError, match=r"only 0 of 3 .* after 12 draws \(0.0 % accepted\)"):
        draw_synthetic_pairs(net, num_pairs=3, min_tumour_area=10, batch_size=4, max_draws=12, progress=False)
    with pytest.raises(ValueError, match="num_pairs"):
        draw_synthetic_pairs(net, num_pairs=0)
