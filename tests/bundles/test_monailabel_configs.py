"""The configs MONAI Label reads: train.yaml agrees with the segmenter stage, has the keys MONAI Label overrides and
trains with its overrides; metadata.json gives MONAI Label the mask's label values. No MONAI Label needed here
(test_monailabel.py runs the real server)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from monai.bundle import ConfigParser
from monai.handlers import ValidationHandler
from monai.transforms import Invertd, SaveImaged

from dhvae_monai.data import make_phantom_dataset
from tests.bundles.conftest import BUNDLE_NAMES, BUNDLES_DIR, TINY

# what monailabel 0.8.5 sets in a bundle's configs/train.yaml (monailabel/tasks/train/bundle.py, BundleConstants)
MONAILABEL_TRAIN_OVERRIDES = (
    "bundle_root", "device", "train#trainer#max_epochs", "train#dataset#data", "train#handlers",
    "validate#dataset#data",
)
# where train.yaml departs from common.yaml + train_segmentation.yaml, by id (and everything below it), and why
TRAIN_CONFIG_DIFFERENCES = {
    "real_slices": "moved to train#dataset, the key whose data MONAI Label sets",
    "train#dataset": "the training studies' slices (train_segmentation.yaml's real_slices)",
    "train#slices": "real + synthetic slices (train_segmentation.yaml's train#dataset)",
    "real_copies": "counts train#dataset, the real slices here",
    "train#dataloader#dataset": "reads train#slices",
    "train#dataloader#drop_last": "reads train#slices",
    "train#handlers#1#_disabled_": "no validation when MONAI Label gives no validation study",
    "train#resume": "no resume: MONAI Label restarts from models/model.pt and counts its own epochs",
    "train#checkpoint_saver": "no resume, so no checkpoints to resume from",
    "checkpoint_objects": "no resume",
    "checkpoint_interval": "no resume",
    "run": "no resume",
    "num_synthetic": "synthetic pairs on request only",
    "synthetic_source": "drawn from models/generator.pt, a file of the bundle",
    # generator training and sampling settings, which the segmenter's training does not read
    **dict.fromkeys(
        ("regulariser_weight", "generator_batch_size", "generator_epochs", "generator_learning_rate",
         "discriminator_channels", "discriminator_start", "generator_val_interval", "preview_interval",
         "mask_threshold", "area_bin_width", "slices_per_bin", "generator_dir", "evaluation_dir"),
        "not read by the segmenter's training",
    ),
}


def _yaml(bundle: str, name: str) -> dict:
    return yaml.safe_load((BUNDLES_DIR / bundle / "configs" / name).read_text())


def _flatten(config, prefix: str = "") -> dict:
    """Every leaf of a config under its MONAI id (``train#handlers#1#interval``)."""
    children = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else None
    if children is None or not config:
        return {prefix: config}
    leaves = {}
    for key, value in children:
        leaves.update(_flatten(value, f"{prefix}#{key}" if prefix else str(key)))
    return leaves


def _differing_ids(first: dict, second: dict) -> set[str]:
    first, second, missing = _flatten(first), _flatten(second), object()
    return {key for key in first.keys() | second.keys() if first.get(key, missing) != second.get(key, missing)}


def _under(key: str, prefixes) -> bool:
    return any(key == prefix or key.startswith(prefix + "#") for prefix in prefixes)


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_train_config_is_the_segmenter_stage_but_for_the_listed_differences(bundle):
    stage = {**_yaml(bundle, "common.yaml"), **_yaml(bundle, "train_segmentation.yaml")}
    differing = _differing_ids(stage, _yaml(bundle, "train.yaml"))
    assert not {key for key in differing if not _under(key, TRAIN_CONFIG_DIFFERENCES)}
    stale = [prefix for prefix in TRAIN_CONFIG_DIFFERENCES if not any(_under(key, [prefix]) for key in differing)]
    assert not stale


def test_train_configs_of_the_bundles_differ_only_where_their_common_settings_do():
    brats, hecktor = BUNDLE_NAMES
    common_differences = _differing_ids(_yaml(brats, "common.yaml"), _yaml(hecktor, "common.yaml"))
    assert _differing_ids(_yaml(brats, "train.yaml"), _yaml(hecktor, "train.yaml")) <= common_differences


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_configs_have_the_keys_monailabel_reads_and_overrides(bundle):
    train = ConfigParser(_yaml(bundle, "train.yaml"))
    for key in (*MONAILABEL_TRAIN_OVERRIDES, "network", "network_def"):  # network: its CheckpointLoader's target
        assert key in train, key
    # MONAI Label drops SaveImaged from the postprocessing and then restores the input's affine: the prediction
    # must already be back on the input's grid, by the Invertd of the preprocessing
    inference = ConfigParser(_yaml(bundle, "inference.yaml"))
    kept = [t for t in inference.get_parsed_content("postprocessing").transforms if not isinstance(t, SaveImaged)]
    assert isinstance(kept[-1], Invertd)
    assert kept[-1].transform is inference.get_parsed_content("preprocessing")


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_prediction_channel_def_names_the_mask_values(bundle):
    # MONAI Label reads network_data_format.outputs.pred.channel_def as {label value: name}; the mask is 0 / 1
    metadata = json.loads((BUNDLES_DIR / bundle / "configs/metadata.json").read_text())
    prediction = metadata["network_data_format"]["outputs"]["pred"]
    assert prediction["num_channels"] == 1
    assert set(prediction["channel_def"]) == {"0", "1"} and prediction["channel_def"]["0"] == "background"


def test_train_config_trains_with_monailabels_overrides(tmp_path):
    """The overrides of MONAI Label's train task on studies it lists: bare image and label paths, no modality names,
    no validation study."""
    cases = make_phantom_dataset(tmp_path / "studies", layout="brats2021", num_cases=2, shape=(40, 40, 24))
    folder = tmp_path / "studies"
    studies = [{"image": str(folder / case / f"{case}_flair.nii.gz"), "label": str(folder / case / f"{case}_seg.nii.gz")}
               for case in cases]
    bundle = tmp_path / "dhvae_brats"
    parser = ConfigParser(_yaml("dhvae_brats", "train.yaml"))
    parser.update({
        "bundle_root": str(bundle), "device": "cpu", "train#trainer#max_epochs": 1, "train#dataset#data": studies,
        "validate#dataset#data": [], "image_size": TINY["image_size"], "num_axial_slices": TINY["num_axial_slices"],
        "segmenter_features": [8, 8, 16, 16, 32, 8], "segmentation_batch_size": 8,
    })
    handlers = parser.get_parsed_content("train#handlers")
    assert not [handler for handler in handlers if isinstance(handler, ValidationHandler)]
    trainer = parser.get_parsed_content("train#trainer")
    trainer.run()
    assert trainer.state.epoch == 1
    weights = torch.load(bundle / "models/model.pt", weights_only=True)
    assert weights["final_conv.weight"].shape[0] == 1
