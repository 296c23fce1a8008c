from __future__ import annotations

import math

import pytest
import torch

from dhvae_monai.metrics import feature_distance


def _gaussian(count: int, dims: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, dims, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_a_set_against_itself_is_at_distance_zero_and_a_shifted_one_further():
    features = _gaussian(300)
    same = feature_distance(features, features)
    assert same.fid == pytest.approx(0.0, abs=1e-6)
    assert abs(same.mmd) < 0.1  # unbiased: -2 tr(cov) / (n - 1) for a set against itself
    assert (same.num_samples, same.num_features, same.notes) == (300, 8, ())
    shifted = feature_distance(features + 1.0, features)
    # same covariance: the Fréchet distance is exactly the squared shift of the means, 8 x 1^2
    assert shifted.fid == pytest.approx(8.0, rel=1e-6)
    assert shifted.mmd == pytest.approx(8.0, abs=0.1)
    spread = feature_distance(2.0 * features, features)  # same mean, wider: FID sees it, the linear-kernel MMD not
    assert spread.fid > 1.0 and abs(spread.mmd) < 0.3


def test_two_samples_of_one_distribution_are_closer_than_of_two():
    reference, other_draw = _gaussian(400, seed=0), _gaussian(400, seed=1)
    moved = _gaussian(400, seed=2) + torch.linspace(0, 1, 8, dtype=torch.float64)
    close, far = feature_distance(other_draw, reference), feature_distance(moved, reference)
    assert close.fid < far.fid and close.mmd < far.mmd


def test_the_larger_set_is_subsampled_to_the_smaller_ones_size_reproducibly():
    small, large = _gaussian(40), _gaussian(300, seed=1)
    distance = feature_distance(large, small, seed=5)
    assert distance.num_samples == 40
    assert distance == feature_distance(large, small, seed=5)
    assert distance.fid != feature_distance(large, small, seed=6).fid


def test_fid_is_nan_with_a_reason_when_a_set_has_no_more_vectors_than_dimensions():
    distance = feature_distance(_gaussian(8), _gaussian(100, seed=1))
    assert math.isnan(distance.fid) and math.isfinite(distance.mmd)
    assert distance.notes == (
        "FID needs more vectors per set than the 8 feature dimensions (for a full-rank covariance), got 8: use more "
        "slices or a layer with fewer channels.",
    )
    assert math.isfinite(feature_distance(_gaussian(9), _gaussian(100, seed=1)).fid)
    single = feature_distance(_gaussian(1), _gaussian(100, seed=1))
    assert math.isnan(single.fid) and math.isnan(single.mmd)
    assert single.notes == ("MMD and FID need at least 2 vectors per set, got 1.",)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"same D, got \(4, 8\) and \(4, 6\)"):
        feature_distance(_gaussian(4), _gaussian(4, dims=6))
    with pytest.raises(ValueError, match="feature vectors"):
        feature_distance(torch.zeros(4, 8, 1), torch.zeros(4, 8, 1))
