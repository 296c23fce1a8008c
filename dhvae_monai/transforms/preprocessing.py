"""Volume preprocessing pipelines for BraTS and HECKTOR: a datalist item in, a volume on the target grid out."""

from __future__ import annotations

from typing import Sequence

import torch
from monai.transforms import AsDiscreted, Compose, EnsureTyped, Orientationd, Resized, ScaleIntensityd

from dhvae_monai.transforms.intensity import NormalizeByModalityd, ScaleIntensityPerSliced
from dhvae_monai.transforms.io import CheckVolumed, LoadVolumed
from dhvae_monai.transforms.labels import TumourRegionsd
from dhvae_monai.transforms.modalities import SelectModalitiesd
from dhvae_monai.transforms.spatial import CropHeadNeckd, SquareCropForegroundd

__all__ = ["MASK_INTERPOLATIONS", "brats_volume_transforms", "hecktor_volume_transforms"]

MASK_INTERPOLATIONS = ("nearest", "linear")
KEYS = ("image", "label")


def brats_volume_transforms(
    modalities: Sequence[str] = ("flair",),
    regions: Sequence[str] = ("WT",),
    spatial_size: Sequence[int] = (128, 128, 64),
    crop_foreground: bool = True,
    mri_percentiles: Sequence[float] = (0.5, 99.5),
    mri_scaling: str = "slice",
    mask_interpolation: str = "nearest",
    require_tumour: bool = True,
    label_convention: str | None = None,
    affine_tolerance: float = 1e-3,
) -> Compose:
    """
    Preprocessing of a brain-MRI case (BraTS 2018-2023, MSD Task01, or a custom layout of skull-stripped MRI).

    Steps (all MONAI dictionary transforms; the spatial ones are invertible, so ``Invertd`` can bring predictions
    back to the input's space):

    1. load the mask and the sequences (:class:`~dhvae_monai.transforms.io.LoadVolumed`; one file per sequence or
       the MSD 4D file), keep ``modalities`` by name (:class:`~dhvae_monai.transforms.SelectModalitiesd`), and
       check files, grids, labels and, with ``require_tumour``, a non-empty mask (``CheckVolumed``);
    2. reorient to RAS, so the axial axis is the last one;
    3. map labels to the ``regions`` channels (:class:`~dhvae_monai.transforms.TumourRegionsd`);
    4. normalise each sequence on its native grid: brain percentiles clipped and rescaled to [0, 1], background 0
       (:class:`~dhvae_monai.transforms.NormalizeByModalityd`);
    5. crop the brain's bounding box, squared in the axial plane (``crop_foreground``), and resize it to
       ``spatial_size`` (trilinear for images). The paper resizes the whole 240 x 240 x 155 BraTS volume to
       128 x 128 x 64 (voxel size = shape / target, then crop); cropping the brain first spends the slices' pixels
       on the brain alike for every dataset's field of view, and squaring keeps its in-plane aspect ratio.
       ``crop_foreground=False`` gives the paper's whole-volume resize;
    6. masks stay binary: nearest-neighbour resizing (default; torch's ``nearest-exact``, centre-aligned like the
       image's trilinear resize, so both keep matching the affine), or trilinear then a 0.5 threshold
       (``mask_interpolation="linear"``, the paper's choice);
    7. min-max on the target grid: per axial slice (``mri_scaling="slice"``, the paper) or per volume.

    Args:
        modalities: sequences among ``flair``, ``t1``, ``t1ce``, ``t2``; the output's channel order, and the
            channels of an item that names none (a bare path, as MONAI Label sends).
        regions: mask channels among ``WT``, ``TC``, ``ET`` (the paper: ``WT``).
        spatial_size: output grid (H, W, D), D axial; the paper's 128 x 128 x 64 by default.
        crop_foreground: crop the squared brain box before resizing.
        mri_percentiles: brain-intensity percentiles (0-100) clipped before scaling.
        mri_scaling: ``"slice"`` or ``"volume"``: the final min-max.
        mask_interpolation: ``"nearest"`` or ``"linear"`` (trilinear then threshold 0.5).
        require_tumour: fail on an empty mask (training data); items without a mask (inference) always pass.
        label_convention: override the items' ``label_convention``.
        affine_tolerance: largest affine difference (mm) between files still counted as one grid.

    Returns:
        a ``Compose`` mapping a datalist item to ``{"image": [C, H, W, D] float32 in [0, 1], "label": [R, H, W, D]
        float32 in {0, 1}, ...the item's other keys (case_id, ...)}``, for ``CacheDataset`` / ``PersistentDataset``.

    Raises:
        ValueError: an unknown argument value (at construction); the pipeline raises on bad files (see the steps).

    Example::

        transform = brats_volume_transforms(modalities=("flair",), regions=("WT",))
        volume = transform(datalist["training"][0])
    """
    if mri_scaling not in ("slice", "volume"):
        raise ValueError(f"mri_scaling must be 'slice' or 'volume', got {mri_scaling!r}.")
    final_scaling = (
        ScaleIntensityPerSliced("image")
        if mri_scaling == "slice"
        else ScaleIntensityd("image", minv=0.0, maxv=1.0, channel_wise=True)
    )
    crop = [SquareCropForegroundd(KEYS, source_key="image", allow_missing_keys=True)] if crop_foreground else []
    return Compose(
        [
            *_load(modalities, (), affine_tolerance),
            # select before checking, so a sequence that is not used cannot fail a case
            SelectModalitiesd("image", modalities),
            _check(require_tumour, label_convention, affine_tolerance),
            Orientationd(KEYS, axcodes="RAS", labels=None, allow_missing_keys=True),
            TumourRegionsd("label", regions=regions, convention=label_convention, allow_missing_keys=True),
            NormalizeByModalityd("image", mri_percentiles=mri_percentiles),
            *crop,
            *_resize(spatial_size, mask_interpolation),
            final_scaling,
            EnsureTyped(KEYS, dtype=torch.float32, allow_missing_keys=True),
        ]
    )


