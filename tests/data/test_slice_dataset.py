from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Transform

from dhvae_monai.data import TumourSliceDataset, make_datalist, make_phantom_dataset
from dhvae_monai.transforms import brats_volume_transforms
from tests.transforms.test_slices import volume_with_areas


class CountingVolumeTransform(Transform):
    """Turns {"case_id", "areas"} into a volume, counting how often it runs (a deterministic MONAI transform, so cached)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, item: dict) -> dict:
        self.calls += 1
        label = volume_with_areas(item["areas"], size=16)
        image = torch.arange(len(item["areas"]), dtype=torch.float32).view(1, 1, 1, -1).expand(2, 16, 16, -1) / 10
        return {"image": image.clone(), "label": label, "case_id": item["case_id"]}


def test_volumes_are_preprocessed_once_and_slices_match_them():
    transform = CountingVolumeTransform()
    data = [{"case_id": "a", "areas": [0, 12, 14, 30]}, {"case_id": "b", "areas": [20, 0, 11, 0]}]
    dataset = TumourSliceDataset(data, transform, min_tumour_area=10, area_bin_width=5, slices_per_bin=10)
    for _ in range(3):
        items = [dataset[i] for i in range(len(dataset))]
    assert transform.calls == 2
    assert [(i["case_id"], i["slice_index"]) for i in items] == [("a", 1), ("a", 2), ("a", 3), ("b", 0), ("b", 2)]
    for item in items:
        assert float(item["image"][0, 0, 0]) == pytest.approx(item["slice_index"] / 10)
        assert int(item["label"].sum()) == item["tumour_area"]
    assert dataset.summary()["slices_per_case"] == {"a": 3, "b": 2}
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 2, 16, 16) and batch["label"].shape == (4, 1, 16, 16)
    assert batch["case_id"] == ["a", "a", "a", "b"]


def test_slice_transform_and_errors():
    data = [{"case_id": "a", "areas": [0, 12, 14]}]
    flipped = TumourSliceDataset(data, CountingVolumeTransform(), 10, 5, slice_transform=lambda d: dict(d, flipped=True))
    assert flipped[0]["flipped"]
    with pytest.raises(ValueError, match="the largest is 14"):
        TumourSliceDataset(data, CountingVolumeTransform(), min_tumour_area=100)
    broken = [{"image": torch.zeros(1, 4, 4, 3), "label": torch.zeros(1, 4, 4, 2), "case_id": "x"}]
    with pytest.raises(ValueError, match="x: image .* differ in spatial shape"):
        TumourSliceDataset(torch.utils.data.Subset(broken, [0]))


def test_bad_volume_error_is_the_transform_message_not_monai_wrapper(tmp_path):
    make_phantom_dataset(tmp_path / "data", "brats2021", num_cases=1, shape=(16, 16, 12))
    item = make_datalist(tmp_path / "data", val_fraction=0, test_fraction=0)["training"][0]
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    with pytest.raises(ValueError, match=r"cannot read .*broken.nii.gz"):
        TumourSliceDataset([dict(item, image=[str(broken)])], brats_volume_transforms(spatial_size=(8, 8, 4)))


def test_phantom_volumes_to_slices_end_to_end(tmp_path):
    make_phantom_dataset(tmp_path, "brats2021", num_cases=2, shape=(48, 48, 32))
    datalist = make_datalist(tmp_path, val_fraction=0, test_fraction=0)
    dataset = TumourSliceDataset(
        datalist["training"], brats_volume_transforms(spatial_size=(32, 32, 16)), min_tumour_area=12, area_bin_width=2
    )
    assert len(dataset) > 4 and set(dataset.summary()["slices_per_case"]) == {"BraTS2021_00000", "BraTS2021_00001"}
    item = dataset[0]
    assert item["image"].shape == (1, 32, 32) and item["label"].shape == (1, 32, 32)
    assert item["tumour_area"] >= 12 and 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
