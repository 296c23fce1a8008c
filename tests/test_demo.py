from __future__ import annotations

import torch
from PIL import Image

from dhvae_monai.demo import run_demo


def test_demo_trains_writes_checkpoint_and_previews_then_resumes(tmp_path):
    settings = {"num_cases": 3, "image_size": 32, "num_axial_slices": 16, "leapfrog_steps": 1, "discriminator_start": 1}
    checkpoint = run_demo(tmp_path, max_epochs=1, **settings)
    assert checkpoint == tmp_path / "checkpoints" / "checkpoint_epoch=1.pt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert set(state) == {"generator", "discriminator", "generator_optimizer", "discriminator_optimizer", "trainer"}
    assert Image.open(tmp_path / "previews" / "preview_epoch=1.png").size[0] > 0
    assert (tmp_path / "datalist.json").is_file() and list((tmp_path / "tensorboard").iterdir())

    resumed = run_demo(tmp_path, max_epochs=2, **settings)
    assert resumed == tmp_path / "checkpoints" / "checkpoint_epoch=2.pt"
    trainer_state = torch.load(resumed, map_location="cpu", weights_only=True)["trainer"]
    assert trainer_state["iteration"] == 2 * trainer_state["epoch_length"]  # continued, not restarted
