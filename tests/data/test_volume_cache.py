from __future__ import annotations

import pytest
import torch
from monai.transforms import Compose, Transform

from dhvae_monai.data import TumourSliceDataset, make_datalist, make_phantom_dataset, preprocessed_volumes
from dhvae_monai.transforms import brats_volume_transforms


class ScaledVolume(Transform):
    """A deterministic MONAI transform whose parameter changes its output; counts its calls across instances."""

    calls = 0

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def __call__(self, item: dict) -> dict:
        type(self).calls += 1
        label = torch.zeros(1, 8, 8, 4)
        label[:, 2:5, 2:5, 1:3] = 1
        return {"image": torch.full((1, 8, 8, 4), self.scale * item["value"]), "label": label, "case_id": item["case_id"]}


ITEMS = [{"case_id": "a", "value": 1.0}, {"case_id": "b", "value": 2.0}]


def test_memory_cache_holds_each_volume_once_without_copies():
    ScaledVolume.calls = 0
    volumes = preprocessed_volumes(ITEMS, Compose([ScaledVolume(3.0)]))
    assert ScaledVolume.calls == 2
    assert volumes[1]["image"].max() == 6.0
    assert volumes[0] is volumes[0]  # slice datasets keep views into the cached volumes
    assert ScaledVolume.calls == 2


def test_disk_cache_is_reused_by_later_runs_and_keyed_by_the_transform(tmp_path):
    ScaledVolume.calls = 0
    first = preprocessed_volumes(ITEMS, Compose([ScaledVolume(3.0)]), cache_dir=tmp_path)
    assert ScaledVolume.calls == 2 and len(list(tmp_path.glob("*.pt"))) == 2
    again = preprocessed_volumes(ITEMS, Compose([ScaledVolume(3.0)]), cache_dir=tmp_path)
    assert ScaledVolume.calls == 2, "a second run with the same preprocessing reads the disk cache"
    assert torch.equal(again[1]["image"], first[1]["image"]) and again[1]["case_id"] == "b"
    changed = preprocessed_volumes(ITEMS, Compose([ScaledVolume(5.0)]), cache_dir=tmp_path)
    assert ScaledVolume.calls == 4, "another setting must not read stale volumes"
    assert changed[1]["image"].max() == 10.0 and len(list(tmp_path.glob("*.pt"))) == 4


def test_slice_dataset_from_the_disk_cache_equals_the_in_memory_one(tmp_path):
    make_phantom_dataset(tmp_path / "data", "brats2021", num_cases=2, shape=(24, 24, 12))
    items = make_datalist(tmp_path / "data", val_fraction=0, test_fraction=0)["training"]
    transform = brats_volume_transforms(spatial_size=(16, 16, 8))
    in_memory = TumourSliceDataset(items, transform, min_tumour_area=1, area_bin_width=4)
    from_disk = TumourSliceDataset(items, transform, min_tumour_area=1, area_bin_width=4, cache_dir=tmp_path / "cache")
    reread = TumourSliceDataset(items, transform, min_tumour_area=1, area_bin_width=4, cache_dir=tmp_path / "cache")
    assert len(in_memory) == len(from_disk) == len(reread) > 0
    for index in range(len(in_memory)):
        for key in ("image", "label"):
            assert torch.allclose(in_memory[index][key], reread[index][key])
        assert in_memory[index]["case_id"] == reread[index]["case_id"]


def test_bad_file_error_names_the_file_with_the_disk_cache(tmp_path):
    make_phantom_dataset(tmp_path / "data", "brats2021", num_cases=1, shape=(16, 16, 12))
    item = make_datalist(tmp_path / "data", val_fraction=0, test_fraction=0)["training"][0]
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    with pytest.raises(ValueError, match=r"cannot read .*broken.nii.gz"):
        transform = brats_volume_transforms(spatial_size=(8, 8, 4))
        preprocessed_volumes([dict(item, image=[str(broken)])], transform, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.pt")), "nothing is cached for a file that failed"
