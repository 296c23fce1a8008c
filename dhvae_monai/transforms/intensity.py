"""Intensity normalisation to [0, 1]: a rule per modality (MRI, PET, CT), and per-slice min-max as in the paper."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, ScaleIntensityRange, ScaleIntensityRangePercentiles
from monai.transforms.utils_pytorch_numpy_unification import percentile
from monai.utils import convert_to_tensor

from dhvae_monai.transforms.meta import source_of

__all__ = ["MRI_MODALITIES", "NormalizeByModalityd", "ScaleIntensityPerSliced"]

MRI_MODALITIES = ("flair", "t1", "t1ce", "t2")


class NormalizeByModalityd(MapTransform):
    """
    Scale each channel of a multi-modality volume to [0, 1] with the rule of its modality.

    - MRI (``flair``, ``t1``, ``t1ce``, ``t2``): clip the brain's intensities to their ``mri_percentiles`` and
      rescale that range to [0, 1]; the background stays 0. The brain is every voxel differing from the background
      value, the most common value of the volume's eight corners: 0 for BraTS, but also the constant of z-scored
      volumes (BraTS 2015 preprocessed, negative) and of skull-stripped volumes whose brain holds negative values.
      Run it on the native grid, before any interpolation blurs the brain's edge.
    - PET (``pt``): clip SUV to ``pet_suv_range`` and scale that range to [0, 1] (MONAI's ``ScaleIntensityRange``),
      or, with ``pet_percentiles``, the volume's own percentiles (``ScaleIntensityRangePercentiles``).
    - CT (``ct``): clip to the Hounsfield window ``ct_window`` and scale it to [0, 1].

    Args:
        keys: image key(s), channel-first.
        modalities: channel names, overriding the item's ``modalities_key``.
        modalities_key: item key naming the channels (see :class:`~dhvae_monai.transforms.SelectModalitiesd`).
        mri_percentiles: lower and upper percentiles (0-100) of the brain intensities kept.
        pet_suv_range: SUV range mapped to [0, 1].
        pet_percentiles: if given, lower and upper percentiles (0-100) of the PET volume mapped to [0, 1] instead.
        ct_window: HU range mapped to [0, 1] (the default is a soft-tissue window).
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: an unknown modality name, as many names as channels not given, or a range with low >= high.

    Example::

        normalise = NormalizeByModalityd("image", pet_suv_range=(0.0, 10.0), ct_window=(-200.0, 300.0))
        case = normalise({"image": pet_ct, "modalities": ["pt", "ct"]})
    """

    def __init__(
        self,
        keys: KeysCollection,
        modalities: Sequence[str] | None = None,
        modalities_key: str = "modalities",
        mri_percentiles: Sequence[float] = (0.5, 99.5),
        pet_suv_range: Sequence[float] = (0.0, 10.0),
        pet_percentiles: Sequence[float] | None = None,
        ct_window: Sequence[float] = (-200.0, 300.0),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        ranges = {"mri_percentiles": mri_percentiles, "pet_suv_range": pet_suv_range, "ct_window": ct_window}
        if pet_percentiles is not None:
            ranges["pet_percentiles"] = pet_percentiles
        for name, bounds in ranges.items():
            if len(bounds) != 2 or not bounds[0] < bounds[1]:
                raise ValueError(f"{name} must be (low, high) with low < high, got {tuple(bounds)}.")
        self.modalities = None if modalities is None else tuple(modalities)
        self.modalities_key = modalities_key
        self.mri_percentiles = tuple(float(p) for p in mri_percentiles)
        if pet_percentiles is None:
            self._pet = ScaleIntensityRange(*pet_suv_range, b_min=0.0, b_max=1.0, clip=True)
        else:
            self._pet = ScaleIntensityRangePercentiles(*pet_percentiles, b_min=0.0, b_max=1.0, clip=True)
        self._ct = ScaleIntensityRange(*ct_window, b_min=0.0, b_max=1.0, clip=True)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        names = self.modalities or d.get(self.modalities_key)
        for key in self.key_iterator(d):
            image = d[key]
            if not names or len(names) != image.shape[0]:
                raise ValueError(
                    f"{source_of(image, 'image')}: {image.shape[0]} channel(s) need as many modality names, got {names}; "
                    f"set the item's {self.modalities_key!r} or pass modalities=."
                )
            values = convert_to_tensor(image, track_meta=False)
            normalised = torch.cat(
                [self._normalise(values[c : c + 1].float(), name) for c, name in enumerate(names)]
            )
            d[key] = _like(image, normalised)
        return d

    def _normalise(self, channel: torch.Tensor, name: str) -> torch.Tensor:
        if name in MRI_MODALITIES:
            return self._normalise_mri(channel)
        if name == "pt":
            return torch.as_tensor(self._pet(channel))
        if name == "ct":
            return torch.as_tensor(self._ct(channel))
        raise ValueError(f"unknown modality {name!r}; expected one of {MRI_MODALITIES + ('pt', 'ct')}.")

    def _normalise_mri(self, channel: torch.Tensor) -> torch.Tensor:
        corners = channel
        for axis in range(1, channel.ndim):
            corners = corners.index_select(axis, torch.tensor([0, channel.shape[axis] - 1]))
        brain = channel != torch.mode(corners.flatten()).values
        if not brain.any():
            return torch.zeros_like(channel)
        low, high = (float(v) for v in percentile(channel[brain], self.mri_percentiles))
        if high <= low:  # a constant brain carries no contrast: show it, uniformly
            return brain.to(channel.dtype)
        scaled = (channel.clamp(low, high) - low) / (high - low)
        return torch.where(brain, scaled, torch.zeros_like(channel))


class ScaleIntensityPerSliced(MapTransform):
    """
    Min-max scale every axial slice (last axis) of every channel to [0, 1], as the paper does before training.

    A constant slice (e.g. all background) becomes 0. Metadata and applied operations are kept.

    Args:
        keys: image key(s), channel-first ``[C, H, W, D]``.
        allow_missing_keys: skip missing keys.

    Example::

        ScaleIntensityPerSliced("image")({"image": volume})["image"]  # each [c, :, :, z] spans [0, 1]
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            values = convert_to_tensor(image, track_meta=False).float()
            in_plane = tuple(range(1, values.ndim - 1))
            low = values.amin(dim=in_plane, keepdim=True)
            span = values.amax(dim=in_plane, keepdim=True) - low
            scaled = torch.where(span > 0, (values - low) / span.clamp_min(torch.finfo(values.dtype).tiny), 0.0)
            d[key] = _like(image, scaled)
        return d


def _like(image: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` carrying ``image``'s meta and applied operations (MONAI's ``convert_to_dst_type`` would cast to
    the source dtype and drop the operations ``Invertd`` needs)."""
    if isinstance(image, MetaTensor):
        return MetaTensor(values, meta=image.meta, applied_operations=image.applied_operations)
    return values
