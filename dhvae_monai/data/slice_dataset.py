"""A dataset of tumour-aware 2D axial slices cut from preprocessed 3D volumes."""

from __future__ import annotations

from collections import Counter
from typing import Callable, Sequence

import os

import torch
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset

from dhvae_monai.data.volume_cache import preprocessed_volumes
from dhvae_monai.transforms.slices import SliceSelection, select_tumour_slices, tumour_areas

__all__ = ["TumourSliceDataset"]


class TumourSliceDataset(Dataset):
    """
    2D (image, mask) slices of a set of volumes, chosen by the paper's tumour-aware rule
    (:func:`~dhvae_monai.transforms.slices.select_tumour_slices`).

    Each volume is preprocessed once: datalist items go through ``volume_transform`` in
    :func:`~dhvae_monai.data.preprocessed_volumes` (in memory, and on disk in ``cache_dir`` when given, so later runs
    skip the preprocessing), or pass any dataset of preprocessed volumes; slices are views into the cached volumes. Items are ``{"image": [C, H, W], "label": [R, H, W],
    "case_id", "slice_index", "tumour_area"}``, optionally passed through ``slice_transform`` (2D augmentation).

    Args:
        data: datalist items (with ``volume_transform``) or a dataset of preprocessed volume dictionaries.
        volume_transform: preprocessing of one item (e.g. :func:`~dhvae_monai.transforms.brats_volume_transforms`).
        min_tumour_area, area_bin_width, slices_per_bin, order, tumour_free_fraction, seed: the selection rule.
        slice_transform: applied to every slice dictionary when it is read.
        cache_dir: folder of a disk cache of the preprocessed volumes shared across runs; None: memory only.
        cache_num_workers: workers preprocessing volumes into the cache.
        progress: show a progress bar while caching.

    Raises:
        ValueError: a volume without ``image`` / ``label``, image and mask of different shapes, no slice selected
            (see :func:`select_tumour_slices`), or a bad input file met by ``volume_transform`` (its own message,
            naming the file, not MONAI's ``applying transform`` wrapper).

    Example::

        slices = TumourSliceDataset(datalist["training"], brats_volume_transforms(), min_tumour_area=200)
        loader = DataLoader(slices, batch_size=16, shuffle=True)
    """

    def __init__(
        self,
        data: Sequence[dict] | Dataset,
        volume_transform: Callable | None = None,
        min_tumour_area: float = 200,
        area_bin_width: float = 25,
        slices_per_bin: int | None = None,
        order: str = "first",
        tumour_free_fraction: float = 0.0,
        seed: int = 0,
        slice_transform: Callable | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache_num_workers: int = 0,
        progress: bool = False,
    ) -> None:
        if isinstance(data, Dataset):
            self.volumes = data
        else:
            self.volumes = preprocessed_volumes(data, volume_transform, cache_dir, cache_num_workers, progress)
        areas = []
        self.case_ids = []
        for index in range(len(self.volumes)):
            volume = self.volumes[index]
            if "image" not in volume or "label" not in volume:
                raise ValueError(f"volume {index} has no 'image' and 'label'; keys: {sorted(volume)}.")
            if volume["image"].shape[1:] != volume["label"].shape[1:]:
                raise ValueError(
                    f"{volume.get('case_id', index)}: image {tuple(volume['image'].shape)} and label "
                    f"{tuple(volume['label'].shape)} differ in spatial shape."
                )
            areas.append(tumour_areas(volume["label"]))
            self.case_ids.append(str(volume.get("case_id", index)))
        self.selection: SliceSelection = select_tumour_slices(
            areas, min_tumour_area, area_bin_width, slices_per_bin, order, tumour_free_fraction, seed
        )
        self.slice_transform = slice_transform

    def __len__(self) -> int:
        return len(self.selection.slice_indices)

    def __getitem__(self, index: int) -> dict:
        volume = self.volumes[self.selection.volume_indices[index]]
        z = self.selection.slice_indices[index]
        item = {
            "image": convert_to_tensor(volume["image"][..., z], dtype=torch.float32, track_meta=False).contiguous(),
            "label": convert_to_tensor(volume["label"][..., z], dtype=torch.float32, track_meta=False).contiguous(),
            "case_id": self.case_ids[self.selection.volume_indices[index]],
            "slice_index": z,
            "tumour_area": self.selection.areas[index],
        }
        return self.slice_transform(item) if self.slice_transform is not None else item

    def table(self) -> list[dict]:
        """One row per kept slice: ``case_id``, ``slice_index``, ``tumour_area``, ``area_bin`` (-1: tumour-free)."""
        return [
            {"case_id": self.case_ids[v], "slice_index": z, "tumour_area": a, "area_bin": b}
            for v, z, a, b in zip(*self.selection)
        ]

    def summary(self) -> dict[str, dict]:
        """Slices kept per case and per area bin."""
        rows = self.table()
        return {
            "slices_per_case": dict(Counter(row["case_id"] for row in rows)),
            "slices_per_bin": dict(sorted(Counter(row["area_bin"] for row in rows).items())),
        }

