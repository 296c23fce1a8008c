"""MONAI dictionary transforms: loading cases, label regions, intensity normalisation, cropping, slicing, pipelines."""

from __future__ import annotations

from dhvae_monai.transforms.intensity import NormalizeByModalityd
from dhvae_monai.transforms.io import LoadTumourCased
from dhvae_monai.transforms.labels import LABEL_CONVENTIONS, REGIONS, TumourRegionsd
from dhvae_monai.transforms.preprocessing import brats_volume_transforms, hecktor_volume_transforms
from dhvae_monai.transforms.slices import ExtractAxialSlicesd, SliceSelection, select_tumour_slices, tumour_areas
from dhvae_monai.transforms.spatial import CropHeadNeckd

__all__ = [
    "LABEL_CONVENTIONS",
    "REGIONS",
    "CropHeadNeckd",
    "ExtractAxialSlicesd",
    "LoadTumourCased",
    "NormalizeByModalityd",
    "SliceSelection",
    "TumourRegionsd",
    "brats_volume_transforms",
    "hecktor_volume_transforms",
    "select_tumour_slices",
    "tumour_areas",
]
