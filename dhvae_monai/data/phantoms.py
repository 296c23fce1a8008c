"""
Procedural phantom datasets in the real BraTS and HECKTOR layouts: the built-in default data.

A fresh machine (or a hospital without internet) has no BraTS or HECKTOR download; these phantoms let every demo
and most tests run anyway, through exactly the code path a real download takes (same folder and file names, NIfTI
files with real-world affines and dtypes, the challenges' label values).

Command line::

    python -m dhvae_monai.data.phantoms --layout brats2021 --cases 10 --output DIR [--seed S]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from scipy import ndimage

from dhvae_monai.utils.atomic import atomic_path

__all__ = ["LAYOUTS", "make_phantom_dataset", "brain_phantom", "head_neck_phantom", "main"]

LAYOUTS = ("brats2021", "brats2023", "msd", "hecktor2021", "hecktor2022")
MARKER = ".dhvae_phantom.json"

# semantic tumour classes of the brain phantom: necrotic core, edema, enhancing tumour
NECROTIC, EDEMA, ENHANCING = 1, 2, 3
BRAIN_LABEL_VALUES = {
    "brats2021": {NECROTIC: 1, EDEMA: 2, ENHANCING: 4},
    "brats2023": {NECROTIC: 1, EDEMA: 2, ENHANCING: 3},
    "msd": {EDEMA: 1, NECROTIC: 2, ENHANCING: 3},  # MSD: 1 edema, 2 non-enhancing tumour, 3 enhancing
}
# mean intensity of each tissue per MRI sequence (arbitrary scanner units, typical relative contrasts)
#            background  CSF   grey  white  necrotic  edema  enhancing
MRI_CONTRAST = {
    "flair": (0, 120, 520, 420, 480, 1050, 820),
    "t1": (0, 220, 520, 720, 260, 460, 420),
    "t1ce": (0, 230, 530, 730, 270, 470, 1150),
    "t2": (0, 1400, 560, 380, 1300, 1100, 900),
}
BRAIN_SHAPE = (96, 96, 64)  # 2 mm voxels: a 19 x 19 x 13 cm field of view, 10 cases in a few seconds
BRAIN_SPACING = (2.0, 2.0, 2.0)
HEAD_NECK_SHAPE = (96, 96, 48)  # CT grid, 2 x 2 x 3 mm; the PET grid is twice as coarse
HEAD_NECK_SPACING = (2.0, 2.0, 3.0)
HECKTOR_CENTRES = ("CHGJ", "CHMR", "CHUM", "CHUS", "CHUP")


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (field - field.mean()) / (field.std() + 1e-8)


def _grid(shape: Sequence[int]) -> list[np.ndarray]:
    """Normalised coordinates in [-1, 1] along each axis."""
    return np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape], indexing="ij")


def _blob(coords: list[np.ndarray], centre: Sequence[float], radius: Sequence[float], roughness: np.ndarray | None = None) -> np.ndarray:
    """Normalised ellipsoidal distance from ``centre`` (< 1 inside), made irregular by ``roughness``."""
    distance = np.sqrt(sum(((c - c0) / r) ** 2 for c, c0, r in zip(coords, centre, radius)))
    return distance if roughness is None else distance * (1.0 + 0.25 * roughness)


def brain_phantom(rng: np.random.Generator, shape: Sequence[int] = BRAIN_SHAPE) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """
    One skull-stripped brain with a glioma: four MRI sequences and a semantic tumour label.

    Anatomy: an ellipsoidal brain (size, position and in-plane rotation vary) with a cortical CSF shell, grey and
    white matter separated by a smooth random boundary, two ventricles, and a tumour made of a necrotic core inside an
    enhancing rim inside an edema halo, all irregular. Each sequence has its usual contrasts, a smooth bias field and
    noise; outside the brain is 0, as in BraTS.

    Args:
        rng: random generator (the case's variability).
        shape: voxel grid (x, y, z); z is axial.

    Returns:
        ``({"flair", "t1", "t1ce", "t2"}: int16 arrays, label)`` with label values 0, ``NECROTIC`` (1),
        ``EDEMA`` (2), ``ENHANCING`` (3).

    Example::

        images, label = brain_phantom(np.random.default_rng(0), shape=(48, 48, 32))
    """
    x, y, z = _grid(shape)
    angle = rng.uniform(-0.2, 0.2)
    x, y = np.cos(angle) * x - np.sin(angle) * y, np.sin(angle) * x + np.cos(angle) * y
    coords = [x, y, z]
    centre = rng.uniform(-0.05, 0.05, 3)
    axes = np.array([rng.uniform(0.72, 0.82), rng.uniform(0.82, 0.92), rng.uniform(0.80, 0.92)])
    brain_distance = _blob(coords, centre, axes, 0.15 * _smooth_noise(rng, shape, 6))
    brain = brain_distance < 1.0

    tissue = np.zeros(shape, dtype=np.uint8)  # 0 background, 1 CSF, 2 grey, 3 white
    tissue[brain] = 2
    tissue[brain & (_smooth_noise(rng, shape, 3) + 2.5 * (1.0 - brain_distance) > 1.6)] = 3
    tissue[brain & (brain_distance > 0.93)] = 1
    for side in (-1, 1):
        ventricle = _blob(coords, centre + np.array([side * 0.12, 0.05, 0.05]), (0.07, 0.25, 0.18))
        tissue[brain & (ventricle < 1.0)] = 1

    label = np.zeros(shape, dtype=np.uint8)
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    tumour_centre = centre + direction * axes * rng.uniform(0.15, 0.45)
    tumour_centre[2] = centre[2] + rng.uniform(-0.25, 0.25)  # keep it well inside the axial extent
    radius = rng.uniform(0.14, 0.24)
    tumour_distance = _blob(coords, tumour_centre, (radius, radius * rng.uniform(0.8, 1.2), radius * rng.uniform(0.9, 1.4)),
                            _smooth_noise(rng, shape, 4.0))
    edema, _ = ndimage.label(brain & (tumour_distance < rng.uniform(1.5, 1.9)))
    if edema.max() > 0:  # one connected halo, not scattered islands
        largest = np.argmax(np.bincount(edema.ravel())[1:]) + 1
        label[edema == largest] = EDEMA
    label[brain & (tumour_distance < 1.0)] = ENHANCING
    label[brain & (tumour_distance < rng.uniform(0.45, 0.7))] = NECROTIC

    tissue_class = np.where(label > 0, 3 + label, tissue)  # 4 necrotic, 5 edema, 6 enhancing
    bias = 1.0 + 0.08 * _smooth_noise(rng, shape, 12)
    images = {}
    for sequence, contrast in MRI_CONTRAST.items():
        means = np.asarray(contrast, dtype=np.float64)[tissue_class]
        texture = 1.0 + 0.04 * _smooth_noise(rng, shape, 1.0)
        noisy = means * bias * texture + rng.normal(0.0, 12.0, shape)
        images[sequence] = np.where(brain, np.clip(noisy, 0, 32000), 0).astype(np.int16)
    return images, label


def head_neck_phantom(rng: np.random.Generator, shape: Sequence[int] = HEAD_NECK_SHAPE, with_nodes: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    One head-and-neck PET/CT with an oropharyngeal primary tumour and, optionally, lymph nodes.

    Anatomy along the axial axis z (feet to head): neck with subcutaneous fat, cervical spine and airway; skull with
    the brain on top. CT in Hounsfield units (air -1000, fat -100, soft tissue 40, bone 700-1200); PET in SUV
    (background 0.5-1, brain 6-8, parotids and tonsils 2-3.5, primary tumour 5-15, nodes 3-8).

    Args:
        rng: random generator.
        shape: CT voxel grid (x, y, z).
        with_nodes: add one or two metastatic lymph nodes (HECKTOR 2022's GTVn).

    Returns:
        ``(ct, pet, label)`` on the CT grid: float32 CT (HU), float32 PET (SUV), uint8 label (0, 1 = primary tumour,
        2 = lymph node).

    Example::

        ct, pet, label = head_neck_phantom(np.random.default_rng(0), shape=(48, 48, 24))
    """
    x, y, z = _grid(shape)
    neck_radius = np.array([rng.uniform(0.45, 0.55), rng.uniform(0.40, 0.48)])
    head_radius = np.array([rng.uniform(0.62, 0.70), rng.uniform(0.70, 0.80)])
    head_level = rng.uniform(0.25, 0.40)  # where the skull starts along z
    blend = np.clip((z - head_level + 0.3) / 0.3, 0.0, 1.0)  # neck -> head transition
    rx = neck_radius[0] + blend * (head_radius[0] - neck_radius[0])
    ry = neck_radius[1] + blend * (head_radius[1] - neck_radius[1])
    offset_x, offset_y = rng.uniform(-0.05, 0.05, 2)
    body_distance = np.sqrt(((x - offset_x) / rx) ** 2 + ((y - offset_y) / ry) ** 2)
    body = body_distance < 1.0

    ct = np.full(shape, -1000.0)
    pet = np.zeros(shape)
    ct[body] = 40.0
    pet[body] = rng.uniform(0.5, 1.0)
    fat = body & (body_distance > 0.85)
    ct[fat] = -100.0
    pet[fat] = 0.3

    in_head = z > head_level
    skull = body & in_head & (body_distance > 0.80) & (body_distance < 0.90)
    brain = body & in_head & (body_distance <= 0.80) & (z > head_level + 0.08)
    ct[skull] = rng.uniform(900, 1200)
    ct[brain] = 35.0
    pet[brain] = rng.uniform(6.0, 8.0)

    neck = body & ~in_head
    spine = neck & (np.sqrt(((x - offset_x) / 0.12) ** 2 + ((y - offset_y - 0.6 * ry) / 0.12) ** 2) < 1.0)
    airway = neck & (np.sqrt(((x - offset_x) / 0.07) ** 2 + ((y - offset_y + 0.25 * ry) / 0.08) ** 2) < 1.0)
    ct[spine] = rng.uniform(650, 800)
    pet[spine] = 1.5
    ct[airway] = -1000.0
    pet[airway] = 0.0
    for side in (-1, 1):  # parotid glands and tonsils
        parotid = _blob([x, y, z], (offset_x + side * 0.75 * rx.max(), offset_y + 0.1, head_level - 0.05), (0.10, 0.14, 0.12))
        tonsil = _blob([x, y, z], (offset_x + side * 0.12, offset_y - 0.15 * ry.mean(), head_level - 0.2), (0.06, 0.06, 0.08))
        pet[body & (parotid < 1.0)] = rng.uniform(2.0, 3.0)
        pet[body & (tonsil < 1.0)] = rng.uniform(2.5, 3.5)

    label = np.zeros(shape, dtype=np.uint8)
    primary_centre = (offset_x + rng.uniform(-0.15, 0.15), offset_y - rng.uniform(0.05, 0.25), head_level - rng.uniform(0.25, 0.45))
    radius = rng.uniform(0.10, 0.16)
    primary = _blob([x, y, z], primary_centre, (radius, radius * rng.uniform(0.8, 1.2), radius * rng.uniform(1.2, 1.8)),
                    _smooth_noise(rng, shape, 2.0))
    label[body & ~airway & (primary < 1.0)] = 1
    uptake = rng.uniform(5.0, 15.0)
    pet = np.where(label == 1, uptake * (1.0 - 0.4 * np.clip(primary, 0, 1)), pet)
    ct = np.where(label == 1, ct + 15.0, ct)
    if with_nodes:
        for _ in range(rng.integers(1, 3)):
            side = rng.choice((-1, 1))
            node_centre = (offset_x + side * rng.uniform(0.3, 0.4), offset_y + rng.uniform(-0.1, 0.15), primary_centre[2] - rng.uniform(0.1, 0.3))
            node = _blob([x, y, z], node_centre, (rng.uniform(0.05, 0.08),) * 2 + (rng.uniform(0.08, 0.12),))
            node_voxels = body & (node < 1.0) & (label == 0)
            label[node_voxels] = 2
            pet[node_voxels] = rng.uniform(3.0, 8.0)
            ct[node_voxels] = 45.0
    ct = ct + rng.normal(0.0, 8.0, shape)
    pet = np.clip(ndimage.gaussian_filter(pet, 1.0) + rng.normal(0.0, 0.05, shape), 0.0, None)
    return ct.astype(np.float32), pet.astype(np.float32), label


def _affine(spacing: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """LPS-stored affine (as BraTS / HECKTOR NIfTI files from ITK), centred on the scanner origin."""
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = -affine[:3, :3] @ (np.asarray(shape) - 1) / 2.0
    return affine


def _coarser_grid(volume: np.ndarray, affine: np.ndarray, factor: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Block-average ``volume`` by ``factor`` per axis; the affine keeps the same physical extent."""
    cropped = volume[tuple(slice(0, (n // factor) * factor) for n in volume.shape)]
    shape = [n // factor for n in cropped.shape]
    blocks = cropped.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))
    coarse_affine = affine.copy()
    coarse_affine[:3, :3] = affine[:3, :3] * factor
    coarse_affine[:3, 3] = affine[:3, 3] + affine[:3, :3] @ np.full(3, (factor - 1) / 2.0)
    return blocks.astype(volume.dtype), coarse_affine


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(path) as temporary:
        nib.save(image, temporary)


def _prepare_output(output_dir: Path, layout: str) -> None:
    marker = output_dir / MARKER
    if output_dir.exists() and any(output_dir.iterdir()):
        if not marker.is_file() or json.loads(marker.read_text()).get("layout") != layout:
            raise FileExistsError(
                f"{output_dir} is not empty and is not a {layout} phantom dataset; choose an empty or new folder "
                "(phantoms never write among other files)."
            )
    output_dir.mkdir(parents=True, exist_ok=True)


def _case_ids(layout: str, num_cases: int) -> list[str]:
    if layout == "brats2021":
        return [f"BraTS2021_{i:05d}" for i in range(num_cases)]
    if layout == "brats2023":
        return [f"BraTS-GLI-{i:05d}-000" for i in range(num_cases)]
    if layout == "msd":
        return [f"BRATS_{i + 1:03d}" for i in range(num_cases)]
    separator = "" if layout == "hecktor2021" else "-"
    return [f"{HECKTOR_CENTRES[i % len(HECKTOR_CENTRES)]}{separator}{i // len(HECKTOR_CENTRES) + 1:03d}" for i in range(num_cases)]


def make_phantom_dataset(
    output_dir: str | os.PathLike, layout: str, num_cases: int, seed: int = 0, shape: Sequence[int] | None = None
) -> list[str]:
    """
    Write ``num_cases`` phantom patients in the folder and file layout of a real challenge download.

    - ``brats2021``: ``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz`` (labels 0, 1, 2, 4)
    - ``brats2023``: ``<case>/<case>-{t1c,t1n,t2f,t2w,seg}.nii.gz`` (labels 0, 1, 2, 3)
    - ``msd``: ``dataset.json``, ``imagesTr/BRATS_XXX.nii.gz`` (4D: FLAIR, T1w, t1gd, T2w), ``labelsTr/`` (0 background,
      1 edema, 2 non-enhancing tumour, 3 enhancing tumour)
    - ``hecktor2021``: ``hecktor_nii/<case>_{ct,pt,gtvt}.nii.gz`` and ``hecktor2021_bbox_training.csv``
    - ``hecktor2022``: ``imagesTr/<case>__{CT,PT}.nii.gz``, ``labelsTr/<case>.nii.gz`` (0, 1 GTVp, 2 GTVn)

    PET is written on a grid twice as coarse as the CT and the mask, as in the real data. Files are written
    atomically; the same seed gives identical files.

    Args:
        output_dir: folder to create (or an earlier phantom dataset of the same layout, which is overwritten).
        layout: one of :data:`LAYOUTS`.
        num_cases: number of patients (>= 1).
        seed: random seed of the whole dataset.
        shape: voxel grid of each volume (the CT grid for HECKTOR); default 96 x 96 x 64 (MRI), 96 x 96 x 48 (CT).

    Returns:
        the case ids written.

    Raises:
        ValueError: unknown layout or ``num_cases < 1``.
        FileExistsError: ``output_dir`` holds other files.

    Example::

        make_phantom_dataset("data/phantom_brats", layout="brats2021", num_cases=10, seed=0)
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown phantom layout {layout!r}; expected one of {LAYOUTS}.")
    if num_cases < 1:
        raise ValueError(f"num_cases must be >= 1, got {num_cases}.")
    output_dir = Path(output_dir)
    _prepare_output(output_dir, layout)
    case_ids = _case_ids(layout, num_cases)
    rng = np.random.default_rng(seed)
    case_rngs = [np.random.default_rng(child) for child in rng.bit_generator.seed_seq.spawn(num_cases)]
    if layout.startswith("hecktor"):
        _write_hecktor(output_dir, layout, case_ids, case_rngs, tuple(shape or HEAD_NECK_SHAPE))
    else:
        _write_brain(output_dir, layout, case_ids, case_rngs, tuple(shape or BRAIN_SHAPE))
    (output_dir / MARKER).write_text(json.dumps({"layout": layout, "num_cases": num_cases, "seed": seed}))
    return case_ids


def _write_brain(output_dir: Path, layout: str, case_ids: list[str], rngs: list, shape: tuple[int, ...]) -> None:
    affine = _affine(BRAIN_SPACING, shape)
    file_names = {
        "brats2021": {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2"},
        "brats2023": {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"},
    }
    training = []
    for case_id, rng in zip(case_ids, rngs):
        images, semantic = brain_phantom(rng, shape)
        label = np.zeros_like(semantic, dtype=np.uint8)
        for semantic_value, value in BRAIN_LABEL_VALUES[layout].items():
            label[semantic == semantic_value] = value
        if layout == "msd":
            stacked = np.stack([images[m] for m in ("flair", "t1", "t1ce", "t2")], axis=-1)
            _save(stacked, affine, output_dir / "imagesTr" / f"{case_id}.nii.gz")
            _save(label, affine, output_dir / "labelsTr" / f"{case_id}.nii.gz")
            training.append({"image": f"./imagesTr/{case_id}.nii.gz", "label": f"./labelsTr/{case_id}.nii.gz"})
            continue
        separator = "_" if layout == "brats2021" else "-"
        for modality, name in file_names[layout].items():
            _save(images[modality], affine, output_dir / case_id / f"{case_id}{separator}{name}.nii.gz")
        _save(label, affine, output_dir / case_id / f"{case_id}{separator}seg.nii.gz")
    if layout == "msd":
        description = {
            "name": "BRATS",
            "description": "dhvae-monai phantom in the Medical Segmentation Decathlon Task01_BrainTumour layout",
            "tensorImageSize": "4D",
            "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
            "numTraining": len(training),
            "numTest": 0,
            "training": training,
            "test": [],
        }
        with atomic_path(output_dir / "dataset.json") as temporary:
            temporary.write_text(json.dumps(description, indent=4))


def _write_hecktor(output_dir: Path, layout: str, case_ids: list[str], rngs: list, shape: tuple[int, ...]) -> None:
    affine = _affine(HEAD_NECK_SPACING, shape)
    boxes = []
    for case_id, rng in zip(case_ids, rngs):
        ct, pet, label = head_neck_phantom(rng, shape, with_nodes=layout == "hecktor2022")
        pet_coarse, pet_affine = _coarser_grid(pet, affine)
        if layout == "hecktor2021":
            folder = output_dir / "hecktor_nii"
            _save(ct, affine, folder / f"{case_id}_ct.nii.gz")
            _save(pet_coarse, pet_affine, folder / f"{case_id}_pt.nii.gz")
            _save(label, affine, folder / f"{case_id}_gtvt.nii.gz")
            boxes.append([case_id, *_bounding_box_mm(label, affine)])
        else:
            _save(ct, affine, output_dir / "imagesTr" / f"{case_id}__CT.nii.gz")
            _save(pet_coarse, pet_affine, output_dir / "imagesTr" / f"{case_id}__PT.nii.gz")
            _save(label, affine, output_dir / "labelsTr" / f"{case_id}.nii.gz")
    if boxes:
        with atomic_path(output_dir / "hecktor2021_bbox_training.csv") as temporary:
            with open(temporary, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["PatientID", "x1", "x2", "y1", "y2", "z1", "z2"])
                writer.writerows(boxes)


def _bounding_box_mm(label: np.ndarray, affine: np.ndarray, size_mm: float = 144.0) -> list[float]:
    """A ``size_mm`` cube (the challenge's box size) centred on the tumour, in ITK's LPS millimetres like the CSV."""
    tumour = np.argwhere(label > 0)
    centre_voxel = tumour.mean(axis=0) if len(tumour) else (np.asarray(label.shape) - 1) / 2.0
    centre = (affine[:3, :3] @ centre_voxel + affine[:3, 3]) * np.array([-1.0, -1.0, 1.0])  # NIfTI RAS -> LPS
    half = size_mm / 2.0
    return [round(float(v), 2) for c in centre for v in (c - half, c + half)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a phantom dataset in a real BraTS / HECKTOR layout.")
    parser.add_argument("--layout", required=True, choices=LAYOUTS)
    parser.add_argument("--cases", type=int, required=True, help="number of patients")
    parser.add_argument("--output", required=True, help="folder to create")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        case_ids = make_phantom_dataset(args.output, args.layout, args.cases, seed=args.seed)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(case_ids)} {args.layout} phantom cases to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
