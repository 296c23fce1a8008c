from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dhvae_monai.data import prepare
from dhvae_monai.data.layouts import DatalistError
from dhvae_monai.data.phantoms import make_phantom_dataset
from dhvae_monai.data.prepare import inference_items, load_split, prepare_datalist

SPLITS = ("training", "validation", "test")
BRAIN = ["flair", "t1", "t1ce", "t2"]


def _read(path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory):
    """One real phantom run of prepare_datalist (default phantom size), shared read-only by the tests below."""
    output_dir = tmp_path_factory.mktemp("run")
    path = prepare_datalist(None, output_dir, phantom_layout="brats2021", num_phantom_cases=4, num_val=1, num_test=1)
    return output_dir, path


@pytest.fixture
def small_phantoms(monkeypatch):
    """prepare_datalist's phantom creation on a 16 x 16 x 12 grid, recording its calls."""
    calls = []

    def make(output_dir, layout, num_cases, seed=0):
        calls.append((output_dir, layout, num_cases, seed))
        return make_phantom_dataset(output_dir, layout, num_cases, seed=seed, shape=(16, 16, 12))

    monkeypatch.setattr(prepare, "make_phantom_dataset", make)
    return calls


def test_phantom_datalist_has_the_requested_splits(phantom_run):
    output_dir, path = phantom_run
    assert isinstance(path, str) and path == str(output_dir / "datalist.json")
    datalist = json.loads((output_dir / "datalist.json").read_text())
    assert datalist["layout"] == "brats2021" and datalist["modalities"] == BRAIN
    assert [len(datalist[split]) for split in SPLITS] == [2, 1, 1]
    case_ids = [item["case_id"] for split in SPLITS for item in datalist[split]]
    assert sorted(case_ids) == [f"BraTS2021_{i:05d}" for i in range(4)]
    phantom_dir = output_dir / "phantom_brats2021"
    for item in datalist["training"]:
        assert [os.path.dirname(p) for p in item["image"]] == [str(phantom_dir / item["case_id"])] * 4
        assert all(os.path.isfile(p) for p in item["image"]) and os.path.isfile(item["label"])
    assert not (output_dir / "phantom_brats2021.partial").exists()


def test_phantoms_are_created_once_and_splits_are_reproducible(tmp_path, small_phantoms):
    first = _read(prepare_datalist(None, tmp_path, num_phantom_cases=5, num_val=1, num_test=2, seed=3))
    flair = tmp_path / "phantom_brats2021" / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz"
    created = flair.stat().st_mtime_ns
    assert len(small_phantoms) == 1 and small_phantoms[0][1:] == ("brats2021", 5, 3)
    again = _read(prepare_datalist(None, tmp_path, num_phantom_cases=5, num_val=1, num_test=2, seed=3))
    assert len(small_phantoms) == 1 and flair.stat().st_mtime_ns == created  # reused, not recreated
    assert again == first
    resized = _read(prepare_datalist("", tmp_path, num_phantom_cases=5, num_val=0, num_test=2, seed=3))
    assert [len(resized[split]) for split in SPLITS] == [3, 0, 2]
    assert resized["test"] == first["test"]  # test patients do not depend on the validation share


def test_interrupted_phantom_creation_is_redone(tmp_path, monkeypatch, small_phantoms):
    def crash(output_dir, layout, num_cases, seed=0):
        (output_dir / "BraTS2021_00000").mkdir(parents=True)
        (output_dir / "BraTS2021_00000" / "half.nii.gz").write_bytes(b"")
        raise KeyboardInterrupt

    real = prepare.make_phantom_dataset
    monkeypatch.setattr(prepare, "make_phantom_dataset", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_datalist(None, tmp_path, phantom_layout="msd", num_phantom_cases=3, num_val=1, num_test=1)
    assert not (tmp_path / "phantom_msd").exists()  # never half used
    monkeypatch.setattr(prepare, "make_phantom_dataset", real)
    datalist = _read(prepare_datalist(None, tmp_path, phantom_layout="msd", num_phantom_cases=3, num_val=1, num_test=1))
    assert datalist["layout"] == "msd" and [len(datalist[split]) for split in SPLITS] == [1, 1, 1]
    assert not (tmp_path / "phantom_msd.partial").exists()
    assert not list((tmp_path / "phantom_msd").rglob("half.nii.gz"))


def test_user_dataset_errors_name_the_folder_and_the_option(tmp_path):
    missing = tmp_path / "BraTS2021"
    with pytest.raises(FileNotFoundError, match=rf"dataset_dir {re.escape(str(missing))} does not exist: set --dataset_dir"):
        prepare_datalist(missing, tmp_path / "run")
    file = tmp_path / "data.zip"
    file.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=rf"dataset_dir {re.escape(str(file))} is a file, not a folder"):
        prepare_datalist(file, tmp_path / "run")
    assert not (tmp_path / "run" / "datalist.json").exists()


