"""Loading a case's volumes as channel-first MetaTensors, and validating them, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Hashable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.image_reader import ImageReader
from monai.transforms import LoadImage, MapTransform, ResampleToMatch
from monai.utils import convert_to_tensor

from dhvae_monai.transforms.labels import LABEL_CONVENTIONS, unexpected_label_values
from dhvae_monai.transforms.meta import affine_of, source_of

__all__ = ["CHANNEL_FILES", "CheckVolumed", "LoadVolumed"]

# meta entry listing the file each channel was read from (``filename_or_obj`` names only the first)
CHANNEL_FILES = "channel_files"


class _Channel(NamedTuple):
    name: str
    file: str
    volume: MetaTensor  # [1, H, W, D]


class LoadVolumed(MapTransform):
    """
    Read the file(s) of each key with MONAI's ``LoadImage`` into one channel-first ``[C, H, W, D]`` MetaTensor.

    A key holds one path or a list of paths, stacked as channels in order (as ``LoadImaged`` does). With
    ``channel_names_key``, the item's list under that key names the channels: either one 3D file per name
    (BraTS, HECKTOR) or a single file holding all of them (the 4D images of the Medical Segmentation Decathlon).
    An item that names no channels (a bare file path, as MONAI Label sends) gets ``default_channel_names``, written
    to its ``channel_names_key`` for the transforms that follow. Without ``channel_names_key``, every file must be
    3D (a mask).

    Channels are stacked only when they share a voxel grid. Channels named in ``resample_channels`` (HECKTOR's PET,
    which comes on a coarser grid than its CT) are first resampled bilinearly with MONAI's ``ResampleToMatch``
    onto the grid of the first other channel, or, when every channel is to be resampled, onto ``reference_key``'s
    volume (the mask, loaded first). The stack keeps the reference grid's metadata and no applied operation, so
    ``Invertd`` later maps predictions back onto that grid. ``filename_or_obj`` is the first file, as for
    ``LoadImaged``, and the meta entry ``channel_files`` lists every channel's file for later messages.

    Args:
        keys: keys of the path(s) to read.
        channel_names_key: item key listing the channel names of the files (e.g. ``"modalities"``); None: 3D files.
        default_channel_names: the channel names of an item without ``channel_names_key`` (e.g. the model's
            modalities); empty: such an item is read as unnamed 3D files.
        resample_channels: channel names allowed on another grid, resampled onto the reference grid.
        reference_key: key of an already loaded volume giving the grid when every channel is resampled.
        reader: MONAI image reader (name, class or instance) forced for every file; None lets MONAI pick by suffix.
        affine_tolerance: largest absolute difference between two affines (mm) still counted as the same grid.
        allow_missing_keys: skip missing keys (an inference item has no mask).

    Raises:
        FileNotFoundError: a file does not exist, or an empty path (MONAI Label's for an image id missing from its
            studies folder).
        ValueError: a file that cannot be read (truncated, corrupt, not an image), a 4D file where a 3D volume was
            expected, a channel count differing from the names, or channels on different grids that may not be
            resampled — each naming the file(s).

    Example::

        load_mask = LoadVolumed("label", allow_missing_keys=True)
        load_image = LoadVolumed("image", "modalities", resample_channels=("pt",), reference_key="label")
        case = load_image(load_mask({"image": [pet, ct], "modalities": ["pt", "ct"], "label": gtv}))
        flair = LoadVolumed("image", "modalities", default_channel_names=("flair",))({"image": "scan.nii.gz"})
    """

    def __init__(
        self,
        keys: KeysCollection,
        channel_names_key: str | None = None,
        default_channel_names: Sequence[str] = (),
        resample_channels: Sequence[str] = (),
        reference_key: str | None = None,
        reader: str | type[ImageReader] | ImageReader | None = None,
        affine_tolerance: float = 1e-3,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if default_channel_names and channel_names_key is None:
            raise ValueError("default_channel_names needs a channel_names_key to write them to.")
        self.channel_names_key = channel_names_key
        self.default_channel_names = list(default_channel_names)
        self.resample_channels = frozenset(resample_channels)
        self.reference_key = reference_key
        self.affine_tolerance = affine_tolerance
        self._loader = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)
        # zeros outside the source's field of view: no tracer activity rather than a replicated border
        self._resampler = ResampleToMatch(mode="bilinear", padding_mode="zeros")

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        if self.channel_names_key is not None and self.default_channel_names and not d.get(self.channel_names_key):
            d[self.channel_names_key] = list(self.default_channel_names)
        for key in self.key_iterator(d):
            d[key] = self._load(d, key)
        return d

    def _load(self, d: Mapping[Hashable, object], key: Hashable) -> MetaTensor:
        value = d[key]
        paths = [str(path) for path in ([value] if isinstance(value, (str, os.PathLike)) else value)]  # type: ignore
        if not paths:
            raise ValueError(f"{key!r}: no file to load.")
        if not all(paths):
            raise FileNotFoundError(
                f"{key!r}: an empty file path (MONAI Label sends one for an image id that is not in its studies folder)."
            )
        names = list(d.get(self.channel_names_key) or []) if self.channel_names_key else []
        if names and len(paths) not in (1, len(names)):
            raise ValueError(f"{paths[0]}: {len(paths)} files for the {len(names)} channels {names} of {key!r}.")
        channels_per_file = len(names) if names and len(paths) == 1 else 1

        channels: list[_Channel] = []
        for index, path in enumerate(paths):
            volume = self._read(path, channels_per_file, names)
            for channel in range(volume.shape[0]):
                position = index * channels_per_file + channel
                name = names[position] if names else str(position)
                channels.append(_Channel(name, path, volume[channel : channel + 1]))

        reference = next((c for c in channels if c.name not in self.resample_channels), None)
        grid_volume = d.get(self.reference_key) if self.reference_key is not None else None
        if reference is None and isinstance(grid_volume, MetaTensor):
            reference = _Channel(str(self.reference_key), source_of(grid_volume), grid_volume)
        reference = reference or channels[0]
        for position, channel in enumerate(channels):
            if _same_grid(channel.volume, reference.volume, self.affine_tolerance):
                continue
            if channel.name not in self.resample_channels:
                raise ValueError(
                    f"{channel.file} ({channel.name}) and {reference.file} ({reference.name}) are not on the same "
                    f"voxel grid: {_grid_difference(channel.volume, reference.volume)}."
                )
            channels[position] = channel._replace(volume=self._resampler(channel.volume, img_dst=reference.volume))

        meta = dict(reference.volume.meta)
        meta["filename_or_obj"] = channels[0].file
        meta[CHANNEL_FILES] = [channel.file for channel in channels]
        return MetaTensor(torch.cat([channel.volume.as_tensor().float() for channel in channels]), meta=meta)

    def _read(self, path: str, expected_channels: int, names: Sequence[str]) -> MetaTensor:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file.")
        try:
            volume = self._loader(path)
        except Exception as error:  # the readers raise many exception types for one cause: a bad file
            raise ValueError(
                f"cannot read {path}: not a readable image (truncated, corrupt or not NIfTI?): "
                f"{type(error).__name__}: {error}"
            ) from error
        if volume.ndim != 4:
            raise ValueError(f"{path}: expected a 3D volume, got an image of shape {tuple(volume.shape[1:])}.")
        if volume.shape[0] != expected_channels:
            if expected_channels == 1:
                raise ValueError(
                    f"{path}: expected a 3D volume, got a 4D file of {volume.shape[0]} volumes "
                    f"(shape {tuple(volume.shape[1:])} x {volume.shape[0]})."
                )
            raise ValueError(
                f"{path}: expected {expected_channels} channels ({list(names)}), got {volume.shape[0]}."
            )
        return volume


class CheckVolumed(MapTransform):
    """
    Validate a loaded case: finite voxels, one voxel grid for all keys, and a mask that fits its label convention.

    Checks, each raising a ``ValueError`` that names the file (from the MetaTensor's ``filename_or_obj``, or its
    ``channel_files`` entry for a stacked channel) and the problem:

    - no NaN or infinite voxel in any key;
    - every key on the grid of the first one present (same spatial shape, affines equal within
      ``affine_tolerance`` mm) — so run it after resampling channels that legitimately differ (HECKTOR's PET,
      see :class:`LoadVolumed`), and a real mismatch of the mask with its image remains an error;
    - the label's values all defined by its convention (``label_convention`` or the item's ``convention_key``,
      ``binary`` if absent; see :func:`~dhvae_monai.transforms.labels.unexpected_label_values`);
    - with ``require_tumour``, a mask with at least one tumour voxel (training data must show a tumour).

    Args:
        keys: keys of loaded volumes (image and mask).
        label_key: the mask's key among ``keys``.
        label_convention: meaning of the raw label values; None reads the item's ``convention_key``.
        convention_key: item key holding the convention.
        require_tumour: fail on an empty mask.
        affine_tolerance: largest absolute difference between two affines (mm) still counted as the same grid.
        allow_missing_keys: skip missing keys (an inference item has no mask).

    Raises:
        ValueError: see above; also an unknown ``label_convention``.

    Example::

        check = CheckVolumed(("image", "label"), require_tumour=True)
        case = check(LoadVolumed(("image", "label"))({"image": flair, "label": seg, "label_convention": "brats2021"}))
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "label"),
        label_key: str = "label",
        label_convention: str | None = None,
        convention_key: str = "label_convention",
        require_tumour: bool = True,
        affine_tolerance: float = 1e-3,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if label_convention is not None and label_convention not in LABEL_CONVENTIONS:
            raise ValueError(
                f"unknown label convention {label_convention!r}; expected one of {list(LABEL_CONVENTIONS)}."
            )
        self.label_key = label_key
        self.label_convention = label_convention
        self.convention_key = convention_key
        self.require_tumour = require_tumour
        self.affine_tolerance = affine_tolerance

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        reference = None
        for key in self.key_iterator(d):
            volume = d[key]
            self._check_finite(volume)
            if reference is None:
                reference = volume
            elif not _same_grid(volume, reference, self.affine_tolerance):
                raise ValueError(
                    f"{source_of(volume)} ({key}) and {source_of(reference)} are not on the same voxel grid: "
                    f"{_grid_difference(volume, reference)}."
                )
        if self.label_key in d and self.label_key in self.keys:
            self._check_label(d[self.label_key], self.label_convention or d.get(self.convention_key) or "binary")
        return d

    @staticmethod
    def _check_finite(volume: torch.Tensor) -> None:
        finite = torch.isfinite(convert_to_tensor(volume, track_meta=False))
        if finite.all():
            return
        channel = int(torch.nonzero(~finite.flatten(1).all(1))[0])
        files = volume.meta.get(CHANNEL_FILES) if isinstance(volume, MetaTensor) else None
        source = files[channel] if files and channel < len(files) else source_of(volume)
        raise ValueError(f"{source}: {int((~finite).sum())} voxel(s) are NaN or infinite.")

    def _check_label(self, label: torch.Tensor, convention: str) -> None:
        unexpected = unexpected_label_values(label, convention)
        if unexpected:
            table = sorted(LABEL_CONVENTIONS[convention])
            expected = "non-negative integers" if convention == "binary" else f"0 and {table}"
            raise ValueError(
                f"{source_of(label)}: unexpected label value(s) {unexpected[:10]} for the {convention!r} convention "
                f"(expected {expected}); check the dataset layout or the item's label_convention."
            )
        if self.require_tumour and not bool((convert_to_tensor(label, track_meta=False) > 0).any()):
            raise ValueError(f"{source_of(label)}: the mask is empty (no tumour voxel) but a tumour is required.")


def _same_grid(volume: torch.Tensor, reference: torch.Tensor, affine_tolerance: float) -> bool:
    """Whether two channel-first MetaTensors share spatial shape and affine (within ``affine_tolerance`` mm)."""
    return tuple(volume.shape[1:]) == tuple(reference.shape[1:]) and bool(
        np.allclose(affine_of(volume), affine_of(reference), rtol=0.0, atol=affine_tolerance)
    )


def _grid_difference(volume: torch.Tensor, reference: torch.Tensor) -> str:
    shapes = f"shape {tuple(volume.shape[1:])} vs {tuple(reference.shape[1:])}"
    return f"{shapes}, affines differ by up to {float(np.abs(affine_of(volume) - affine_of(reference)).max()):.3g} mm"
