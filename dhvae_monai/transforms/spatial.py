"""Cropping a head-and-neck box in millimetres (HECKTOR), invertibly."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, SpatialCrop
from monai.transforms.inverse import InvertibleTransform

__all__ = ["CropHeadNeckd"]


class CropHeadNeckd(MapTransform, InvertibleTransform):
    """
    Crop a box of ``box_size_mm`` around the head-and-neck region (HECKTOR's 144 mm boxes by default).

    With the challenge's bounding box in the item (``bounding_box_mm``: x1, x2, y1, y2, z1, z2 in scanner
    millimetres, from HECKTOR 2021's CSV) the crop is that box. Otherwise, as no mask exists at inference time, the
    box is centred in-plane on the body (voxels of ``body_key``'s first channel above ``body_threshold``, e.g. CT
    above -500 HU) and axially on the volume's centre — our choice for volumes already cropped to the head and neck,
    as the challenges' are. Boxes are clipped to the volume. Invertible (MONAI's ``SpatialCrop``), so predictions can
    go back to the input's space.

    Args:
        keys: keys to crop (image and label).
        box_size_mm: edge lengths of the box in mm (one value or three).
        bounding_box_key: item key of the challenge box.
        body_key: key of the image locating the body.
        body_channel: channel of ``body_key`` that is thresholded.
        body_threshold: intensity above which a voxel is body (-500 suits HU; use 0.1 for PET SUV).
        allow_missing_keys: skip missing keys.

    Example::

        CropHeadNeckd(("image", "label"), box_size_mm=144, body_key="image", body_threshold=0.3)
    """

    def __init__(
        self,
        keys: KeysCollection,
        box_size_mm: float | Sequence[float] = 144.0,
        bounding_box_key: str = "bounding_box_mm",
        body_key: str = "image",
        body_channel: int = 0,
        body_threshold: float = -500.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.box_size_mm = np.broadcast_to(np.asarray(box_size_mm, dtype=np.float64), (3,))
        self.bounding_box_key = bounding_box_key
        self.body_key = body_key
        self.body_channel = body_channel
        self.body_threshold = body_threshold

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        reference = d[self.body_key]
        start, end = self._roi(reference, d.get(self.bounding_box_key))
        cropper = SpatialCrop(roi_start=start, roi_end=end)
        for key in self.key_iterator(d):
            d[key] = cropper(d[key])
        return d

    def _roi(self, image: MetaTensor, box_mm: Sequence[float] | None) -> tuple[list[int], list[int]]:
        affine = np.asarray(image.affine, dtype=np.float64)
        shape = np.asarray(image.shape[1:])
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        if box_mm is not None:
            corners_world = np.array([[box_mm[0], box_mm[2], box_mm[4]], [box_mm[1], box_mm[3], box_mm[5]]])
            corners = (np.linalg.inv(affine) @ np.c_[corners_world, np.ones(2)].T)[:3].T
            start = np.floor(corners.min(0) + 0.5)
            end = start + np.round(corners.max(0) - corners.min(0))
        else:
            body = torch.as_tensor(image[self.body_channel]) > self.body_threshold
            centre = (shape - 1) / 2.0
            if body.any():
                in_plane = torch.nonzero(body.any(dim=-1)).float().mean(0).numpy()
                centre[:2] = in_plane
            half = self.box_size_mm / spacing / 2.0
            start, end = np.round(centre - half), np.round(centre + half)
        start = np.clip(start, 0, shape).astype(int)
        end = np.clip(end, 0, shape).astype(int)
        if np.any(end - start < 2):
            raise ValueError(
                f"{image.meta.get('filename_or_obj', 'image')}: the head-and-neck box {box_mm} lies outside the volume."
            )
        return start.tolist(), end.tolist()

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = SpatialCrop(roi_start=[0, 0, 0], roi_end=[1, 1, 1]).inverse(d[key])
        return d
