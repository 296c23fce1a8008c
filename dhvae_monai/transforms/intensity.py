"""Intensity normalisation per modality (MRI, PET, CT), each channel ending in [0, 1]."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

__all__ = ["MRI_MODALITIES", "NormalizeByModalityd"]

MRI_MODALITIES = ("flair", "t1", "t1ce", "t2")


class NormalizeByModalityd(MapTransform):
    """
    Scale each channel of a multi-modality volume to [0, 1] with the rule of its modality.

    - MRI (``flair``, ``t1``, ``t1ce``, ``t2``): clip to the ``mri_percentiles`` of the brain (voxels above the
      volume's minimum, i.e. the skull-stripped foreground, which also holds for z-scored volumes), then min-max to
      [0, 1] with the background at 0, over the whole volume (``mri_scaling="volume"``) or per axial slice
      (``"slice"``, as in the paper).
    - PET (``pt``): clip SUV to ``pet_suv_range``, then scale that range to [0, 1].
    - CT (``ct``): clip to the Hounsfield window ``ct_window``, then scale it to [0, 1].

    Args:
        keys: image key(s); channel names come from the MetaTensor's ``modalities`` meta entry (set by
            :class:`~dhvae_monai.transforms.LoadTumourCased`) or from ``modalities``.
        modalities: channel names, overriding the meta entry.
        mri_percentiles: lower and upper percentiles (0-100) of the brain intensities kept.
        mri_scaling: ``"volume"`` or ``"slice"`` (axial = last axis).
        pet_suv_range: SUV range mapped to [0, 1].
        ct_window: HU range mapped to [0, 1].
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: unknown modality name, wrong channel count, or bad arguments.

    Example::

        NormalizeByModalityd("image", pet_suv_range=(0.0, 10.0), ct_window=(-200.0, 300.0))
    """

    def __init__(
        self,
        keys: KeysCollection,
        modalities: Sequence[str] | None = None,
        mri_percentiles: tuple[float, float] = (0.5, 99.5),
        mri_scaling: str = "volume",
        pet_suv_range: tuple[float, float] = (0.0, 10.0),
        ct_window: tuple[float, float] = (-200.0, 300.0),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if mri_scaling not in ("volume", "slice"):
            raise ValueError(f"mri_scaling must be 'volume' or 'slice', got {mri_scaling!r}.")
        for name, (low, high) in (("mri_percentiles", mri_percentiles), ("pet_suv_range", pet_suv_range), ("ct_window", ct_window)):
            if not low < high:
                raise ValueError(f"{name} must be (low, high) with low < high, got {(low, high)}.")
        self.modalities = None if modalities is None else tuple(modalities)
        self.mri_percentiles = mri_percentiles
        self.mri_scaling = mri_scaling
        self.pet_suv_range = pet_suv_range
        self.ct_window = ct_window

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            names = self.modalities or (image.meta.get("modalities") if isinstance(image, MetaTensor) else None)
            if names is None or len(names) != image.shape[0]:
                raise ValueError(
                    f"{key}: {image.shape[0]} channel(s) need as many modality names, got {names}; pass modalities=."
                )
            channels = [self._normalise(image[c].float(), name) for c, name in enumerate(names)]
            normalised = torch.stack(channels)
            d[key] = MetaTensor(normalised, meta=image.meta, applied_operations=image.applied_operations) if isinstance(image, MetaTensor) else normalised
        return d

    def _normalise(self, channel: torch.Tensor, name: str) -> torch.Tensor:
        if name in MRI_MODALITIES:
            return self._normalise_mri(channel)
        if name == "pt":
            return _window(channel, *self.pet_suv_range)
        if name == "ct":
            return _window(channel, *self.ct_window)
        raise ValueError(f"unknown modality {name!r}; expected one of {MRI_MODALITIES + ('pt', 'ct')}.")

    def _normalise_mri(self, channel: torch.Tensor) -> torch.Tensor:
        channel = torch.as_tensor(channel)
        brain = channel > channel.min()
        if not brain.any():
            return torch.zeros_like(channel)
        low, high = torch.quantile(channel[brain][:: max(1, int(brain.sum()) // 1_000_000)], torch.tensor(self.mri_percentiles) / 100.0)
        clipped = torch.where(brain, channel.clamp(float(low), float(high)), torch.full_like(channel, float(low)))
        if self.mri_scaling == "volume":
            return _min_max(clipped, brain)
        return torch.stack([_min_max(clipped[..., z], brain[..., z]) for z in range(channel.shape[-1])], dim=-1)


def _window(channel: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return (torch.as_tensor(channel).clamp(low, high) - low) / (high - low)


def _min_max(values: torch.Tensor, foreground: torch.Tensor) -> torch.Tensor:
    """Foreground scaled to [0, 1], background 0; an all-background or constant slice becomes 0."""
    if not foreground.any():
        return torch.zeros_like(values)
    low, high = values[foreground].min(), values[foreground].max()
    if high <= low:
        return torch.where(foreground, torch.ones_like(values), torch.zeros_like(values))
    return torch.where(foreground, (values - low) / (high - low), torch.zeros_like(values))
