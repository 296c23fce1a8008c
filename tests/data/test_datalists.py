from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from monai.data import load_decathlon_datalist

from dhvae_monai.data.datalists import DatalistError, main, make_datalist, write_datalist
from dhvae_monai.data.layouts import LAYOUT_MODALITIES, detect_layout
from dhvae_monai.data.phantoms import make_phantom_dataset

SPLITS = ("training", "validation", "test")
BRAIN = ["flair", "t1", "t1ce", "t2"]
BRAIN_2023_NAMES = ["t2f", "t1n", "t1c", "t2w"]  # flair, t1, t1ce, t2
HEAD_NECK = ["pt", "ct"]


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def _placeholder_dataset(root: Path, layout: str, num_cases: int) -> list[str]:
    """Empty files named as in a real download of ``layout`` (names are all the datalist looks at)."""
    if layout == "brats2021":
        case_ids = [f"BraTS2021_{i:05d}" for i in range(num_cases)]
        for case_id in case_ids:
            for name in (*BRAIN, "seg"):
                _touch(root / case_id / f"{case_id}_{name}.nii.gz")
    elif layout == "brats2023":
        case_ids = [f"BraTS-GLI-{i:05d}-000" for i in range(num_cases)]
        for case_id in case_ids:
            for name in (*BRAIN_2023_NAMES, "seg"):
                _touch(root / case_id / f"{case_id}-{name}.nii.gz")
    elif layout == "msd":
        case_ids = [f"BRATS_{i + 1:03d}" for i in range(num_cases)]
        for case_id in case_ids:
            _touch(root / "Task01_BrainTumour" / "imagesTr" / f"{case_id}.nii.gz")
            _touch(root / "Task01_BrainTumour" / "labelsTr" / f"{case_id}.nii.gz")
        description = {
            "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in case_ids],
        }
        (root / "Task01_BrainTumour" / "dataset.json").write_text(json.dumps(description))
    elif layout == "hecktor2021":  # the 2021 release: flat folder, "_gtvt" masks, a CSV of boxes
        case_ids = [f"CHGJ{i:03d}" for i in range(num_cases)]
        for case_id in case_ids:
            for name in ("ct", "pt", "gtvt"):
                _touch(root / "hecktor_nii" / f"{case_id}_{name}.nii.gz")
        rows = [f"{case_id},{i},{i + 144},-10,134,0.5,144.5" for i, case_id in enumerate(case_ids)]
        (root / "hecktor2021_bbox_training.csv").write_text("\n".join(["PatientID,x1,x2,y1,y2,z1,z2", *rows]) + "\n")
    else:
        case_ids = [f"CHUM-{i:03d}" for i in range(num_cases)]
        for case_id in case_ids:
            _touch(root / "imagesTr" / f"{case_id}__CT.nii.gz")
            _touch(root / "imagesTr" / f"{case_id}__PT.nii.gz")
            _touch(root / "labelsTr" / f"{case_id}.nii.gz")
    return case_ids


def _case_ids(items) -> list[str]:
    return [item["case_id"] for item in items]


def _split_ids(datalist) -> list[list[str]]:
    return [_case_ids(datalist[split]) for split in SPLITS]


def _all_items(datalist) -> list[dict]:
    return [item for split in SPLITS for item in datalist[split]]


