"""
What every benchmark script shares: the device to run on, the machine description recorded beside the numbers,
interleaved timing of a candidate and its baseline, and the atomic JSON write of the results.

The scripts in this folder import it as a sibling module (``python benchmarks/<script>.py`` puts the folder on
``sys.path``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Mapping

import monai
import torch

from dhvae_monai.utils.atomic import atomic_path

__all__ = [
    "NETWORKS", "resolve_device", "synchronize", "machine", "load_average", "time_interleaved", "summary",
    "write_results",
]

# the generator networks the benchmarks measure: the bundles' phantom settings and the paper's network (the DHVAE
# defaults, i.e. configs/common.yaml)
NETWORKS = {
    "phantom": {
        "channels": (16, 32, 64, 64), "num_res_blocks": 1, "attention_levels": (False,) * 4, "norm_num_groups": 16,
    },
    "paper": {
        "channels": (128, 256, 512, 512), "num_res_blocks": 2, "attention_levels": (False, False, False, True),
        "norm_num_groups": 32,
    },
}


def resolve_device(name: str) -> torch.device:
    """
    The device named on the command line; asking for CUDA on a machine without it is an error, not a CPU run.

    Raises:
        ValueError: ``name`` is a CUDA device and CUDA is not available.
    """
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}).")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            first_processor = handle.read().split("\n\n")[0]
    except OSError:
        return platform.processor() or platform.machine()
    pairs = (line.split(":", 1) for line in first_processor.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in pairs}
    name = fields.get("model name") or platform.machine()
    family, model = fields.get("cpu family"), fields.get("model")
    return f"{name} (family {family}, model {model})" if family else name


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other users of the cores slow every timing)."""
    return [round(value, 2) for value in os.getloadavg()]


def machine(device: torch.device, threads: int) -> dict:
    """What the numbers were measured on: CPU, cores, threads, device name, library versions and the date."""
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads": threads,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def time_interleaved(
    candidates: Mapping[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """
    Wall-clock seconds of each callable, calling them in turn (A, B, A, B, ...) so that a change in the machine's
    load hits all of them alike.

    Args:
        candidates: name -> callable doing one unit of work.
        repeats: timed calls of each.
        warmup: untimed calls of each first (allocator, oneDNN kernel choice, compilation).
        device: synchronised around each call.

    Returns:
        name -> list of ``repeats`` seconds.
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for repeat in range(warmup + repeats):
        for name, work in candidates.items():
            synchronize(device)
            started = time.perf_counter()
            work()
            synchronize(device)
            if repeat >= warmup:
                times[name].append(time.perf_counter() - started)
    return times


def summary(seconds: list[float]) -> dict:
    """Median, minimum and maximum of repeated timings, with the raw list."""
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds), "all": seconds}


def write_results(path: Path, payload: dict) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2) + "\n")
