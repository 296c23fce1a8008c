"""Each stage of dhvae_brats run for real through ``python -m monai.bundle run``, and its outputs checked."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.inferers import SliceInferer
from monai.metrics import compute_dice
from monai.networks.nets import BasicUNet
from PIL import Image

from dhvae_monai.networks import DHVAE, load_weights
from dhvae_monai.transforms import brats_volume_transforms
from tests.bundles.conftest import BUNDLES_DIR, TINY, run_bundle, run_stage

# phantom.yaml's network sizes, which the tiny runs keep
GENERATOR = dict(
    image_size=TINY["image_size"], channels=(16, 32, 64, 64), num_res_blocks=1,
    attention_levels=(False, False, False, False), norm_num_groups=16,
)
SEGMENTER_FEATURES = (16, 32, 64, 128, 256, 16)


def _segmenter() -> BasicUNet:
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=SEGMENTER_FEATURES, norm="batch", act="relu", upsample="deconv")


def test_train_generator_writes_checkpoint_weights_previews_and_logs(brats_generator):
    checkpoint = torch.load(brats_generator / "generator/checkpoints/checkpoint_epoch=2.pt", weights_only=True)
    assert set(checkpoint) == {"generator", "discriminator", "generator_optimizer", "discriminator_optimizer", "trainer"}
    assert checkpoint["trainer"]["iteration"] == 2 * checkpoint["trainer"]["epoch_length"]
    generator = load_weights(DHVAE(**GENERATOR), brats_generator / "models/generator.pt")
    for name, value in generator.state_dict().items():
        torch.testing.assert_close(value, checkpoint["generator"][name])
    for epoch in (1, 2):
        with Image.open(brats_generator / f"generator/previews/preview_epoch={epoch}.png") as preview:
            assert preview.mode == "RGB" and min(preview.size) > TINY["image_size"]
    assert list((brats_generator / "generator/tensorboard").glob("events.out.tfevents.*"))


def test_train_generator_uses_only_training_patients(brats_generator):
    datalist = json.loads((brats_generator / "datalist.json").read_text())
    splits = {split: {item["case_id"] for item in datalist[split]} for split in ("training", "validation", "test")}
    assert splits["training"] and splits["validation"] and splits["test"]
    assert not (splits["training"] & splits["test"]) and not (splits["training"] & splits["validation"])


def test_train_generator_resumes_from_last_checkpoint(brats_generator, tmp_path):
    output_dir = tmp_path / "resumed"
    shutil.copytree(brats_generator, output_dir)
    result = run_stage("dhvae_brats", "train_generator", output_dir, generator_epochs=3)
    assert "resuming from" in result.stdout and "checkpoint_epoch=2.pt" in result.stdout
    assert "Epoch[1] Complete" not in result.stdout and "Epoch[3] Complete" in result.stdout
    checkpoints = sorted(path.name for path in (output_dir / "generator/checkpoints").iterdir())
    assert checkpoints == ["checkpoint_epoch=3.pt"]


def test_sample_writes_binary_nifti_pairs_datalist_and_preview(brats_samples):
    folder = brats_samples / "synthetic"
    datalist = json.loads((folder / "synthetic_datalist.json").read_text())
    assert datalist["num_pairs"] == len(datalist["training"]) == TINY["num_synthetic"]
    assert datalist["num_draws"] >= TINY["num_synthetic"]
    for item in datalist["training"]:
        image = np.asarray(nib.load(folder / item["image"]).dataobj)
        mask = np.asarray(nib.load(folder / item["label"]).dataobj)
        assert image.shape == mask.shape == (TINY["image_size"], TINY["image_size"], 1, 1)
        assert 0 <= image.min() and image.max() <= 1
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert mask.sum() == item["tumour_area"] >= TINY["min_tumour_area"]
    with Image.open(folder / "preview.png") as preview:
        assert preview.mode == "RGB"


def test_train_segmentation_exports_weights_and_checkpoint(brats_segmenter):
    segmenter = load_weights(_segmenter(), brats_segmenter / "models/model.pt")
    checkpoint = torch.load(brats_segmenter / "segmentation/dhvae/checkpoints/checkpoint_epoch=2.pt", weights_only=True)
    assert checkpoint["trainer"]["iteration"] == 2 * checkpoint["trainer"]["epoch_length"]
    for name, value in segmenter.state_dict().items():
        torch.testing.assert_close(value, checkpoint["network"][name])
    assert list((brats_segmenter / "segmentation/dhvae/tensorboard").glob("events.out.tfevents.*"))


def test_train_segmentation_can_draw_synthetic_pairs_on_the_fly(brats_generator, tmp_path):
    output_dir = tmp_path / "on_the_fly"
    shutil.copytree(brats_generator, output_dir)
    shutil.rmtree(output_dir / "synthetic", ignore_errors=True)  # no files: the pairs must come from the generator
    result = run_stage("dhvae_brats", "train_segmentation", output_dir, synthetic_source="generator")
    assert "synthetic pairs: 100%" in result.stderr and f"{TINY['num_synthetic']}/{TINY['num_synthetic']}" in result.stderr
    assert (output_dir / "models/model.pt").is_file() and not (output_dir / "synthetic").exists()


def test_evaluate_writes_per_case_csv_and_summary_matching_an_independent_computation(brats_evaluation):
    folder = brats_evaluation / "evaluation/dhvae"
    summary = json.loads((folder / "summary.json").read_text())
    test_cases = json.loads((brats_evaluation / "datalist.json").read_text())["test"]
    assert summary["num_cases"] == len(test_cases)
    assert set(summary["metrics"]) == {"test_mean_dice", "test_hd95", "test_soft_dice_2d"}
    assert set(summary["per_class"]["test_mean_dice"]) == {"WT"}
    with open(folder / "test_mean_dice_raw.csv") as handle:
        rows = {row["filename"]: float(row["class0"]) for row in csv.DictReader(handle)}
    assert set(rows) == {case["case_id"] for case in test_cases}

    # the same Dice, computed here without the bundle: preprocessing, slice-by-slice inference, threshold
    segmenter = load_weights(_segmenter(), brats_evaluation / "models/model.pt").eval()
    transform = brats_volume_transforms(spatial_size=(TINY["image_size"], TINY["image_size"], TINY["num_axial_slices"]))
    inferer = SliceInferer(roi_size=(TINY["image_size"], TINY["image_size"]), spatial_dim=2, sw_batch_size=16)
    dices, soft_dices = [], []
    for case in test_cases:
        volume = transform(case)
        label = volume["label"][None].as_tensor()
        with torch.no_grad():
            probability = torch.sigmoid(inferer(volume["image"][None].as_tensor(), segmenter))
        dice = compute_dice((probability > 0.5).float(), label, ignore_empty=False).item()
        assert rows[case["case_id"]] == pytest.approx(dice, abs=1e-4)
        dices.append(dice)
        # the paper's score: tumour slices pooled, here all of a volume's (fewer than 32) in one batch
        tumour = label[0, 0].sum((0, 1)) > 0
        p, t = probability[0, 0][..., tumour], label[0, 0][..., tumour]
        soft_dices.append((2 * (p * t).sum() / (p.sum() + t.sum() + 1e-6)).item())
    assert summary["metrics"]["test_mean_dice"] == pytest.approx(float(np.mean(dices)), abs=1e-4)
    assert summary["metrics"]["test_soft_dice_2d"] == pytest.approx(float(np.mean(soft_dices)), abs=1e-4)


def test_inference_writes_masks_in_the_input_space(brats_segmenter, tmp_path):
    case = json.loads((brats_segmenter / "datalist.json").read_text())["test"][0]
    flair = case["image"][case["modalities"].index("flair")]
    settings = {
        "input": flair,
        "output_dir": tmp_path / "masks",
        "models_dir": brats_segmenter / "models",
        "image_size": TINY["image_size"],
        "num_axial_slices": TINY["num_axial_slices"],
    }
    run_bundle("dhvae_brats", ["inference.yaml", "phantom.yaml"], settings)
    outputs = list((tmp_path / "masks").glob("*.nii.gz"))
    assert [path.name for path in outputs] == [f"{case['case_id']}_flair_seg.nii.gz"]
    mask, source = nib.load(outputs[0]), nib.load(flair)
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-4)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}


def test_ckpt_export_gives_a_torchscript_model_equal_to_the_eager_one(brats_segmenter, tmp_path):
    exported = tmp_path / "model.ts"
    command = [
        sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(exported),
        "--ckpt_file", str(brats_segmenter / "models/model.pt"), "--meta_file", "configs/metadata.json",
        "--config_file", "['configs/inference.yaml','configs/phantom.yaml']",
    ]
    result = subprocess.run(command, cwd=BUNDLES_DIR / "dhvae_brats", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    scripted = torch.jit.load(str(exported)).eval()
    eager = load_weights(_segmenter(), brats_segmenter / "models/model.pt").eval()
    image = torch.rand(2, 1, TINY["image_size"], TINY["image_size"])
    with torch.no_grad():
        torch.testing.assert_close(scripted(image), eager(image))


def test_main_job_runs_every_stage_and_prints_the_dice_table(tmp_path):
    # HECKTOR here; the BraTS stages are run one by one above
    overrides = [f"--set={key}={value}" for key, value in TINY.items()]
    result = subprocess.run(
        [sys.executable, "-m", "dhvae_monai.pipeline", str(BUNDLES_DIR / "dhvae_hecktor"), "--output_dir", str(tmp_path),
         *overrides],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    table = (tmp_path / "results.md").read_text().strip().splitlines()
    assert table[0].startswith("| segmenter trained with | test volumes | 3D Dice (%)")
    assert [row.split("|")[1].strip() for row in table[2:]] == [
        "no augmentation", "traditional augmentation", "dHVAE synthetic pairs"
    ]
    assert result.stdout.strip().endswith(table[-1])
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    for variant in ("no_augmentation", "traditional", "dhvae"):
        assert 0.0 <= results[variant]["metrics"]["test_mean_dice"] <= 1.0
        assert (tmp_path / "models" / ("model.pt" if variant == "dhvae" else f"model_{variant}.pt")).is_file()
    assert (tmp_path / "synthetic/synthetic_datalist.json").is_file()
