from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage

from dhvae_monai.data.phantoms import make_phantom_dataset

SMALL_BRAIN, HEAD_NECK = (32, 32, 24), (96, 96, 48)


def _corners(affine, shape):
    """World coordinates of the outer corners of the first and last voxels."""
    return [affine[:3, :3] @ index + affine[:3, 3] for index in (np.full(3, -0.5), np.asarray(shape) - 0.5)]


def _load(path):
    image = nib.load(str(path))
    return np.asarray(image.dataobj), image


@pytest.mark.parametrize(
    "layout,expected",
    [
        ("brats2021", ["BraTS2021_00000/BraTS2021_00000_flair.nii.gz", "BraTS2021_00000/BraTS2021_00000_t1.nii.gz",
                       "BraTS2021_00000/BraTS2021_00000_t1ce.nii.gz", "BraTS2021_00000/BraTS2021_00000_t2.nii.gz",
                       "BraTS2021_00000/BraTS2021_00000_seg.nii.gz"]),
        ("brats2023", ["BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz", "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n.nii.gz",
                       "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz", "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2w.nii.gz",
                       "BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg.nii.gz"]),
        ("msd", ["dataset.json", "imagesTr/BRATS_001.nii.gz", "labelsTr/BRATS_001.nii.gz"]),
        ("hecktor2021", ["hecktor_nii/CHGJ001_ct.nii.gz", "hecktor_nii/CHGJ001_pt.nii.gz",
                         "hecktor_nii/CHGJ001_gtvt.nii.gz", "hecktor2021_bbox_training.csv"]),
        ("hecktor2022", ["imagesTr/CHGJ-001__CT.nii.gz", "imagesTr/CHGJ-001__PT.nii.gz", "labelsTr/CHGJ-001.nii.gz"]),
    ],
)
def test_exact_layout_file_names(tmp_path, layout, expected):
    make_phantom_dataset(tmp_path / layout, layout, num_cases=1, shape=(16, 16, 12))
    written = sorted(str(p.relative_to(tmp_path / layout)) for p in (tmp_path / layout).rglob("*") if p.is_file())
    assert written == sorted(expected + [".dhvae_phantom.json"])


def test_same_seed_same_data_other_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        make_phantom_dataset(tmp_path / name, "brats2021", num_cases=2, seed=seed, shape=SMALL_BRAIN)
    files = ["BraTS2021_00001/BraTS2021_00001_flair.nii.gz", "BraTS2021_00001/BraTS2021_00001_seg.nii.gz"]
    for file in files:
        assert np.array_equal(_load(tmp_path / "a" / file)[0], _load(tmp_path / "b" / file)[0])
        assert not np.array_equal(_load(tmp_path / "a" / file)[0], _load(tmp_path / "c" / file)[0])
    # cases differ from each other
    assert not np.array_equal(_load(tmp_path / "a" / files[0])[0],
                              _load(tmp_path / "a" / files[0].replace("00001", "00000"))[0])


