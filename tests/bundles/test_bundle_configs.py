"""The bundles' configs: they parse, agree with each other, and pass the Model Zoo's checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import monai
import pytest
import torch
import yaml
from monai.bundle import ConfigParser

from dhvae_monai.bundle_check import CHECKS
from tests.bundles.conftest import BUNDLE_NAMES, BUNDLES_DIR, STAGES

# keys inference.yaml repeats from common.yaml (it is self-contained for MONAI Label): they must agree
SHARED_WITH_INFERENCE = (
    "modalities", "regions", "image_channels", "num_regions", "image_size", "num_axial_slices", "segmenter_features",
    "network_def",
)


def _parser(bundle: str, *configs: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(BUNDLES_DIR / bundle / "configs" / name) for name in configs])
    parser["bundle_root"] = str(BUNDLES_DIR / bundle)
    return parser


def _yaml(bundle: str, name: str) -> dict:
    return yaml.safe_load((BUNDLES_DIR / bundle / "configs" / name).read_text())


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_bundle_passes_the_model_zoo_checks(bundle, tmp_path):
    # the bundle as committed: weights and runs a developer made in it locally are not part of it (.gitignore)
    committed = tmp_path / bundle
    ignored = shutil.ignore_patterns("*.pt", "*.ts", "runs", "__pycache__")
    shutil.copytree(BUNDLES_DIR / bundle, committed, ignore=ignored)
    result = subprocess.run(
        [sys.executable, "-m", "dhvae_monai.bundle_check", str(committed)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.splitlines() == [f"{committed}: passes the Model Zoo checks ({', '.join(CHECKS)})."]


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
@pytest.mark.parametrize("stage", STAGES + ("multi_gpu_train_generator", "multi_gpu_train_segmentation"))
def test_stage_config_parses_and_builds_its_networks(bundle, stage):
    configs = ["common.yaml", f"{stage.removeprefix('multi_gpu_')}.yaml"]
    if stage.startswith("multi_gpu_"):
        configs.append(f"{stage}.yaml")
    parser = _parser(bundle, *configs)
    assert parser.get("run"), "every stage has a run section"
    generator = parser.get_parsed_content("generator_def")
    assert generator.image_channels == len(parser.get_parsed_content("modalities"))
    segmenter = parser.get_parsed_content("network_def")
    assert segmenter(torch.zeros(1, 1, 32, 32)).shape == (1, len(parser.get_parsed_content("regions")), 32, 32)


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_inference_config_is_self_contained_and_agrees_with_training(bundle):
    inference, common = _yaml(bundle, "inference.yaml"), _yaml(bundle, "common.yaml")
    for key in SHARED_WITH_INFERENCE:
        assert inference[key] == common[key], key
    parser = _parser(bundle, "inference.yaml")
    for key in ("network_def", "preprocessing", "postprocessing", "inferer", "device", "bundle_root"):
        assert key in parser, key
    assert parser.get_parsed_content("inferer").spatial_dim == 2


@pytest.mark.parametrize("stage", STAGES + ("multi_gpu_train_generator", "multi_gpu_train_segmentation"))
def test_stage_configs_are_the_same_in_both_bundles(stage):
    # the bundles differ only in common.yaml, phantom.yaml, inference.yaml and metadata; the stages are shared verbatim
    brats, hecktor = (BUNDLES_DIR / name / "configs" / f"{stage}.yaml" for name in BUNDLE_NAMES)
    assert brats.read_text() == hecktor.read_text()


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_phantom_settings_only_override_existing_keys(bundle):
    known = set(_yaml(bundle, "common.yaml"))
    for stage in STAGES:
        known |= set(_yaml(bundle, f"{stage}.yaml"))
    assert set(_yaml(bundle, "phantom.yaml")) <= known


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_metadata_agrees_with_the_installed_monai_and_the_configs(bundle):
    # the version, changelog and dhvae-monai pin are the Model Zoo check's; these are the project's own
    metadata = json.loads((BUNDLES_DIR / bundle / "configs/metadata.json").read_text())
    assert metadata["monai_version"] == monai.__version__
    channels = metadata["network_data_format"]["inputs"]["image"]["num_channels"]
    assert channels == len(_yaml(bundle, "common.yaml")["modalities"])
    outputs = metadata["network_data_format"]["outputs"]["pred"]
    assert outputs["num_channels"] == len(_yaml(bundle, "common.yaml")["regions"])
    assert metadata["generator_data_format"]["inputs"]["pair"]["num_channels"] == channels + outputs["num_channels"]


@pytest.mark.parametrize(
    "augmentation, matched_num_synthetic, expected_copies",
    [("none", 0, 1), ("traditional", 0, 2), ("none", 20, 4), ("traditional", 3, 2)],
)
def test_matched_control_repeats_the_real_slices_to_the_size_of_real_plus_synthetic(augmentation, matched_num_synthetic, expected_copies):
    parser = _parser("dhvae_brats", "common.yaml", "train_segmentation.yaml")
    # 7 real slices and no synthetic ones stand in for the datasets, so only the config's arithmetic is exercised
    parser["real_slices"] = "$list(range(7))"
    parser["synthetic_slices"] = "$[]"
    parser["augmentation"] = augmentation
    parser["matched_num_synthetic"] = matched_num_synthetic
    # e.g. 7 + 20 = 27 slices asked for: 4 copies of the 7 real ones, the nearest whole number of copies
    assert parser.get_parsed_content("real_copies") == expected_copies
    assert len(parser.get_parsed_content("train#dataset")) == 7 * expected_copies
