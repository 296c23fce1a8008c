from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import torch

from dhvae_monai.transforms.io import CHANNEL_FILES, CheckVolumed, LoadVolumed

SHAPE = (12, 10, 8)
LPS = np.diag([-2.0, -2.0, 3.0, 1.0])  # how ITK-written BraTS / HECKTOR NIfTI files store their axes


def write(path, array, affine=LPS):
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return str(path)


def image(seed=0):
    return np.random.default_rng(seed).uniform(1, 100, SHAPE).astype(np.float32)


def tumour(value=1):
    label = np.zeros(SHAPE, np.uint8)
    label[4:8, 3:6, 2:5] = value
    return label


def error_of(call, *args, kind=ValueError) -> str:
    with pytest.raises(kind) as error:
        call(*args)
    return str(error.value)


# ------------------------------------------------------------------------------------------------------ LoadVolumed
def test_files_stacked_as_named_channels_with_their_files(tmp_path):
    flair, t2 = write(tmp_path / "flair.nii.gz", image(0)), write(tmp_path / "t2.nii.gz", image(1))
    case = LoadVolumed("image", "modalities")({"image": [flair, t2], "modalities": ["flair", "t2"], "case_id": "a"})
    loaded = case["image"]
    assert tuple(loaded.shape) == (2, *SHAPE) and loaded.dtype == torch.float32
    np.testing.assert_allclose(loaded[1].numpy(), image(1), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(loaded.affine), LPS)
    assert loaded.meta["filename_or_obj"] == flair and loaded.meta[CHANNEL_FILES] == [flair, t2]
    assert loaded.applied_operations == [] and case["case_id"] == "a"


def test_one_4d_file_holds_the_named_channels(tmp_path):
    """The Medical Segmentation Decathlon's layout: one 4D image, channels FLAIR, T1w, t1gd, T2w."""
    volumes = np.stack([image(seed) for seed in range(4)], axis=-1)
    path = write(tmp_path / "BRATS_001.nii.gz", volumes)
    loaded = LoadVolumed("image", "modalities")({"image": path, "modalities": ["flair", "t1", "t1ce", "t2"]})["image"]
    assert tuple(loaded.shape) == (4, *SHAPE)
    np.testing.assert_allclose(loaded[2].numpy(), image(2), rtol=1e-6)
    assert loaded.meta[CHANNEL_FILES] == [path] * 4
    message = error_of(LoadVolumed("image", "modalities"), {"image": path, "modalities": ["flair", "t1"]})
    assert "BRATS_001.nii.gz: expected 2 channels (['flair', 't1']), got 4" in message


def test_pet_resampled_onto_the_ct_grid_or_the_mask_grid(tmp_path):
    coarse = LPS.copy()
    coarse[:3, :3] *= 2.0  # the same field of view at twice the voxel size, as HECKTOR's PET
    coarse[:3, 3] = LPS[:3, :3] @ np.full(3, 0.5)
    pet = write(tmp_path / "pt.nii.gz", np.ones((6, 5, 4), np.float32) * 3.0, coarse)
    ct = write(tmp_path / "ct.nii.gz", image())
    gtv = write(tmp_path / "gtv.nii.gz", tumour())
    load_label = LoadVolumed("label")
    load_image = LoadVolumed("image", "modalities", resample_channels=("pt",), reference_key="label")
    item = {"image": [pet, ct], "modalities": ["pt", "ct"], "label": gtv}

    both = load_image(load_label(item))["image"]
    assert tuple(both.shape) == (2, *SHAPE)
    np.testing.assert_allclose(np.asarray(both.affine), LPS)
    assert float(both[0, 2:10, 2:8, 2:6].min()) == pytest.approx(3.0)  # constant PET stays constant inside its FOV
    # the stack carries the CT grid's history (none), so Invertd maps predictions back onto the CT / mask grid
    assert both.applied_operations == [] and both.meta[CHANNEL_FILES] == [pet, ct]

    pet_only = load_image(load_label(dict(item, image=[pet], modalities=["pt"])))["image"]
    assert tuple(pet_only.shape) == (1, *SHAPE)  # no CT: onto the mask's grid
    without_mask = load_image({"image": [pet], "modalities": ["pt"]})["image"]
    assert tuple(without_mask.shape) == (1, 6, 5, 4)  # nothing to match: its own grid

    message = error_of(LoadVolumed("image", "modalities"), item)  # PET not allowed to differ
    assert message.startswith(f"{ct} (ct) and {pet} (pt) are not on the same voxel grid: shape (12, 10, 8) vs (6, 5,")


def test_bad_files_name_the_file(tmp_path):
    good = write(tmp_path / "flair.nii.gz", image())
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(open(good, "rb").read())[:300])
    text = tmp_path / "notes.nii.gz"
    text.write_text("not an image")
    load = LoadVolumed("image", "modalities")
    for path in (truncated, text):
        message = error_of(load, {"image": [str(path)], "modalities": ["flair"]})
        assert message.startswith(f"cannot read {path}: not a readable image")
    absent = {"image": [str(tmp_path / "absent.nii.gz")], "modalities": ["flair"]}
    message = error_of(load, absent, kind=FileNotFoundError)
    assert "absent.nii.gz: no such file" in message

    four_d = write(tmp_path / "four.nii.gz", np.stack([image(), image()], axis=-1))
    message = error_of(load, {"image": [good, four_d], "modalities": ["flair", "t1"]})
    assert message.startswith(f"{four_d}: expected a 3D volume, got a 4D file of 2 volumes")
    assert "seg4d.nii.gz: expected a 3D volume" in error_of(
        LoadVolumed("label"), {"label": write(tmp_path / "seg4d.nii.gz", np.stack([tumour()] * 2, axis=-1))}
    )
    two_d = write(tmp_path / "slice.nii.gz", image()[..., 0])
    assert "slice.nii.gz: expected a 3D volume" in error_of(load, {"image": [two_d], "modalities": ["flair"]})
    message = error_of(load, {"image": [good, good, good], "modalities": ["flair", "t1"]})
    assert "3 files for the 2 channels" in message


