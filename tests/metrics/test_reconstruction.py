from __future__ import annotations

import pytest
import torch
from torch import nn

from dhvae_monai.metrics import reconstruction_scores
from dhvae_monai.networks import DHVAE


def _slices(count: int = 5, size: int = 32) -> list[dict]:
    random = torch.Generator().manual_seed(0)
    slices = []
    for index in range(count):
        label = torch.zeros(1, size, size)
        label[:, 8 : 12 + index, 8:20] = 1
        slices.append({"image": 0.8 * torch.rand(1, size, size, generator=random), "label": label})
    return slices


def _pixelwise(image_shift: float, invert_mask: bool = False) -> nn.Conv2d:
    """A 1 x 1 convolution "reconstructing" a pair: the image plus ``image_shift``, the mask or its complement."""
    network = nn.Conv2d(2, 2, kernel_size=1)
    with torch.no_grad():
        network.weight.zero_()
        network.weight[0, 0] = 1.0
        network.weight[1, 1] = -1.0 if invert_mask else 1.0
        network.bias.copy_(torch.tensor([image_shift, 1.0 if invert_mask else 0.0]))
    return network


def test_scores_match_known_reconstruction_errors():
    exact = reconstruction_scores(_pixelwise(0.0), _slices(), image_channels=1, batch_size=2)
    assert exact["ssim"] == pytest.approx(1.0, abs=1e-5) and exact["mask_dice"] == pytest.approx(1.0)
    assert exact["num_slices"] == 5
    shifted = reconstruction_scores(_pixelwise(0.1), _slices(), image_channels=1, batch_size=2)
    assert shifted["psnr"] == pytest.approx(20.0, abs=1e-3)  # MSE 0.01 on a data range of 1
    assert shifted["ssim"] < 1.0
    inverted = reconstruction_scores(_pixelwise(0.0, invert_mask=True), _slices(), image_channels=1)
    assert inverted["mask_dice"] == pytest.approx(0.0)


def test_stochastic_forward_is_seeded_without_touching_the_global_random_state():
    generator = DHVAE(image_size=16, channels=(8, 8), num_res_blocks=1, attention_levels=(False, False), norm_num_groups=8,
                      leapfrog_steps=1).train()
    slices = _slices(2, size=16)
    state = torch.get_rng_state()
    first = reconstruction_scores(generator, slices, image_channels=1, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert first == reconstruction_scores(generator, slices, image_channels=1, seed=1)
    assert first != reconstruction_scores(generator, slices, image_channels=1, seed=2)
    assert generator.training


def test_empty_slices_are_refused():
    with pytest.raises(ValueError, match="dataset is empty"):
        reconstruction_scores(_pixelwise(0.0), [], image_channels=1)
