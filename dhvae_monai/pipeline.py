"""
The main job of a dhvae-monai bundle: every stage in order, then the comparison the project exists for.

``python -m dhvae_monai.pipeline bundles/dhvae_brats`` trains the dHVAE generator, samples synthetic pairs, trains
the 2D segmenter three times (no augmentation, traditional augmentation, dHVAE pairs; method.md §8), evaluates each
on the test patients' whole volumes, and prints a table of their Dice scores. Each stage runs the bundle's own
config through ``monai.bundle.run``, exactly as ``python -m monai.bundle run`` would.

Without ``--dataset_dir`` it uses the built-in phantom data (created on first use) with ``configs/phantom.yaml``'s
small settings; with it, the bundle's defaults (the paper's settings). Re-running the same command resumes every
training stage from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from dhvae_monai.utils.atomic import atomic_path

__all__ = ["SEGMENTATION_VARIANTS", "PipelineError", "format_results", "parse_override", "run_pipeline", "run_stage", "main"]

logger = logging.getLogger(__name__)

#: the segmenter trainings compared by the main job: name -> config overrides
SEGMENTATION_VARIANTS: dict[str, dict[str, Any]] = {
    "no_augmentation": {"num_synthetic": 0, "augmentation": "none"},
    "traditional": {"num_synthetic": 0, "augmentation": "traditional"},
    "dhvae": {"augmentation": "none"},
}
VARIANT_TITLES = {
    "no_augmentation": "no augmentation",
    "traditional": "traditional augmentation",
    "dhvae": "dHVAE synthetic pairs",
}


class PipelineError(RuntimeError):
    """A stage of the main job failed; the message names the stage and the cause to fix."""


def run_stage(bundle_root: str | os.PathLike, stage: str, extra_configs: Sequence[str] = (), **overrides: Any) -> None:
    """
    Run one stage config of a bundle (``configs/common.yaml`` + ``configs/<stage>.yaml`` + ``extra_configs``) with
    ``monai.bundle.run``, the function behind ``python -m monai.bundle run``.

    Args:
        bundle_root: the bundle folder.
        stage: ``train_generator``, ``sample``, ``train_segmentation`` or ``evaluate``.
        extra_configs: further config files of the bundle's ``configs/`` read last (e.g. ``phantom.yaml``).
        overrides: config keys to override (``output_dir``, ``max_epochs``, ...).

    Raises:
        PipelineError: the stage failed; the message gives the stage and the root cause.

    Example::

        run_stage("bundles/dhvae_brats", "train_generator", ["phantom.yaml"], output_dir="runs/brats")
    """
    from monai.bundle import run as run_bundle

    configs = Path(bundle_root) / "configs"
    files = [configs / "common.yaml", configs / f"{stage}.yaml", *(configs / name for name in extra_configs)]
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise PipelineError(f"{stage}: config file(s) {missing} not found; is {bundle_root} a dhvae-monai bundle?")
    logger.info("=== stage %s ===", stage)
    try:
        run_bundle(
            config_file=[str(path) for path in files],
            meta_file=str(configs / "metadata.json"),
            logging_file=str(configs / "logging.conf"),
            bundle_root=str(bundle_root),
            **overrides,
        )
    except Exception as error:
        raise PipelineError(f"stage {stage} failed: {_root_cause(error)}") from error


def run_pipeline(
    bundle_root: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    dataset_dir: str | os.PathLike | None = None,
    variants: Sequence[str] = tuple(SEGMENTATION_VARIANTS),
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, dict]:
    """
    Run every stage of a bundle and return each segmentation variant's test metrics.

    Outputs go to ``output_dir``: the datalist (and phantom data), ``generator/``, ``synthetic/``,
    ``segmentation/<variant>/``, ``evaluation/<variant>/``, ``models/`` (``generator.pt``, ``model.pt`` for the dHVAE
    variant, ``model_<variant>.pt`` for the others), and ``results.json`` / ``results.md`` with the comparison.

    Args:
        bundle_root: the bundle folder (``bundles/dhvae_brats`` or ``bundles/dhvae_hecktor``).
        output_dir: where everything is written; default ``<bundle_root>/runs``.
        dataset_dir: the user's dataset; None: the built-in phantom data with ``configs/phantom.yaml``.
        variants: segmentation variants to train and evaluate (keys of :data:`SEGMENTATION_VARIANTS`).
        overrides: further config overrides for every stage (e.g. ``{"generator_epochs": 2}``).

    Returns:
        ``{variant: summary}``, each the ``summary.json`` of its evaluation.

    Raises:
        PipelineError: a stage failed, or an unknown variant was asked for.

    Example::

        results = run_pipeline("bundles/dhvae_brats", "runs/brats")
        print(format_results(results))
    """
    unknown = [variant for variant in variants if variant not in SEGMENTATION_VARIANTS]
    if unknown:
        raise PipelineError(f"unknown segmentation variant(s) {unknown}; choose from {list(SEGMENTATION_VARIANTS)}.")
    bundle_root = Path(bundle_root)
    output_dir = Path(output_dir) if output_dir is not None else bundle_root / "runs"
    models_dir = output_dir / "models"
    extra_configs = ["phantom.yaml"] if dataset_dir in (None, "") else []
    settings = {
        "output_dir": str(output_dir),
        "models_dir": str(models_dir),
        "dataset_dir": None if dataset_dir in (None, "") else str(dataset_dir),
        **dict(overrides or {}),
    }
    started = time.monotonic()
    run_stage(bundle_root, "train_generator", extra_configs, **settings)
    if "dhvae" in variants:
        run_stage(bundle_root, "sample", extra_configs, **settings)
    results = {}
    for variant in variants:
        weights = models_dir / ("model.pt" if variant == "dhvae" else f"model_{variant}.pt")
        variant_settings = {**settings, **SEGMENTATION_VARIANTS[variant], "run_name": variant}
        variant_settings["segmenter_weights"] = str(weights)
        run_stage(bundle_root, "train_segmentation", extra_configs, **variant_settings)
        run_stage(bundle_root, "evaluate", extra_configs, **variant_settings)
        results[variant] = json.loads((output_dir / "evaluation" / variant / "summary.json").read_text())
    minutes = (time.monotonic() - started) / 60
    table = format_results(results)
    with atomic_path(output_dir / "results.json") as temporary:
        temporary.write_text(json.dumps({"minutes": round(minutes, 1), "results": results}, indent=2) + "\n")
    with atomic_path(output_dir / "results.md") as temporary:
        temporary.write_text(table + "\n")
    logger.info("all stages done in %.1f min; results in %s", minutes, output_dir / "results.md")
    return results


def format_results(results: Mapping[str, Mapping]) -> str:
    """
    A markdown table of the test metrics of each segmentation variant.

    Args:
        results: ``{variant: summary.json content}`` as returned by :func:`run_pipeline`.

    Returns:
        the table as text.

    Example::

        print(format_results(run_pipeline("bundles/dhvae_brats")))
    """

    def cell(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
        return "n/a" if value is None else f"{value * scale:.{digits}f}"

    lines = [
        "| segmenter trained with | test volumes | 3D Dice (%) | HD95 (voxels) | 2D soft Dice (%) |",
        "|---|---|---|---|---|",
    ]
    for variant, summary in results.items():
        metrics = summary["metrics"]
        lines.append(
            f"| {VARIANT_TITLES.get(variant, variant)} | {summary['num_cases']} | "
            f"{cell(metrics.get('test_mean_dice'), 100)} | {cell(metrics.get('test_hd95'))} | "
            f"{cell(metrics.get('test_soft_dice_2d'), 100)} |"
        )
    return "\n".join(lines)


def _root_cause(error: BaseException) -> str:
    """The innermost exception of a chain (MONAI wraps config errors in "Failed to evaluate ..."), as text."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}"


