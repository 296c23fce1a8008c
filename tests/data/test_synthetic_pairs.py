from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from dhvae_monai.data.synthetic import draw_synthetic_pairs
from dhvae_monai.data.synthetic_pairs import SyntheticPairDataset, sample_synthetic_pairs, save_synthetic_pairs
from dhvae_monai.networks import DHVAE

TINY = {"image_size": 16, "channels": (8, 8), "num_res_blocks": 1, "attention_levels": (False, False), "norm_num_groups": 8}


def _generator(seed: int = 0, image_channels: int = 1) -> DHVAE:
    """A tiny DHVAE whose mask logits are shifted up, so most prior draws have a sizeable tumour."""
    torch.manual_seed(seed)
    net = DHVAE(image_channels=image_channels, **TINY)
    with torch.no_grad():
        net.output_layer.bias[image_channels] += 1.0
    return net


def _pairs(num_pairs: int = 3, image_channels: int = 1, height: int = 6, width: int = 5) -> torch.Tensor:
    """Asymmetric pairs (H != W, distinct values) so a transposition or a mix-up would show."""
    generator = torch.Generator().manual_seed(0)
    pairs = torch.rand(num_pairs, image_channels + 1, height, width, generator=generator)
    pairs[:, image_channels:] = 0
    for index in range(num_pairs):
        pairs[index, image_channels:, : index + 1, :2] = 1  # tumour area 2, 4, 6 ...
    return pairs


def test_save_writes_one_slice_nifti_volumes_and_a_datalist(tmp_path):
    pairs = _pairs(3, image_channels=2)
    path = save_synthetic_pairs(pairs, tmp_path, image_channels=2, num_draws=10)
    assert path == tmp_path / "synthetic_datalist.json"
    datalist = json.loads(path.read_text())
    assert datalist["num_pairs"] == 3 and datalist["num_draws"] == 10 and datalist["image_channels"] == 2
    assert [item["tumour_area"] for item in datalist["training"]] == [2.0, 4.0, 6.0]
    assert datalist["training"][1]["image"] == "pairs/synthetic_00001_image.nii.gz"
    assert datalist["training"][1]["label"] == "pairs/synthetic_00001_label.nii.gz"
    image = nib.load(tmp_path / "pairs" / "synthetic_00001_image.nii.gz")
    assert image.shape == (6, 5, 1, 2)
    np.testing.assert_allclose(np.asarray(image.dataobj)[:, :, 0, 1], pairs[1, 1].numpy())
    label = np.asarray(nib.load(tmp_path / "pairs" / "synthetic_00002_label.nii.gz").dataobj)
    assert label.shape == (6, 5, 1, 1) and label.sum() == 6
    assert sorted(p.name for p in (tmp_path / "pairs").iterdir()) == [
        f"synthetic_{i:05d}_{key}.nii.gz" for i in range(3) for key in ("image", "label")
    ]  # no temporary files


def test_from_datalist_reads_back_exactly_what_was_saved(tmp_path):
    pairs = _pairs(4, image_channels=2)
    path = save_synthetic_pairs(pairs, tmp_path / "synthetic", image_channels=2)
    dataset = SyntheticPairDataset.from_datalist(path, num_pairs=3)
    assert len(dataset) == 3 and dataset.image_channels == 2
    assert type(dataset.pairs) is torch.Tensor and dataset.pairs.dtype == torch.float32
    torch.testing.assert_close(dataset.pairs, pairs[:3])
    item = dataset[2]
    torch.testing.assert_close(item["image"], pairs[2, :2])
    torch.testing.assert_close(item["label"], pairs[2, 2:])
    assert item["case_id"] == "synthetic" and item["slice_index"] == 2 and item["tumour_area"] == 6.0


def test_from_datalist_errors_say_what_to_do(tmp_path):
    missing = tmp_path / "synthetic_datalist.json"
    with pytest.raises(FileNotFoundError, match=rf"synthetic datalist {re.escape(str(missing))} not found: run the sample stage first"):
        SyntheticPairDataset.from_datalist(missing, num_pairs=1)
    path = save_synthetic_pairs(_pairs(2), tmp_path, image_channels=1)
    with pytest.raises(
        ValueError,
        match=r"lists 2 synthetic pairs but num_synthetic is 5: re-run the sample stage with num_synthetic >= 5, or lower",
    ):
        SyntheticPairDataset.from_datalist(path, num_pairs=5)
    # a mask of another size than its image
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 1, 1), np.float32), np.eye(4)), tmp_path / "pairs" / "synthetic_00001_label.nii.gz")
    with pytest.raises(ValueError, match=r"synthetic_00001_image\.nii\.gz: image \(1, 6, 5\) vs mask \(1, 4, 4\)"):
        SyntheticPairDataset.from_datalist(path, num_pairs=2)