@pytest.mark.parametrize("layout,values", [("brats2021", {0, 1, 2, 4}), ("brats2023", {0, 1, 2, 3}), ("msd", {0, 1, 2, 3})])
def test_brain_labels_intensities_and_grid(tmp_path, layout, values):
    make_phantom_dataset(tmp_path, layout, num_cases=2, shape=SMALL_BRAIN)
    if layout == "msd":
        image, image_nii = _load(tmp_path / "imagesTr" / "BRATS_002.nii.gz")
        label, label_nii = _load(tmp_path / "labelsTr" / "BRATS_002.nii.gz")
        assert image.shape == (*SMALL_BRAIN, 4)
        description = json.loads((tmp_path / "dataset.json").read_text())
        assert all((tmp_path / item["image"]).is_file() and (tmp_path / item["label"]).is_file() for item in description["training"])
        assert description["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
        flair = image[..., 0]
    else:
        case = sorted(p for p in tmp_path.iterdir() if p.is_dir())[1]
        separator, flair_name = ("_", "flair") if layout == "brats2021" else ("-", "t2f")
        flair, image_nii = _load(case / f"{case.name}{separator}{flair_name}.nii.gz")
        label, label_nii = _load(case / f"{case.name}{separator}seg.nii.gz")
        assert flair.shape == SMALL_BRAIN
    assert set(np.unique(label).tolist()) == values  # every tumour part present
    assert flair.dtype == np.int16 and flair.min() == 0 and flair.max() > 500
    assert np.allclose(image_nii.affine, label_nii.affine)
    assert np.allclose(np.abs(np.diag(image_nii.affine)[:3]), 2.0)
    edema_value = 2 if layout != "msd" else 1
    assert flair[label == edema_value].mean() > 1.5 * flair[(label == 0) & (flair > 0)].mean()  # FLAIR-bright edema


@pytest.mark.parametrize("layout", ["hecktor2021", "hecktor2022"])
def test_head_neck_ct_pet_and_labels(tmp_path, layout):
    make_phantom_dataset(tmp_path, layout, num_cases=2, shape=HEAD_NECK)
    if layout == "hecktor2021":
        ct, ct_nii = _load(tmp_path / "hecktor_nii" / "CHMR001_ct.nii.gz")
        pet, pet_nii = _load(tmp_path / "hecktor_nii" / "CHMR001_pt.nii.gz")
        label, label_nii = _load(tmp_path / "hecktor_nii" / "CHMR001_gtvt.nii.gz")
        assert set(np.unique(label).tolist()) == {0, 1}
        rows = (tmp_path / "hecktor2021_bbox_training.csv").read_text().splitlines()
        assert rows[0] == "PatientID,x1,x2,y1,y2,z1,z2" and len(rows) == 3
        x1, x2 = (float(v) for v in rows[2].split(",")[1:3])
        assert x2 - x1 == pytest.approx(144.0)
    else:
        ct, ct_nii = _load(tmp_path / "imagesTr" / "CHMR-001__CT.nii.gz")
        pet, pet_nii = _load(tmp_path / "imagesTr" / "CHMR-001__PT.nii.gz")
        label, label_nii = _load(tmp_path / "labelsTr" / "CHMR-001.nii.gz")
        assert set(np.unique(label).tolist()) == {0, 1, 2}
    assert ct.dtype == np.float32 and ct.min() < -900 and ct.max() > 600  # air and bone in HU
    assert ct.shape == label.shape == HEAD_NECK and np.allclose(ct_nii.affine, label_nii.affine)
    # PET on a grid twice as coarse, covering the same physical extent
    assert pet.shape == tuple(n // 2 for n in HEAD_NECK)
    assert np.allclose(np.diag(pet_nii.affine)[:3], 2 * np.diag(ct_nii.affine)[:3])
    assert np.allclose(_corners(ct_nii.affine, ct.shape), _corners(pet_nii.affine, pet.shape))
    # the primary tumour is hot in PET (compare on the CT grid by upsampling PET)
    pet_fine = np.repeat(np.repeat(np.repeat(pet, 2, 0), 2, 1), 2, 2)
    assert pet_fine[label == 1].mean() > 3 * np.median(pet_fine[(label == 0) & (ct > -500)])


def test_every_file_loads_with_monai(tmp_path):
    make_phantom_dataset(tmp_path / "hecktor", "hecktor2022", num_cases=1, shape=(16, 16, 12))
    make_phantom_dataset(tmp_path / "msd", "msd", num_cases=1, shape=(16, 16, 12))
    loader = LoadImage(image_only=True)
    for path in tmp_path.rglob("*.nii.gz"):
        assert loader(str(path)).ndim in (3, 4)


def test_refuses_foreign_folders_and_bad_arguments(tmp_path):
    (tmp_path / "user_data.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        make_phantom_dataset(tmp_path, "brats2021", num_cases=1)
    make_phantom_dataset(tmp_path / "p", "brats2021", num_cases=1, shape=(16, 16, 12))
    make_phantom_dataset(tmp_path / "p", "brats2021", num_cases=1, shape=(16, 16, 12))  # same layout: regenerated
    with pytest.raises(FileExistsError):
        make_phantom_dataset(tmp_path / "p", "msd", num_cases=1)
    with pytest.raises(ValueError, match="unknown phantom layout"):
        make_phantom_dataset(tmp_path / "q", "brats2019", num_cases=1)
    with pytest.raises(ValueError, match="num_cases"):
        make_phantom_dataset(tmp_path / "q", "msd", num_cases=0)


def test_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dhvae_monai.data.phantoms", "--layout", "hecktor2021", "--cases", "2",
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 2 hecktor2021 phantom cases" in result.stdout
    assert len(list((tmp_path / "out" / "hecktor_nii").glob("*.nii.gz"))) == 6
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "dhvae_monai.data.phantoms", "--layout", "msd", "--cases", "1", "--output", str(tmp_path / "busy")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2 and "not empty" in result.stderr and "Traceback" not in result.stderr
