"""Invertible crops to the anatomy: the brain's box squared in the axial plane, and a head-and-neck box in mm."""

from __future__ import annotations

from typing import Callable, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import CropForeground, CropForegroundd, Cropd
from monai.transforms.utils import is_positive

from dhvae_monai.transforms.meta import affine_of, source_of

__all__ = ["CropHeadNeckd", "SquareCropForegroundd"]


class SquareCropForegroundd(CropForegroundd):
    """
    MONAI's ``CropForegroundd`` with the box widened about its centre to a square in the axial plane (the first two
    spatial axes), so that a later resize to square slices keeps the anatomy's aspect ratio. Parts of the square
    beyond the volume are padded with ``mode``. The axial extent stays the foreground's. A volume without foreground
    is kept whole. Invertible like ``CropForegroundd``.

    Args:
        keys: keys to crop (image and mask).
        source_key: key whose foreground defines the box (e.g. the normalised image, background 0).
        select_fn: foreground test on the source's voxels.
        channel_indices: channels of the source searched for foreground (default: all).
        margin: voxels added around the foreground before squaring.
        mode: padding mode of the parts of the box outside the volume.
        allow_missing_keys: skip missing keys.

    Example::

        crop = SquareCropForegroundd(("image", "label"), source_key="image")
        case = crop(case)  # case["image"].shape[1] == case["image"].shape[2]
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str,
        select_fn: Callable = is_positive,
        channel_indices: Sequence[int] | None = None,
        margin: Sequence[int] | int = 0,
        mode: str = "constant",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys,
            source_key,
            select_fn=select_fn,
            channel_indices=channel_indices,
            margin=margin,
            mode=mode,
            start_coord_key=None,
            end_coord_key=None,
            allow_missing_keys=allow_missing_keys,
        )

    def __call__(self, data: Mapping[Hashable, torch.Tensor], lazy: bool | None = None) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        source = d[self.source_key]
        box_start, box_end = (np.asarray(v, dtype=np.int64) for v in self.cropper.compute_bounding_box(img=source))
        if np.any(box_end <= box_start):
            box_start, box_end = np.zeros_like(box_start), np.asarray(source.shape[1:], dtype=np.int64)
        side = int((box_end - box_start)[:2].max())
        box_start[:2] -= (side - (box_end - box_start)[:2]) // 2
        box_end[:2] = box_start[:2] + side
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = self.cropper.crop_pad(img=d[key], box_start=box_start, box_end=box_end, mode=mode)
        return d


class CropHeadNeckd(Cropd):
    """
    Crop a head-and-neck box: the challenge's bounding box when the item has one, else a ``box_size_mm`` box.

    HECKTOR 2021 gives a 144 mm box per patient (``*bbox*.csv``, put in each item's ``bounding_box_mm`` as
    x1, x2, y1, y2, z1, z2 by :func:`dhvae_monai.data.make_datalist`). The challenge computed these boxes with
    SimpleITK, so they are in ITK's LPS physical coordinates (``bounding_box_space="LPS"``); NIfTI/MONAI world
    coordinates are RAS (x and y negated). Without a box, the ``box_size_mm`` box is centred by ``centre``:

    - ``"body"`` (default, needs no label, so it is the same at training and inference): in-plane on the centroid
      of the body, axially on the middle of the body's extent. The body is the voxels of the first channel named in
      ``body_thresholds`` (by the item's ``modalities_key``) above its threshold: CT above -500 HU, else PET above
      0.3 SUV. This suits scans already limited to the head and neck, as HECKTOR's are; for whole-body scans give
      boxes.
    - ``"label"``: on the centre of the mask's bounding box (training data only: it fails without a mask).

    Parts of the box beyond the volume are padded with ``mode`` (so the box keeps its physical size) and the
    crop is invertible (MONAI's ``CropForeground.crop_pad``). Run it on raw intensities (the thresholds are in HU
    and SUV), after ``Orientationd``.

    Args:
        keys: keys to crop (image and mask).
        box_size_mm: edge lengths of the box in mm (one value or three).
        bounding_box_key: item key of the challenge box.
        bounding_box_space: ``"LPS"`` (HECKTOR's CSV) or ``"RAS"`` (NIfTI world coordinates).
        centre: ``"body"`` or ``"label"``, used without a challenge box.
        image_key: key of the image locating the body (and giving the voxel grid).
        modalities_key: item key naming the image's channels.
        body_thresholds: modality name -> intensity above which a voxel is body; the first present is used.
        label_key: key of the mask for ``centre="label"``.
        mode: padding mode outside the volume.
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: unknown ``centre`` or ``bounding_box_space``, a box outside the volume, or ``centre="label"``
            without a tumour voxel — naming the image file.

    Example::

        crop = CropHeadNeckd(("image", "label"), box_size_mm=144.0)
        case = crop({"image": pet_ct, "label": gtv, "modalities": ["pt", "ct"], "bounding_box_mm": box})
    """

    def __init__(
        self,
        keys: KeysCollection,
        box_size_mm: float | Sequence[float] = 144.0,
        bounding_box_key: str = "bounding_box_mm",
        bounding_box_space: str = "LPS",
        centre: str = "body",
        image_key: str = "image",
        modalities_key: str = "modalities",
        body_thresholds: Mapping[str, float] | None = None,
        label_key: str = "label",
        mode: str = "constant",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, cropper=CropForeground(), allow_missing_keys=allow_missing_keys)
        if centre not in ("body", "label"):
            raise ValueError(f"centre must be 'body' or 'label', got {centre!r}.")
        if bounding_box_space not in ("LPS", "RAS"):
            raise ValueError(f"bounding_box_space must be 'LPS' or 'RAS', got {bounding_box_space!r}.")
        self.box_size_mm = np.broadcast_to(np.asarray(box_size_mm, dtype=np.float64), (3,)).copy()
        self.bounding_box_key = bounding_box_key
        self.bounding_box_space = bounding_box_space
        self.centre = centre
        self.image_key = image_key
        self.modalities_key = modalities_key
        self.body_thresholds = dict(body_thresholds if body_thresholds is not None else {"ct": -500.0, "pt": 0.3})
        self.label_key = label_key
        self.mode = mode

    def __call__(self, data: Mapping[Hashable, torch.Tensor], lazy: bool | None = None) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        image = d[self.image_key]
        box = d.get(self.bounding_box_key)
        box_start, box_end = self._challenge_box(image, box) if box is not None else self._centred_box(d, image)
        shape = np.asarray(image.shape[1:])
        if np.any(np.minimum(box_end, shape) - np.maximum(box_start, 0) < 1):
            raise ValueError(
                f"{source_of(image, 'image')}: the head-and-neck box (voxels {box_start.tolist()} to {box_end.tolist()}) lies "
                f"outside the volume of shape {tuple(shape)}; check {self.bounding_box_key!r} and its coordinates."
            )
        for key in self.key_iterator(d):
            d[key] = self.cropper.crop_pad(img=d[key], box_start=box_start, box_end=box_end, mode=self.mode)
        return d

    def _challenge_box(self, image: torch.Tensor, box_mm: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        x1, x2, y1, y2, z1, z2 = (float(v) for v in box_mm)
        corners = np.array([[x, y, z, 1.0] for x in (x1, x2) for y in (y1, y2) for z in (z1, z2)])
        if self.bounding_box_space == "LPS":
            corners[:, :2] *= -1.0
        voxels = (np.linalg.inv(affine_of(image)) @ corners.T)[:3].T
        return np.round(voxels.min(0)).astype(np.int64), np.round(voxels.max(0)).astype(np.int64)

    def _centred_box(self, d: Mapping[Hashable, torch.Tensor], image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        shape = np.asarray(image.shape[1:])
        if self.centre == "label":
            label = d.get(self.label_key)
            foreground = torch.nonzero(torch.as_tensor(label).any(0)) if label is not None else torch.empty(0, 3)
            if len(foreground) == 0:
                raise ValueError(f"{source_of(image, 'image')}: centre='label' needs a mask with a tumour voxel.")
            centre = (foreground.min(0).values + foreground.max(0).values).double().numpy() / 2.0
        else:
            centre = (shape - 1) / 2.0
            body = self._body(d, image)
            if body is not None and body.any():
                voxels = torch.nonzero(body).double()
                centre[:2] = voxels[:, :2].mean(0).numpy()
                centre[2] = float(voxels[:, 2].min() + voxels[:, 2].max()) / 2.0
        spacing = np.linalg.norm(affine_of(image)[:3, :3], axis=0)
        size = np.maximum(np.round(self.box_size_mm / spacing), 1).astype(np.int64)
        box_start = np.round(centre - (size - 1) / 2.0).astype(np.int64)
        return box_start, box_start + size

    def _body(self, d: Mapping[Hashable, torch.Tensor], image: torch.Tensor) -> torch.Tensor | None:
        names = list(d.get(self.modalities_key) or [])
        for name, threshold in self.body_thresholds.items():
            if name in names and len(names) == image.shape[0]:
                return torch.as_tensor(image[names.index(name)]) > threshold
        return None