def test_items_are_copies_with_the_slice_dataset_keys_and_the_transform_applied():
    pairs = torch.zeros(2, 3, 4, 4)
    pairs[1, 1, :2, :2] = 1
    pairs[1, 2, 1:3, 1:3] = 1  # overlapping regions: union area 7
    dataset = SyntheticPairDataset(pairs, image_channels=1)
    item = dataset[1]
    assert set(item) == {"image", "label", "case_id", "slice_index", "tumour_area"}
    assert item["image"].shape == (1, 4, 4) and item["label"].shape == (2, 4, 4)
    assert item["tumour_area"] == 7.0 and dataset[0]["tumour_area"] == 0.0
    item["label"].fill_(5)
    assert float(pairs[1, 1:].max()) == 1.0  # the dataset's pairs are not modified through an item
    flipped = SyntheticPairDataset(pairs, 1, transform=lambda item: {**item, "label": item["label"].flip(-1)})
    torch.testing.assert_close(flipped[1]["label"], pairs[1, 1:].flip(-1))


@pytest.mark.parametrize("shape", [(2, 1, 4, 4), (2, 3, 4), (3, 4, 4)])
def test_pairs_without_mask_channels_or_not_4d_are_refused(shape):
    with pytest.raises(ValueError, match=rf"expected pairs \[N, 1 image \+ mask channels, H, W\], got {re.escape(str(shape))}"):
        SyntheticPairDataset(torch.zeros(shape), image_channels=1)


def test_sample_synthetic_pairs_writes_pairs_datalist_and_preview(tmp_path):
    net = _generator()
    path = sample_synthetic_pairs(net, tmp_path, num_pairs=3, min_tumour_area=20, batch_size=4, seed=1, num_preview=2)
    datalist = json.loads(path.read_text())
    expected, draws = draw_synthetic_pairs(net, 3, min_tumour_area=20, batch_size=4, seed=1, progress=False)
    assert datalist["num_pairs"] == 3 and datalist["num_draws"] == draws and datalist["image_channels"] == 1
    assert all(item["tumour_area"] > 20 for item in datalist["training"])
    torch.testing.assert_close(SyntheticPairDataset.from_datalist(path, 3).pairs, expected)
    preview = Image.open(tmp_path / "preview.png")
    assert preview.size[0] > preview.size[1]  # 2 tiles side by side
    assert net.training


def test_from_generator_draws_filtered_binary_pairs_reproducibly():
    net = _generator()
    dataset = SyntheticPairDataset.from_generator(net, num_pairs=4, min_tumour_area=20, seed=2)
    again = SyntheticPairDataset.from_generator(net, num_pairs=4, min_tumour_area=20, seed=2)
    assert len(dataset) == 4 and dataset.image_channels == 1 and dataset.pairs.shape == (4, 2, 16, 16)
    torch.testing.assert_close(dataset.pairs, again.pairs)
    assert set(dataset.pairs[:, 1].unique().tolist()) <= {0.0, 1.0}
    assert all(dataset[i]["tumour_area"] > 20 for i in range(4))


def test_from_source_zero_pairs_reads_nothing(tmp_path):
    for source in ("files", "generator"):
        dataset = SyntheticPairDataset.from_source(source, 0, image_channels=2, datalist=tmp_path / "missing.json")
        assert len(dataset) == 0 and dataset.image_channels == 2
        assert len(torch.utils.data.ConcatDataset([dataset, SyntheticPairDataset(_pairs(1, 2), 2)])) == 1


def test_from_source_rejects_unknown_sources_and_negative_counts(tmp_path):
    with pytest.raises(ValueError, match=r"synthetic_source must be one of \('files', 'generator'\), got 'disk'"):
        SyntheticPairDataset.from_source("disk", 1, image_channels=1)
    with pytest.raises(ValueError, match=r"num_synthetic must be >= 0, got -1"):
        SyntheticPairDataset.from_source("files", -1, image_channels=1)


def test_from_source_files_and_generator(tmp_path):
    pairs = _pairs(2)
    path = save_synthetic_pairs(pairs, tmp_path, image_channels=1)
    torch.testing.assert_close(SyntheticPairDataset.from_source("files", 2, 1, datalist=path).pairs, pairs)
    with pytest.raises(FileNotFoundError, match="run the sample stage first"):
        SyntheticPairDataset.from_source("files", 2, 1, datalist=tmp_path / "other.json")

    trained = _generator(seed=0)
    torch.save(trained.state_dict(), tmp_path / "generator.pt")
    with pytest.raises(FileNotFoundError, match=r"weights file .*missing\.pt not found: run the train_generator stage"):
        SyntheticPairDataset.from_source("generator", 2, 1, generator=_generator(seed=5), generator_weights=tmp_path / "missing.pt")
    fresh = _generator(seed=5)
    dataset = SyntheticPairDataset.from_source(
        "generator", 2, 1, generator=fresh, generator_weights=tmp_path / "generator.pt", min_tumour_area=20, seed=4
    )
    torch.testing.assert_close(fresh.output_layer.weight, trained.output_layer.weight)  # weights were loaded
    expected = SyntheticPairDataset.from_generator(trained, 2, min_tumour_area=20, seed=4)
    torch.testing.assert_close(dataset.pairs, expected.pairs)
