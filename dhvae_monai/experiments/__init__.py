"""The data-scarce experiment: segmenter Dice against real patients and synthetic pairs, per generator, over seeds."""

from __future__ import annotations

from dhvae_monai.experiments.report import format_results_tables, plot_dice_curves, summarise_runs, write_csv, write_report
from dhvae_monai.experiments.runner import pooled_cases, run_experiment
from dhvae_monai.experiments.sweep import ExperimentError, ExperimentRun, ExperimentSweep, split_patients

__all__ = [
    "ExperimentError",
    "ExperimentRun",
    "ExperimentSweep",
    "format_results_tables",
    "plot_dice_curves",
    "pooled_cases",
    "run_experiment",
    "split_patients",
    "summarise_runs",
    "write_csv",
    "write_report",
]