@pytest.mark.parametrize("layout", list(LAYOUT_MODALITIES))
def test_every_layout_is_detected_and_listed(layout, tmp_path):
    case_ids = _placeholder_dataset(tmp_path / "download", layout, num_cases=5)
    datalist = make_datalist(tmp_path / "download", num_val=1, num_test=1)
    assert datalist["layout"] == layout and datalist["skipped"] == []
    assert [len(datalist[split]) for split in SPLITS] == [3, 1, 1]
    assert sorted(_case_ids(_all_items(datalist))) == case_ids
    modalities = HEAD_NECK if layout.startswith("hecktor") else BRAIN
    assert datalist["modalities"] == modalities and datalist["label_convention"] == layout
    for item in _all_items(datalist):
        assert item["modalities"] == modalities and item["label_convention"] == layout
        assert all(Path(path).is_absolute() and Path(path).is_file() for path in [*item["image"], item["label"]])
        case_id = item["case_id"]
        names = [Path(path).name for path in item["image"]]
        if layout == "brats2021":
            assert names == [f"{case_id}_{m}.nii.gz" for m in BRAIN] and item["label"].endswith(f"{case_id}_seg.nii.gz")
        elif layout == "brats2023":  # mapped onto the canonical order
            assert names == [f"{case_id}-{m}.nii.gz" for m in BRAIN_2023_NAMES]
        elif layout == "msd":  # one 4D file holding the four channels
            assert names == [f"{case_id}.nii.gz"] and Path(item["label"]).parent.name == "labelsTr"
        elif layout == "hecktor2021":
            assert names == [f"{case_id}_pt.nii.gz", f"{case_id}_ct.nii.gz"] and item["label"].endswith("_gtvt.nii.gz")
            index = case_ids.index(case_id)
            assert item["bounding_box_mm"] == [index, index + 144, -10, 134, 0.5, 144.5]
        else:
            assert names == [f"{case_id}__PT.nii.gz", f"{case_id}__CT.nii.gz"]
            assert item["label"].endswith(f"labelsTr/{case_id}.nii.gz")
    path = write_datalist(datalist, tmp_path / "out" / "datalist.json")
    for split in SPLITS:
        loaded = load_decathlon_datalist(str(path), data_list_key=split)
        assert _case_ids(loaded) == _case_ids(datalist[split])
        assert [item["image"] for item in loaded] == [item["image"] for item in datalist[split]]


@pytest.mark.parametrize("layout", list(LAYOUT_MODALITIES))
def test_phantom_datasets_end_to_end(layout, tmp_path):
    case_ids = make_phantom_dataset(tmp_path / layout, layout, num_cases=3, shape=(8, 8, 6))
    datalist = make_datalist(tmp_path / layout, num_val=1, num_test=1)
    assert datalist["layout"] == layout and sorted(_case_ids(_all_items(datalist))) == sorted(case_ids)


def test_file_name_variants_and_hidden_files(tmp_path):
    # BraTS 2020 ships uncompressed .nii; HECKTOR 2020 has one folder per case and "_ct_gtvt" masks
    for name in (*BRAIN, "seg"):
        _touch(tmp_path / "brats2020" / "BraTS20_Training_001" / f"BraTS20_Training_001_{name}.nii")
    _touch(tmp_path / "brats2020" / "BraTS20_Training_001" / "._BraTS20_Training_001_flair.nii")  # macOS archive debris
    datalist = make_datalist(tmp_path / "brats2020", val_fraction=0, test_fraction=0)
    assert datalist["layout"] == "brats2021" and _case_ids(datalist["training"]) == ["BraTS20_Training_001"]
    assert datalist["training"][0]["image"][0].endswith("/BraTS20_Training_001_flair.nii")
    for name in ("ct", "pt", "ct_gtvt"):
        _touch(tmp_path / "hecktor2020" / "CHUS010" / f"CHUS010_{name}.nii.gz")
    item = make_datalist(tmp_path / "hecktor2020", val_fraction=0, test_fraction=0)["training"][0]
    assert item["case_id"] == "CHUS010" and item["label"].endswith("CHUS010_ct_gtvt.nii.gz")


