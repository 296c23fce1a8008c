from __future__ import annotations

import itertools

import pytest
import torch

from dhvae_monai.metrics import MS_SSIM_WEIGHTS, mean_pairwise_ms_ssim, random_distinct_pairs


def _blobs(count: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Bright discs at random places on a dark background: varied images with structure."""
    random = torch.Generator().manual_seed(seed)
    rows, columns = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centres = torch.randint(6, size - 6, (count, 2), generator=random)
    images = [((rows - r) ** 2 + (columns - c) ** 2 < 25).float() * 0.8 + 0.1 for r, c in centres.tolist()]
    return torch.stack(images)[:, None]


def test_identical_images_score_one():
    images = _blobs(1).repeat(6, 1, 1, 1)
    assert mean_pairwise_ms_ssim(images) == pytest.approx(1.0, abs=1e-5)


def test_a_varied_set_scores_lower_than_a_nearly_identical_one():
    varied = _blobs(10)
    noise = 0.02 * torch.randn(10, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    nearly_identical = (_blobs(1) + noise).clamp(0, 1)
    varied_score, similar_score = mean_pairwise_ms_ssim(varied), mean_pairwise_ms_ssim(nearly_identical)
    assert 0 <= varied_score < 0.7 < similar_score < 1
    noise = torch.rand(10, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    assert mean_pairwise_ms_ssim(noise) < 0.1


def test_weights_are_three_scales_summing_to_one_and_fit_the_smallest_slices():
    assert len(MS_SSIM_WEIGHTS) == 3 and sum(MS_SSIM_WEIGHTS) == pytest.approx(1.0)
    for size in (32, 64, 128):
        assert 0 <= mean_pairwise_ms_ssim(torch.rand(3, 1, size, size), num_pairs=1) <= 1
    with pytest.raises(ValueError, match="must be larger than 24"):
        mean_pairwise_ms_ssim(torch.rand(3, 1, 16, 16))


def test_score_is_seeded_and_multichannel_images_work():
    images = torch.rand(12, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    assert mean_pairwise_ms_ssim(images, num_pairs=5, seed=3) == mean_pairwise_ms_ssim(images, num_pairs=5, seed=3)
    with pytest.raises(ValueError, match="at least 2 items"):
        mean_pairwise_ms_ssim(images[:1])
    with pytest.raises(ValueError, match=r"expected images \[N, C, H, W\]"):
        mean_pairwise_ms_ssim(images[0])


def test_pairs_are_all_pairs_when_few_and_random_distinct_pairs_otherwise():
    pairs = random_distinct_pairs(4, num_pairs=10)
    assert sorted(map(tuple, pairs.tolist())) == list(itertools.combinations(range(4), 2))
    pairs = random_distinct_pairs(50, num_pairs=200, seed=1)
    assert pairs.shape == (200, 2) and torch.all(pairs[:, 0] != pairs[:, 1])
    assert pairs.min() >= 0 and pairs.max() < 50
    assert torch.equal(pairs, random_distinct_pairs(50, num_pairs=200, seed=1))
    assert not torch.equal(pairs, random_distinct_pairs(50, num_pairs=200, seed=2))
    assert len(set(pairs[:, 0].tolist())) > 40  # spread over the set, not stuck on a few items
    with pytest.raises(ValueError, match="num_pairs"):
        random_distinct_pairs(5, num_pairs=0)
