"""
Sampling benchmark: synthetic (image, mask) pairs per second from :meth:`DHVAE.sample` (one decoder pass per batch)
beside a 2D latent-diffusion sampler built from MONAI, the alternative a Model Zoo user would pick, measured in
the same run with the calls interleaved.

- *DHVAE*: ``z ~ N(0, I)`` decoded once, for the paper's network (128 x 128) and the phantom network (64 x 64).
- *LDM*: MONAI's :class:`~monai.inferers.LatentDiffusionInferer` with a :class:`DiffusionModelUNet` denoiser and a
  :class:`DDIMScheduler` at 50 inference steps, decoding with an :class:`AutoencoderKL`. "Comparable size": the
  autoencoder is the DHVAE's own backbone (same configuration, so both samplers end with the same decoder), and the
  denoiser works on the same 3 x 16 x 16 latent with the channels of the backbone's first three levels
  (128-256-512, two residual blocks, attention at the two deepest levels). Both output 2-channel 128 x 128 pairs;
  the parameter counts are in the results.

Every network has random weights: this measures time only. Pairs per second counts every drawn pair; the share
that passes the tumour-size filter needs a trained generator (the README's demo kept 200 of 256 draws).

    python benchmarks/sampling.py --output docs/benchmarks/sampling.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from harness import NETWORKS, load_average, machine, resolve_device, summary, time_interleaved, write_results
from monai.inferers import LatentDiffusionInferer
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler

from dhvae_monai.networks import DHVAE

DDIM_STEPS = 50
DENOISER = {
    "channels": (128, 256, 512), "num_res_blocks": 2, "attention_levels": (False, True, True),
    "num_head_channels": (0, 256, 512), "norm_num_groups": 32,
}


def dhvae(network: str, image_size: int) -> DHVAE:
    """A randomly initialised DHVAE of one of the benchmarked sizes, in evaluation mode."""
    torch.manual_seed(0)
    return DHVAE(image_size=image_size, **NETWORKS[network]).eval()


class LatentDiffusionSampler:
    """
    A 2D latent-diffusion sampler of pairs: DDIM in the latent space of an :class:`AutoencoderKL`, then one decode.

    Args:
        generator: the DHVAE whose backbone configuration the autoencoder copies (its weights too, though random).
        num_inference_steps: DDIM steps.
        denoiser: :class:`DiffusionModelUNet` arguments besides the dimensions.
    """

    def __init__(self, generator: DHVAE, num_inference_steps: int = DDIM_STEPS, denoiser: dict | None = None) -> None:
        self.autoencoder: AutoencoderKL = generator.autoencoder
        self.latent_shape = generator.latent_shape
        torch.manual_seed(1)
        self.denoiser = DiffusionModelUNet(
            spatial_dims=2, in_channels=self.latent_shape[0], out_channels=self.latent_shape[0],
            **(DENOISER if denoiser is None else denoiser),
        ).eval()
        self.scheduler = DDIMScheduler(num_train_timesteps=1000, schedule="scaled_linear_beta", clip_sample=False)
        self.scheduler.set_timesteps(num_inference_steps)
        self.inferer = LatentDiffusionInferer(self.scheduler, scale_factor=1.0)

    def to(self, device: torch.device) -> LatentDiffusionSampler:
        self.autoencoder.to(device)
        self.denoiser.to(device)
        return self

    @torch.no_grad()
    def sample(self, num_samples: int) -> torch.Tensor:
        """``[num_samples, 2, H, W]`` decoded pairs (logits of the autoencoder's output; random weights)."""
        device = next(self.denoiser.parameters()).device
        noise = torch.randn((num_samples, *self.latent_shape), device=device)
        return self.inferer.sample(noise, self.autoencoder, self.denoiser, self.scheduler, verbose=False)


def parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # an LDM call of 2 pairs takes minutes on 2 busy CPU cores: the defaults keep the run under 20 minutes there
    parser.add_argument("--batch_size", type=int, default=2, help="pairs per call, the same for every sampler")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ddim_steps", type=int, default=DDIM_STEPS)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (named in the results)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    paper, phantom = dhvae("paper", 128).to(device), dhvae("phantom", 64).to(device)
    ldm = LatentDiffusionSampler(dhvae("paper", 128), args.ddim_steps).to(device)
    samplers = {
        "dhvae_paper_128": lambda: paper.sample(args.batch_size),
        "dhvae_phantom_64": lambda: phantom.sample(args.batch_size),
        f"ldm_ddim{args.ddim_steps}_128": lambda: ldm.sample(args.batch_size),
    }
    load_before = load_average()
    with torch.no_grad():  # warm-up (oneDNN kernel choice, allocator) on one pair each, cheap for the LDM too
        paper.sample(1), phantom.sample(1), ldm.sample(1)
    times = time_interleaved(samplers, args.repeats, 0, device)
    load_after = load_average()
    sizes = {
        "dhvae_paper_128": {"generator": parameters(paper), "decoder": parameters(paper.autoencoder.decoder)},
        "dhvae_phantom_64": {"generator": parameters(phantom), "decoder": parameters(phantom.autoencoder.decoder)},
        f"ldm_ddim{args.ddim_steps}_128": {
            "denoiser": parameters(ldm.denoiser), "autoencoder": parameters(ldm.autoencoder),
            "decoder": parameters(ldm.autoencoder.decoder),
        },
    }
    rows = []
    baseline = f"ldm_ddim{args.ddim_steps}_128"
    for name, seconds in times.items():
        row = {"sampler": name, "batch_size": args.batch_size, "seconds_per_batch": summary(seconds),
               "parameters": sizes[name]}
        row["pairs_per_second"] = args.batch_size / row["seconds_per_batch"]["median"]
        rows.append(row)
    ldm_rate = next(row for row in rows if row["sampler"] == baseline)["pairs_per_second"]
    for row in rows:
        row["speed_ratio_to_ldm"] = row["pairs_per_second"] / ldm_rate
        print(f"{row['sampler']:<20} {row['pairs_per_second']:9.3f} pairs/s  x{row['speed_ratio_to_ldm']:.1f} vs LDM")
    if args.output is not None:
        write_results(args.output, {
            "machine": machine(device, args.threads),
            "load_average_before": load_before, "load_average_after": load_after,
            "ddim_steps": args.ddim_steps, "denoiser": DENOISER, "rows": rows,
        })


if __name__ == "__main__":
    main()
