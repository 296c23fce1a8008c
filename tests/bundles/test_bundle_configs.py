"""The bundles' configs: they parse, agree with each other, and pass MONAI's metadata and network checks."""

from __future__ import annotations

import json
import subprocess
import sys

import monai
import pytest
import torch
import yaml
from monai.bundle import ConfigParser, verify_metadata

import dhvae_monai
from tests.bundles.conftest import BUNDLE_NAMES, BUNDLES_DIR, STAGES

SCHEMA = BUNDLES_DIR.parent.parent / "shared" / "schema" / "meta_schema_20240725.json"
REQUIRED_FILES = (
    "configs/metadata.json",
    "configs/common.yaml",
    "configs/inference.yaml",
    "configs/logging.conf",
    "docs/README.md",
    "docs/data_license.txt",
    "LICENSE",
    "large_files.yml",
    "models",
)
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
def test_bundle_has_the_model_zoo_files(bundle):
    missing = [name for name in REQUIRED_FILES if not (BUNDLES_DIR / bundle / name).exists()]
    assert not missing


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


@pytest.mark.skipif(not SCHEMA.is_file(), reason="needs ../shared/schema (the offline Model Zoo schema)")
@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_metadata_validates_against_the_model_zoo_schema(bundle):
    verify_metadata(meta_file=str(BUNDLES_DIR / bundle / "configs/metadata.json"), filepath=str(SCHEMA))


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_metadata_versions_are_true(bundle):
    metadata = json.loads((BUNDLES_DIR / bundle / "configs/metadata.json").read_text())
    assert metadata["version"] in metadata["changelog"]
    assert metadata["required_packages_version"]["dhvae-monai"] == dhvae_monai.__version__
    assert metadata["monai_version"] == monai.__version__
    channels = metadata["network_data_format"]["inputs"]["image"]["num_channels"]
    assert channels == len(_yaml(bundle, "common.yaml")["modalities"])
    outputs = metadata["network_data_format"]["outputs"]["pred"]
    assert outputs["num_channels"] == len(_yaml(bundle, "common.yaml")["regions"])
    assert metadata["generator_data_format"]["inputs"]["pair"]["num_channels"] == channels + outputs["num_channels"]


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_verify_net_in_out_passes_for_the_segmenter(bundle):
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def", "--meta_file",
         "configs/metadata.json", "--config_file", "configs/inference.yaml"],
        cwd=BUNDLES_DIR / bundle, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data shape of network is verified with no error" in result.stdout + result.stderr
