"""
Data-loading benchmark: preprocessed 2D slices per second from :class:`~dhvae_monai.data.TumourSliceDataset`
through a ``DataLoader``, with four ways of holding the preprocessed volumes, measured in the same run with the
epochs interleaved:

- *no cache*: a plain ``monai.data.Dataset`` of volumes passed as ``data``, so every slice read re-runs the volume
  preprocessing (:func:`~dhvae_monai.transforms.brats_volume_transforms`) of its whole volume;
- *memory cache*: :func:`~dhvae_monai.data.preprocessed_volumes` without ``cache_dir``, i.e. MONAI's
  ``CacheDataset``, what ``TumourSliceDataset`` does by default: every volume preprocessed once, kept in memory;
- *disk cache*: MONAI's ``PersistentDataset`` alone: every volume preprocessed once and written to disk, read back
  from disk on every slice;
- *memory and disk cache*: ``preprocessed_volumes`` with ``cache_dir`` (the stages' ``cache_dir``): a memory cache
  over the disk cache.

For both disk caches a second dataset over the same cache folder (as a re-run of a stage would be) is measured
too: it skips the preprocessing.

Volumes: the real BraTS 2018 case of ``../shared/data/real`` when present, and phantom patients on the same
240 x 240 x 155 grid. Each variant's setup (the dataset's construction, which reads every volume once to choose
the slices) is timed apart from its epochs.

    python benchmarks/data_loading.py --output docs/benchmarks/data_loading.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from harness import load_average, machine, summary, write_results
from monai.data import DataLoader, Dataset, PersistentDataset

from dhvae_monai.data import TumourSliceDataset, make_datalist, make_phantom_dataset, preprocessed_volumes
from dhvae_monai.transforms import brats_volume_transforms

REPO = Path(__file__).resolve().parents[1]
REAL_BRATS = REPO.parent / "shared" / "data" / "real" / "brats" / "brainy_Brats18_2013_2_1"
BRATS_SHAPE = (240, 240, 155)


def volume_items(
    workdir: Path, num_phantoms: int, shape: tuple[int, int, int] = BRATS_SHAPE, real: bool = True
) -> tuple[list[dict], list[str]]:
    """Datalist items of the real BraTS 2018 case (if present and ``real``) and ``num_phantoms`` phantoms."""
    items, sources = [], []
    if real and REAL_BRATS.is_dir():
        items += make_datalist(REAL_BRATS, layout="brats2021", val_fraction=0, test_fraction=0)["training"]
        sources.append("Brats18_2013_2_1 (real)")
    if num_phantoms:
        make_phantom_dataset(workdir / "phantoms", "brats2021", num_cases=num_phantoms, shape=shape)
        items += make_datalist(workdir / "phantoms", layout="brats2021", val_fraction=0, test_fraction=0)["training"]
        sources.append(f"{num_phantoms} phantoms {tuple(shape)}")
    return items, sources


def volume_datasets(items: list[dict], transform: Callable, cache_dir: Path) -> dict[str, Callable[[], object]]:
    """Name -> factory of the volumes given to ``TumourSliceDataset``; the disk caches live under ``cache_dir``."""
    return {
        "no_cache": lambda: Dataset(items, transform=transform),
        "memory_cache": lambda: preprocessed_volumes(items, transform),
        "disk_cache": lambda: PersistentDataset(items, transform=transform, cache_dir=cache_dir / "disk"),
        "memory_and_disk_cache": lambda: preprocessed_volumes(
            items, transform, cache_dir=cache_dir / "memory_and_disk"
        ),
    }


def epoch(slices: TumourSliceDataset, batch_size: int, max_batches: int | None) -> int:
    """Read one (shuffled) epoch, or its first ``max_batches`` batches; returns the number of slices read."""
    count = 0
    loader = DataLoader(slices, batch_size=batch_size, shuffle=True, num_workers=0)
    for index, batch in enumerate(loader):
        count += batch["image"].shape[0]
        if max_batches is not None and index + 1 >= max_batches:
            break
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phantoms", type=int, default=3, help="phantom patients beside the real case")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument(
        "--no_cache_batches", type=int, default=2,
        help="batches read per epoch without a cache (each slice re-preprocesses a whole volume)",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transform = brats_volume_transforms()
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        items, sources = volume_items(workdir, args.phantoms)
        factories = volume_datasets(items, transform, workdir / "cache")
        load_before = load_average()
        setups, datasets = {}, {}
        for name, factory in factories.items():
            started = time.perf_counter()
            datasets[name] = TumourSliceDataset(factory())
            setups[name] = time.perf_counter() - started
        # a second dataset over each now warm disk cache: what a re-run of the stage pays
        for name in ("disk_cache", "memory_and_disk_cache"):
            started = time.perf_counter()
            datasets[f"{name}_rerun"] = TumourSliceDataset(factories[name]())
            setups[f"{name}_rerun"] = time.perf_counter() - started
        rates: dict[str, list[float]] = {name: [] for name in datasets}
        for _ in range(args.epochs):
            for name, slices in datasets.items():
                started = time.perf_counter()
                count = epoch(slices, args.batch_size, args.no_cache_batches if name == "no_cache" else None)
                rates[name].append(count / (time.perf_counter() - started))
        load_after = load_average()
    rows = {}
    for name in datasets:
        rows[name] = {
            "setup_seconds": setups[name], "slices": len(datasets[name]), "slices_per_second": summary(rates[name]),
            "first_epoch_slices_per_second": rates[name][0],
        }
        print(
            f"{name:<25} setup {setups[name]:7.2f} s   {summary(rates[name])['median']:9.1f} slices/s "
            f"(epochs: {', '.join(f'{rate:.1f}' for rate in rates[name])})",
            flush=True,
        )
    if args.output is not None:
        write_results(args.output, {
            "machine": machine(torch.device("cpu"), args.threads), "load_average_before": load_before,
            "load_average_after": load_after, "volumes": sources, "num_volumes": len(items),
            "batch_size": args.batch_size, "epochs": args.epochs, "no_cache_batches_per_epoch": args.no_cache_batches,
            "rows": rows,
        })


if __name__ == "__main__":
    main()