def test_modality_subsets(tmp_path):
    _placeholder_dataset(tmp_path / "brats", "brats2021", num_cases=3)
    datalist = make_datalist(tmp_path / "brats", modalities=["t1ce", "flair"], num_val=1, num_test=1)
    item = datalist["training"][0]
    assert datalist["modalities"] == item["modalities"] == ["flair", "t1ce"]  # canonical order
    assert item["image"][0].endswith("_flair.nii.gz") and item["image"][1].endswith("_t1ce.nii.gz")
    with pytest.raises(DatalistError, match=r"\['flair', 'pet'\] are not a subset of the brats2021"):
        make_datalist(tmp_path / "brats", layout="brats2021", modalities=["flair", "pet"])
    # an MSD item keeps its 4D file and names its four channels; the datalist says which ones to use
    _placeholder_dataset(tmp_path / "msd", "msd", num_cases=3)
    datalist = make_datalist(tmp_path / "msd", modalities=["flair"], num_val=1, num_test=1)
    assert datalist["modalities"] == ["flair"] and datalist["training"][0]["modalities"] == BRAIN
    # requested modalities narrow the detection to the layouts that have them
    _placeholder_dataset(tmp_path / "mixed", "hecktor2022", num_cases=3)
    _placeholder_dataset(tmp_path / "mixed", "brats2023", num_cases=3)
    assert detect_layout(tmp_path / "mixed", modalities=["pt"])[0] == "hecktor2022"


def test_patient_level_splits(tmp_path):
    case_ids = _placeholder_dataset(tmp_path, "brats2023", num_cases=10)
    datalist = make_datalist(tmp_path, val_fraction=0.2, test_fraction=0.3, seed=1)
    splits = _split_ids(datalist)
    assert [len(ids) for ids in splits] == [5, 2, 3]
    assert sorted(sum(splits, [])) == case_ids  # every case once: no patient in two splits
    assert all(ids == sorted(ids) for ids in splits)
    assert datalist == make_datalist(tmp_path, val_fraction=0.2, test_fraction=0.3, seed=1)
    other_seeds = [make_datalist(tmp_path, val_fraction=0.2, test_fraction=0.3, seed=s) for s in range(2, 6)]
    assert any(_case_ids(other["test"]) != splits[2] for other in other_seeds)
    # a positive share of a small dataset still gets a case; counts override fractions
    assert [len(ids) for ids in _split_ids(make_datalist(tmp_path, val_fraction=0.01, test_fraction=0.0))] == [9, 1, 0]
    assert [len(ids) for ids in _split_ids(make_datalist(tmp_path, num_val=0, num_test=4))] == [6, 0, 4]


def test_k_folds_partition_the_non_test_patients(tmp_path):
    case_ids = _placeholder_dataset(tmp_path, "hecktor2022", num_cases=11)
    datalist = make_datalist(tmp_path, num_folds=3, num_test=2, seed=4)
    assert datalist["validation"] == [] and len(datalist["test"]) == 2
    folds = {}
    for item in datalist["training"]:
        folds.setdefault(item["fold"], []).append(item["case_id"])
    assert sorted(folds) == [0, 1, 2] and sorted(len(ids) for ids in folds.values()) == [3, 3, 3]
    assert sorted(sum(folds.values(), []) + _case_ids(datalist["test"])) == case_ids
    assert "fold" not in datalist["test"][0]
    # switching to folds does not move the test patients
    assert _case_ids(make_datalist(tmp_path, num_val=2, num_test=2, seed=4)["test"]) == _case_ids(datalist["test"])


def test_real_brats2018_and_hecktor2020_cases(real_data_dir):
    # the BraTS 2018 case's folder is "brainy_<case>": the id comes from the file names; the parent folder also
    # holds BraTS 2015, TCGA and BraTS 2023 (no mask) cases in other layouts
    for root in (real_data_dir / "brats", real_data_dir / "brats" / "brainy_Brats18_2013_2_1"):
        datalist = make_datalist(root, val_fraction=0, test_fraction=0)
        assert datalist["layout"] == "brats2021" and datalist["skipped"] == []
        item = datalist["training"][0]
        assert _case_ids(datalist["training"]) == ["Brats18_2013_2_1"]
        assert [Path(p).name for p in item["image"]] == [f"Brats18_2013_2_1_{m}.nii.gz" for m in BRAIN]
    datalist = make_datalist(real_data_dir / "hecktor", val_fraction=0, test_fraction=0)
    assert datalist["layout"] == "hecktor2021"  # the PET-only HECKTOR 2025 files beside it have no complete case
    item = datalist["training"][0]
    assert item["case_id"] == "CHGJ015" and item["label"].endswith("CHGJ015/CHGJ015_ct_gtvt.nii.gz")
    assert [Path(p).name for p in item["image"]] == ["CHGJ015_pt.nii.gz", "CHGJ015_ct.nii.gz"]
    # the BraTS 2023 case has no tumour mask
    with pytest.raises(DatalistError, match=r"BraTS-GLI-00001-000 missing mask \(.*BraTS-GLI-00001-000-seg\.nii\.gz\)"):
        make_datalist(real_data_dir / "brats", layout="brats2023")


