"""Loading one case's modality files and mask onto one grid, with clear errors for bad files."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirst, LoadImage, MapTransform, ResampleToMatch

__all__ = ["LoadTumourCased"]


class LoadTumourCased(MapTransform):
    """
    Load the selected modalities of a datalist item (one file each, or channels of a 4D file) and its mask as
    channel-first MetaTensors on one voxel grid.

    The grid is the mask's (or, without a mask, the ``reference_modality``'s). Modalities named in
    ``resample_modalities`` are resampled onto it (HECKTOR's PET comes on a coarser grid than its CT and mask);
    any other modality must already share the grid. Every file is checked as it is read, and each problem raises a
    ``ValueError`` naming the file: unreadable or truncated file, a 4D file where a 3D volume was expected, NaN or
    infinite voxels, shape or affine differing from the mask's.

    Items are those of :func:`dhvae_monai.data.make_datalist`: ``image`` (paths), ``modalities`` (the names of the
    channels the paths hold, in order), ``label`` (path, optional at inference).

    Args:
        image_key: key of the image path(s).
        label_key: key of the mask path; may be absent from an item (inference).
        modalities: channels to keep, in this order (default: all of the item's).
        modalities_key: key of the item's channel names.
        reference_modality: grid of an item without mask (default: the first kept modality).
        resample_modalities: modalities allowed to differ from the grid, resampled bilinearly onto it.
        affine_tolerance: largest absolute difference between affines (mm) still counted as the same grid.

    Raises:
        ValueError: see above; also a requested modality the item does not have.

    Example::

        loader = LoadTumourCased(modalities=("pt", "ct"), resample_modalities=("pt",), reference_modality="ct")
        case = loader({"image": [pet_path, ct_path], "modalities": ["pt", "ct"], "label": gtv_path})
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        modalities: Sequence[str] | None = None,
        modalities_key: str = "modalities",
        reference_modality: str | None = None,
        resample_modalities: Sequence[str] = (),
        affine_tolerance: float = 1e-3,
    ) -> None:
        super().__init__([image_key, label_key], allow_missing_keys=True)
        self.image_key = image_key
        self.label_key = label_key
        self.modalities = None if modalities is None else tuple(modalities)
        self.modalities_key = modalities_key
        self.reference_modality = reference_modality
        self.resample_modalities = set(resample_modalities)
        self.affine_tolerance = affine_tolerance
        self._reader = LoadImage(image_only=True)
        self._channel_first = EnsureChannelFirst()
        self._resample = ResampleToMatch(mode="bilinear", padding_mode="border")

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        paths = d[self.image_key]
        paths = [paths] if isinstance(paths, str) else list(paths)
        names = list(d.get(self.modalities_key) or [f"channel{i}" for i in range(len(paths))])
        wanted = list(self.modalities or names)
        missing = [m for m in wanted if m not in names]
        if missing:
            raise ValueError(f"{paths[0]}: the case has modalities {names}, not {missing}.")

        one_file_per_modality = len(paths) == len(names)
        if not one_file_per_modality and len(paths) != 1:
            raise ValueError(f"{paths[0]}: {len(paths)} image files for {len(names)} modalities {names}.")
        if one_file_per_modality:
            volumes = {name: self._read(paths[names.index(name)], expected_channels=1) for name in wanted}
        else:
            stacked = self._read(paths[0], expected_channels=len(names))
            volumes = {name: stacked[names.index(name) : names.index(name) + 1] for name in wanted}

        label = None
        if d.get(self.label_key) is not None:
            label = self._read(str(d[self.label_key]), expected_channels=1)
            reference = label
        else:
            reference = volumes[self.reference_modality or wanted[0]]
        for name, volume in volumes.items():
            if self._same_grid(volume, reference):
                continue
            if name not in self.resample_modalities:
                raise ValueError(
                    f"{_source(volume)} ({name}) and {_source(reference)} are not on the same grid: shape "
                    f"{tuple(volume.shape[1:])} vs {tuple(reference.shape[1:])}, affine differs by "
                    f"{float(np.abs(_affine(volume) - _affine(reference)).max()):.3g} mm."
                )
            volumes[name] = self._resample(volume, img_dst=reference)

        image = torch.cat([volumes[name].as_tensor() for name in wanted]).float()
        # every channel now lies on the reference grid, so the first one's meta describes the stack
        meta = dict(volumes[wanted[0]].meta)
        meta["modalities"] = wanted
        d[self.image_key] = MetaTensor(image, meta=meta)
        if label is not None:
            d[self.label_key] = label
        return d

    def _read(self, path: str, expected_channels: int) -> MetaTensor:
        try:
            volume = self._reader(path)
        except Exception as error:  # the readers raise many exception types for one cause: a bad file
            raise ValueError(f"cannot read {path}: {type(error).__name__}: {error}") from error
        if volume.ndim == 4 and expected_channels == 1:
            raise ValueError(f"{path}: expected a 3D volume, got a 4D file of shape {tuple(volume.shape)}.")
        if volume.ndim not in (3, 4):
            raise ValueError(f"{path}: expected a 3D volume, got shape {tuple(volume.shape)}.")
        volume = self._channel_first(volume)
        if volume.shape[0] != expected_channels:
            raise ValueError(f"{path}: expected {expected_channels} channel(s), got shape {tuple(volume.shape)}.")
        finite = torch.isfinite(volume)
        if not finite.all():
            raise ValueError(f"{path}: {int((~finite).sum())} voxel(s) are NaN or infinite.")
        return volume

    def _same_grid(self, volume: MetaTensor, reference: MetaTensor) -> bool:
        return volume.shape[1:] == reference.shape[1:] and bool(
            np.allclose(_affine(volume), _affine(reference), atol=self.affine_tolerance)
        )


def _affine(volume: MetaTensor) -> np.ndarray:
    return np.asarray(volume.affine, dtype=np.float64)


def _source(volume: MetaTensor) -> str:
    return str(volume.meta.get("filename_or_obj", "volume"))