def test_an_item_naming_no_channels_gets_the_default_names(tmp_path):
    """A MONAI Label request: a bare path, no modality names."""
    flair = write(tmp_path / "scan.nii.gz", image())
    load = LoadVolumed("image", "modalities", default_channel_names=("flair",))
    case = load({"image": flair})
    assert case["modalities"] == ["flair"] and tuple(case["image"].shape) == (1, *SHAPE)
    assert load({"image": flair, "modalities": ["t2"]})["modalities"] == ["t2"]  # an item's own names win
    four_d = write(tmp_path / "msd.nii.gz", np.stack([image(), image()], axis=-1))
    assert "msd.nii.gz: expected a 3D volume, got a 4D file of 2 volumes" in error_of(load, {"image": four_d})
    assert "needs a channel_names_key" in error_of(LoadVolumed, "image", None, ("flair",))


def test_an_empty_path_says_what_monai_label_means_by_it(tmp_path):
    message = error_of(LoadVolumed("image", "modalities", default_channel_names=("flair",)), {"image": ""},
                       kind=FileNotFoundError)
    assert message.startswith("'image': an empty file path") and "not in its studies folder" in message


def test_one_dimensional_trailing_axis_counts_as_3d(tmp_path):
    path = write(tmp_path / "flair.nii.gz", image()[..., None])
    assert tuple(LoadVolumed("image")({"image": path})["image"].shape) == (1, *SHAPE)


# ----------------------------------------------------------------------------------------------------- CheckVolumed
@pytest.fixture
def loaded(tmp_path):
    def load(image_array=None, label_array=None, image_affine=LPS, label_affine=LPS, convention="brats2021"):
        item = {
            "image": [write(tmp_path / "flair.nii.gz", image() if image_array is None else image_array, image_affine)],
            "modalities": ["flair"],
            "label": write(tmp_path / "seg.nii.gz", tumour(2) if label_array is None else label_array, label_affine),
            "label_convention": convention,
        }
        return LoadVolumed("image", "modalities")(LoadVolumed("label")(item))

    return load


def test_a_valid_case_passes_unchanged(loaded):
    case = loaded()
    checked = CheckVolumed()(case)
    assert checked["image"] is case["image"] and checked["label"] is case["label"]


def test_grid_mismatches_name_both_files(loaded):
    message = error_of(CheckVolumed(), loaded(image_array=image()[:10]))
    assert "seg.nii.gz (label) and " in message and "flair.nii.gz are not on the same voxel grid: shape" in message
    moved = LPS.copy()
    moved[0, 3] = 1.0  # half a voxel
    assert "affines differ by up to 1 mm" in error_of(CheckVolumed(), loaded(label_affine=moved))
    rounding = LPS.copy()
    rounding[0, 3] = 1e-5  # float32 storage noise is not a mismatch
    CheckVolumed()(loaded(label_affine=rounding))


def test_non_finite_voxels_name_the_channel_file(loaded, tmp_path):
    with_nan = image()
    with_nan[0, 0, 0] = np.nan
    with_nan[1, 0, 0] = np.inf
    message = error_of(CheckVolumed(), loaded(image_array=with_nan))
    assert message.endswith("flair.nii.gz: 2 voxel(s) are NaN or infinite.")
    # in a stack, the bad channel's own file is named
    t2 = write(tmp_path / "t2.nii.gz", with_nan)
    flair = write(tmp_path / "clean.nii.gz", image())
    stacked = LoadVolumed("image", "modalities")({"image": [flair, t2], "modalities": ["flair", "t2"]})
    assert error_of(CheckVolumed("image"), stacked).startswith(f"{t2}: 2 voxel(s)")


def test_label_values_must_fit_the_convention(loaded):
    message = error_of(CheckVolumed(), loaded(label_array=tumour(3)))
    assert "seg.nii.gz: unexpected label value(s) [3.0] for the 'brats2021' convention" in message
    assert "(expected 0 and [1, 2, 4])" in message
    CheckVolumed()(loaded(label_array=tumour(3), convention="brats2023"))
    CheckVolumed(label_convention="msd")(loaded(label_array=tumour(3)))  # an explicit convention wins
    halves = tumour(1).astype(np.float32) / 2
    message = error_of(CheckVolumed(), loaded(label_array=halves, convention="binary"))
    assert "unexpected label value(s) [0.5]" in message
    CheckVolumed()(loaded(label_array=tumour(7), convention="binary"))
    with pytest.raises(ValueError, match="unknown label convention 'brats'"):
        CheckVolumed(label_convention="brats")


def test_empty_mask_only_fails_when_a_tumour_is_required(loaded):
    empty = loaded(label_array=np.zeros(SHAPE, np.uint8))
    message = error_of(CheckVolumed(), empty)
    assert message.endswith("seg.nii.gz: the mask is empty (no tumour voxel) but a tumour is required.")
    CheckVolumed(require_tumour=False)(empty)
    inference = {key: value for key, value in empty.items() if key != "label"}
    CheckVolumed(allow_missing_keys=True)(inference)