def test_custom_layout_on_real_brats2015_cases(real_data_dir):
    datalist = make_datalist(
        real_data_dir / "brats",
        layout="custom",
        patterns={"flair": "Flair_*.nii.gz", "t1ce": "T1c_*.nii.gz", "label": "OTMultiClass.nii.gz"},
        label_convention="brats2015",
        num_val=1,
        num_test=1,
    )
    items = _all_items(datalist)
    assert datalist["layout"] == "custom" and datalist["modalities"] == ["flair", "t1ce"]
    assert sorted(_case_ids(items)) == [f"deepmedic_brats2015_brats_2013_pat000{i}_1" for i in range(1, 7)]
    assert all(item["label_convention"] == "brats2015" for item in items)
    assert all(item["label"].endswith("OTMultiClass.nii.gz") for item in items)
    assert all(Path(item["image"][1]).name == "T1c_subtrMeanDivStd.nii.gz" for item in items)
    one_case = make_datalist(
        real_data_dir / "brats" / "deepmedic_brats2015_brats_2013_pat0001_1", layout="custom",
        patterns={"flair": "Flair_*.nii.gz", "label": "OTMultiClass.nii.gz"}, val_fraction=0, test_fraction=0,
    )
    assert _case_ids(one_case["training"]) == ["deepmedic_brats2015_brats_2013_pat0001_1"]
    assert one_case["label_convention"] == "binary"


