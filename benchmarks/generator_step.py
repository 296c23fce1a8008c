"""
Generator training-step benchmark: time and peak memory of one DHVAE update against the number of leapfrog steps K
and the slice size, each beside two baselines measured in the same run:

- (a) a plain VAE step of the same network (K = 0): the ratio to it is the price of the Hamiltonian flow;
- (b) a leapfrog that recomputes the potential's gradient at both half steps (2K evaluations), as the authors' code
  does: the ratio to it is what reusing the gradient between steps (K + 1 evaluations) buys.

A step is: encoder, flow, decoder, negative ELBO, backward through the flow, optimiser step (the generator's part of
a DHVAETrainer iteration, without the discriminator, whose cost does not depend on K). Each configuration runs in
a fresh process, so its peak memory is its own (resident memory on a CPU, allocated memory on CUDA).

``--network phantom`` is the bundles' slim phantom network, ``--network paper`` the paper's (128-256-512-512, two
residual blocks, attention at the deepest level). ``--memory_formats contiguous channels_last`` adds a row per
configuration with the network and the batch in ``channels_last``, to see whether that layout pays.

    python benchmarks/generator_step.py --output docs/benchmarks/generator_step.json
    python benchmarks/generator_step.py --network paper --image_sizes 128 --leapfrog_steps 0 3 --batch_size 1 \\
        --repeats 1 --warmup 0 --threads 1 --output docs/benchmarks/generator_step_paper.json
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time
from pathlib import Path

import torch
from harness import NETWORKS, load_average, machine, resolve_device, synchronize, write_results

from dhvae_monai.losses import HamiltonianELBOLoss
from dhvae_monai.networks import DHVAE
from dhvae_monai.networks.blocks import FlowState, HamiltonianFlow

LEAPFROG_STEPS = (0, 1, 3, 5, 10)
IMAGE_SIZES = (64, 128)
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


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


def _network(image_size: int, leapfrog_steps: int, recompute: bool, network: str = "phantom") -> DHVAE:
    torch.manual_seed(0)
    network = DHVAE(image_size=image_size, leapfrog_steps=leapfrog_steps, **NETWORKS[network])
    if recompute:
        flow = RecomputingHamiltonianFlow(leapfrog_steps=leapfrog_steps)
        flow.load_state_dict(network.flow.state_dict())
        network.flow = flow
    return network


def _resident_kib() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() // 1024


def _peak_kib(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _measure_in_child(config: dict, queue) -> None:
    try:
        _measure(config, queue)
    except BaseException as error:  # the parent waits on the queue: tell it, then fail
        queue.put({"error": f"{type(error).__name__}: {error}"})
        raise


def _measure(config: dict, queue) -> None:
    torch.set_num_threads(config["threads"])
    device = torch.device(config["device"])
    memory_format = MEMORY_FORMATS[config["memory_format"]]
    network = _network(config["image_size"], config["leapfrog_steps"], config["recompute"], config["network"])
    network = network.to(device, memory_format=memory_format)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    loss_function = HamiltonianELBOLoss()
    generator = torch.Generator().manual_seed(1)
    size = config["image_size"]
    pair = torch.cat(
        [torch.rand(config["batch_size"], 1, size, size, generator=generator),
         (torch.rand(config["batch_size"], 1, size, size, generator=generator) > 0.8).float()],
        dim=1,
    ).to(device).contiguous(memory_format=memory_format)
    before = _resident_kib() if device.type == "cpu" else torch.cuda.memory_allocated(device) // 1024
    times = []
    for repeat in range(config["warmup"] + config["repeats"]):
        synchronize(device)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(network(pair, return_flow=True))
        loss.backward()
        optimizer.step()
        synchronize(device)
        if repeat >= config["warmup"]:
            times.append(time.perf_counter() - started)
    queue.put({
        "seconds": statistics.median(times), "all_seconds": times,
        "peak_extra_mib": (_peak_kib(device) - before) / 1024, "loss": float(loss.detach()),
    })


def run(
    image_sizes, leapfrog_steps, batch_size, repeats, warmup, network, threads, device, memory_formats=("contiguous",)
) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    rows = []
    for config in (
        dict(image_size=size, leapfrog_steps=steps, recompute=recompute, memory_format=memory_format, threads=count)
        for count in threads for size in image_sizes for steps in leapfrog_steps
        for recompute in ((False, True) if steps > 0 else (False,)) for memory_format in memory_formats
    ):
        config.update(
            network=network, batch_size=batch_size, repeats=repeats, warmup=warmup, device=str(device),
            load_average_before=load_average(),
        )
        queue = context.Queue()
        process = context.Process(target=_measure_in_child, args=(config, queue))
        process.start()
        result = queue.get()
        process.join()
        if "error" in result:
            raise RuntimeError(f"measuring {config} failed: {result['error']}")
        row = {**config, **result, "load_average_after": load_average()}
        rows.append(row)
        print(
            f"{row['image_size']:>4}px K={row['leapfrog_steps']:<2} "
            f"{'2K evaluations' if row['recompute'] else 'K+1 evaluations':<15} {row['memory_format']:<14} "
            f"{row['threads']} thread(s) {row['seconds']:8.3f} s/step  +{row['peak_extra_mib']:8.1f} MiB  "
            f"load {row['load_average_after'][0]}",
            flush=True,
        )
    for row in rows:
        def same(other, **changes):
            keys = ("image_size", "leapfrog_steps", "recompute", "memory_format", "threads")
            return all(other[key] == changes.get(key, row[key]) for key in keys)

        vae = next((r for r in rows if same(r, leapfrog_steps=0, recompute=False)), None)
        if vae is not None:
            row["ratio_to_vae"] = row["seconds"] / vae["seconds"]
        if row["leapfrog_steps"] > 0 and not row["recompute"]:
            naive = next(r for r in rows if same(r, recompute=True))
            row["ratio_to_recompute"] = row["seconds"] / naive["seconds"]
            row["memory_ratio_to_recompute"] = row["peak_extra_mib"] / max(naive["peak_extra_mib"], 1e-9)
        if row["memory_format"] != "contiguous":
            contiguous = next((r for r in rows if same(r, memory_format="contiguous")), None)
            if contiguous is not None:
                row["ratio_to_contiguous"] = row["seconds"] / contiguous["seconds"]
        if row["threads"] != threads[0]:
            row["ratio_to_first_thread_count"] = row["seconds"] / next(
                r for r in rows if same(r, threads=threads[0])
            )["seconds"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_sizes", type=int, nargs="+", default=list(IMAGE_SIZES))
    parser.add_argument("--leapfrog_steps", type=int, nargs="+", default=list(LEAPFROG_STEPS))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--network", choices=sorted(NETWORKS), default="phantom")
    parser.add_argument("--memory_formats", nargs="+", choices=sorted(MEMORY_FORMATS), default=["contiguous"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (named in the results)")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[torch.get_num_threads()],
        help="intra-op threads; several values give one row each (ratios to the first)",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    rows = run(
        args.image_sizes, args.leapfrog_steps, args.batch_size, args.repeats, args.warmup, args.network, args.threads,
        device, args.memory_formats,
    )
    if args.output is not None:
        write_results(
            args.output, {"machine": machine(device, args.threads[0]), "network": NETWORKS[args.network], "rows": rows}
        )


if __name__ == "__main__":
    main()