def hecktor_volume_transforms(
    modalities: Sequence[str] = ("pt",),
    regions: Sequence[str] = ("GTV",),
    spatial_size: Sequence[int] = (128, 128, 64),
    box_size_mm: float | Sequence[float] = 144.0,
    centre: str = "body",
    pet_suv_range: Sequence[float] = (0.0, 10.0),
    pet_percentiles: Sequence[float] | None = None,
    ct_window: Sequence[float] = (-200.0, 300.0),
    per_slice_scaling: bool = False,
    mask_interpolation: str = "nearest",
    require_tumour: bool = True,
    label_convention: str | None = None,
    resample_modalities: Sequence[str] = ("pt",),
    affine_tolerance: float = 1e-3,
) -> Compose:
    """
    Preprocessing of a head-and-neck PET/CT case (HECKTOR 2020-2022, or a custom layout).

    Steps (the spatial ones invertible, as for :func:`brats_volume_transforms`):

    1. load the mask and every modality of the item; PET, on a coarser grid than CT in HECKTOR, is resampled onto
       the CT grid (or the mask's, for a PET-only item) with ``ResampleToMatch``; check files, grids (the mask must
       lie on its image's grid), labels and, with ``require_tumour``, a non-empty mask;
    2. reorient to RAS and map labels to the ``regions`` channels;
    3. crop a head-and-neck box (:class:`~dhvae_monai.transforms.CropHeadNeckd`): the challenge's bounding box when
       the item has ``bounding_box_mm`` (HECKTOR 2021), else a ``box_size_mm`` box centred on the body (located on
       CT, or PET without CT; label-free, so training and inference crop alike) or, with ``centre="label"``, on the
       tumour (training only);
    4. keep ``modalities`` by name and resize the box to ``spatial_size`` (masks as for BraTS);
    5. PET: SUV clipped to ``pet_suv_range`` (or the ``pet_percentiles`` of the box) and scaled to [0, 1], which
       keeps SUV comparable between patients and slices; CT: the ``ct_window`` in HU scaled to [0, 1]; optionally a
       per-slice min-max on top (``per_slice_scaling``, as the paper does for BraTS).

    The paper used PET alone (our default); PET + CT is ``modalities=("pt", "ct")``.

    Args:
        modalities: ``("pt",)``, ``("ct",)`` or ``("pt", "ct")``; the output's channel order, and the channels
            of an item that names none (a bare path, as MONAI Label sends).
        regions: mask channels among ``GTV`` (primary and nodes together), ``GTVp``, ``GTVn``.
        spatial_size: output grid (H, W, D), D axial.
        box_size_mm: head-and-neck box edge(s) in mm when the item has no challenge box.
        centre: ``"body"`` (label-free) or ``"label"``.
        pet_suv_range: SUV range mapped to [0, 1].
        pet_percentiles: if given, PET percentiles (0-100) of the box mapped to [0, 1] instead of the SUV range.
        ct_window: HU window mapped to [0, 1].
        per_slice_scaling: min-max every axial slice at the end.
        mask_interpolation: ``"nearest"`` or ``"linear"`` (trilinear then threshold 0.5).
        require_tumour: fail on an empty mask.
        label_convention: override the items' ``label_convention``.
        resample_modalities: modalities allowed on another grid, resampled onto the CT / mask grid.
        affine_tolerance: largest affine difference (mm) between files still counted as one grid.

    Returns:
        a ``Compose`` mapping a datalist item to the preprocessed volume dictionary (see
        :func:`brats_volume_transforms`).

    Raises:
        ValueError: an unknown argument value (at construction); the pipeline raises on bad files.

    Example::

        transform = hecktor_volume_transforms(modalities=("pt", "ct"), regions=("GTVp", "GTVn"))
        volume = transform(datalist["training"][0])
    """
    intensity = [
        NormalizeByModalityd("image", pet_suv_range=pet_suv_range, pet_percentiles=pet_percentiles, ct_window=ct_window)
    ]
    if per_slice_scaling:
        intensity.append(ScaleIntensityPerSliced("image"))
    return Compose(
        [
            *_load(modalities, resample_modalities, affine_tolerance),
            _check(require_tumour, label_convention, affine_tolerance),
            Orientationd(KEYS, axcodes="RAS", labels=None, allow_missing_keys=True),
            TumourRegionsd("label", regions=regions, convention=label_convention, allow_missing_keys=True),
            CropHeadNeckd(KEYS, box_size_mm=box_size_mm, centre=centre, allow_missing_keys=True),
            # select after the crop, which locates the body on CT even when only PET is kept
            SelectModalitiesd("image", modalities),
            *_resize(spatial_size, mask_interpolation),
            *intensity,
            EnsureTyped(KEYS, dtype=torch.float32, allow_missing_keys=True),
        ]
    )


