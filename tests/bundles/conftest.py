"""Running bundle stages the way users do: ``python -m monai.bundle run`` in a subprocess, on tiny phantom data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"
BUNDLE_NAMES = ("dhvae_brats", "dhvae_hecktor")
STAGES = ("train_generator", "sample", "train_segmentation", "evaluate", "quality")

# small enough for seconds per stage on a CPU; the keys are those a user would override
TINY = {
    "num_phantom_cases": 5,
    "image_size": 32,
    "num_axial_slices": 16,
    "generator_epochs": 2,
    "generator_val_interval": 1,
    "preview_interval": 1,
    "discriminator_start": 2,
    "segmentation_epochs": 2,
    "segmentation_val_interval": 1,
    "num_synthetic": 8,
    "min_tumour_area": 1,
}


def bundle_command(configs: list[str], overrides: dict, module: str = "monai.bundle") -> list[str]:
    """The command line of ``python -m monai.bundle run`` with ``configs/<name>`` files and ``--key value`` overrides."""
    files = "[" + ",".join(f"'configs/{name}'" for name in configs) + "]"
    command = [sys.executable, "-m", module, "run", "--config_file", files]
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    return command


def run_bundle(bundle: str, configs: list[str], overrides: dict, check: bool = True, launcher: list[str] | None = None):
    """Run a bundle command in the bundle's folder (as its README says) and return the completed process."""
    command = bundle_command(configs, overrides)
    if launcher is not None:
        command = launcher + command[1:]  # launcher + ['-m', 'monai.bundle', 'run', ...]
    result = subprocess.run(
        command, cwd=BUNDLES_DIR / bundle, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def run_stage(bundle: str, stage: str, output_dir: Path, check: bool = True, **overrides):
    """One stage on the tiny phantom settings, writing into ``output_dir``."""
    settings = {**TINY, "output_dir": output_dir, "models_dir": output_dir / "models", **overrides}
    return run_bundle(bundle, ["common.yaml", f"{stage}.yaml", "phantom.yaml"], settings, check=check)


@pytest.fixture(scope="session")
def brats_generator(tmp_path_factory) -> Path:
    """Output folder after train_generator on tiny phantom BraTS data."""
    output_dir = tmp_path_factory.mktemp("brats_run")
    run_stage("dhvae_brats", "train_generator", output_dir)
    return output_dir


@pytest.fixture(scope="session")
def brats_samples(brats_generator) -> Path:
    run_stage("dhvae_brats", "sample", brats_generator)
    return brats_generator


@pytest.fixture(scope="session")
def brats_segmenter(brats_samples) -> Path:
    run_stage("dhvae_brats", "train_segmentation", brats_samples)
    return brats_samples


@pytest.fixture(scope="session")
def brats_evaluation(brats_segmenter) -> Path:
    run_stage("dhvae_brats", "evaluate", brats_segmenter)
    return brats_segmenter