def test_incomplete_cases_are_named_and_skipped_only_on_request(tmp_path):
    _placeholder_dataset(tmp_path, "brats2021", num_cases=5)
    (tmp_path / "BraTS2021_00001" / "BraTS2021_00001_t1ce.nii.gz").unlink()
    (tmp_path / "BraTS2021_00003" / "BraTS2021_00003_seg.nii.gz").unlink()
    with pytest.raises(DatalistError) as error:
        make_datalist(tmp_path, num_val=1, num_test=1)
    message = str(error.value)
    assert "2 incomplete brats2021 case(s)" in message and "skip_incomplete" in message
    assert "BraTS2021_00001 missing t1ce (BraTS2021_00001/BraTS2021_00001_t1ce.nii.gz)" in message
    assert "BraTS2021_00003 missing mask (BraTS2021_00003/BraTS2021_00003_seg.nii.gz)" in message
    datalist = make_datalist(tmp_path, num_val=1, num_test=0, skip_incomplete=True)
    assert _case_ids(datalist["skipped"]) == ["BraTS2021_00001", "BraTS2021_00003"]
    assert datalist["skipped"][1]["reason"] == "missing mask (BraTS2021_00003/BraTS2021_00003_seg.nii.gz)"
    assert sorted(_case_ids(_all_items(datalist))) == ["BraTS2021_00000", "BraTS2021_00002", "BraTS2021_00004"]
    # only the requested modalities must exist
    flair_only = make_datalist(tmp_path, modalities=["flair"], num_val=1, num_test=1, skip_incomplete=True)
    assert _case_ids(flair_only["skipped"]) == ["BraTS2021_00003"]
    # an MSD dataset.json entry whose file is missing
    _placeholder_dataset(tmp_path / "msd", "msd", num_cases=3)
    (tmp_path / "msd" / "Task01_BrainTumour" / "imagesTr" / "BRATS_002.nii.gz").unlink()
    missing_image = r"BRATS_002 missing 4D image \(Task01_BrainTumour/imagesTr/BRATS_002\.nii\.gz\)"
    with pytest.raises(DatalistError, match=missing_image):
        make_datalist(tmp_path / "msd", layout="msd")
    only_missing = [{"image": "./imagesTr/BRATS_002.nii.gz", "label": "./labelsTr/BRATS_002.nii.gz"}]
    (tmp_path / "msd" / "Task01_BrainTumour" / "dataset.json").write_text(json.dumps({"training": only_missing}))
    with pytest.raises(DatalistError, match="no complete msd case"):
        make_datalist(tmp_path / "msd", layout="msd", skip_incomplete=True)


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"dataset folder {tmp_path / 'nowhere'} does not exist"):
        make_datalist(tmp_path / "nowhere")
    _touch(tmp_path / "file.nii.gz")
    with pytest.raises(DatalistError, match="is a file"):
        make_datalist(tmp_path / "file.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatalistError, match=f"dataset folder {tmp_path / 'empty'} is empty"):
        make_datalist(tmp_path / "empty")
    _touch(tmp_path / "other" / "patient1" / "scan.nii.gz")
    with pytest.raises(DatalistError) as error:
        make_datalist(tmp_path / "other")
    message = str(error.value)
    assert f"no known dataset layout found in {tmp_path / 'other'}" in message and "layout='custom'" in message
    assert all(layout in message for layout in LAYOUT_MODALITIES)
    with pytest.raises(DatalistError, match=r"no brats2023 case found.*<case>-\{t2f"):
        make_datalist(tmp_path / "other", layout="brats2023")
    with pytest.raises(DatalistError, match="no custom case found"):
        make_datalist(tmp_path / "other", layout="custom", patterns={"flair": "*flair*", "label": "*seg*"})
    _placeholder_dataset(tmp_path / "both" / "a", "brats2021", num_cases=3)
    _placeholder_dataset(tmp_path / "both" / "b", "brats2023", num_cases=3)
    with pytest.raises(DatalistError, match=r"several layouts: brats2021 \(3 complete.*brats2023.*pass layout="):
        make_datalist(tmp_path / "both")
    assert make_datalist(tmp_path / "both", layout="brats2023", num_val=1, num_test=1)["layout"] == "brats2023"
    # the same case twice (an unpacked copy beside the original) is ambiguous, whatever the flags
    _placeholder_dataset(tmp_path / "copies" / "original", "hecktor2022", num_cases=3)
    _placeholder_dataset(tmp_path / "copies" / "copy", "hecktor2022", num_cases=1)
    with pytest.raises(DatalistError, match="CHUM-000 has 2 pt files"):
        make_datalist(tmp_path / "copies", skip_incomplete=True)


def test_bad_arguments(tmp_path):
    _placeholder_dataset(tmp_path, "brats2021", num_cases=2)
    with pytest.raises(DatalistError, match="unknown layout 'brats2019'"):
        make_datalist(tmp_path, layout="brats2019")
    for patterns in ({"flair": "*_flair.nii.gz"}, {"label": "*_seg.nii.gz"}, None):
        with pytest.raises(DatalistError, match=r"layout='custom' needs one glob pattern per modality .* \('label'\)"):
            make_datalist(tmp_path, layout="custom", patterns=patterns)
    with pytest.raises(DatalistError, match="'image' is the item key"):
        make_datalist(tmp_path, layout="custom", patterns={"image": "*_flair.nii.gz", "label": "*_seg.nii.gz"})
    with pytest.raises(DatalistError, match="patterns only apply to layout='custom'"):
        make_datalist(tmp_path, patterns={"flair": "*_flair.nii.gz", "label": "*_seg.nii.gz"})
    with pytest.raises(DatalistError, match="unknown label_convention 'brats2012'"):
        make_datalist(tmp_path, label_convention="brats2012")
    with pytest.raises(DatalistError, match="2 complete brats2021 case.*too few for 1 validation \\+ 1 test"):
        make_datalist(tmp_path)  # 2 patients, 3 splits
    with pytest.raises(DatalistError, match="3 folds need"):
        make_datalist(tmp_path, num_folds=3, num_test=0)
    with pytest.raises(DatalistError, match="num_val and num_folds exclude each other"):
        make_datalist(tmp_path, num_folds=2, num_val=1, num_test=0)
    with pytest.raises(DatalistError, match=r"val_fraction must be in \[0, 1\)"):
        make_datalist(tmp_path, val_fraction=1.5)
    with pytest.raises(DatalistError, match="num_test must be >= 0"):
        make_datalist(tmp_path, num_test=-1)


def test_write_datalist_is_atomic(tmp_path):
    path = tmp_path / "datalist.json"
    assert write_datalist({"training": []}, path) == path
    with pytest.raises(TypeError):
        write_datalist({"training": [{"image": object()}]}, path)
    assert json.loads(path.read_text()) == {"training": []}  # the failed write left the old file whole
    assert [p.name for p in tmp_path.iterdir()] == ["datalist.json"]  # and no temporary file


def test_command_line_errors_are_one_line(tmp_path, capsys):
    _placeholder_dataset(tmp_path / "brats", "brats2021", num_cases=2)
    for argv in (
        [str(tmp_path / "missing"), "--output", str(tmp_path / "a.json")],
        [str(tmp_path / "brats"), "--output", str(tmp_path / "a.json")],  # 2 cases, 3 splits
        [str(tmp_path / "brats"), "--output", str(tmp_path / "a.json"), "--layout", "custom", "--pattern", "flair=*"],
    ):
        assert main(argv) == 1
        error = capsys.readouterr().err
        assert error.startswith("error: ") and error.count("\n") == 1, error
    assert not (tmp_path / "a.json").exists()
    assert main([str(tmp_path / "brats"), "--output", str(tmp_path / "a.json"), "--val", "1", "--test", "0"]) == 0
    summary = "brats2021 datalist (flair t1 t1ce t2) with 1 training, 1 validation, 0 test case(s)"
    assert summary in capsys.readouterr().out


def test_command_line(tmp_path):
    """``python -m`` once: a custom layout with an incomplete case skipped and printed."""
    for case in ("pat1", "pat2", "pat3", "pat4"):
        _touch(tmp_path / "data" / case / "Flair_norm.nii.gz")
        _touch(tmp_path / "data" / case / "T1c_norm.nii.gz")
        if case != "pat3":
            _touch(tmp_path / "data" / case / "OTMultiClass.nii.gz")
    output = tmp_path / "lists" / "datalist.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "dhvae_monai.data.datalists", str(tmp_path / "data"), "--output", str(output),
            "--layout", "custom", "--pattern", "t1ce=T1c_*.nii.gz", "flair=Flair_*.nii.gz",
            "--label-pattern", "OTMultiClass.nii.gz", "--label-convention", "brats2015",
            "--modalities", "t1ce", "--val", "1", "--test", "0.3", "--seed", "3", "--skip-incomplete",
        ],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "skipped pat3: missing mask (pat3/OTMultiClass.nii.gz)" in result.stdout
    assert "custom datalist (t1ce) with 1 training, 1 validation, 1 test case(s)" in result.stdout
    datalist = json.loads(output.read_text())
    assert datalist["modalities"] == ["t1ce"] and datalist["label_convention"] == "brats2015"
    assert datalist == make_datalist(
        tmp_path / "data", layout="custom", label_convention="brats2015", modalities=["t1ce"],
        patterns={"t1ce": "T1c_*.nii.gz", "flair": "Flair_*.nii.gz", "label": "OTMultiClass.nii.gz"},
        num_val=1, test_fraction=0.3, seed=3, skip_incomplete=True,
    )