def _load(modalities: Sequence[str], resample_modalities: Sequence[str], affine_tolerance: float) -> list:
    """Load the mask first: a PET-only image is resampled onto its grid. An item naming no modalities (a MONAI Label
    request) holds the model's."""
    return [
        LoadVolumed("label", affine_tolerance=affine_tolerance, allow_missing_keys=True),
        LoadVolumed(
            "image",
            channel_names_key="modalities",
            default_channel_names=modalities,
            resample_channels=resample_modalities,
            reference_key="label",
            affine_tolerance=affine_tolerance,
        ),
    ]


def _check(require_tumour: bool, label_convention: str | None, affine_tolerance: float) -> CheckVolumed:
    return CheckVolumed(
        KEYS,
        label_convention=label_convention,
        require_tumour=require_tumour,
        affine_tolerance=affine_tolerance,
        allow_missing_keys=True,
    )


def _resize(spatial_size: Sequence[int], mask_interpolation: str) -> list:
    """Resize images trilinearly and masks so they stay binary (nearest, or trilinear then threshold 0.5)."""
    if mask_interpolation not in MASK_INTERPOLATIONS:
        raise ValueError(f"mask_interpolation must be one of {MASK_INTERPOLATIONS}, got {mask_interpolation!r}.")
    if len(spatial_size) != 3 or min(spatial_size) < 1:
        raise ValueError(f"spatial_size must be three positive sizes (H, W, D), got {tuple(spatial_size)}.")
    label_mode = "nearest-exact" if mask_interpolation == "nearest" else "trilinear"
    resize = Resized(KEYS, spatial_size=tuple(spatial_size), mode=("trilinear", label_mode), allow_missing_keys=True)
    if mask_interpolation == "nearest":
        return [resize]
    return [resize, AsDiscreted("label", threshold=0.5, allow_missing_keys=True)]