def test_user_dataset_too_small_for_the_splits(tmp_path, small_phantoms):
    make_phantom_dataset(tmp_path / "data", "brats2023", num_cases=2, shape=(16, 16, 12))
    with pytest.raises(DatalistError, match="2 complete brats2023 case"):
        prepare_datalist(tmp_path / "data", tmp_path / "run", num_val=1, num_test=1)
    path = prepare_datalist(tmp_path / "data", tmp_path / "run", num_val=0, num_test=1)
    datalist = _read(path)
    assert datalist["layout"] == "brats2023" and [len(datalist[split]) for split in SPLITS] == [1, 0, 1]
    assert small_phantoms == []  # a user dataset never triggers phantom creation


def test_load_split_returns_absolute_items(phantom_run):
    _, path = phantom_run
    items = load_split(path, "training")
    assert len(items) == 2 and all(set(item) >= {"image", "label", "case_id", "modalities"} for item in items)
    assert all(os.path.isabs(p) for item in items for p in [*item["image"], item["label"]])


def test_load_split_resolves_relative_paths_beside_the_datalist(tmp_path):
    path = tmp_path / "lists" / "datalist.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"validation": [{"image": "imgs/a.nii.gz", "label": "labels/a.nii.gz"}]}))
    assert load_split(path, "validation") == [
        {"image": str(tmp_path / "lists" / "imgs" / "a.nii.gz"), "label": str(tmp_path / "lists" / "labels" / "a.nii.gz")}
    ]


def test_load_split_errors_name_the_file_and_the_split(tmp_path):
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [{"image": "a.nii.gz"}], "validation": []}))
    with pytest.raises(DatalistError, match=rf"{re.escape(str(path))}: no 'test' split"):
        load_split(path, "test")
    with pytest.raises(DatalistError, match=r"the 'validation' split is empty\. Add patients .*num_val / num_test"):
        load_split(path, "validation")
    with pytest.raises(DatalistError, match=r"a 'training' item lacks \['label'\]"):
        load_split(path, "training")
    assert load_split(path, "training", keys=("image",)) == [{"image": str(tmp_path / "a.nii.gz")}]


def test_load_split_of_an_empty_test_split_says_it_is_empty(tmp_path, small_phantoms):
    # prepare_datalist(num_test=0) writes "test": []; asking for it must give the explanatory error
    path = prepare_datalist(None, tmp_path, num_phantom_cases=3, num_val=1, num_test=0)
    with pytest.raises(DatalistError, match=r"datalist\.json: the 'test' split is empty"):
        load_split(path, "test")


def test_inference_items_from_a_file_and_a_folder(tmp_path):
    scan = tmp_path / "scans" / "case1_flair.nii.gz"
    scan.parent.mkdir()
    for name in ("case2_flair.nii.gz", "case1_flair.nii.gz", "case1_t1.nii.gz", "notes.txt"):
        (scan.parent / name).write_bytes(b"")
    assert inference_items(scan, ["flair"]) == [{"image": str(scan), "modalities": ["flair"]}]
    items = inference_items(scan.parent, ["flair"], pattern="*_flair.nii.gz")
    assert items == [
        {"image": str(scan.parent / "case1_flair.nii.gz"), "modalities": ["flair"]},
        {"image": str(scan.parent / "case2_flair.nii.gz"), "modalities": ["flair"]},
    ]
    assert len(inference_items(scan.parent, ["flair"])) == 3  # default pattern: every NIfTI file


def test_inference_items_errors_name_the_input_and_the_option(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"inference input {re.escape(str(tmp_path / 'x'))} does not exist: set --input"):
        inference_items(tmp_path / "x", ["flair"])
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=rf"no file matching '\*\.nii\*' in {re.escape(str(tmp_path))}: set --input_pattern"):
        inference_items(tmp_path, ["flair"])


def test_inference_items_from_a_datalist_take_the_test_split_without_labels(phantom_run):
    _, path = phantom_run
    datalist = _read(path)
    items = inference_items(path, ["pt"])
    assert [item["case_id"] for item in items] == [item["case_id"] for item in datalist["test"]]
    assert all("label" not in item for item in items)
    assert items[0]["image"] == datalist["test"][0]["image"] and items[0]["modalities"] == BRAIN  # its own, kept


@pytest.mark.parametrize("test_split", ["absent", "empty"])
def test_inference_items_from_a_datalist_without_test_take_every_split(tmp_path, test_split):
    content = {
        "training": [{"image": "a.nii.gz", "label": "a_seg.nii.gz"}],
        "validation": [{"image": "b.nii.gz", "label": "b_seg.nii.gz", "modalities": ["ct"]}],
    }
    if test_split == "empty":
        content["test"] = []
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(content))
    assert inference_items(path, ["pt"]) == [
        {"image": str(tmp_path / "a.nii.gz"), "modalities": ["pt"]},
        {"image": str(tmp_path / "b.nii.gz"), "modalities": ["ct"]},
    ]


def test_inference_items_from_a_prepared_datalist_without_test_patients(tmp_path, small_phantoms):
    # a datalist written by prepare_datalist also has top-level lists that are not splits ("modalities", "skipped")
    path = prepare_datalist(None, tmp_path, num_phantom_cases=3, num_val=1, num_test=0)
    datalist = _read(path)
    items = inference_items(path, ["flair"])
    expected = sorted(item["case_id"] for split in ("training", "validation") for item in datalist[split])
    assert sorted(item["case_id"] for item in items) == expected
    assert all("label" not in item and len(item["image"]) == 4 for item in items)
