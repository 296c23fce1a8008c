from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from dhvae_monai.engines import DHVAETrainer
from dhvae_monai.losses import DHVAELoss
from dhvae_monai.networks import DHVAE, PairDiscriminator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train_one_rank(rank: int, world_size: int, port: int, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)  # same initial weights on every rank
        net = DHVAE(image_size=32, channels=(8, 16, 32, 32), norm_num_groups=8, leapfrog_steps=2)
        network = torch.nn.parallel.DistributedDataParallel(net)
        discriminator = PairDiscriminator(image_channels=1, mask_channels=1, channels=8)  # unwrapped, as in the bundles
        generator = torch.Generator().manual_seed(1)
        slices = [{"image": torch.rand(1, 32, 32, generator=generator), "label": (torch.rand(1, 32, 32, generator=generator) > 0.7).float()} for _ in range(8)]
        loader = DataLoader(slices, batch_size=2, sampler=DistributedSampler(slices, num_replicas=world_size, rank=rank, shuffle=False))
        trainer = DHVAETrainer(
            device="cpu", max_epochs=1, train_data_loader=loader, network=network,
            optimizer=torch.optim.Adam(network.parameters(), 1e-3), loss_function=DHVAELoss(regulariser_weight=0.05),
            discriminator=discriminator, discriminator_optimizer=torch.optim.Adam(discriminator.parameters(), 1e-3),
            discriminator_start=0,
        )
        trainer.run()
        results[rank] = torch.cat([p.detach().flatten() for p in net.parameters()])
        results[f"discriminator{rank}"] = torch.cat([p.detach().flatten() for p in discriminator.parameters()])
    finally:
        dist.destroy_process_group()


def test_generator_and_discriminator_stay_in_sync_across_ranks():
    """
    Each rank sees different slices; synchronised gradients keep the weights identical (gloo, 2 CPU processes): DDP
    for the generator, the trainer's gradient averaging for the discriminator.
    """
    results = mp.Manager().dict()
    mp.spawn(_train_one_rank, args=(2, _free_port(), results), nprocs=2)
    assert not torch.equal(results[0], torch.cat([p.detach().flatten() for p in _initial_parameters()]))
    torch.testing.assert_close(results[0], results[1])
    torch.testing.assert_close(results["discriminator0"], results["discriminator1"])


def _initial_parameters():
    torch.manual_seed(0)
    return DHVAE(image_size=32, channels=(8, 16, 32, 32), norm_num_groups=8, leapfrog_steps=2).parameters()