def parse_override(text: str) -> tuple[str, Any]:
    """
    A ``KEY=VALUE`` command-line override, the value read as YAML (``1e-4`` as a number).

    Args:
        text: e.g. ``"generator_epochs=50"``.

    Returns:
        ``(key, value)``.

    Raises:
        argparse.ArgumentTypeError: no ``=``, or no key.

    Example::

        parser.add_argument("--set", type=parse_override, action="append", default=[])
    """
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):
        # YAML 1.1 reads "1e-4" (no dot) as a string; users mean a number
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return key, parsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="bundle folder, e.g. bundles/dhvae_brats")
    parser.add_argument("--dataset_dir", default=None, help="your BraTS / HECKTOR folder; default: phantom data")
    parser.add_argument("--output_dir", default=None, help="default: <bundle>/runs")
    parser.add_argument("--variants", nargs="+", default=list(SEGMENTATION_VARIANTS), choices=list(SEGMENTATION_VARIANTS))
    parser.add_argument(
        "--set", dest="overrides", metavar="KEY=VALUE", type=parse_override, action="append", default=[],
        help="override a config key for every stage (YAML value), e.g. --set generator_epochs=50",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s - %(levelname)s - %(message)s")
    try:
        results = run_pipeline(args.bundle, args.output_dir, args.dataset_dir, args.variants, dict(args.overrides))
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
