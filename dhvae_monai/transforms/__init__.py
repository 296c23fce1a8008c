"""MONAI dictionary transforms: loading cases, label regions, intensity normalisation, cropping, slicing, pipelines."""

from __future__ import annotations

from dhvae_monai.transforms.intensity import MRI_MODALITIES, NormalizeByModalityd, ScaleIntensityPerSliced
from dhvae_monai.transforms.io import CHANNEL_FILES, CheckVolumed, LoadVolumed
from dhvae_monai.transforms.labels import LABEL_CONVENTIONS, REGIONS, TumourRegionsd, unexpected_label_values
from dhvae_monai.transforms.modalities import SelectModalitiesd
from dhvae_monai.transforms.preprocessing import MASK_INTERPOLATIONS, brats_volume_transforms, hecktor_volume_transforms
from dhvae_monai.transforms.slices import ExtractAxialSlicesd, SliceSelection, select_tumour_slices, tumour_areas
from dhvae_monai.transforms.spatial import CropHeadNeckd, SquareCropForegroundd

__all__ = [
    "CHANNEL_FILES",
    "LABEL_CONVENTIONS",
    "MASK_INTERPOLATIONS",
    "MRI_MODALITIES",
    "REGIONS",
    "CheckVolumed",
    "CropHeadNeckd",
    "ExtractAxialSlicesd",
    "LoadVolumed",
    "NormalizeByModalityd",
    "ScaleIntensityPerSliced",
    "SelectModalitiesd",
    "SliceSelection",
    "SquareCropForegroundd",
    "TumourRegionsd",
    "brats_volume_transforms",
    "hecktor_volume_transforms",
    "select_tumour_slices",
    "tumour_areas",
    "unexpected_label_values",
]
