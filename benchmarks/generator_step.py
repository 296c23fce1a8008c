"""
Generator training-step benchmark: time and peak memory of one DHVAE update against the number of leapfrog steps K
and the slice size, each beside two baselines measured in the same run:

- (a) a plain VAE step of the same network (K = 0): the ratio to it is the price of the Hamiltonian flow;
- (b) a leapfrog that recomputes the potential's gradient at both half steps (2K evaluations), as the authors' code
  does: the ratio to it is what reusing the gradient between steps (K + 1 evaluations) buys.

A step is: encoder, flow, decoder, negative ELBO, backward through the flow, optimiser step (the generator's part of
a DHVAETrainer iteration, without the discriminator, whose cost does not depend on K). Each configuration runs in
a fresh process, so its peak resident memory is its own.

    python benchmarks/generator_step.py --output docs/benchmarks/generator_step.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from dhvae_monai.losses import HamiltonianELBOLoss
from dhvae_monai.networks import DHVAE
from dhvae_monai.networks.blocks import FlowState, HamiltonianFlow

LEAPFROG_STEPS = (0, 1, 3, 5, 10)
IMAGE_SIZES = (64, 128)


class RecomputingHamiltonianFlow(HamiltonianFlow):
    """The same dynamics as :class:`HamiltonianFlow`, but evaluating U's gradient at both half steps (2K times)."""

    def forward(self, initial_position, momentum_noise, potential) -> FlowState:
        if self.leapfrog_steps == 0:
            return super().forward(initial_position, momentum_noise, potential)
        step_size, sqrt_beta = self.step_size, self.schedule()
        position, momentum = initial_position, momentum_noise / sqrt_beta[0]
        for k in range(1, self.leapfrog_steps + 1):
            _, _, gradient = self._evaluate(potential, position, keep_graph=True)
            momentum = momentum - 0.5 * step_size * gradient
            position = position + step_size * momentum
            energy, extras, gradient = self._evaluate(potential, position, keep_graph=True)
            momentum = (momentum - 0.5 * step_size * gradient) * (sqrt_beta[k - 1] / sqrt_beta[k])
        return FlowState(position, momentum, energy, extras)


def _network(image_size: int, leapfrog_steps: int, recompute: bool, channels: tuple[int, ...]) -> DHVAE:
    torch.manual_seed(0)
    network = DHVAE(
        image_size=image_size, channels=channels, num_res_blocks=1, attention_levels=(False,) * len(channels),
        norm_num_groups=16, leapfrog_steps=leapfrog_steps,
    )
    if recompute:
        flow = RecomputingHamiltonianFlow(leapfrog_steps=leapfrog_steps)
        flow.load_state_dict(network.flow.state_dict())
        network.flow = flow
    return network


def _resident_kib() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() // 1024


def _measure(config: dict, queue) -> None:
    torch.set_num_threads(config["threads"])
    network = _network(config["image_size"], config["leapfrog_steps"], config["recompute"], config["channels"])
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    loss_function = HamiltonianELBOLoss()
    generator = torch.Generator().manual_seed(1)
    size = config["image_size"]
    pair = torch.cat(
        [torch.rand(config["batch_size"], 1, size, size, generator=generator),
         (torch.rand(config["batch_size"], 1, size, size, generator=generator) > 0.8).float()],
        dim=1,
    )
    before = _resident_kib()
    times = []
    for repeat in range(config["warmup"] + config["repeats"]):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(network(pair, return_flow=True))
        loss.backward()
        optimizer.step()
        if repeat >= config["warmup"]:
            times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    queue.put({"seconds": statistics.median(times), "peak_extra_mib": (peak - before) / 1024, "loss": float(loss.detach())})


def run(image_sizes, leapfrog_steps, batch_size, repeats, warmup, channels, threads) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    rows = []
    for image_size in image_sizes:
        for steps in leapfrog_steps:
            for recompute in (False, True) if steps > 0 else (False,):
                config = dict(
                    image_size=image_size, leapfrog_steps=steps, recompute=recompute, batch_size=batch_size,
                    repeats=repeats, warmup=warmup, channels=tuple(channels), threads=threads,
                )
                queue = context.Queue()
                process = context.Process(target=_measure, args=(config, queue))
                process.start()
                result = queue.get()
                process.join()
                row = {**config, **result}
                rows.append(row)
                print(
                    f"{image_size:>4}px K={steps:<2} {'2K evaluations' if recompute else 'K+1 evaluations':<15} "
                    f"{row['seconds']:7.3f} s/step  +{row['peak_extra_mib']:7.1f} MiB",
                    flush=True,
                )
    for row in rows:
        vae = next(r for r in rows if r["image_size"] == row["image_size"] and r["leapfrog_steps"] == 0)
        row["ratio_to_vae"] = row["seconds"] / vae["seconds"]
        if row["leapfrog_steps"] > 0 and not row["recompute"]:
            naive = next(
                r for r in rows
                if r["image_size"] == row["image_size"] and r["leapfrog_steps"] == row["leapfrog_steps"] and r["recompute"]
            )
            row["ratio_to_recompute"] = row["seconds"] / naive["seconds"]
            row["memory_ratio_to_recompute"] = row["peak_extra_mib"] / max(naive["peak_extra_mib"], 1e-9)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_sizes", type=int, nargs="+", default=list(IMAGE_SIZES))
    parser.add_argument("--leapfrog_steps", type=int, nargs="+", default=list(LEAPFROG_STEPS))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 64])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    rows = run(args.image_sizes, args.leapfrog_steps, args.batch_size, args.repeats, args.warmup, args.channels, args.threads)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        machine = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
                   "device": "cpu"}
        args.output.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
