"""3D → 2D: tumour area per axial slice, the paper's tumour-aware slice selection, and axial slice extraction."""

from __future__ import annotations

from typing import Hashable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["SliceSelection", "ExtractAxialSlicesd", "select_tumour_slices", "tumour_areas"]


def tumour_areas(label: torch.Tensor) -> torch.Tensor:
    """
    Tumour area (pixels of the union of mask channels) of every axial slice of a ``[C, H, W, D]`` mask.

    Returns:
        ``[D]`` integer tensor.

    Raises:
        ValueError: the mask is not 4D or not binary.
    """
    label = torch.as_tensor(label)
    if label.ndim != 4:
        raise ValueError(f"expected a mask [C, H, W, D], got shape {tuple(label.shape)}.")
    if not torch.all((label == 0) | (label == 1)):
        raise ValueError("expected a binary mask (values 0 and 1); map the labels to regions first (TumourRegionsd).")
    return (label > 0).any(dim=0).sum(dim=(0, 1))


class SliceSelection(NamedTuple):
    """Kept slices as ``(volume_index, slice_index)`` pairs, with each one's tumour area and area bin (-1: tumour-free)."""

    volume_indices: list[int]
    slice_indices: list[int]
    areas: list[int]
    bins: list[int]


def select_tumour_slices(
    areas_per_volume: Sequence[torch.Tensor | np.ndarray],
    min_tumour_area: float = 200,
    area_bin_width: float = 25,
    slices_per_bin: int | None = None,
    order: str = "first",
    tumour_free_fraction: float = 0.0,
    seed: int = 0,
) -> SliceSelection:
    """
    The paper's tumour-aware selection of axial slices over a whole set of volumes (``method.md`` §2.1).

    Slices with a tumour area below ``min_tumour_area`` are dropped; the others fall into area bins
    ``[min, min + width), [min + width, min + 2 width), ...`` up to the largest area, and each bin keeps at most
    ``slices_per_bin`` slices, so small and large tumours are equally represented. Bins are global across volumes.
    Unlike the authors' code, the last bin includes the largest areas instead of discarding them.

    The paper's values are in pixels of 128 x 128 slices (200 px, bins of 25 px); scale them by the slice area for
    other sizes.

    Args:
        areas_per_volume: tumour area of every axial slice, one sequence per volume (see :func:`tumour_areas`).
        min_tumour_area: smallest tumour area kept.
        area_bin_width: width of an area bin.
        slices_per_bin: cap per bin; None applies the paper's rule, ``total number of slices // number of bins``
            (at least 1).
        order: ``"first"`` keeps the first slices of a bin in volume order (the paper), ``"random"`` a seeded sample.
        tumour_free_fraction: additionally keep ``round(fraction * kept tumour slices)`` randomly chosen slices
            without tumour (area 0), e.g. for a segmenter that must learn to predict nothing.
        seed: seed of the random choices.

    Returns:
        :class:`SliceSelection`, tumour slices in (volume, slice) order, then the tumour-free ones.

    Raises:
        ValueError: bad arguments, or no slice reaches ``min_tumour_area`` (the message gives the largest area).

    Example::

        selection = select_tumour_slices([tumour_areas(v["label"]) for v in volumes], min_tumour_area=200)
    """
    if area_bin_width <= 0 or min_tumour_area < 0:
        raise ValueError(f"need area_bin_width > 0 and min_tumour_area >= 0, got {area_bin_width}, {min_tumour_area}.")
    if order not in ("first", "random"):
        raise ValueError(f"order must be 'first' or 'random', got {order!r}.")
    if tumour_free_fraction < 0:
        raise ValueError(f"tumour_free_fraction must be >= 0, got {tumour_free_fraction}.")
    areas = [np.asarray(torch.as_tensor(a).cpu(), dtype=np.int64) for a in areas_per_volume]
    volume_index = np.concatenate([np.full(len(a), v) for v, a in enumerate(areas)]) if areas else np.zeros(0, int)
    slice_index = np.concatenate([np.arange(len(a)) for a in areas]) if areas else np.zeros(0, int)
    area = np.concatenate(areas) if areas else np.zeros(0, int)
    candidates = np.flatnonzero(area >= max(min_tumour_area, 1))
    if len(candidates) == 0:
        largest = int(area.max()) if len(area) else 0
        raise ValueError(
            f"no axial slice has a tumour area >= {min_tumour_area} pixels (the largest is {largest}); lower "
            "min_tumour_area or check the masks."
        )
    num_bins = int(np.floor((area[candidates].max() - min_tumour_area) / area_bin_width)) + 1
    bins = np.minimum(((area - min_tumour_area) // area_bin_width).astype(int), num_bins - 1)
    # the paper's cap; at least one slice per bin, or a few volumes with many bins would keep nothing
    cap = max(1, len(area) // num_bins) if slices_per_bin is None else slices_per_bin
    rng = np.random.default_rng(seed)
    kept = []
    for b in range(num_bins):
        members = candidates[bins[candidates] == b]
        if order == "random" and len(members) > cap:
            members = np.sort(rng.choice(members, size=cap, replace=False))
        kept.extend(members[:cap].tolist())
    kept.sort()
    kept_bins = [int(bins[i]) for i in kept]
    if tumour_free_fraction > 0:
        empty = np.flatnonzero(area == 0)
        count = min(len(empty), int(round(tumour_free_fraction * len(kept))))
        extra = np.sort(rng.choice(empty, size=count, replace=False)).tolist() if count else []
        kept += extra
        kept_bins += [-1] * len(extra)
    return SliceSelection(
        volume_indices=[int(volume_index[i]) for i in kept],
        slice_indices=[int(slice_index[i]) for i in kept],
        areas=[int(area[i]) for i in kept],
        bins=kept_bins,
    )


class ExtractAxialSlicesd(MapTransform):
    """
    Cut a preprocessed volume ``[C, H, W, D]`` into a list of 2D slice dictionaries ``[C, H, W]`` (axial = last axis).

    Each output keeps the non-volume entries of the input (e.g. ``case_id``) and adds ``slice_index`` and
    ``tumour_area``. Slices are plain tensors, so a default ``DataLoader`` collates them into ``[B, C, H, W]``.

    Args:
        keys: volume keys to slice (image and label).
        label_key: mask key, for the tumour area.
        slice_indices_key: item key holding the slices to cut (e.g. from :func:`select_tumour_slices`); absent: all.
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: the volumes disagree in shape.

    Example::

        slices = ExtractAxialSlicesd(("image", "label"))(volume)  # list of D dictionaries
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        slice_indices_key: str = "slice_indices",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_key = label_key
        self.slice_indices_key = slice_indices_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> list[dict[Hashable, object]]:
        volumes = {key: torch.as_tensor(data[key]) for key in self.key_iterator(data)}
        depths = {key: tuple(v.shape[1:]) for key, v in volumes.items()}
        if len(set(depths.values())) > 1:
            raise ValueError(f"{data.get('case_id', 'volume')}: volumes to slice differ in shape {depths}.")
        depth = next(iter(volumes.values())).shape[-1]
        areas = tumour_areas(volumes[self.label_key]) if self.label_key in volumes else None
        indices = data.get(self.slice_indices_key, range(depth))
        others = {k: v for k, v in data.items() if k not in volumes and k != self.slice_indices_key}
        slices = []
        for z in indices:
            item = dict(others, slice_index=int(z))
            item.update({key: volume[..., z].clone() for key, volume in volumes.items()})
            if areas is not None:
                item["tumour_area"] = int(areas[z])
            slices.append(item)
        return slices
