"""Bad input to a bundle stage: one clear message naming what to fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dhvae_monai.pipeline import PipelineError, run_stage
from tests.bundles.conftest import BUNDLES_DIR, TINY, run_bundle

BRATS = BUNDLES_DIR / "dhvae_brats"


def _stage(stage: str, output_dir, **overrides) -> None:
    settings = {**TINY, "output_dir": str(output_dir), "models_dir": str(output_dir / "models"), **overrides}
    run_stage(BRATS, stage, ["phantom.yaml"], **settings)


def test_main_job_names_a_missing_dataset_dir_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dhvae_monai.pipeline", str(BRATS), "--dataset_dir", str(tmp_path / "nowhere"),
         "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: stage train_generator failed: FileNotFoundError: dataset_dir {tmp_path / 'nowhere'} does not exist: "
        "set --dataset_dir to your dataset folder."
    )


def test_folder_without_cases_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match=f"stage train_generator failed: DatalistError: .*{tmp_path / 'empty'}"):
        _stage("train_generator", tmp_path / "out", dataset_dir=str(tmp_path / "empty"), layout="brats2021")


def test_empty_test_split_is_named(brats_segmenter, tmp_path):
    with pytest.raises(PipelineError, match="the 'test' split is empty"):
        _stage("evaluate", tmp_path, dataset_dir=str(brats_segmenter / "phantom_brats2021"), num_test=0,
               models_dir=str(brats_segmenter / "models"))


def test_sample_without_a_trained_generator_says_which_stage_to_run(tmp_path):
    with pytest.raises(PipelineError, match=r"generator.pt not found: run the train_generator stage first"):
        _stage("sample", tmp_path)


def test_evaluate_without_segmenter_weights_says_which_stage_to_run(tmp_path):
    with pytest.raises(PipelineError, match=r"model.pt not found: run the train_segmentation stage first"):
        _stage("evaluate", tmp_path)


def test_inference_without_segmenter_weights_says_which_stage_to_run(brats_generator, tmp_path):
    scan = next((brats_generator / "phantom_brats2021").glob("*/*_flair.nii.gz"))
    result = run_bundle("dhvae_brats", ["inference.yaml"], {"models_dir": tmp_path, "input": scan}, check=False)
    assert result.returncode != 0
    assert f"weights file {tmp_path / 'model.pt'} not found: run the train_segmentation stage first" in result.stderr


def test_generator_from_another_configuration_is_refused(brats_generator, tmp_path):
    with pytest.raises(PipelineError, match=r"generator.pt was trained with a different network configuration"):
        _stage("sample", tmp_path, models_dir=str(brats_generator / "models"), generator_channels=[16, 32, 64, 128])


def test_more_synthetic_pairs_than_sampled_is_named(brats_samples, tmp_path):
    with pytest.raises(PipelineError, match=r"lists 8 synthetic pairs but num_synthetic is 100"):
        _stage("train_segmentation", brats_samples, num_synthetic=100, run_name="too_many")
