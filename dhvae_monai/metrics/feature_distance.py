"""Distance between two sets of feature vectors: Fréchet distance (FID) and maximum mean discrepancy (MMD)."""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from monai.metrics import FIDMetric, MMDMetric

__all__ = ["FeatureDistance", "feature_distance"]


class FeatureDistance(NamedTuple):
    """
    Attributes:
        fid: Fréchet distance between Gaussians fitted to the two sets; NaN when it cannot be estimated (``notes``).
        mmd: unbiased linear-kernel MMD, i.e. the squared distance between the feature means (slightly negative for
            sets from one distribution); NaN with fewer than 2 vectors per set.
        num_samples: vectors of each set used (the smaller set's size).
        num_features: feature dimensions.
        notes: why a value is NaN.
    """

    fid: float
    mmd: float
    num_samples: int
    num_features: int
    notes: tuple[str, ...]


@torch.no_grad()
def feature_distance(features_a: torch.Tensor, features_b: torch.Tensor, seed: int = 0) -> FeatureDistance:
    """
    FID (MONAI's :class:`~monai.metrics.FIDMetric`) and MMD (:class:`~monai.metrics.MMDMetric`) between two sets of
    feature vectors, both on equally many vectors of each set: the larger set is subsampled (seeded) to the size
    of the smaller one. MONAI's MMD needs sets of equal size, and FID's small-sample bias depends on the set sizes,
    so equal sizes keep two distances computed with the same size comparable.

    FID needs a full-rank covariance estimate, so more vectors per set than feature dimensions; with fewer it is NaN
    (with a note) rather than a number dominated by a singular covariance. Use more slices, or features of a layer
    with fewer channels. MMD is defined from 2 vectors per set.

    Args:
        features_a: ``[N_a, D]``.
        features_b: ``[N_b, D]``.
        seed: seed of the subsampling.

    Returns:
        a :class:`FeatureDistance`.

    Raises:
        ValueError: the features are not 2D, or their dimensions differ.

    Example::

        distance = feature_distance(extract(synthetic_images), extract(real_images))
        print(distance.fid, distance.mmd)
    """
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"expected two sets of feature vectors [N, D] with the same D, got {tuple(features_a.shape)} and "
            f"{tuple(features_b.shape)}."
        )
    num_samples, num_features = min(len(features_a), len(features_b)), features_a.shape[1]
    random = torch.Generator().manual_seed(seed)
    subsets = []
    for features in (features_a, features_b):
        features = features.detach().double().cpu()
        if len(features) > num_samples:
            features = features[torch.randperm(len(features), generator=random)[:num_samples]]
        subsets.append(features)
    notes, fid, mmd = [], math.nan, math.nan
    if num_samples < 2:
        notes.append(f"MMD and FID need at least 2 vectors per set, got {num_samples}.")
    else:
        mmd = float(MMDMetric()(subsets[0], subsets[1]))
        if num_samples <= num_features:
            notes.append(
                f"FID needs more vectors per set than the {num_features} feature dimensions (for a full-rank "
                f"covariance), got {num_samples}: use more slices or a layer with fewer channels."
            )
        else:
            try:
                with warnings.catch_warnings():
                    # MONAI's matrix square root still passes SciPy's deprecated `disp` argument
                    warnings.filterwarnings("ignore", "The `disp` argument is deprecated", DeprecationWarning)
                    fid = float(FIDMetric()(subsets[0], subsets[1]))
            except ValueError as error:  # MONAI's check of the matrix square root's imaginary part
                notes.append(f"FID not computed: {error}")
    return FeatureDistance(fid, mmd, num_samples, num_features, tuple(notes))
