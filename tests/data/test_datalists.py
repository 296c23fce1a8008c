from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from monai.data import load_decathlon_datalist

from dhvae_monai.data.datalists import DatalistError, make_datalist, write_datalist
from dhvae_monai.data.phantoms import LAYOUTS as PHANTOM_LAYOUTS
from dhvae_monai.data.phantoms import make_phantom_dataset

TINY = (16, 16, 12)


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory):
    """One small phantom dataset per layout, each in its own folder."""
    root = tmp_path_factory.mktemp("phantoms")
    for layout in PHANTOM_LAYOUTS:
        make_phantom_dataset(root / layout, layout, num_cases=6, shape=TINY)
    return root


def _case_ids(items):
    return [item["case_id"] for item in items]


@pytest.mark.parametrize("layout", PHANTOM_LAYOUTS)
def test_every_layout_is_detected_and_listed(phantom_root, layout, tmp_path):
    datalist = make_datalist(phantom_root / layout, val=1, test=1)
    assert datalist["layout"] == layout and datalist["skipped"] == []
    assert [len(datalist[s]) for s in ("training", "validation", "test")] == [4, 1, 1]
    item = datalist["training"][0]
    assert set(item) >= {"image", "label", "case_id", "modalities", "label_convention"}
    expected_modalities = ["pt", "ct"] if layout.startswith("hecktor") else ["flair", "t1", "t1ce", "t2"]
    assert item["modalities"] == expected_modalities
    assert item["label_convention"] == layout
    assert len(item["image"]) == (1 if layout == "msd" else len(expected_modalities))
    if layout == "brats2023":  # canonical order: flair (t2f), t1 (t1n), t1ce (t1c), t2 (t2w)
        assert [p.rsplit("-", 1)[1] for p in item["image"]] == ["t2f.nii.gz", "t1n.nii.gz", "t1c.nii.gz", "t2w.nii.gz"]
    if layout == "hecktor2021":
        assert len(item["bounding_box_mm"]) == 6
    path = write_datalist(datalist, tmp_path / "sub" / "datalist.json")
    for split in ("training", "validation", "test"):
        loaded = load_decathlon_datalist(str(path), data_list_key=split)
        assert _case_ids(loaded) == _case_ids(datalist[split])


def test_modality_subset_keeps_canonical_order(phantom_root):
    datalist = make_datalist(phantom_root / "brats2021", modalities=["t1ce", "flair"], val=1, test=1)
    item = datalist["training"][0]
    assert item["modalities"] == ["flair", "t1ce"] and item["image"][0].endswith("_flair.nii.gz")
    with pytest.raises(DatalistError, match="not in layout"):
        make_datalist(phantom_root / "hecktor2022", modalities=["flair"])


def test_patient_level_splits_without_leakage(phantom_root):
    datalist = make_datalist(phantom_root / "brats2021", val=0.2, test=0.34, seed=1)
    splits = [set(_case_ids(datalist[s])) for s in ("training", "validation", "test")]
    assert sum(len(s) for s in splits) == 6 and len(set.union(*splits)) == 6  # disjoint, complete
    assert datalist == make_datalist(phantom_root / "brats2021", val=0.2, test=0.34, seed=1)
    others = [make_datalist(phantom_root / "brats2021", val=0.2, test=0.34, seed=s)["test"] for s in range(2, 6)]
    assert any(_case_ids(o) != _case_ids(datalist["test"]) for o in others)


def test_k_folds_partition_the_non_test_cases(phantom_root):
    datalist = make_datalist(phantom_root / "brats2023", num_folds=2, test=2)
    assert datalist["validation"] == [] and len(datalist["test"]) == 2
    folds = [item["fold"] for item in datalist["training"]]
    assert sorted(folds) == [0, 0, 1, 1]
    assert not set(_case_ids(datalist["training"])) & set(_case_ids(datalist["test"]))


