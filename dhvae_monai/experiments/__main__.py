"""
The data-scarce experiment of a dhvae-monai bundle (method.md §9).

For each number R of real training patients and each seed, the VAE, HVAE and dHVAE generators are trained on those
patients only, each samples max(M) synthetic pairs once, and the 2D segmenter is trained on the real slices plus
the first M pairs for every M, and on the baselines (no augmentation, traditional augmentation); every segmenter
is scored on the same held-out test patients. Writes runs.csv, quality.csv, results.md and dice_vs_synthetic.png.

The sweep is the bundle's configs/experiment.yaml (the paper's protocol); on the built-in phantom data (no
--dataset_dir / --datalist) configs/experiment_phantom.yaml is read after it (a small sweep for a CPU), and --config
files last. The options below replace single values. Re-running the same command resumes the sweep.

    python -m dhvae_monai.experiments bundles/dhvae_brats --output_dir runs/experiment_phantom
    python -m dhvae_monai.experiments bundles/dhvae_brats --dataset_dir /data/BraTS2021 --output_dir runs/experiment
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from dhvae_monai.experiments.runner import run_experiment
from dhvae_monai.experiments.sweep import ExperimentError, ExperimentSweep
from dhvae_monai.pipeline import PipelineError, parse_override


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dhvae_monai.experiments", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", help="bundle folder, e.g. bundles/dhvae_brats")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--dataset_dir", default=None, help="a BraTS / HECKTOR folder; default: phantom data")
    data.add_argument("--datalist", nargs="+", default=[], help="datalist JSON file(s) whose cases are pooled")
    parser.add_argument("--output_dir", default=None, help="default: <bundle>/runs/experiment")
    parser.add_argument("--config", nargs="+", default=[], help="sweep YAML file(s) read after the bundle's")
    parser.add_argument("--training_patients", type=int, nargs="+", help="values of R")
    parser.add_argument("--num_synthetic", type=int, nargs="+", help="values of M (0: the no-augmentation baseline)")
    parser.add_argument("--seeds", type=int, nargs="+", help="repeats")
    parser.add_argument("--methods", nargs="+", help="a subset of the sweep's baselines and generators")
    parser.add_argument("--num_test", type=int, help="held-out test patients")
    parser.add_argument("--num_val", type=int, help="validation patients per repeat")
    parser.add_argument(
        "--set", dest="overrides", metavar="KEY=VALUE", type=parse_override, action="append", default=[],
        help="override a config key for every stage (YAML value), e.g. --set generator_epochs=50",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s - %(levelname)s - %(message)s")
    phantom = not args.datalist and not args.dataset_dir
    try:
        sweep = ExperimentSweep.from_bundle(args.bundle, phantom=phantom, extra_configs=args.config).restricted(
            args.training_patients, args.num_synthetic, args.seeds, args.methods, args.num_test, args.num_val
        )
        output_dir = args.output_dir or f"{args.bundle.rstrip('/')}/runs/experiment"
        run_experiment(args.bundle, output_dir, sweep, args.dataset_dir, args.datalist, dict(args.overrides))
    except (ExperimentError, PipelineError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"results: {output_dir}/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
