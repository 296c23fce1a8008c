"""Choosing imaging modalities by name among a loaded case's channels."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from dhvae_monai.transforms.io import CHANNEL_FILES

__all__ = ["SelectModalitiesd"]


class SelectModalitiesd(MapTransform):
    """
    Keep the channels of the named modalities, in the requested order.

    The names of the loaded channels come from the item's ``modalities_key`` (the datalist's ``modalities``), so
    the same transform serves per-modality files stacked by :class:`~dhvae_monai.transforms.io.LoadVolumed` and the
    4D images of the Medical Segmentation Decathlon. The item's list is rewritten to the kept names, and the
    MetaTensor's ``channel_files`` entry follows the channels; metadata and applied operations are kept.

    Args:
        keys: image key(s), channel-first.
        modalities: names to keep, in output order (e.g. ``("flair",)`` or ``("pt", "ct")``).
        modalities_key: item key naming the loaded channels.
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: a requested modality the case lacks, or as many names as channels not given — naming the file.

    Example::

        flair_t1ce = SelectModalitiesd("image", ("flair", "t1ce"))(case)  # case["image"]: [4, H, W, D] -> [2, H, W, D]
    """

    def __init__(
        self,
        keys: KeysCollection,
        modalities: Sequence[str],
        modalities_key: str = "modalities",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if not modalities or isinstance(modalities, str):
            raise ValueError(f"modalities must be a non-empty sequence of names, got {modalities!r}.")
        self.modalities = tuple(modalities)
        self.modalities_key = modalities_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        names = list(d.get(self.modalities_key) or [])
        for key in self.key_iterator(d):
            d[key] = self._select(d[key], names)
        d[self.modalities_key] = list(self.modalities)
        return d

    def _select(self, image: torch.Tensor, names: list[str]) -> torch.Tensor:
        source = str(image.meta.get("filename_or_obj", "image")) if isinstance(image, MetaTensor) else "image"
        if len(names) != image.shape[0]:
            raise ValueError(f"{source}: {image.shape[0]} channel(s) but the case names {len(names)}: {names}.")
        missing = [name for name in self.modalities if name not in names]
        if missing:
            raise ValueError(f"{source}: the case has modalities {names}, not {missing}.")
        indices = [names.index(name) for name in self.modalities]
        if not isinstance(image, MetaTensor):
            return torch.as_tensor(image)[indices]
        selected = image.as_tensor()[indices]
        meta = dict(image.meta)
        if meta.get(CHANNEL_FILES):
            meta[CHANNEL_FILES] = [meta[CHANNEL_FILES][index] for index in indices]
        return MetaTensor(selected, meta=meta, applied_operations=image.applied_operations)