def test_real_brats2018_and_hecktor2020_cases(real_data_dir):
    for root in (real_data_dir / "brats", real_data_dir / "brats" / "brainy_Brats18_2013_2_1"):
        datalist = make_datalist(root, val=0, test=0)
        assert datalist["layout"] == "brats2021"
        assert _case_ids(datalist["training"]) == ["Brats18_2013_2_1"]  # id from the file names, not the folder
    datalist = make_datalist(real_data_dir / "hecktor", val=0, test=0)
    assert datalist["layout"] == "hecktor2021"
    item = datalist["training"][0]
    assert item["case_id"] == "CHGJ015" and item["label"].endswith("CHGJ015_ct_gtvt.nii.gz")
    assert [p.rsplit("_", 1)[1] for p in item["image"]] == ["pt.nii.gz", "ct.nii.gz"]


def test_custom_layout_on_real_brats2015_cases(real_data_dir):
    datalist = make_datalist(
        real_data_dir / "brats", layout="custom",
        patterns={"flair": "Flair_*.nii.gz", "t1ce": "T1c_*.nii.gz", "label": "OTMultiClass.nii.gz"},
        label_convention="brats2015", val=1, test=1,
    )
    all_items = datalist["training"] + datalist["validation"] + datalist["test"]
    assert len(all_items) == 6 and all(i["case_id"].startswith("deepmedic_brats2015") for i in all_items)
    assert all(i["label_convention"] == "brats2015" and i["modalities"] == ["flair", "t1ce"] for i in all_items)


def test_incomplete_cases_are_named_and_skipped_only_on_request(phantom_root, tmp_path):
    root = tmp_path / "brats"
    shutil.copytree(phantom_root / "brats2021", root)
    (root / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz").unlink()
    (root / "BraTS2021_00004" / "BraTS2021_00004_seg.nii.gz").unlink()
    with pytest.raises(DatalistError) as error:
        make_datalist(root, val=1, test=1)
    assert "BraTS2021_00002: missing t1ce" in str(error.value) and "BraTS2021_00004: missing mask" in str(error.value)
    datalist = make_datalist(root, val=1, test=1, skip_incomplete=True)
    assert datalist["skipped"] == [
        {"case_id": "BraTS2021_00002", "reason": "missing t1ce"},
        {"case_id": "BraTS2021_00004", "reason": "missing mask"},
    ]
    assert len(datalist["training"]) == 2
    # a modality nobody asked for is not required
    assert make_datalist(root, modalities=["flair"], val=1, test=1, skip_incomplete=True)["skipped"][0]["case_id"] == "BraTS2021_00004"


def test_bad_folders_and_arguments(phantom_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_datalist(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatalistError, match="is empty"):
        make_datalist(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "scan.nii.gz").write_bytes(b"")
    with pytest.raises(DatalistError, match="no known dataset layout.*custom"):
        make_datalist(tmp_path / "other")
    with pytest.raises(DatalistError, match="unknown layout"):
        make_datalist(phantom_root / "msd", layout="brats2019")
    with pytest.raises(DatalistError, match="needs patterns"):
        make_datalist(phantom_root / "msd", layout="custom")
    with pytest.raises(DatalistError, match="cannot be split"):
        make_datalist(phantom_root / "msd", val=3, test=3)
    both = tmp_path / "both"
    shutil.copytree(phantom_root / "brats2021", both / "a")
    shutil.copytree(phantom_root / "brats2023", both / "b")
    with pytest.raises(DatalistError, match="several layouts"):
        make_datalist(both)


def test_command_line(phantom_root, tmp_path):
    output = tmp_path / "datalist.json"
    result = subprocess.run(
        [sys.executable, "-m", "dhvae_monai.data.datalists", str(phantom_root / "hecktor2022"), "--output", str(output),
         "--modalities", "pt", "--val", "1", "--test", "1"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "hecktor2022 datalist with 4 training, 1 validation, 1 test" in result.stdout
    assert json.loads(output.read_text())["modalities"] == ["pt"]
    result = subprocess.run(
        [sys.executable, "-m", "dhvae_monai.data.datalists", str(tmp_path / "missing"), "--output", str(output)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
