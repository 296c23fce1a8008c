"""The quality stage run through ``python -m monai.bundle run`` on the tiny phantom run, and its errors."""

from __future__ import annotations

import json

import pytest
import yaml
from PIL import Image

from dhvae_monai.pipeline import PipelineError
from dhvae_monai.pipeline import run_stage as run_stage_in_process
from tests.bundles.conftest import BUNDLE_NAMES, BUNDLES_DIR, TINY, run_stage

PHANTOM_BOTTLENECK_FEATURES = 256  # phantom.yaml's segmenter_features[4]


def test_quality_stage_writes_scores_and_a_preview(brats_segmenter, tmp_path):
    result = run_stage("dhvae_brats", "quality", brats_segmenter, quality_dir=tmp_path, num_quality_samples=16)
    scores = json.loads((tmp_path / "quality.json").read_text())
    assert set(scores) == {"reconstruction", "acceptance", "diversity", "feature_distance", "seed", "notes"}
    validation = json.loads((brats_segmenter / "datalist.json").read_text())["validation"]
    reconstruction = scores["reconstruction"]
    assert reconstruction["num_slices"] > 0 and validation
    assert reconstruction["psnr"] > 0 and -1 <= reconstruction["ssim"] <= 1 and 0 <= reconstruction["mask_dice"] <= 1
    acceptance = scores["acceptance"]
    assert acceptance["num_draws"] == 16 and acceptance["min_tumour_area"] == TINY["min_tumour_area"]
    assert acceptance["acceptance_rate"] == acceptance["num_kept"] / 16
    for key in ("ms_ssim_synthetic", "ms_ssim_real"):
        assert scores["diversity"][key] is None or 0 <= scores["diversity"][key] <= 1
    assert 0 <= scores["diversity"]["ms_ssim_real"] <= 1
    distance = scores["feature_distance"]
    assert (distance["layer"], distance["num_features"]) == ("down_4", PHANTOM_BOTTLENECK_FEATURES)
    assert distance["num_real"] == reconstruction["num_slices"] and distance["num_synthetic"] == acceptance["num_kept"]
    assert isinstance(distance["real_vs_real"]["mmd"], float) and distance["real_vs_real"]["split"] == "slices"
    # far fewer slices than 256 features: FID is null, and the notes say why
    assert distance["synthetic_vs_real"]["fid"] is None
    assert any(note.startswith("synthetic_vs_real: FID needs more vectors") for note in scores["notes"])
    assert scores["seed"] == 42
    with Image.open(tmp_path / "real_vs_synthetic.png") as preview:
        assert preview.mode == "RGB" and preview.height > 2 * TINY["image_size"]
    assert "sample quality: reconstruction PSNR" in result.stdout


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_quality_reads_the_slices_train_generator_validates_on(bundle):
    configs = BUNDLES_DIR / bundle / "configs"
    quality = yaml.safe_load((configs / "quality.yaml").read_text())
    train_generator = yaml.safe_load((configs / "train_generator.yaml").read_text())
    assert quality["real_slices"] == train_generator["validate"]["dataset"]
    assert quality["quality_dir"] == "$@output_dir + '/quality'"


def _stage_in_process(output_dir, **overrides) -> None:
    settings = {**TINY, "output_dir": str(output_dir), "models_dir": str(output_dir / "models"), **overrides}
    run_stage_in_process(BUNDLES_DIR / "dhvae_brats", "quality", ["phantom.yaml"], **settings)


def test_quality_without_generator_weights_says_which_stage_to_run(tmp_path):
    with pytest.raises(PipelineError, match=r"generator.pt not found: run the train_generator stage first"):
        _stage_in_process(tmp_path)


def test_quality_without_segmenter_weights_says_which_stage_to_run(brats_generator, tmp_path):
    with pytest.raises(PipelineError, match=r"model.pt not found: run the train_segmentation stage first"):
        _stage_in_process(tmp_path, models_dir=str(brats_generator / "models"), segmenter_weights=str(tmp_path / "model.pt"))
