"""
Short dHVAE generator training on the built-in phantom data: the project's first Quick-start command.

``python -m dhvae_monai.demo --output_dir runs/demo`` creates a small BraTS-layout phantom dataset (once), cuts its
training patients' volumes into tumour slices, trains a slim DHVAE with its discriminator on the CPU for a few
minutes, validates reconstructions on the validation patients, and writes a checkpoint, TensorBoard logs and preview
grids of prior samples. Re-running the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from ignite.contrib.handlers import ProgressBar
from monai.data import DataLoader, load_decathlon_datalist
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

from dhvae_monai.data.datalists import make_datalist, write_datalist
from dhvae_monai.data.phantoms import make_phantom_dataset
from dhvae_monai.data.slice_dataset import TumourSliceDataset
from dhvae_monai.engines import DHVAETrainer, PreparePairBatch, loss_terms
from dhvae_monai.handlers import SamplePreviewSaver
from dhvae_monai.losses import DHVAELoss
from dhvae_monai.networks import DHVAE, PairDiscriminator
from dhvae_monai.transforms.preprocessing import brats_volume_transforms

__all__ = ["run_demo", "main"]

LOGGER_NAME = "dhvae_monai.demo"


def run_demo(
    output_dir: str | Path = "runs/demo",
    num_cases: int = 8,
    image_size: int = 64,
    num_axial_slices: int = 32,
    max_epochs: int = 24,
    batch_size: int = 16,
    leapfrog_steps: int = 3,
    discriminator_start: int = 80,
    seed: int = 0,
    device: str = "cpu",
) -> Path:
    """
    Train a slim DHVAE on phantom BraTS slices and return the path of the final checkpoint.

    Args:
        output_dir: folder for the phantom data, datalist, checkpoints, TensorBoard logs and previews.
        num_cases: phantom patients to create (split into training / validation / test).
        image_size: side of the axial slices.
        num_axial_slices: axial slices per preprocessed volume.
        max_epochs: training epochs (a re-run with more epochs continues from the last checkpoint).
        batch_size: slices per batch.
        leapfrog_steps: ``K`` of the Hamiltonian flow.
        discriminator_start: iterations before the adversarial term switches on.
        seed: seed of the phantoms, the split and the training.
        device: torch device.

    Returns:
        path of the checkpoint holding generator, discriminator, both optimisers and the trainer state.

    Example::

        checkpoint = run_demo("runs/demo", max_epochs=5)
    """
    output_dir = Path(output_dir)
    logger = logging.getLogger(LOGGER_NAME)
    set_determinism(seed)

    data_dir = output_dir / "phantom_brats2021"
    if not data_dir.is_dir():
        logger.info("creating %d phantom BraTS cases in %s", num_cases, data_dir)
        make_phantom_dataset(data_dir, layout="brats2021", num_cases=num_cases, seed=seed)
    datalist_path = output_dir / "datalist.json"
    write_datalist(make_datalist(data_dir, layout="brats2021", num_val=1, num_test=1, seed=seed), datalist_path)

    transform = brats_volume_transforms(
        modalities=("flair",), regions=("WT",), spatial_size=(image_size, image_size, num_axial_slices)
    )
    min_tumour_area = 200 * (image_size / 128) ** 2  # the paper's 200 px on 128 x 128 slices, scaled
    datasets = {
        split: TumourSliceDataset(
            load_decathlon_datalist(datalist_path, data_list_key=split),
            volume_transform=transform,
            min_tumour_area=min_tumour_area,
            area_bin_width=25 * (image_size / 128) ** 2,
            # balance the generator's training set; validate on every tumour slice
            slices_per_bin=None if split == "training" else num_axial_slices,
        )
        for split in ("training", "validation")
    }
    logger.info("training slices: %d, validation slices: %d", len(datasets["training"]), len(datasets["validation"]))
    train_loader = DataLoader(datasets["training"], batch_size=batch_size, shuffle=True, drop_last=False)
    val_loader = DataLoader(datasets["validation"], batch_size=batch_size)

    generator = DHVAE(
        image_channels=1,
        mask_channels=1,
        image_size=image_size,
        channels=(16, 32, 64, 64),
        latent_channels=3,
        num_res_blocks=1,
        attention_levels=(False, False, False, False),
        norm_num_groups=16,
        leapfrog_steps=leapfrog_steps,
    ).to(device)
    discriminator = PairDiscriminator(image_channels=1, mask_channels=1, channels=32).to(device)
    generator_optimizer = torch.optim.AdamW(generator.parameters(), lr=1e-3, betas=(0.5, 0.9), weight_decay=1e-8)
    discriminator_optimizer = torch.optim.AdamW(discriminator.parameters(), lr=1e-3, betas=(0.5, 0.9))

    evaluator = SupervisedEvaluator(
        device=device,
        val_data_loader=val_loader,
        network=generator,
        prepare_batch=PreparePairBatch(),
        key_val_metric={
            "val_psnr": IgniteMetricHandler(PSNRMetric(max_val=1.0), output_transform=from_engine(["pred", "label"]))
        },
        val_handlers=[StatsHandler(name=f"{LOGGER_NAME}.validation", output_transform=lambda output: None)],
    )
    trainer = DHVAETrainer(
        device=device,
        max_epochs=max_epochs,
        train_data_loader=train_loader,
        network=generator,
        optimizer=generator_optimizer,
        discriminator=discriminator,
        discriminator_optimizer=discriminator_optimizer,
        loss_function=DHVAELoss(regulariser_weight=0.05),
        discriminator_start=discriminator_start,
    )
    checkpoint_dir = output_dir / "checkpoints"
    save_dict = {
        "generator": generator,
        "discriminator": discriminator,
        "generator_optimizer": generator_optimizer,
        "discriminator_optimizer": discriminator_optimizer,
        "trainer": trainer,
    }
    latest = sorted(checkpoint_dir.glob("checkpoint_epoch=*.pt"), key=lambda p: int(p.stem.split("=")[1]))
    if latest:
        logger.info("resuming from %s", latest[-1])
        CheckpointLoader(load_path=str(latest[-1]), load_dict=save_dict, map_location=device).attach(trainer)
    ProgressBar(persist=False).attach(trainer, output_transform=lambda output: {"loss": float(output["loss"])})
    for handler in (
        StatsHandler(name=f"{LOGGER_NAME}.training", output_transform=loss_terms, iteration_log=False),
        TensorBoardStatsHandler(log_dir=str(output_dir / "tensorboard"), output_transform=loss_terms),
        ValidationHandler(validator=evaluator, interval=5, epoch_level=True),
        CheckpointSaver(save_dir=str(checkpoint_dir), save_dict=save_dict, save_interval=1, n_saved=1),
        SamplePreviewSaver(network=generator, output_dir=output_dir / "previews", interval=5),
    ):
        handler.attach(trainer)
    trainer.run()

    final = checkpoint_dir / f"checkpoint_epoch={trainer.state.epoch}.pt"
    logger.info("checkpoint: %s", final)
    logger.info("previews: %s", output_dir / "previews")
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="runs/demo")
    parser.add_argument("--max_epochs", type=int, default=24)
    parser.add_argument("--num_cases", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--leapfrog_steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(message)s")
    run_demo(
        output_dir=args.output_dir,
        num_cases=args.num_cases,
        image_size=args.image_size,
        max_epochs=args.max_epochs,
        leapfrog_steps=args.leapfrog_steps,
        seed=args.seed,
        device=args.device,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
