from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedEvaluator
from monai.handlers import (
    CheckpointLoader,
    CheckpointSaver,
    IgniteMetricHandler,
    StatsHandler,
    TensorBoardStatsHandler,
    ValidationHandler,
    from_engine,
)
from monai.metrics import PSNRMetric
from monai.utils import set_determinism
from torch.utils.data import DataLoader

from dhvae_monai.engines import DHVAETrainer, NonFiniteLossError, PreparePairBatch, loss_terms
from dhvae_monai.losses import DHVAELoss
from dhvae_monai.networks import DHVAE, PairDiscriminator

TINY = {"image_size": 32, "channels": (8, 16, 32, 32), "norm_num_groups": 8, "leapfrog_steps": 2}


def slices(num_slices: int = 8) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    items = []
    for _ in range(num_slices):
        mask = torch.zeros(1, 32, 32)
        top, left = torch.randint(4, 20, (2,), generator=generator).tolist()
        mask[:, top : top + 8, left : left + 8] = 1
        items.append({"image": 0.3 + 0.5 * mask + 0.05 * torch.rand(1, 32, 32, generator=generator), "label": mask})
    return items


def build(loader, max_epochs=2, discriminator_start=2, handlers=None, regulariser_weight=0.05):
    net, discriminator = DHVAE(**TINY), PairDiscriminator(channels=8)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), 1e-3)
    trainer = DHVAETrainer(
        device="cpu", max_epochs=max_epochs, train_data_loader=loader, network=net, optimizer=optimizer,
        discriminator=discriminator, discriminator_optimizer=discriminator_optimizer,
        loss_function=DHVAELoss(regulariser_weight=regulariser_weight), discriminator_start=discriminator_start,
        train_handlers=handlers,
    )
    return trainer, net, discriminator, optimizer, discriminator_optimizer


def test_iteration_outputs_every_term_and_starts_the_discriminator_on_time():
    set_determinism(0)
    loader = DataLoader(slices(8), batch_size=4)
    trainer, _, discriminator, _, _ = build(loader, max_epochs=1, discriminator_start=1)
    snapshots = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda engine: snapshots.append([p.detach().clone() for p in discriminator.parameters()]),
    )
    initial = [p.detach().clone() for p in discriminator.parameters()]
    trainer.run()
    # iteration 1 is before the start: discriminator untouched; iteration 2 updates it
    assert all(torch.equal(a, b) for a, b in zip(initial, snapshots[0]))
    assert not all(torch.equal(a, b) for a, b in zip(snapshots[0], snapshots[1]))
    terms = loss_terms(trainer.state.output)
    assert {"loss", "elbo_loss", "pixel_loss", "perceptual_loss", "reconstruction_loss", "regulariser_loss",
            "generator_adversarial_loss", "adaptive_weight", "discriminator_loss"} <= set(terms)
    assert trainer.state.output["pred"].shape == (4, 2, 32, 32)


def test_hvae_baseline_never_uses_the_discriminator():
    loader = DataLoader(slices(4), batch_size=4)
    trainer, _, discriminator, _, _ = build(loader, max_epochs=2, discriminator_start=0, regulariser_weight=0.0)
    initial = [p.detach().clone() for p in discriminator.parameters()]
    trainer.run()
    assert all(torch.equal(a, p) for a, p in zip(initial, discriminator.parameters()))
    assert set(loss_terms(trainer.state.output)) == {"loss", "elbo_loss"}


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_trainer_logs_checkpoints_validates_and_resumes(tmp_path):
    set_determinism(0)
    loader = DataLoader(slices(8), batch_size=4)
    trainer, net, discriminator, optimizer, discriminator_optimizer = build(loader, max_epochs=2)
    evaluator = SupervisedEvaluator(
        device="cpu", val_data_loader=DataLoader(slices(4), batch_size=4), network=net,
        prepare_batch=PreparePairBatch(),
        key_val_metric={"val_psnr": IgniteMetricHandler(PSNRMetric(max_val=1.0), output_transform=from_engine(["pred", "label"]))},
    )
    save_dict = {"generator": net, "discriminator": discriminator, "generator_optimizer": optimizer,
                 "discriminator_optimizer": discriminator_optimizer, "trainer": trainer}
    for handler in (
        StatsHandler(output_transform=loss_terms, name="dhvae_test"),
        TensorBoardStatsHandler(log_dir=str(tmp_path / "tb"), output_transform=loss_terms),
        ValidationHandler(validator=evaluator, interval=1),
        CheckpointSaver(save_dir=str(tmp_path / "ckpt"), save_dict=save_dict, save_interval=1, n_saved=1),
    ):
        handler.attach(trainer)
    recorder = RecordingHandler()
    logging.getLogger("dhvae_test").addHandler(recorder)
    trainer.run()
    logged = "\n".join(recorder.messages)
    assert "elbo_loss" in logged and "discriminator_loss" in logged
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert evaluator.state.metrics["val_psnr"] > 0
    checkpoint = tmp_path / "ckpt" / "checkpoint_epoch=2.pt"
    assert checkpoint.is_file()

    resumed, resumed_net, resumed_discriminator, resumed_optimizer, resumed_discriminator_optimizer = build(loader, max_epochs=3)
    resumed_dict = {"generator": resumed_net, "discriminator": resumed_discriminator,
                    "generator_optimizer": resumed_optimizer, "discriminator_optimizer": resumed_discriminator_optimizer,
                    "trainer": resumed}
    CheckpointLoader(load_path=str(checkpoint), load_dict=resumed_dict, map_location="cpu").attach(resumed)
    iterations_seen = []
    resumed.add_event_handler(Events.ITERATION_STARTED, lambda engine: iterations_seen.append(engine.state.iteration))
    state_before = {}
    resumed.add_event_handler(
        Events.STARTED, lambda engine: state_before.update(
            generator=[p.detach().clone() for p in resumed_net.parameters()],
            discriminator=[p.detach().clone() for p in resumed_discriminator.parameters()],
            step=resumed_discriminator_optimizer.state_dict()["state"][0]["step"].clone(),
        ),
    )
    resumed.run()
    assert all(torch.equal(a, b) for a, b in zip(state_before["generator"], net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(state_before["discriminator"], discriminator.parameters()))
    assert float(state_before["step"]) == float(discriminator_optimizer.state_dict()["state"][0]["step"])
    assert iterations_seen == [5, 6]  # continues after the 4 iterations of the first run


def test_non_finite_loss_stops_before_any_update():
    items = slices(4)
    items[0]["image"][0, 0, 0] = float("nan")
    trainer, net, _, _, _ = build(DataLoader(items, batch_size=4), max_epochs=1)
    initial = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(NonFiniteLossError, match="'elbo_loss' became nan at iteration 1"):
        trainer.run()
    assert all(torch.equal(a, p) for a, p in zip(initial, net.parameters()))


def test_trainer_argument_errors():
    loader = DataLoader(slices(4), batch_size=4)
    net = DHVAE(**TINY)
    optimizer = torch.optim.Adam(net.parameters())
    with pytest.raises(ValueError, match="discriminator_optimizer"):
        DHVAETrainer("cpu", 1, loader, net, optimizer, discriminator=PairDiscriminator(channels=8))
    with pytest.raises(ValueError, match="discriminator_start"):
        DHVAETrainer("cpu", 1, loader, net, optimizer, discriminator_start=-1)
    with pytest.raises(KeyError, match="label"):
        PreparePairBatch()({"image": torch.zeros(1, 1, 32, 32)})
