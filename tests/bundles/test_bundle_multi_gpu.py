"""The multi_gpu_* configs under torchrun: two CPU processes with the gloo backend."""

from __future__ import annotations

import sys

import torch

from tests.bundles.conftest import TINY, run_bundle

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _run(stage: str, output_dir, **overrides):
    settings = {**TINY, "output_dir": output_dir, "models_dir": output_dir / "models", **overrides}
    configs = ["common.yaml", f"{stage}.yaml", f"multi_gpu_{stage}.yaml", "phantom.yaml"]
    return run_bundle("dhvae_brats", configs, settings, launcher=TORCHRUN)


def test_generator_training_on_two_processes(tmp_path):
    _run("train_generator", tmp_path)
    checkpoint = torch.load(tmp_path / "generator/checkpoints/checkpoint_epoch=2.pt", weights_only=True)
    assert checkpoint["trainer"]["iteration"] == 2 * checkpoint["trainer"]["epoch_length"]
    # DDP weights are saved unwrapped (no "module." prefix), so single-process stages load them
    assert not any(name.startswith("module.") for name in checkpoint["generator"])
    assert (tmp_path / "models/generator.pt").is_file()
    # only rank 0 writes TensorBoard logs: one file for training and one for validation, not one more per rank
    assert len(list((tmp_path / "generator/tensorboard").glob("events.out.tfevents.*"))) == 2


def test_segmentation_training_on_two_processes(tmp_path):
    _run("train_segmentation", tmp_path, num_synthetic=0)
    weights = torch.load(tmp_path / "models/model.pt", weights_only=True)
    assert not any(name.startswith("module.") for name in weights)
    checkpoint = torch.load(tmp_path / "segmentation/dhvae/checkpoints/checkpoint_epoch=2.pt", weights_only=True)
    assert checkpoint["trainer"]["iteration"] == 2 * checkpoint["trainer"]["epoch_length"]
